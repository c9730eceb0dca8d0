"""The bad-input catalogue (issue 23): inputs a new user gives, each with the exception minicnn
must raise (as PyTorch refuses it, or more clearly) and a fragment of its message. The command
line cases run `minicnn` as a subprocess and check the exit status (2: the user's error, 1: any
other) and that stderr is one line without a traceback. Add a case with every fix."""
import dataclasses
import os
import subprocess
import sys
from typing import Any, Callable

import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from minicnn import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass
class Case:
    name: str
    call: Callable
    exc: Any
    match: str              # a regex the message must contain


def _pooled():
    y, idx = F.max_pool2d(mc.randn(1, 1, 4, 4), 2, return_indices=True)
    return y, idx


API = [
    Case("conv2d with kernel size 0", lambda: nn.Conv2d(3, 4, 0)(mc.randn(1, 3, 5, 5)),
         ValueError, r"conv2d: kernel size should be greater than zero, but got kernel_height: "
                     r"0 kernel_width: 0"),
    Case("conv2d with one side 0", lambda: F.conv2d(mc.randn(1, 3, 5, 5), mc.randn(4, 3, 0, 3)),
         ValueError, r"kernel size should be greater than zero"),
    Case("conv1d with kernel size 0", lambda: F.conv1d(mc.randn(1, 3, 5), mc.randn(4, 3, 0)),
         ValueError, r"conv1d: kernel size should be greater than zero"),
    Case("conv_transpose2d with kernel size 0",
         lambda: F.conv_transpose2d(mc.randn(1, 3, 5, 5), mc.randn(3, 4, 0, 0)), ValueError,
         r"conv_transpose2d: kernel size should be greater than zero"),
    Case("conv2d without a weight", lambda: F.conv2d(mc.randn(1, 3, 5, 5), None), TypeError,
         r"conv2d: weight must be a Tensor, got NoneType"),
    Case("conv2d with a bias that is not a tensor",
         lambda: F.conv2d(mc.randn(1, 3, 5, 5), mc.randn(4, 3, 3, 3), [0.0] * 4), TypeError,
         r"conv2d: bias must be a Tensor, got list"),
    Case("max_unpool2d with float indices",
         lambda: F.max_unpool2d(_pooled()[0], _pooled()[1].float(), 2), TypeError,
         r"max_unpool2d: expected indices of dtype int64 .*got float32"),
    Case("max_unpool2d with fractional indices",
         lambda: F.max_unpool2d(_pooled()[0], _pooled()[1].double() + 0.5, 2), TypeError,
         r"expected indices of dtype int64"),
    Case("max_unpool2d with int32 indices",
         lambda: F.max_unpool2d(_pooled()[0], _pooled()[1].int(), 2), TypeError,
         r"expected indices of dtype int64 .*got int32"),
    Case("DataLoader with a fractional batch size",
         lambda: mc.data.DataLoader(mc.data.TensorDataset(mc.randn(10, 2)), batch_size=2.5),
         ValueError, r"batch_size should be a positive integer"),
    Case("DataLoader with batch size 0",
         lambda: mc.data.DataLoader(mc.data.TensorDataset(mc.randn(10, 2)), batch_size=0),
         ValueError, r"batch_size should be a positive integer"),
    Case("Trainer with a negative grad_clip",
         lambda: mc.train.Trainer(nn.Linear(2, 2), None, grad_clip=-1.0), ValueError,
         r"Trainer: grad_clip must be a positive number or None, got -1.0"),
    Case("Trainer with a NaN grad_clip",
         lambda: mc.train.Trainer(nn.Linear(2, 2), None, grad_clip=float("nan")), ValueError,
         r"grad_clip must be a positive number"),
    Case("Trainer with a fractional sync_every",
         lambda: mc.train.Trainer(nn.Linear(2, 2), None, sync_every=2.5), ValueError,
         r"Trainer: sync_every must be a positive number of steps, got 2.5"),
    Case("float64 input into a float32 BatchNorm2d",
         lambda: nn.BatchNorm2d(3)(mc.randn(2, 3, 4, 4, dtype=mc.float64)), TypeError,
         r"batch_norm: expected the input's dtype float64 for running_mean \(got float32\)"),
    Case("float64 input into an eval-mode BatchNorm2d",
         lambda: nn.BatchNorm2d(3).eval()(mc.randn(2, 3, 4, 4, dtype=mc.float64)), TypeError,
         r"batch_norm: expected the input's dtype float64"),
    Case("float64 input into a float32 LayerNorm",
         lambda: nn.LayerNorm(4)(mc.randn(2, 4, dtype=mc.float64)), TypeError,
         r"layer_norm: expected the input's dtype float64 for weight \(got float32\)"),
    Case("float64 input into a float32 GroupNorm",
         lambda: nn.GroupNorm(1, 4)(mc.randn(2, 4, 3, dtype=mc.float64)), TypeError,
         r"group_norm: expected the input's dtype float64"),
    # float16 and bfloat16 are computed in float32 (issue 19, tests/test_half.py); NumPy's
    # longdouble is a float the kernels do not take
    Case("longdouble into conv2d",
         lambda: F.conv2d(mc.tensor(np.ones((1, 3, 5, 5), np.longdouble)),
                          mc.tensor(np.ones((4, 3, 3, 3), np.longdouble))), TypeError,
         r"conv2d: float128 input \(shape \[1, 3, 5, 5\]\) is not supported"),
    Case("longdouble into max_pool2d",
         lambda: F.max_pool2d(mc.tensor(np.ones((1, 3, 4, 4), np.longdouble)), 2),
         TypeError, r"max_pool2d: float128 input .* is not supported"),
    Case("longdouble into relu", lambda: F.relu(mc.tensor(np.ones(3, np.longdouble))),
         TypeError, r"relu: float128 input"),
    Case("longdouble into batch_norm",
         lambda: F.batch_norm(mc.tensor(np.ones((2, 3, 4), np.longdouble)), None, None,
                              training=True), TypeError, r"batch_norm: float128 input"),
    Case("a ragged nested list", lambda: mc.tensor([[1.0, 2.0], [3.0]]), ValueError,
         r"tensor: expected sequence of length 2 at dim 1 \(got 1\)"),
    Case("numbers mixed with lists", lambda: mc.tensor([1.0, [2.0]]), ValueError,
         r"tensor: a mix of numbers and sequences at dim 0"),
    Case("cross_entropy with a (N, 1) target",
         lambda: F.cross_entropy(mc.randn(4, 3), mc.zeros(4, 1, dtype=mc.int64)), ValueError,
         r"cross_entropy: expected a 0-D or 1-D target of class indices, got target \[4, 1\] "
         r".*multi-target is not supported; target.squeeze\(1\)"),
    Case("mse_loss with shapes that do not broadcast",
         lambda: F.mse_loss(mc.randn(4, 3), mc.randn(2, 5)), ValueError,
         r"^mse_loss: the input of size \[4, 3\] and the target of size \[2, 5\] cannot be "
         r"broadcast together"),
    Case("l1_loss with shapes that do not broadcast",
         lambda: F.l1_loss(mc.randn(4, 3), mc.randn(2, 5)), ValueError, r"^l1_loss: the input"),
    Case("load_state_dict of a list", lambda: nn.Linear(2, 2).load_state_dict([1, 2]), TypeError,
         r"Expected state_dict to be dict-like, got list"),
    Case("binary_cross_entropy with a NaN probability",
         lambda: F.binary_cross_entropy(mc.tensor([0.5, float("nan")]), mc.tensor([0.0, 1.0])),
         ValueError, r"all elements of input should be between 0 and 1"),
    Case("pos_weight that requires grad",
         lambda: F.binary_cross_entropy_with_logits(mc.randn(3), mc.rand(3),
                                                    pos_weight=mc.ones(3, requires_grad=True)),
         RuntimeError, r"not differentiable with respect to argument 'pos_weight'"),
]


