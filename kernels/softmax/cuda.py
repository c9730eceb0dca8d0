"""The softmax family on the GPU: launch functions of softmax.cu, with the signatures of the
family's API (kernels/softmax/__init__.py, which also gives the cross-entropy formula):

    softmax_fwd(x, axis, log=False)                      -> softmax (log=True: log-softmax) of x
    softmax_bwd(y, gy, axis, log=False)                  -> gx from the forward's output y
    ce_fwd(x, t, w, ignore_index, smooth)                -> loss (M,), lse (M,) float64
    ce_bwd(x, t, w, ignore_index, smooth, lse, g)        -> gx (M, C)

An input is seen
as (outer, L, inner) around the softmax axis, so any axis runs without a transpose: the *_rows_*
kernels take inner == 1 (a group of lanes, or a block, per row), the *_cols_* kernels the rest
(a 2-D block: consecutive columns across x, the axis split across y).

CuPy arrays run on the GPU, NumPy arrays under the CPU emulator (the tests). No launch function
synchronizes with the host. The kernels are float32 and float64, and float16 / bfloat16 (loaded
and stored as such, computed in float32: half.cuh); cross-entropy computes other float types in
float32.
"""
import numpy

from minicnn.devices import get_array_module

from ..cuda import module
from ..cuda.launch import acc_dtype, is_float, pow2ceil, split_axis

ROWS_BLOCK = 256          # threads per block when a row takes at most one warp
WARP_ROW_MAX = 2048       # rows up to this long take one warp; longer ones a whole block


def _k(name, dtype):
    return module.kernel("softmax", name, dtype)


