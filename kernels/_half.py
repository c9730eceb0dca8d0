"""float16 and bfloat16 storage for the kernel families: computed in float32, rounded back.

A family function decorated with `@in_float32` takes half-precision arrays: when its first array
argument (after `self`, for a Function's forward) is float16 or bfloat16, every half array
argument is widened to float32 (exactly: both formats are subsets of float32), the function runs
as it does for float32, and each float32 array it returns is rounded (to nearest even) back to
that storage dtype. Other results (float64 statistics, int64 indices, masks) come back as they
are. Half arrays in other positions are widened too, so a float16 input meets a float32 weight
as it would in float32 (batch norm takes that mix, as PyTorch's does).

This is the whole half-precision CPU path: Numba types neither NumPy's float16 nor ml_dtypes'
bfloat16, and NumPy's float16 GEMM is two orders of magnitude slower than sgemm, so a GEMM in
float32 with one rounding at the end is both the fast and the accurate choice. The cost is one
float32 copy of each operand per call. Functions that write into their arguments in place (the
optimizer's steps, running statistics) are not decorated: a widened copy would take the write.

On the CUDA target (a CuPy array, or a NumPy one under the emulator: `on_cuda_kernels`) a
function decorated with `@in_float32(half_kernels=True)` takes half arrays as they are: its
family's CUDA kernels have __half / __nv_bfloat16 instances (kernels/cuda/half.cuh) that load
half, compute in float32 and store half, with no float32 copy in memory. That holds when every
floating array argument has the first one's storage dtype or is float64 (the statistics some
kernels take in float64: cross-entropy's log-sum-exp); a mix of storage dtypes (a float16 input
with a float32 weight) is widened as on the CPU. The families with half kernels: activation,
norm, pool, softmax, dropout, conv (im2col / col2im, GEMMs through kernels.conv._half_mm),
grouped (depthwise and grouped convs, all passes), resample, scan, topk; quant's quantize
kernels take half x (quant is not decorated: its other kernels are int8 in, and dequantize's
output is float32 by convention). optim keeps the widening on the GPU too (correct, without the
memory saving).
"""
import functools

import numpy

from minicnn.devices import on_cuda_kernels
from minicnn.dtypes import HALF_FLOATS

_F32 = numpy.dtype(numpy.float32)
_F64 = numpy.dtype(numpy.float64)


def storage_dtype(a):
    """float16 / bfloat16 for a half array, else None."""
    dt = getattr(a, "dtype", None)
    return dt if dt is not None and dt in HALF_FLOATS else None


def widen(a):
    return a.astype(_F32) if storage_dtype(a) is not None else a


def narrow(out, dtype):
    """float32 arrays in out (an array or a tuple of them) rounded to dtype."""
    if type(out) is tuple:
        return tuple(narrow(o, dtype) for o in out)
    if getattr(out, "dtype", None) == _F32:
        with numpy.errstate(over="ignore"):   # beyond the half range is inf, as IEEE rounds
            return out.astype(dtype)
    return out


def _one_storage(dtype, args, kwargs):
    """Whether every floating array among the arguments has `dtype` (or is float64)."""
    for a in (*args, *kwargs.values()):
        dt = getattr(a, "dtype", None)
        if dt is not None and dt not in (dtype, _F64) and (dt.kind == "f" or dt in HALF_FLOATS):
            return False
    return True


def in_float32(fn=None, *, half_kernels=False):
    """fn accepting float16 / bfloat16 arrays, computed in float32 (see the module docstring);
    with half_kernels=True, half arrays on the CUDA target go to fn as they are."""
    if fn is None:
        return functools.partial(in_float32, half_kernels=half_kernels)

    @functools.wraps(fn)
    def call(*args, **kwargs):
        first = args[0] if hasattr(args[0], "shape") else args[1]   # after a method's self
        dtype = first.dtype
        if dtype is _F32 or dtype is _F64 or dtype not in HALF_FLOATS:   # the common case first
            return fn(*args, **kwargs)
        if half_kernels and on_cuda_kernels(first) and _one_storage(dtype, args, kwargs):
            return fn(*args, **kwargs)
        args = tuple(widen(a) for a in args)
        kwargs = {k: widen(v) for k, v in kwargs.items()}
        return narrow(fn(*args, **kwargs), dtype)
    return call
