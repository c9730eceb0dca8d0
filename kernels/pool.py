"""Dispatchers of the pooling kernels: Numba on NumPy arrays, kernels/cuda/pool.cu on CuPy arrays.

    max_pool2d_fwd(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW) -> y, idx (int64, flat h*W+w)
    avg_pool2d_fwd(x, KH, KW, SH, SW, PH, PW, OH, OW, inv)   -> y
    avg_pool2d_bwd(gy, H, W, KH, KW, SH, SW, PH, PW, inv)    -> gx (no column matrix)
    max_pool2d_bwd(gy, idx, H, W, KH, KW, SH, SW, PH, PW, DH, DW) -> gx (plane_scatter of gy by
                                                               idx; a gather on the GPU)
    plane_scatter(g, idx, H, W)                              -> out, out.flat[idx] += g per plane
    plane_assign(x, idx, H, W)                               -> out, out.flat[idx] = x per plane
    plane_gather(x, idx)                                     -> x.flat[idx] per plane
    adaptive_max_pool2d_fwd(x, OH, OW)                       -> y, idx
"""
import numpy

from minicnn.devices import on_cuda_kernels

from .conv import run
from .reference import pool as _ref
from .reference.pool import adaptive_bounds, avg_pool_inv  # noqa: F401


def _cpu():
    from .cpu import pool  # noqa: PLC0415 -- numba loads on first use
    return pool


def _cuda():
    from .cuda import pool  # noqa: PLC0415 -- CuPy loads on first use
    return pool


def _c(a):
    return numpy.ascontiguousarray(a)


def max_pool2d_fwd(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW):
    if on_cuda_kernels(x):
        return _cuda().max_pool2d_fwd(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)
    x = _c(x)
    y = numpy.empty(x.shape[:2] + (OH, OW), x.dtype)
    idx = numpy.empty(x.shape[:2] + (OH, OW), numpy.int64)
    if KH == 3 and KW == 3:  # separable, vectorised (kernels/cpu/pool.py)
        run(_cpu().max_pool3x3_fwd, y.size * 9, x, SH, SW, PH, PW, DH, DW, y, idx)
    else:
        run(_cpu().max_pool_fwd, y.size * KH * KW, x, KH, KW, SH, SW, PH, PW, DH, DW, y, idx)
    return y, idx


def avg_pool2d_fwd(x, KH, KW, SH, SW, PH, PW, OH, OW, inv):
    if on_cuda_kernels(x):
        return _cuda().avg_pool2d_fwd(x, KH, KW, SH, SW, PH, PW, OH, OW, inv)
    x = _c(x)
    y = numpy.empty(x.shape[:2] + (OH, OW), x.dtype)
    run(_cpu().avg_pool_fwd, y.size * KH * KW, x, KH, KW, SH, SW, PH, PW, _c(inv), y)
    return y


def avg_pool2d_bwd(gy, H, W, KH, KW, SH, SW, PH, PW, inv):
    if on_cuda_kernels(gy):
        return _cuda().avg_pool2d_bwd(gy, H, W, KH, KW, SH, SW, PH, PW, inv)
    gy = _c(gy)
    gx = numpy.empty(gy.shape[:2] + (H, W), gy.dtype)
    run(_cpu().avg_pool_bwd, gy.size * KH * KW, gy, KH, KW, SH, SW, PH, PW, _c(inv), gx)
    return gx


def plane_scatter(g, idx, H, W):
    if on_cuda_kernels(g):
        return _cuda().plane_scatter(g, idx, H, W)
    g = _c(g)
    out = numpy.empty(g.shape[:2] + (H, W), g.dtype)
    run(_cpu().plane_scatter, out.size, g, _c(idx), out)
    return out


def max_pool2d_bwd(gy, idx, H, W, KH, KW, SH, SW, PH, PW, DH, DW):
    """Max-pool gradient: plane_scatter(gy, idx, H, W), which the GPU computes as a gather
    over the windows covering each input (deterministic, no atomics)."""
    if on_cuda_kernels(gy):
        return _cuda().max_pool2d_bwd(gy, idx, H, W, KH, KW, SH, SW, PH, PW, DH, DW)
    return plane_scatter(gy, idx, H, W)


def plane_assign(x, idx, H, W):
    """max_unpool2d's forward, on every device the reference's one scatter-assignment (NumPy or
    CuPy fancy indexing): not a hot loop."""
    return _ref.plane_assign(x, idx, H, W)


def plane_gather(x, idx):
    if on_cuda_kernels(x):
        return _cuda().plane_gather(x, idx)
    return _ref.plane_gather(x, idx)


def adaptive_max_pool2d_fwd(x, OH, OW):
    if on_cuda_kernels(x):
        return _cuda().adaptive_max_pool2d_fwd(x, OH, OW)
    x = _c(x)
    N, C, H, W = x.shape
    hs, he = adaptive_bounds(H, OH)
    ws, we = adaptive_bounds(W, OW)
    y = numpy.empty((N, C, OH, OW), x.dtype)
    idx = numpy.empty((N, C, OH, OW), numpy.int64)
    run(_cpu().adaptive_max_fwd, x.size, x, hs, he, ws, we, y, idx)
    return y, idx
