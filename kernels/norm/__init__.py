"""The norm family: the statistics, apply and backward passes of batch / layer / instance /
group norm, and the running-statistics update. Arrays in, arrays out; statistics and partial sums
are float64.

    row_norm_fwd(x4, w2, b2, eps)                -> y4, mean (N, G), rstd (N, G)
    row_norm_bwd(gy4, x4, mean, rstd, w2, out_shape=None)
                                  -> gx4, gw_part (., G, S), gb_part (., G, S) (sum over axis 0)
    chan_stats(x3)                               -> mean (C,), biased var (C,)
    chan_affine(x3, scale, shift)                -> x3 * scale[c] + shift[c]
    chan_bwd_sums(gy3, x3, mean)                 -> sum(gy), sum(gy (x - mean)) per channel
    chan_bwd_apply(gy3, x3, mean, rstd, w, sum_gy, sum_gyxmu) -> gx3
    running_update(rm, rv, mean, var, momentum, var_scale=None)   in place

Layouts: row norms (layer, instance, group) see x as x4 (N, G, S, I), statistics per (n, g) over
(S, I), the affine w2, b2 (G, S); batch norm sees x as x3 (N, C, I), statistics per c over
(N, I). `out_shape` gives gx the caller's shape as an owned array (autograd then need not copy
it for a leaf's .grad). float16 / bfloat16 x run in the CUDA kernels' half instances on the GPU
(the running update excepted), widened to float32 elsewhere (kernels._half).
"""
import numpy

from minicnn.devices import get_array_module, on_cuda_kernels

from .. import lazy
from .._half import in_float32

_KERNEL_DTYPES = (numpy.dtype(numpy.float32), numpy.dtype(numpy.float64))

_cpu = lazy(__name__ + ".cpu")
_cuda = lazy(__name__ + ".cuda")


def _impl(a):
    return _cuda if on_cuda_kernels(a) else _cpu


@in_float32(half_kernels=True)
def row_norm_fwd(x4, w2, b2, eps):
    if x4.size == 0:   # an empty batch: nothing to normalise, statistics undefined
        xp = get_array_module(x4)
        return xp.empty_like(x4), xp.full(x4.shape[:2], numpy.nan), \
            xp.full(x4.shape[:2], numpy.nan)
    return _impl(x4).row_norm_fwd(x4, w2, b2, eps)


@in_float32(half_kernels=True)
def row_norm_bwd(gy4, x4, mean, rstd, w2, out_shape=None):
    if x4.size == 0:
        xp = get_array_module(x4)
        N, G, S, _ = x4.shape
        gx = xp.empty(x4.shape if out_shape is None else out_shape, x4.dtype)
        return gx, xp.zeros((N, G, S)), xp.zeros((N, G, S))
    return _impl(x4).row_norm_bwd(gy4, x4, mean, rstd, w2, out_shape)


@in_float32(half_kernels=True)
def chan_stats(x3):
    if x3.size == 0:
        xp = get_array_module(x3)
        return xp.full(x3.shape[1], numpy.nan), xp.full(x3.shape[1], numpy.nan)
    return _impl(x3).chan_stats(x3)


@in_float32(half_kernels=True)
def chan_affine(x3, scale, shift):
    return _impl(x3).chan_affine(x3, scale, shift)


@in_float32(half_kernels=True)
def chan_bwd_sums(gy3, x3, mean):
    return _impl(x3).chan_bwd_sums(gy3, x3, mean)


@in_float32(half_kernels=True)
def chan_bwd_apply(gy3, x3, mean, rstd, w, sum_gy, sum_gyxmu):
    return _impl(x3).chan_bwd_apply(gy3, x3, mean, rstd, w, sum_gy, sum_gyxmu)


def running_update(rm, rv, mean, var, momentum, var_scale=None):
    """rm = (1 - m) rm + m mean, rv = (1 - m) rv + m var (* var_scale), in place; on the GPU one
    fused kernel instead of a chain of small array ops."""
    if on_cuda_kernels(rm) and rm.dtype == rv.dtype and rm.dtype in _KERNEL_DTYPES \
            and rm.flags.c_contiguous and rv.flags.c_contiguous:   # half buffers: array code
        _cuda.running_update(rm, rv, mean, var, momentum, 1.0 if var_scale is None else var_scale)
        return
    var_unbiased = var if var_scale is None else var * var_scale
    rm[...] = (1.0 - momentum) * rm + momentum * mean
    rv[...] = (1.0 - momentum) * rv + momentum * var_unbiased
