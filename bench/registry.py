"""The benchmark case registry: `@case(family, name, **meta)`, `Workload`, and the `Context`.

A case is a function of a `Context` that builds inputs and returns a `Workload`: four callables
(minicnn and PyTorch, forward and forward+backward) plus the work they do (FLOPs, bytes) and the
tolerances of the correctness gate. The harness (bench/__main__.py) checks minicnn against PyTorch
on the first call, then times both sides alternately. See bench/README.md.

    from ..registry import case, Workload          # in bench/cases/<family>.py

    @case("activation", "relu", tags=("cpu", "gpu"))
    def relu(ctx):
        n = ctx.by_device(cpu=8, gpu=32, quick=2)
        a = ctx.array((n, 64, 56, 56))
        x, xt = ctx.mc(a, requires_grad=True), ctx.th(a, requires_grad=True)
        ...
        return Workload(mc_fwd=..., torch_fwd=..., bytes=2 * a.nbytes, ...)

Cases live in bench/cases/<family>.py; `discover()` imports every module there. This module does
not import numpy, torch or minicnn at import time, so `python -m bench --threads N` can still set
the thread environment variables before NumPy loads. Imports between bench modules are relative:
the package is `minicnn.bench` when installed and `bench` when run from the repository root.
"""
import dataclasses
import importlib
import pkgutil
import zlib
from typing import Any, Callable, Optional

__all__ = ["case", "Workload", "Context", "Case", "CASES", "discover", "select", "unregister"]


@dataclasses.dataclass
class Workload:
    """What a case returns. Every callable takes no argument.

    mc_fwd / torch_fwd: run the forward; return the output(s) (Tensor, array, or a tuple/list/dict
        of them) -- they are compared element-wise before timing.
    mc_fwd_bwd / torch_fwd_bwd: run forward + backward; return the list of gradients (or anything
        comparable). Reset the leaves' .grad inside (ctx.mc_grads / ctx.th_grads do it) so that
        repeated calls do not accumulate.
    flops, bytes: the work of one forward (either or both, None if meaningless);
    flops_fwd_bwd, bytes_fwd_bwd: the same for forward+backward. They give GFLOP/s or GB/s and
        the fraction of the device's measured ceiling (SGEMM rate or copy bandwidth).
    atol, rtol: the float32 correctness gate, |mc - torch| <= atol + rtol * |torch|.
    extra: anything worth printing (a dict of short values), e.g. {"column_buffer_MB": 12.5}.
    check: None (default) compares the returned values; a callable `check() -> None | str` runs a
        custom comparison instead (return a message when minicnn is wrong, e.g. for random masks);
        False turns the gate off (reported as UNCHECKED, still timed).
    """
    mc_fwd: Optional[Callable[[], Any]] = None
    torch_fwd: Optional[Callable[[], Any]] = None
    mc_fwd_bwd: Optional[Callable[[], Any]] = None
    torch_fwd_bwd: Optional[Callable[[], Any]] = None
    flops: Optional[float] = None
    bytes: Optional[float] = None
    flops_fwd_bwd: Optional[float] = None
    bytes_fwd_bwd: Optional[float] = None
    atol: float = 1e-4
    rtol: float = 1e-3
    extra: dict = dataclasses.field(default_factory=dict)
    check: Any = None


@dataclasses.dataclass
class Case:
    family: str
    name: str
    fn: Callable
    meta: dict

    @property
    def key(self):
        return f"{self.family}/{self.name}"

    @property
    def tags(self):
        return tuple(self.meta.get("tags", ("cpu", "gpu")))

    def runs_on(self, device):
        tags = self.tags
        return device in tags or (device == "cuda" and "gpu" in tags)


# family/name -> Case, in registration order
CASES: dict = {}


def case(family, name, **meta):
    """Register `fn(ctx) -> Workload` as the benchmark `family/name`.

    meta: tags=("cpu", "gpu") -- the devices it runs on (default both); any other key (e.g.
    shape=..., description=...) is stored in the results file as it is. Registering the same
    family/name again replaces the earlier case (so a reloaded module does not duplicate it).
    """
    if not family or not name or "/" in family or "/" in name:
        raise ValueError(f"bench case needs a family and a name without '/', got {family!r}, "
                         f"{name!r}")

    def register(fn):
        CASES[f"{family}/{name}"] = Case(family, name, fn, dict(meta))
        return fn
    return register


