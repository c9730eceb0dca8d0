"""`minicnn export CHECKPOINT --format onnx|safetensors`: a trained run's model for other tools.

onnx: the model as an ONNX graph (mc.onnx.export) that takes images in [0, 1], (batch, C, H, W)
float32, as `minicnn predict` does: the run's per-channel normalization is the graph's first two
nodes (--no-normalize leaves it out); output 'logits' (batch, classes). When onnxruntime is
installed the file is run once on random images and its difference from minicnn printed.

safetensors: the model's state dict, with the run's model name, its arguments, classes and
normalization as JSON strings in the file's metadata.
"""
import argparse
import json
import os

import numpy

from .. import nn
from ..serialization import save_safetensors
from ..tensor import Tensor
from .common import CLIError, check_output_file, load_run

FORMATS = ("onnx", "safetensors")


def add_parser(sub):
    p = sub.add_parser("export", help="write a checkpoint's model as ONNX or safetensors",
                       description="Write the model of a `minicnn train` checkpoint as an ONNX "
                                   "graph (for onnxruntime and other runtimes) or its weights "
                                   "as a safetensors file (for PyTorch, JAX, model hubs).")
    p.add_argument("checkpoint", help="model.mc of a run")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--out", default=None,
                   help="output file (default: the checkpoint's name with .onnx / .safetensors)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset version (default 17)")
    p.add_argument("--static-batch", action="store_true",
                   help="ONNX: a fixed batch size (the --batch-size) instead of a free one")
    p.add_argument("--batch-size", type=int, default=2, help=argparse.SUPPRESS)
    p.add_argument("--fold-batchnorm", action="store_true",
                   help="ONNX: fold each batch norm into the convolution before it")
    p.add_argument("--no-normalize", action="store_true",
                   help="ONNX: leave the run's input normalization out of the graph")
    return p


class Normalized(nn.Module):
    """(x - mean) / std per channel, then the model: the run's preprocessing inside the graph."""

    def __init__(self, model, mean, std):
        super().__init__()
        shape = (1, len(mean), 1, 1)
        self.register_buffer("mean", Tensor(numpy.asarray(mean, numpy.float32).reshape(shape)))
        self.register_buffer("std", Tensor(numpy.asarray(std, numpy.float32).reshape(shape)))
        self.model = model

    def forward(self, x):
        return self.model((x - self.mean) / self.std)


def run(args):
    check_output_file(args.out, "--out")
    model, meta = load_run(args.checkpoint, "cpu")
    out = args.out or os.path.splitext(args.checkpoint)[0] + "." + args.format
    if args.format == "safetensors":
        return _safetensors(model, meta, out)
    return _onnx(args, model, meta, out)


def _safetensors(model, meta, out):
    metadata = {"format": "pt", "producer": "minicnn", "model": meta["model"],
                "model_kwargs": json.dumps(meta["model_kwargs"]),
                "classes": json.dumps(meta["classes"]), "mean": json.dumps(meta["mean"]),
                "std": json.dumps(meta["std"]), "image_shape": json.dumps(meta["image_shape"])}
    try:
        save_safetensors(model.state_dict(), out, metadata=metadata)
    except ImportError as e:
        raise CLIError(str(e)) from None
    n = len(model.state_dict())
    print(f"wrote {out}: {n} tensors of {meta['model']} ({model.num_parameters():,} parameters), "
          f"safetensors")
    return 0


def _onnx(args, model, meta, out):
    try:
        from ..onnx import ExportError, export  # noqa: PLC0415
        import onnx  # noqa: F401,PLC0415 -- the clear message before any work
    except ImportError:
        raise CLIError("--format onnx needs the onnx package: pip install 'minicnn[onnx]' (or "
                       "pip install onnx onnxruntime)") from None
    if args.batch_size < 1:
        raise CLIError("--batch-size must be positive")
    graph_model = model if args.no_normalize else Normalized(model, meta["mean"], meta["std"])
    graph_model.eval()
    c, h, w = meta["image_shape"]
    example = numpy.random.default_rng(0).uniform(0, 1, (args.batch_size, c, h, w)).astype(
        numpy.float32)
    try:
        proto = export(graph_model, example, out, opset_version=args.opset,
                       dynamic_batch=not args.static_batch, input_names=["input"],
                       output_names=["logits"], fold_batchnorm=args.fold_batchnorm)
    except (ExportError, ValueError) as e:
        raise CLIError(str(e)) from None
    batch = args.batch_size if args.static_batch else "batch"
    inputs = "images in [0, 1]" if not args.no_normalize else "normalized images"
    print(f"wrote {out}: {meta['model']} as ONNX (opset {args.opset}, {len(proto.graph.node)} "
          f"nodes); input 'input' ({batch}, {c}, {h}, {w}) float32, {inputs}; output 'logits' "
          f"({batch}, {len(meta['classes'])})")
    _compare_with_onnxruntime(graph_model, out, example)
    return 0


def _compare_with_onnxruntime(model, path, x):
    try:
        import onnxruntime  # noqa: PLC0415
    except ImportError:
        return
    from ..autograd import no_grad  # noqa: PLC0415
    sess = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {"input": x})
    with no_grad():
        want = model(Tensor(x)).array
    print(f"onnxruntime {onnxruntime.__version__}: largest difference from minicnn "
          f"{float(numpy.abs(got - want).max()):.2g} on {len(x)} random images")