@pytest.mark.parametrize("case", API, ids=lambda c: c.name)
def test_api(case):
    with pytest.raises(case.exc, match=case.match):
        case.call()


def test_saving_into_a_missing_folder_names_the_target(tmp_path):
    target = tmp_path / "missing" / "model.mc"
    with pytest.raises(FileNotFoundError, match=r"cannot write .*model.mc.*: the folder .*missing"
                                                 r".* does not exist") as info:
        mc.save({"w": mc.ones(2)}, target)
    assert info.value.filename == str(target) and ".tmp" not in str(info.value)


def test_a_full_disk_names_the_target(tmp_path, monkeypatch):
    import errno  # noqa: PLC0415

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    target = tmp_path / "model.mc"
    with pytest.raises(OSError, match="No space left on device") as info:
        mc.save({"w": mc.ones(2)}, target)
    assert info.value.filename == str(target)
    assert os.listdir(tmp_path) == []          # nothing left behind


# --- the command line ----------------------------------------------------------------------

def minicnn(*args, prelude=""):
    """`minicnn args` in a subprocess (after `prelude`, Python run first in it)."""
    env = dict(os.environ, NUMBA_NUM_THREADS="1", PYTHONPATH=ROOT)
    code = f"{prelude}\nimport sys\nfrom minicnn.cli import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=600)


def _one_line_error(proc, status, match):
    assert proc.returncode == status, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("minicnn ") and ": error: " in lines[0]
    assert __import__("re").search(match, lines[0]), lines[0]


# quick to fail: they would train one step of one epoch if the check were missing
QUICK = ("--epochs", 1, "--steps-per-epoch", 1, "--quiet", "--no-plots")