def unregister(family, name):
    """Remove a case (tests register throw-away cases)."""
    CASES.pop(f"{family}/{name}", None)


def discover(package=None):
    """Import every module of bench/cases/ (or of `package`) so that their @case decorators run.

    Returns {module_name: error_string} for modules that failed to import (the harness reports
    them instead of dying: a family whose op is not written yet must not stop the others)."""
    package = package or f"{__package__}.cases"
    errors = {}
    pkg = importlib.import_module(package)
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        try:
            importlib.import_module(f"{package}.{info.name}")
        except Exception as exc:  # noqa: BLE001 -- reported, not raised
            errors[info.name] = f"{type(exc).__name__}: {exc}"
    return errors


def select(only=None, device=None):
    """Cases whose family or name (or family/name) is in `only` (all when empty), for `device`."""
    chosen = []
    for c in CASES.values():
        if only and not ({c.family, c.name, c.key} & set(only)):
            continue
        if device is not None and not c.runs_on(device):
            continue
        chosen.append(c)
    return chosen


class Context:
    """What a case function receives.

    device: 'cpu' | 'cuda'; quick: True for a smoke run (use small sizes); torch: the torch module;
    tf32: whether TF32 is on for this run; xp: numpy or cupy (the device's array module).
    """

    def __init__(self, device="cpu", quick=False, seed=0, tf32=False):
        import numpy  # noqa: PLC0415 -- imported late, after the thread settings
        import torch  # noqa: PLC0415
        self.device = device
        self.quick = quick
        self.tf32 = tf32
        self.torch = torch
        self.np = numpy
        self._seed = seed
        self.rng = numpy.random.default_rng(seed)
        if device == "cuda":
            import cupy  # noqa: PLC0415
            self.xp = cupy
        else:
            self.xp = numpy

    def for_case(self, key):
        """A copy whose random stream is seeded from the case's name (stable across runs)."""
        c = object.__new__(Context)
        c.__dict__.update(self.__dict__)
        c.rng = self.np.random.default_rng([self._seed, zlib.crc32(key.encode())])
        return c

    # -- sizes ---------------------------------------------------------------------------------
    def by_device(self, cpu, gpu=None, quick=None):
        """Pick a size: `quick` in a smoke run (if given), else `gpu` on cuda, else `cpu`."""
        if self.quick and quick is not None:
            return quick
        if self.device == "cuda" and gpu is not None:
            return gpu
        return cpu

    # -- data ----------------------------------------------------------------------------------
    def array(self, shape, low=-1.0, high=1.0, dtype="float32"):
        """A NumPy array, uniform in [low, high), from the case's fixed seed (same for both sides)."""
        return self.rng.uniform(low, high, size=shape).astype(dtype)

    def randn(self, shape, scale=1.0, dtype="float32"):
        return (self.rng.standard_normal(size=shape) * scale).astype(dtype)

    def integers(self, shape, low, high, dtype="int64"):
        """Integer array (labels), low <= v < high."""
        return self.rng.integers(low, high, size=shape).astype(dtype)

    def mc(self, array, requires_grad=False):
        """A minicnn Tensor on the device holding a copy of `array`."""
        import minicnn as mc  # noqa: PLC0415
        return mc.tensor(array, device=self.device, requires_grad=requires_grad)

    def th(self, array, requires_grad=False):
        """A torch tensor (a leaf) on the device holding a copy of `array`."""
        t = self.torch.tensor(array).to(self.device)
        return t.requires_grad_(requires_grad) if requires_grad else t

    # -- helpers for fwd_bwd callables ------------------------------------------------------------
    @staticmethod
    def mc_grads(*tensors):
        """[t.grad for t in tensors], resetting each .grad to None (for the next call)."""
        out = []
        for t in tensors:
            out.append(t.grad)
            t.grad = None
        return out

    @staticmethod
    def th_grads(*tensors):
        """[t.grad for t in tensors], resetting each .grad to None (for the next call)."""
        out = []
        for t in tensors:
            out.append(t.grad)
            t.grad = None
        return out

    def sync(self):
        """Wait for the device (both CuPy's and torch's work); a no-op on the CPU."""
        if self.device == "cuda":
            self.xp.cuda.get_current_stream().synchronize()
            self.torch.cuda.synchronize()
