"""The softmax family: softmax and log-softmax along one axis, and the fused cross-entropy of
logits against class indices.

    softmax_fwd(x, axis, log=False)                -> y (log=True: log-softmax)
    softmax_bwd(y, gy, axis, log=False)            -> gx, from the forward's output y
    ce_fwd(x, t, w, ignore_index, smooth)          -> per-row loss (M,), lse (M,), float64
    ce_bwd(x, t, w, ignore_index, smooth, lse, g)  -> gx (M, C): the gradient of sum_i g_i loss_i

Cross-entropy: x (M, C) logits, t (M,) int64 class indices, w (C,) class weights or None; the
row loss is (1 - smooth) w[t] (lse - x[t]) + smooth / C sum_c w_c (lse - x_c), 0 where t is
ignore_index. On the GPU: softmax.cu (any axis, no transpose; float16 / bfloat16 in its half
instances). On the CPU softmax is the NumPy code below (also what CuPy runs for dtypes without
kernels) and cross-entropy is in cpu.py.
"""
import numpy

from minicnn.devices import get_array_module, on_cuda_kernels
from minicnn.dtypes import HALF_FLOATS

from .. import lazy
from .._half import in_float32

_cpu = lazy(__name__ + ".cpu")
_cuda = lazy(__name__ + ".cuda")

_KERNEL_DTYPES = (numpy.dtype(numpy.float32), numpy.dtype(numpy.float64), *HALF_FLOATS)


def _gpu(a):
    return on_cuda_kernels(a) and a.dtype in _KERNEL_DTYPES


@in_float32(half_kernels=True)
def softmax_fwd(x, axis, log=False):
    if _gpu(x):
        return _cuda.softmax_fwd(x, axis, log)
    xp = get_array_module(x)
    if x.ndim == 0 or x.size == 0:   # one element (1, or 0 in log space), or nothing at all
        return (xp.zeros_like if log else xp.ones_like)(x)
    z = x - x.max(axis=axis, keepdims=True)
    if log:
        z -= xp.log(xp.exp(z).sum(axis=axis, keepdims=True))
        return z
    e = xp.exp(z, out=z)
    e /= e.sum(axis=axis, keepdims=True)
    return e


@in_float32(half_kernels=True)
def softmax_bwd(y, gy, axis, log=False):
    if _gpu(y):
        return _cuda.softmax_bwd(y, gy, axis, log)
    xp = get_array_module(y, gy)
    if log:
        return gy - xp.exp(y) * gy.sum(axis=axis, keepdims=True)
    gyy = gy * y
    return gyy - y * gyy.sum(axis=axis, keepdims=True)


@in_float32(half_kernels=True)
def ce_fwd(x, t, w, ignore_index, smooth):
    M, C = x.shape
    if C == 0:   # no class: every row's target is invalid or ignored (the op refuses the first)
        xp = get_array_module(x)
        return xp.zeros(M), xp.full(M, -numpy.inf)
    impl = _cuda if on_cuda_kernels(x) else _cpu
    return impl.ce_fwd(x, t, w, ignore_index, smooth)


@in_float32(half_kernels=True)
def ce_bwd(x, t, w, ignore_index, smooth, lse, g):
    if x.shape[1] == 0:
        return get_array_module(x).zeros(x.shape, x.dtype)
    impl = _cuda if on_cuda_kernels(x) else _cpu
    return impl.ce_bwd(x, t, w, ignore_index, smooth, lse, g)