TRAIN = [
    (["--lr", "-1"], r"--lr must be a finite number >= 0, got -1"),
    (["--lr", "nan"], r"--lr must be a finite number >= 0, got nan"),
    (["--momentum", "-1"], r"--momentum must be a finite number >= 0"),
    (["--weight-decay", "inf"], r"--weight-decay must be a finite number >= 0"),
    (["--device", "tpu"], r"--device 'tpu': .*unknown device"),
    (["--image-size", "0"], r"--image-size must be a positive integer, got 0"),
    (["--image-size", "-5"], r"--image-size must be a positive integer, got -5"),
    (["--dataset", "shapes", "--num-samples", "0"], r"--num-samples must be a positive integer"),
    (["--width", "-4"], r"--width must be a positive integer, got -4"),
    (["--batch-size", "0"], r"--batch-size must be a positive integer"),
    (["--seed", "-1"], r"--seed must be >= 0"),
    (["--val-fraction", "1.5"], r"--val-fraction must be in \[0, 1\)"),
]


@pytest.mark.parametrize("options,match", TRAIN, ids=lambda o: " ".join(map(str, o))
                         if isinstance(o, list) else "")
def test_train_option_errors(options, match, tmp_path):
    _one_line_error(minicnn("train", *options, *QUICK, "--out", tmp_path / "run"), 2, match)


@pytest.mark.skipif(mc.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda(tmp_path):
    _one_line_error(minicnn("train", "--device", "cuda", *QUICK, "--out", tmp_path / "run"), 2,
                    r"^minicnn train: error: --device 'cuda': .*CUDA is not available")
    np.save(tmp_path / "x.npy", np.zeros((1, 1, 8, 8), np.float32))
    _one_line_error(minicnn("predict", tmp_path / "missing.mc", tmp_path / "x.npy", "--device",
                            "cuda:0"), 2, r"--device 'cuda:0': .*CUDA is not available")


def test_train_out_is_a_file(tmp_path):
    existing = tmp_path / "a_file"
    existing.write_text("x")
    _one_line_error(minicnn("train", *QUICK, "--out", existing), 2,
                    r"--out .*a_file is a file: give a folder")


def test_train_with_a_full_disk(tmp_path):
    prelude = ("import os, errno\n"
               "def full(fd):\n"
               "    raise OSError(errno.ENOSPC, 'No space left on device')\n"
               "os.fsync = full")
    proc = minicnn("train", *QUICK, "--out", tmp_path / "run", prelude=prelude)
    _one_line_error(proc, 1, r"No space left on device: .*model\.mc \(--debug prints")


def test_debug_prints_the_traceback(tmp_path):
    prelude = ("import os, errno\n"
               "def full(fd):\n"
               "    raise OSError(errno.ENOSPC, 'No space left on device')\n"
               "os.fsync = full")
    proc = minicnn("train", *QUICK, "--debug", "--out", tmp_path / "run", prelude=prelude)
    assert proc.returncode == 1 and "Traceback" in proc.stderr


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("bad_input") / "run"
    proc = minicnn("train", "--epochs", 1, "--steps-per-epoch", 2, "--batch-size", 16,
                   "--quiet", "--no-plots", "--out", out)
    assert proc.returncode == 0, proc.stderr
    return out


def test_predict_on_an_empty_array(run_folder, tmp_path):
    np.save(tmp_path / "empty.npy", np.zeros((0,), np.float32))
    _one_line_error(minicnn("predict", run_folder / "model.mc", tmp_path / "empty.npy"), 2,
                    r"empty\.npy holds no images")
    np.save(tmp_path / "none.npy", np.zeros((0, 1, 16, 16), np.float32))
    _one_line_error(minicnn("predict", run_folder / "model.mc", tmp_path / "none.npy"), 2,
                    r"holds no images")


def test_predict_options(run_folder, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 16, 16), np.float32))
    model = run_folder / "model.mc"
    _one_line_error(minicnn("predict", model, tmp_path / "x.npy", "--device", "tpu"), 2,
                    r"--device 'tpu'")
    _one_line_error(minicnn("predict", model, tmp_path / "x.npy", "--top-k", "0"), 2,
                    r"--top-k must be a positive integer")
    _one_line_error(minicnn("predict", model, tmp_path / "x.npy", "--batch-size", "-1"), 2,
                    r"--batch-size must be a positive integer")
    _one_line_error(minicnn("evaluate", model, "--device", "tpu"), 2, r"--device 'tpu'")


