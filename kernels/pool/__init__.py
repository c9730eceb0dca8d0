"""The pooling family: max / average / adaptive-max pooling and the per-plane index kernels.

    max_pool2d_fwd(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW) -> y, idx (int64, flat h*W+w)
    max_pool2d_bwd(gy, idx, H, W, KH, KW, SH, SW, PH, PW, DH, DW) -> gx (PyTorch's scatter of gy
                                                               by idx; a gather on the GPU)
    avg_pool2d_fwd(x, KH, KW, SH, SW, PH, PW, OH, OW, inv)   -> y
    avg_pool2d_bwd(gy, H, W, KH, KW, SH, SW, PH, PW, inv)    -> gx (no column matrix)
    adaptive_max_pool2d_fwd(x, OH, OW)                       -> y, idx
    plane_scatter(g, idx, H, W)                              -> out, out.flat[idx] += g per plane
    plane_gather(x, idx)                                     -> x.flat[idx] per plane
    plane_assign(x, idx, H, W)                               -> out, out.flat[idx] = x per plane

and the host-side plans both devices share: `avg_pool_inv` (1 / divisor of each window) and
`adaptive_bounds` (the windows of adaptive pooling). x is (N, C, H, W); every kernel works per
(n, c) plane. float16 / bfloat16 arrays run in the CUDA kernels' half instances on the GPU (all
but plane_scatter's, which adds with atomics), widened to float32 elsewhere (kernels._half).
"""
import numpy

from minicnn.devices import get_array_module, on_cuda_kernels

from .. import lazy
from .._half import in_float32

_cpu = lazy(__name__ + ".cpu")
_cuda = lazy(__name__ + ".cuda")


def _impl(a):
    return _cuda if on_cuda_kernels(a) else _cpu


@in_float32(half_kernels=True)
def max_pool2d_fwd(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW):
    return _impl(x).max_pool2d_fwd(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)


@in_float32(half_kernels=True)
def max_pool2d_bwd(gy, idx, H, W, KH, KW, SH, SW, PH, PW, DH, DW):
    return _impl(gy).max_pool2d_bwd(gy, idx, H, W, KH, KW, SH, SW, PH, PW, DH, DW)


@in_float32(half_kernels=True)
def avg_pool2d_fwd(x, KH, KW, SH, SW, PH, PW, OH, OW, inv):
    return _impl(x).avg_pool2d_fwd(x, KH, KW, SH, SW, PH, PW, OH, OW, inv)


@in_float32(half_kernels=True)
def avg_pool2d_bwd(gy, H, W, KH, KW, SH, SW, PH, PW, inv):
    return _impl(gy).avg_pool2d_bwd(gy, H, W, KH, KW, SH, SW, PH, PW, inv)


@in_float32(half_kernels=True)
def adaptive_max_pool2d_fwd(x, OH, OW):
    return _impl(x).adaptive_max_pool2d_fwd(x, OH, OW)


@in_float32
def plane_scatter(g, idx, H, W):
    return _impl(g).plane_scatter(g, idx, H, W)


@in_float32(half_kernels=True)
def plane_gather(x, idx):
    return _impl(x).plane_gather(x, idx)


def plane_assign(x, idx, H, W):
    """max_unpool2d's forward: one scatter-assignment by fancy indexing on either device (not a
    hot loop). A repeated index is written, not summed (after overlapping max-pool windows it
    repeats one input with its one value); with different values NumPy keeps the last, CuPy any
    one."""
    xp = get_array_module(x)
    N, C = x.shape[:2]
    out = xp.zeros((N * C, H * W), x.dtype)
    out[xp.arange(N * C)[:, None], idx.reshape(N * C, -1)] = x.reshape(N * C, -1)
    return out.reshape(N, C, H, W)


def avg_pool_inv(H, W, KH, KW, SH, SW, PH, PW, OH, OW, count_include_pad, divisor_override,
                 dtype):
    """1 / divisor per output (PyTorch's rule: windows clipped to the padded input when counting
    padding, to the input otherwise; a divisor_override replaces both). A NumPy array."""
    if divisor_override:
        return numpy.full((OH, OW), 1.0 / divisor_override, dtype)

    def axis(I, K, S, P, O):
        start = numpy.arange(O) * S - P
        end = numpy.minimum(start + K, I + P)
        if count_include_pad:
            return end - start
        return numpy.minimum(end, I) - numpy.maximum(start, 0)
    return (1.0 / numpy.outer(axis(H, KH, SH, PH, OH), axis(W, KW, SW, PW, OW))).astype(dtype)


def adaptive_bounds(I, O):
    """Window [start, end) of each of O outputs over I inputs (PyTorch's adaptive rule)."""
    o = numpy.arange(O)
    return (o * I) // O, -((-(o + 1) * I) // O)
