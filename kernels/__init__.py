"""Hand-written kernels (installed as minicnn.kernels): Numba on the CPU, CUDA C on the GPU.

One package per kernel family, named by what it computes, each with the same five names:

    <family>/__init__.py   the family's API, which ops call: the only place that asks
                           minicnn.devices where the arrays live (`kernel_target`), and where the
                           family's algorithm choice lives
    <family>/cpu.py        the Numba kernels (and the NumPy code of the CPU path)
    <family>/cuda.py       the CUDA launch layer of <family>/<family>.cu
    <family>/reference.py  plain NumPy, obviously right: the tests' oracle, never run by minicnn

Families: conv (im2col / col2im / GEMM / implicit GEMM), grouped (depthwise and grouped direct
convolutions), pool, norm, activation, softmax (with cross-entropy), dropout, optim, quant,
resample (F.interpolate's separable maps), scan (cumulative sums, products, log-sum-exps, running
max / min), topk (and the sort order of sort / argsort).
cuda/ is the CUDA runtime (module cache, launch checks, NVRTC/nvcc checks, the CPU emulator);
_numba.py holds what every CPU family shares. docs/ARCHITECTURE.md walks through a call.
"""
import importlib

import numpy

if __name__ != "minicnn.kernels":
    # Imported as a top-level `kernels` (a script run from the repo root), the Numba cache would
    # record that module name and later break `minicnn.kernels` in every other process.
    raise ImportError("kernels/ is installed as minicnn.kernels; import it under that name")


class lazy:
    """A submodule imported on its first use: `_cpu = lazy(__name__ + ".cpu")` in a family's
    __init__, so importing Numba (cpu.py) or the CUDA runtime (cuda.py) costs nothing until a
    kernel of that kind runs. (Bound to a private name, so `from <family> import cpu` still
    imports the real module.)"""

    def __init__(self, name):
        self._name = name
        self._module = None

    def __getattr__(self, attr):
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)


from ._half import in_float32  # noqa: E402 F401 -- float16 / bfloat16 computed in float32


def conv_out_size(size, kernel, stride=1, padding=0, dilation=1):
    """Output length of a sliding window along one dimension (convolution and pooling)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def split_axis(shape, axis):
    """(outer, L, inner): the sizes before, along and after `axis` of `shape`."""
    outer = inner = 1
    for v in shape[:axis]:
        outer *= int(v)
    for v in shape[axis + 1:]:
        inner *= int(v)
    return outer, int(shape[axis]), inner


def fma(a, b, c):
    """a * b + c for NumPy float arrays of one dtype as a fused multiply-add gives it (the product
    unrounded): host-side plans that must agree with PyTorch's kernels, which its compilers
    contract to FMAs (source positions of interpolation, linspace). Dekker's exact product and
    Knuth's two-sum; the result differs from a true FMA only where the sum's two roundings do."""
    p = a * b
    bits = numpy.finfo(p.dtype).nmant + 1
    split = p.dtype.type(2.0 ** ((bits + 1) // 2) + 1)

    def halves(x):
        t = split * x
        hi = t - (t - x)
        return hi, x - hi
    ah, al = halves(a)
    bh, bl = halves(b)
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl       # a * b == p + e exactly
    s = p + c
    z = s - p
    t = (p - (s - z)) + (c - z)                              # p + c == s + t exactly
    return s + (t + e)