def test_predict_warns_about_images_in_0_255(run_folder, tmp_path):
    images = np.random.default_rng(0).uniform(0, 255, (2, 1, 16, 16)).astype(np.float32)
    np.save(tmp_path / "raw.npy", images)
    proc = minicnn("predict", run_folder / "model.mc", tmp_path / "raw.npy")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert "warning: the images range over [" in proc.stderr
    assert "trained on images in [0, 1] (divide by 255" in proc.stderr
    np.save(tmp_path / "ok.npy", images / 255)
    proc = minicnn("predict", run_folder / "model.mc", tmp_path / "ok.npy")
    assert proc.returncode == 0 and proc.stderr == ""


def test_predict_on_a_nan_image_names_no_class(run_folder, tmp_path):
    images = np.full((3, 1, 16, 16), 0.5, np.float32)
    images[0] = np.nan                                  # all NaN
    images[2, 0, 3, 4] = np.inf                         # one infinite pixel
    np.save(tmp_path / "nan.npy", images)
    proc = minicnn("predict", run_folder / "model.mc", tmp_path / "nan.npy", "--top-k", 2,
                   "--output", tmp_path / "rows.json")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    lines = proc.stdout.splitlines()
    for i in (0, 2):
        assert lines[i] == f"{i}\t-\t-  (no prediction: the model's output is not finite)"
    index, label, probability = lines[1].split("  (")[0].split("\t")
    assert index == "1" and 0 < float(probability) <= 1
    assert "2 image(s) (0, 2) hold NaN or infinite values" in proc.stderr
    rows = __import__("json").loads((tmp_path / "rows.json").read_text())
    assert [r["prediction"] is None for r in rows] == [True, False, True]
    assert rows[0]["probability"] is None and rows[0]["top_k"] == []


def test_output_files_in_missing_folders_or_folders(run_folder, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 16, 16), np.float32))
    model, missing = run_folder / "model.mc", tmp_path / "missing"
    _one_line_error(minicnn("predict", model, tmp_path / "x.npy", "--output", missing / "p.json"),
                    2, r"--output .*p\.json: the folder .*missing does not exist")
    _one_line_error(minicnn("predict", model, tmp_path / "x.npy", "--output", tmp_path), 2,
                    r"--output .* is a folder: give a file name")
    _one_line_error(minicnn("export", model, "--format", "safetensors", "--out",
                            missing / "m.safetensors"), 2, r"--out .*m\.safetensors: the folder")
    _one_line_error(minicnn("export", model, "--format", "safetensors", "--out", tmp_path), 2,
                    r"--out .* is a folder")


def test_a_checkpoint_with_nan_weights_is_named(run_folder, tmp_path):
    """A diverged run's checkpoint (as written before the Trainer checked the weights)."""
    ck = mc.train.load_checkpoint(run_folder / "model.mc")
    key = next(iter(ck["model"]))
    ck["model"][key] = ck["model"][key] * float("nan")
    mc.save(ck, tmp_path / "nan.mc")
    np.save(tmp_path / "x.npy", np.full((1, 1, 16, 16), 0.5, np.float32))
    for proc in (minicnn("predict", tmp_path / "nan.mc", tmp_path / "x.npy"),
                 minicnn("evaluate", tmp_path / "nan.mc")):
        assert proc.returncode == 0 and "Traceback" not in proc.stderr
        assert f"minicnn: warning: {tmp_path / 'nan.mc'} holds NaN or inf in {key}: its " \
               "outputs are meaningless" in proc.stderr
    proc = minicnn("predict", run_folder / "model.mc", tmp_path / "x.npy")
    assert proc.returncode == 0 and proc.stderr == ""


@pytest.mark.parametrize("options,match", [
    (["--threads", "-1"], r"^--threads must be a positive integer, got -1$"),
    (["--repeats", "0"], r"^--repeats must be a positive integer, got 0$"),
    (["--out", "README.md"], r"^--out README.md is a file: give a folder")])
def test_bench_option_errors(options, match):
    proc = minicnn("bench", "--quick", "--only", "relu", *options)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and __import__("re").search(match, lines[0]), proc.stderr


@pytest.mark.parametrize("args,match", [
    (["train", "--lr", "abc"], r"^minicnn train: error: argument --lr: invalid float value: 'abc' "
                               r"\(see minicnn train --help\)$"),
    (["train", "--epochs", "1.5"], r"argument --epochs: invalid int value: '1.5'"),
    (["train", "--optimizer", "foo"], r"argument --optimizer: invalid choice: 'foo'"),
    (["predict"], r"^minicnn predict: error: the following arguments are required: checkpoint, "
                  r"images"),
    (["train", "--bogus"], r"^minicnn: error: unrecognized arguments: --bogus")],
    ids=lambda a: " ".join(a) if isinstance(a, list) else "")
def test_argparse_errors_are_one_line(args, match):
    """argparse's own errors (a value of the wrong type, a missing argument) without its usage
    block."""
    proc = minicnn(*args)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and __import__("re").search(match, lines[0]), proc.stderr
