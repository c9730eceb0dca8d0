"""mc.viz: the autograd graph as Graphviz DOT text (torchviz's make_dot), and its drawing.

    dot = mc.viz.to_dot(model, mc.randn(1, 1, 16, 16))   # or to_dot(loss) for any tensor
    mc.viz.render(dot, "lenet.svg")                       # needs Graphviz's `dot` program

A box per op (its name, the module that called it, the shape and dtype of its output), an
ellipse per leaf: the model's inputs, its parameters and buffers labelled by their state-dict
names ('features.0.weight'), other constants; an arrow from each tensor to the ops that read it,
and a double octagon per output. A model runs once in eval mode (minicnn/tracing.py), its
training mode put back after.
"""
import os
import shutil
import subprocess

from .fileio import write_atomic
from .tensor import Tensor
from .tracing import Recording, record

__all__ = ["to_dot", "render"]

_STYLE = {
    "op": 'shape=box, style="rounded,filled", fillcolor="#e8e8e8"',
    "input": 'shape=ellipse, style=filled, fillcolor="#c6dbef"',
    "param": 'shape=ellipse, style=filled, fillcolor="#fdd0a2"',
    "const": 'shape=ellipse, style=filled, fillcolor="#f0f0f0", fontcolor="#555555"',
    "output": 'shape=doubleoctagon, style=filled, fillcolor="#c7e9c0"',
}


def _quote(text):
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _desc(t):
    return f"{tuple(int(s) for s in t.shape)} {t.array.dtype}"


def _op_label(fn):
    act = getattr(fn, "act", None)
    return f"{fn.name}[{act}]" if isinstance(act, str) else fn.name


def to_dot(obj, example_input=None, params=None, name="minicnn"):
    """DOT text of the graph that made a Tensor (or a tuple of them), or of a model run on
    example_input (a Tensor or array, or a tuple of them for several inputs).

    params: {name: Tensor} to label leaves by (a model's state dict is used for a model; pass
    dict(model.named_parameters()) to name the parameters of a tensor's graph)."""
    names = {}
    module_of = {}
    inputs = []
    if isinstance(obj, (Tensor, tuple, list)) and example_input is None:
        outputs = list(obj) if isinstance(obj, (tuple, list)) else [obj]
        if not all(isinstance(t, Tensor) for t in outputs):
            raise TypeError("mc.viz.to_dot: expected a Tensor, a tuple of Tensors, or a model "
                            "with an example input")
        rec = Recording([])
        rec.outputs = outputs
    elif hasattr(obj, "named_modules"):
        if example_input is None:
            raise TypeError("mc.viz.to_dot: drawing a model needs an example input: "
                            "to_dot(model, mc.randn(1, 3, 32, 32))")
        xs = list(example_input) if isinstance(example_input, (tuple, list)) else [example_input]
        rec = record(obj, xs)
        inputs, module_of = rec.inputs, rec.module_of
        for key, t in obj.state_dict(keep_vars=True).items():
            names.setdefault(id(t.array), key)
    else:
        raise TypeError(f"mc.viz.to_dot: expected a Tensor or a model, got {type(obj).__name__}")
    for key, t in (params or {}).items():
        names.setdefault(id(getattr(t, "array", t)), key)

    lines = [f"digraph {_quote(name)} {{",
             '  graph [rankdir=TB, fontname="Helvetica", fontsize=10];',
             '  node [fontname="Helvetica", fontsize=10];',
             '  edge [fontname="Helvetica", fontsize=9, color="#555555"];']
    ids = {}

    def node_id(key, label, kind):
        if key not in ids:
            ids[key] = f"n{len(ids)}"
            lines.append(f"  {ids[key]} [label={_quote(label)}, {_STYLE[kind]}];")
        return ids[key]

    input_ids = {id(x): i for i, x in enumerate(inputs)}
    order = rec.functions()
    made = {}       # (id(Function), output index) -> shape and dtype of that output
    for t in [t for fn in order for t in fn.inputs or () if t is not None] + rec.outputs:
        if t.creator is not None:
            made[(id(t.creator), t.output_index)] = _desc(t)

    def tensor_node(t):
        if t.creator is not None:
            return ids[("f", id(t.creator))]
        if id(t) in input_ids:
            i = input_ids[id(t)]
            label = "input" if len(inputs) == 1 else f"input {i}"
            return node_id(("t", id(t)), f"{label}\n{_desc(t)}", "input")
        known = names.get(id(t.array))
        if known is not None:
            return node_id(("a", id(t.array)), f"{known}\n{_desc(t)}", "param")
        kind = "param" if t.requires_grad else "const"
        label = "tensor" if t.requires_grad else "constant"
        return node_id(("t", id(t)), f"{label}\n{_desc(t)}", kind)

    for fn in order:
        path = module_of.get(id(fn), "")
        n_out = 1 if fn.out_meta is None else len(fn.out_meta)
        shapes = [made.get((id(fn), i)) or (f"{tuple(fn.out_meta[i][0])} {fn.out_meta[i][1]}"
                                            if fn.out_meta else "") for i in range(n_out)]
        label = "\n".join([_op_label(fn)] + ([path] if path else []) +
                           [s for s in shapes if s])
        me = node_id(("f", id(fn)), label, "op")
        for t in fn.inputs or ():
            if t is not None:
                lines.append(f"  {tensor_node(t)} -> {me};")
    for i, t in enumerate(rec.outputs):
        label = "output" if len(rec.outputs) == 1 else f"output {i}"
        out = node_id(("o", i), f"{label}\n{_desc(t)}", "output")
        lines.append(f"  {tensor_node(t)} -> {out};")
    return "\n".join(lines + ["}"]) + "\n"


def render(dot, path, format=None):  # noqa: A002 -- Graphviz's word
    """Draw DOT text (from to_dot) to path with Graphviz's `dot` program; the format is
    path's extension (svg, png, pdf, ...) unless given. Written atomically; returns path."""
    fmt = (format or os.path.splitext(os.fspath(path))[1].lstrip(".") or "svg").lower()
    exe = shutil.which("dot")
    if exe is None:
        raise RuntimeError(
            "mc.viz.render: Graphviz's `dot` program was not found on PATH, so the graph cannot "
            "be drawn here. Install Graphviz (apt-get install graphviz, brew install graphviz, "
            "conda install graphviz), or save the text of mc.viz.to_dot(...) to a .dot file and "
            "open it in any Graphviz viewer")
    proc = subprocess.run([exe, f"-T{fmt}"], input=dot.encode("utf-8"), capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"mc.viz.render: dot -T{fmt} failed: "
                           f"{proc.stderr.decode(errors='replace').strip()}")
    return write_atomic(path, proc.stdout)
