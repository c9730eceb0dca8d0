"""The layout rules of docs/ARCHITECTURE.md, checked on the source: imports point down the layers
(no cycle but tensor <-> ops), the autograd engine imports no op, only a kernel family's API asks
where arrays live, references are test oracles only, and every family has the same five files.
Imports are read from the source (ast), lazy ones inside functions included."""
import ast
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = {"minicnn": ROOT / "minicnn", "minicnn.kernels": ROOT / "kernels",
            "minicnn.bench": ROOT / "bench"}
FAMILIES = ("activation", "conv", "dropout", "grouped", "norm", "optim", "pool", "quant",
            "resample", "scan", "softmax", "topk")

# Layers from the bottom; a module may import its own layer and those below (longest prefix wins).
LAYERS = [
    ["minicnn.devices", "minicnn.dtypes", "minicnn.random", "minicnn.fileio", "minicnn.threads",
     "minicnn.allocator"],
    ["minicnn.kernels"],
    ["minicnn.autograd"],
    ["minicnn.tensor", "minicnn.creation"],
    ["minicnn.ops"],
    ["minicnn.nn", "minicnn.functional", "minicnn.autograd.functional", "minicnn.testing",
     "minicnn.serialization", "minicnn.summary", "minicnn.profiler",
     "minicnn.tracing", "minicnn.viz", "minicnn.distributed", "minicnn.amp"],
    ["minicnn.optim", "minicnn.data", "minicnn.models", "minicnn.utils"],
    ["minicnn.train", "minicnn.tune", "minicnn.compress", "minicnn.onnx"],
    ["minicnn.cli", "minicnn.bench", "minicnn.__main__"],
]


def _modules():
    """{module name: path} of every Python file the package installs."""
    out = {}
    for pkg, base in PACKAGES.items():
        for path in base.rglob("*.py"):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join([pkg] + parts)] = path
    return out


MODULES = _modules()


def _imports(name, path):
    """The modules `name` imports (at any depth: lazy imports inside functions count too). An
    import of a submodule counts as that submodule, not as its package's __init__."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            subs = {f"{target}.{a.name}" for a in node.names} & MODULES.keys()
            found |= subs
            if len(subs) < len(node.names) and target in MODULES:
                found.add(target)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names} & MODULES.keys()
    found.discard(name)
    return found


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def _layer(module):
    best = None
    for level, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and (best is None or len(p) > best[1]):
                best = (level, len(p))
    return None if best is None else best[0]


def _tensor_ops(module):
    return module in ("minicnn.tensor", "minicnn.creation") or module.startswith("minicnn.ops")


def test_every_module_has_a_layer():
    assert [m for m in MODULES if m != "minicnn" and _layer(m) is None] == []


def test_imports_point_down():
    up = [f"{m} -> {t}" for m, targets in GRAPH.items() for t in targets
          if m != "minicnn" and t != "minicnn" and _layer(t) > _layer(m)
          and not (_tensor_ops(m) and _tensor_ops(t))]
    assert up == []


def _cycles():
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)
    for v in GRAPH:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_but_tensor_and_ops():
    bad = [sorted(c) for c in _cycles() if not all(_tensor_ops(m) for m in c)]
    assert bad == []


def test_the_engine_imports_no_op_and_no_tensor():
    engine = ["minicnn.autograd", "minicnn.autograd.mode", "minicnn.autograd.function",
              "minicnn.autograd.engine"]
    for m in engine:
        assert not [t for t in GRAPH[m] if _tensor_ops(t) or t.startswith("minicnn.nn")], m


@pytest.mark.parametrize("family", FAMILIES)
def test_a_family_has_the_five_files(family):
    folder = ROOT / "kernels" / family
    assert {p.name for p in folder.iterdir() if p.suffix in (".py", ".cu")} >= {
        "__init__.py", "cpu.py", "cuda.py", "reference.py", f"{family}.cu"}


def test_references_are_test_oracles_only():
    """No code minicnn runs imports a family's reference (the tests and the benchmarks' inputs
    may)."""
    users = [f"{m} -> {t}" for m, targets in GRAPH.items() for t in targets
             if t.endswith(".reference") and not m.endswith(".reference")
             and not m.startswith("minicnn.bench")]
    assert users == []


def _names_used(path):
    return {n.id for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Name)} | \
        {n.attr for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Attribute)}


def test_only_a_family_api_asks_where_arrays_live():
    """kernel_target / on_cuda_kernels are the kernel dispatch question: asked by the families'
    __init__.py, the half-precision wrapper they apply to their entry points (kernels/_half.py:
    half arrays go to the CUDA half kernels, or widened to float32 elsewhere) and the device
    module that defines them; nowhere else."""
    askers = sorted(m for m, p in MODULES.items()
                    if {"kernel_target", "on_cuda_kernels"} & _names_used(p))
    allowed = {"minicnn.devices", "minicnn.kernels._half"} | \
        {f"minicnn.kernels.{f}" for f in FAMILIES}
    assert set(askers) <= allowed, askers


def test_ops_do_not_branch_on_the_device():
    ops = [m for m in MODULES if m.startswith("minicnn.ops")]
    asking = [m for m in ops if {"is_cuda_array", "kernel_target", "on_cuda_kernels",
                                 "uses_cuda_kernels"} & _names_used(MODULES[m])]
    assert asking == []


def test_only_the_device_module_imports_cupy():
    importers = []
    for m, p in MODULES.items():
        for node in ast.walk(ast.parse(p.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n == "cupy" or n.startswith("cupy.") or n.startswith("cupyx") for n in names):
                importers.append(m)
    allowed = {"minicnn.devices", "minicnn.kernels.activation.reference",
               "minicnn.bench.harness", "minicnn.bench.registry"}  # oracles and the benchmark
    assert set(importers) <= allowed, sorted(set(importers) - allowed)
