"""The pooling family on the GPU: launch functions of pool.cu, with the signatures of the family's
API (kernels/pool/__init__.py):

    max_pool2d_fwd(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)        -> y, idx (int64, h*W+w)
    max_pool2d_bwd(gy, idx, H, W, KH, KW, SH, SW, PH, PW, DH, DW)     -> gx (a gather, no atomics)
    avg_pool2d_fwd(x, KH, KW, SH, SW, PH, PW, OH, OW, inv)            -> y
    avg_pool2d_bwd(gy, H, W, KH, KW, SH, SW, PH, PW, inv)             -> gx (a gather)
    plane_scatter(g, idx, H, W)                                       -> out.flat[idx] += g (atomics)
    plane_gather(x, idx)                                              -> x.flat[idx] per plane
    adaptive_max_pool2d_fwd(x, OH, OW)                                -> y, idx

CuPy arrays run on the GPU, NumPy arrays under the CPU emulator (the tests). No launch function
synchronizes with the host. `inv` (1 / divisor per average window) comes from the host as a
small NumPy array; its device copy is cached by content, so a training loop copies it once.
Every kernel but plane_scatter's also takes float16 / bfloat16 (loaded and stored as such,
compared and summed in float32: half.cuh; `inv` is then float32).
"""
import threading
from collections import OrderedDict

import numpy

from minicnn.devices import get_array_module, is_cuda_array

from ..cuda import module
from ..cuda.launch import acc_dtype, blocks, check_float, float_input

BLOCK = 256
WAVES = 8              # grid-stride loops: at most this many blocks per SM


def _k(name, dtype):
    return module.kernel("pool", name, dtype)


def _launch(name, dtype, n, args):
    if n == 0:
        return
    _k(name, dtype)(blocks(n, BLOCK, WAVES, like=args[0]), BLOCK, (*args,))


def _input(op, x):
    return float_input(op, x, 4, half=True)


_INV_CACHE = OrderedDict()   # a small LRU cache, shared by the threads (hence the lock)
_INV_CACHE_SIZE = 64
_INV_LOCK = threading.Lock()


def _inv(xp, inv, dtype, OH, OW, op):
    """inv as a contiguous (OH, OW) device array of acc_t<dtype> (host copies cached by
    content)."""
    dtype = acc_dtype(dtype)
    if tuple(inv.shape) != (OH, OW):
        raise ValueError(f"{op}: inv must have shape ({OH}, {OW}), got {tuple(inv.shape)}")
    if xp is numpy or is_cuda_array(inv):
        return xp.ascontiguousarray(inv, dtype=dtype)
    host = numpy.ascontiguousarray(inv, dtype=dtype)
    key = (int(xp.cuda.runtime.getDevice()), host.dtype.str, host.shape, host.tobytes())
    with _INV_LOCK:
        dev = _INV_CACHE.get(key)
        if dev is None:
            dev = _INV_CACHE[key] = xp.asarray(host)
            if len(_INV_CACHE) > _INV_CACHE_SIZE:
                _INV_CACHE.popitem(last=False)
        else:
            _INV_CACHE.move_to_end(key)
    return dev


def max_pool2d_fwd(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW):
    xp, x = _input("max_pool2d", x)
    N, C, H, W = x.shape
    module.check_size("max_pool2d", (N, C, OH, OW))
    y = module.empty(xp, (N, C, OH, OW), x.dtype)
    idx = module.empty(xp, (N, C, OH, OW), numpy.int64)
    _launch("max_pool_fwd_kernel", x.dtype, y.size,
            (x, y, idx, y.size, H, W, OH, OW, KH, KW, SH, SW, PH, PW, DH, DW))
    return y, idx