def row_group(L):
    """Threads per row for the rows kernels: a power of two; <= 32 (lanes of one warp, merged by
    shuffles) for rows up to WARP_ROW_MAX, else a whole block of about 16 elements a thread."""
    if L <= 32:
        return pow2ceil(max(L, 1))
    if L <= WARP_ROW_MAX:
        return 32
    return min(1024, pow2ceil((L + 15) // 16))


def _rows_launch(M, L):
    group = row_group(L)
    block = ROWS_BLOCK if group <= 32 else group
    per_block = block // group
    return (M + per_block - 1) // per_block, block, group


def cols_block(L, inner):
    """(bx, by) of the cols kernels: up to 256 consecutive columns across x; the axis split over
    y into slices of >= ~8 elements (1024 threads in all for very long axes); bx * by a power of
    two >= 32."""
    bx = min(256, pow2ceil(inner))
    tmax = 1024 if L >= 8192 else 256
    by = min(tmax // bx, pow2ceil(max(1, (L + 7) // 8)))
    by = max(by, 32 // bx, 1)
    return bx, by


def _axis(op, x, axis):
    nd = max(x.ndim, 1)
    if not -nd <= axis < nd:
        raise ValueError(f"{op}: dim {axis} is out of range for an input of shape "
                         f"{tuple(x.shape)}")
    return axis % nd


def _launch(kind, inputs, out, shape, axis, log, states):
    """softmax_{rows,cols}_<kind>_kernel over `shape` seen as (outer, L, inner): the rows kernel
    when inner == 1, else the cols kernel with `states` shared values per thread."""
    outer, L, inner = split_axis(shape or (1,), axis)
    if inner == 1:
        grid, block, group = _rows_launch(outer, L)
        _k(f"softmax_rows_{kind}_kernel", out.dtype)(
            grid, block, (*inputs, out, outer, L, group, int(log)))
    else:
        bx, by = cols_block(L, inner)
        _k(f"softmax_cols_{kind}_kernel", out.dtype)(
            outer * ((inner + bx - 1) // bx), (bx, by), (*inputs, out, outer, L, inner, int(log)),
            shared_mem=states * bx * by * acc_dtype(out.dtype).itemsize)


def softmax_fwd(x, axis, log=False):
    op = "log_softmax" if log else "softmax"
    axis = _axis(op, x, axis)
    xp = get_array_module(x)
    shape = tuple(x.shape)
    module.check_size(op, shape)
    x = xp.ascontiguousarray(x)
    y = module.empty(xp, shape, x.dtype)
    if x.size == 0:
        return y
    _launch("fwd", (x,), y, shape, axis, log, 2)
    return y


def softmax_bwd(y, gy, axis, log=False):
    op = "log_softmax backward" if log else "softmax backward"
    axis = _axis(op, y, axis)
    if tuple(gy.shape) != tuple(y.shape):
        raise ValueError(f"{op}: grad of shape {tuple(gy.shape)} does not match the output's "
                         f"{tuple(y.shape)}")
    xp = get_array_module(y, gy)
    shape = tuple(y.shape)
    module.check_size(op, shape)
    y = xp.ascontiguousarray(y)
    gy = xp.ascontiguousarray(gy, dtype=y.dtype)
    gx = module.empty(xp, shape, y.dtype)
    if y.size == 0:
        return gx
    _launch("bwd", (y, gy), gx, shape, axis, log, 1)
    return gx


# --- fused cross-entropy (class indices) -------------------------------------------------------

def _ce_inputs(op, x, t, w):
    xp = get_array_module(x)
    if x.ndim != 2:
        raise ValueError(f"{op}: expected logits of shape (M, C), got {tuple(x.shape)}")
    M, C = (int(v) for v in x.shape)
    if tuple(t.shape) != (M,):
        raise ValueError(f"{op}: expected targets of shape ({M},) for logits {tuple(x.shape)}, "
                         f"got {tuple(t.shape)}")
    if w is not None and tuple(w.shape) != (C,):
        raise ValueError(f"{op}: expected a weight of shape ({C},), got {tuple(w.shape)}")
    module.check_size(op, x.shape)
    # the kernels' element types; other floats are computed in float32
    x = xp.ascontiguousarray(x, dtype=None if is_float(x, half=True) else numpy.float32)
    t = xp.ascontiguousarray(t, dtype=numpy.int64)
    if w is None:
        wd = wsum = xp.zeros(1, numpy.float64)      # never read (has_w = 0)
    else:
        wd = xp.ascontiguousarray(w, dtype=numpy.float64)
        wsum = wd.sum(keepdims=True)                # on the device: no host sync
    return xp, x, t, wd, wsum, M, C


def ce_fwd(x, t, w, ignore_index, smooth):
    xp, x, t, wd, wsum, M, C = _ce_inputs("cross_entropy", x, t, w)
    loss = module.empty(xp, (M,), numpy.float64)
    lse = module.empty(xp, (M,), numpy.float64)
    if M:
        grid, block, group = _rows_launch(M, C)
        _k("ce_fwd_kernel", x.dtype)(grid, block, (x, t, wd, wsum, loss, lse, M, C,
                                                   int(ignore_index), float(smooth),
                                                   int(w is not None), group))
    return loss, lse


def ce_bwd(x, t, w, ignore_index, smooth, lse, g):
    dtype = x.dtype
    xp, x, t, wd, wsum, M, C = _ce_inputs("cross_entropy backward", x, t, w)
    for name, a in (("lse", lse), ("grad", g)):
        if tuple(a.shape) != (M,):
            raise ValueError(f"cross_entropy backward: expected {name} of shape ({M},), got "
                             f"{tuple(a.shape)}")
    lse = xp.ascontiguousarray(lse, dtype=numpy.float64)
    g = xp.ascontiguousarray(g, dtype=numpy.float64)
    gx = module.empty(xp, (M, C), x.dtype)
    if M:
        grid, block, group = _rows_launch(M, C)
        _k("ce_bwd_kernel", x.dtype)(grid, block, (x, t, wd, wsum, lse, g, gx, M, C,
                                                   int(ignore_index), float(smooth),
                                                   int(w is not None), group))
    return gx.astype(dtype, copy=False)