def max_pool2d_bwd(gy, idx, H, W, KH, KW, SH, SW, PH, PW, DH, DW):
    xp, gy = _input("max_pool2d_backward", gy)
    if tuple(idx.shape) != tuple(gy.shape):
        raise ValueError(f"max_pool2d_backward: indices {tuple(idx.shape)} and gradient "
                         f"{tuple(gy.shape)} differ in shape")
    N, C, OH, OW = gy.shape
    module.check_size("max_pool2d_backward", (N, C, H, W))
    idx = xp.ascontiguousarray(idx, dtype=numpy.int64)
    gx = module.empty(xp, (N, C, H, W), gy.dtype)
    _launch("max_pool_bwd_kernel", gy.dtype, gx.size,
            (gy, idx, gx, gx.size, H, W, OH, OW, KH, KW, SH, SW, PH, PW, DH, DW))
    return gx


def avg_pool2d_fwd(x, KH, KW, SH, SW, PH, PW, OH, OW, inv):
    xp, x = _input("avg_pool2d", x)
    N, C, H, W = x.shape
    module.check_size("avg_pool2d", (N, C, OH, OW))
    inv = _inv(xp, inv, x.dtype, OH, OW, "avg_pool2d")
    y = module.empty(xp, (N, C, OH, OW), x.dtype)
    _launch("avg_pool_fwd_kernel", x.dtype, y.size,
            (x, inv, y, y.size, H, W, OH, OW, KH, KW, SH, SW, PH, PW))
    return y


def avg_pool2d_bwd(gy, H, W, KH, KW, SH, SW, PH, PW, inv):
    xp, gy = _input("avg_pool2d_backward", gy)
    N, C, OH, OW = gy.shape
    module.check_size("avg_pool2d_backward", (N, C, H, W))
    inv = _inv(xp, inv, gy.dtype, OH, OW, "avg_pool2d_backward")
    gx = module.empty(xp, (N, C, H, W), gy.dtype)
    _launch("avg_pool_bwd_kernel", gy.dtype, gx.size,
            (gy, inv, gx, gx.size, H, W, OH, OW, KH, KW, SH, SW, PH, PW))
    return gx


def _plane_idx(op, a, idx, half=False):
    xp = get_array_module(a)
    if a.ndim < 2 or tuple(idx.shape[:2]) != tuple(a.shape[:2]):
        raise ValueError(f"{op}: indices {tuple(idx.shape)} do not match the (N, C) planes of "
                         f"{tuple(a.shape)}")
    check_float(op, a, half=half)
    module.check_size(op, a.shape, idx.shape)
    return xp, xp.ascontiguousarray(idx, dtype=numpy.int64)


def plane_scatter(g, idx, H, W):
    xp, idx = _plane_idx("plane_scatter", g, idx)
    if tuple(idx.shape) != tuple(g.shape):
        raise ValueError(f"plane_scatter: indices {tuple(idx.shape)} and values "
                         f"{tuple(g.shape)} differ in shape")
    g = xp.ascontiguousarray(g)
    N, C = g.shape[:2]
    module.check_size("plane_scatter", (N, C, H, W))
    out = module.empty(xp, (N, C, H, W), g.dtype)
    out.fill(0)
    L = g.size // (N * C) if N * C else 0
    _launch("plane_scatter_kernel", g.dtype, g.size, (g, idx, out, g.size, L, H * W))
    return out


def plane_gather(x, idx):
    xp, x = _input("plane_gather", x)
    _, idx = _plane_idx("plane_gather", x, idx, half=True)
    N, C, H, W = x.shape
    out = module.empty(xp, idx.shape, x.dtype)
    L = idx.size // (N * C) if N * C else 0
    _launch("plane_gather_kernel", x.dtype, out.size, (x, idx, out, out.size, L, H * W))
    return out


def adaptive_max_pool2d_fwd(x, OH, OW):
    xp, x = _input("adaptive_max_pool2d", x)
    N, C, H, W = x.shape
    module.check_size("adaptive_max_pool2d", (N, C, OH, OW))
    y = module.empty(xp, (N, C, OH, OW), x.dtype)
    idx = module.empty(xp, (N, C, OH, OW), numpy.int64)
    _launch("adaptive_max_fwd_kernel", x.dtype, y.size, (x, y, idx, y.size, H, W, OH, OW))
    return y, idx
