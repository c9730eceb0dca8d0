"""The norm family on the GPU: launch functions of norm.cu, with the signatures and return values
of the family's API (kernels/norm/__init__.py; statistics and partial sums float64):

    row_norm_fwd(x4, w2, b2, eps)                 -> y4, mean (N, G), rstd (N, G)
    row_norm_bwd(gy4, x4, mean, rstd, w2, out_shape=None)
        -> gx, gw_part, gb_part: (P, G, S) partial sums over row groups for I == 1 (P == 1 when
           the columns alone fill the GPU, e.g. layer norm over (C, H, W)), (N, G, S) for I > 1;
           the caller sums axis 0
    chan_stats(x3)                                -> mean (C,), biased var (C,)
    chan_affine(x3, scale, shift)                 -> y3
    chan_bwd_sums(gy3, x3, mean)                  -> sum gy (C,), sum gy * (x - mean) (C,)
    chan_bwd_apply(gy3, x3, mean, rstd, w, s1, s2) -> gx3

Statistics are two-level reductions (see the header of norm.cu): a group (row or channel) of
`total` elements is split into B blocks of `chunk` elements so that there are about WAVE
blocks in all; B > 1 adds a small merge kernel. Batch norm with runs of I < CHAN_COLS_MAX_I
elements (BatchNorm1d: I == 1) reduces per column (c, i) over row groups instead, coalesced.
CuPy arrays run on the GPU, NumPy arrays under the CPU emulator (the tests). No launch function
synchronizes with the host. x and gy may be float16 / bfloat16 too (every kernel but
running_update's has half instances, half.cuh): values are widened to float64 as float32 ones
are, results rounded to float32 and then to the half format (as the widened path rounds); the
affine weight and bias are then float32 (acc_t<T>), as cuDNN takes them beside half data.
"""
import numpy

from minicnn.devices import get_array_module

from ..cuda import module
from ..cuda.launch import (H100_SMS, acc_dtype, blocks, fastdiv, float_input, is_float,
                           warp_threads)

BLOCK = 256
WAVE = H100_SMS * 8     # blocks of 256 threads that fill an H100 once
MIN_CHUNK = 2048        # at least this many elements per block of a split reduction
CHUNK_ALIGN = 128       # long chunks start on 128-element boundaries (512 B for float32)
APPLY_WAVES = 16        # grid of the grid-stride element loops: blocks per SM
APPLY_BLOCKS = None     # ... or a fixed number of blocks (the tests' small grids)
COL_BLOCKS = H100_SMS * 4  # the column kernel splits rows into groups below this many blocks
COL_MIN_ROWS = 16       # ... of at least this many rows each
FUSED_V = 8             # row elements per thread of the fused short-row kernels (norm.cu)
FUSED_MAX = FUSED_V * 1024  # rows up to this long: one block per row, x read once
FUSED_MIN_ROWS = H100_SMS  # ... when there are enough rows to fill the GPU (or rows are short)
APPLY_CHUNK_MIN = 1024  # row-norm apply by the statistics' chunks when they are this long
CHAN_COLS_MAX_I = 16    # batch norm with runs shorter than this: one thread per column (c, i)
CHAN_COL_MIN_ROWS = 64  # ... over row groups of at least this many rows
F64 = numpy.float64


def _k(name, dtype=None):
    return module.kernel("norm", name, dtype)


def _threads(n):
    return warp_threads(n, BLOCK)


def _split(Q, total):
    """(B, chunk): blocks per group and elements per block (long chunks a multiple of
    CHUNK_ALIGN elements, so the blocks of a row start on cache-line boundaries)."""
    B = max(1, min(-(-total // MIN_CHUNK), -(-WAVE // Q)))
    chunk = -(-total // B)
    if B > 1 and chunk >= 4 * CHUNK_ALIGN:
        chunk = -(-chunk // CHUNK_ALIGN) * CHUNK_ALIGN
    return -(-total // chunk), chunk


def _like(xp, a, dtype, shape, op, name):
    """a as a contiguous array of dtype (None: a 1-element placeholder the kernel never reads)."""
    if a is None:
        return xp.empty(1, dtype), 0
    if a.size != int(numpy.prod(shape)):
        raise ValueError(f"{op}: {name} of shape {tuple(a.shape)} does not fit {tuple(shape)}")
    return xp.ascontiguousarray(a, dtype=dtype).reshape(-1), 1


def _f64(xp, a, n, op, name):
    if a.size != n:
        raise ValueError(f"{op}: {name} has {a.size} elements, expected {n}")
    return xp.ascontiguousarray(a, dtype=F64).reshape(-1)


UNROLL = 4  # elements per thread and trip of the element loops (norm.cu)


def _grid(n, like, per_thread=UNROLL):
    """Blocks of BLOCK threads for a grid-stride loop over n elements, per_thread a trip."""
    return blocks(n, BLOCK * per_thread, APPLY_WAVES, like, APPLY_BLOCKS)


def _stats(xp, x, Q, total, irun, rstride, qstride, eps, mode):
    """mean (Q,) and rstd (mode 0) or biased var (mode 1) of Q groups of x."""
    mean, out = module.empty(xp, (Q,), F64), module.empty(xp, (Q,), F64)
    B, chunk = _split(Q, total)
    part = module.empty(xp, (Q * B * 3 if B > 1 else 3,), F64)
    _k("norm_stats_kernel", x.dtype)(Q * B, _threads(chunk), (
        x, irun, rstride, qstride, total, B, chunk, float(eps), mode, part, mean, out))
    if B > 1:
        _k("norm_stats_final_kernel")(Q, _threads(B), (part, B, float(eps), mode, mean, out))
    return mean, out


def _sums(xp, gy, x, mean, w, has_w, G, msdiv, Q, total, irun, rstride, qstride):
    """sum gy*w and sum gy*w*(x - mean[q // msdiv]) (Q,) of Q groups."""
    a, c = module.empty(xp, (Q,), F64), module.empty(xp, (Q,), F64)
    B, chunk = _split(Q, total)
    part = module.empty(xp, (Q * B * 2 if B > 1 else 2,), F64)
    _k("norm_bwd_sums_kernel", x.dtype)(Q * B, _threads(chunk), (
        gy, x, mean, w, has_w, G, msdiv, irun, rstride, qstride, total, B, chunk, part, a, c))
    if B > 1:
        _k("norm_sums_final_kernel")(Q, _threads(B), (part, B, a, c))
    return a, c


def _cols_grid(N, cols, min_rows, target_blocks):
    """(threads, column blocks, row groups P, rows per group) of the kernels with one thread per
    column of an (N, cols) view: the N rows split into P groups of at least min_rows rows (but
    one) until there are about target_blocks blocks."""
    nt = _threads(cols)
    ncb = -(-cols // nt)
    P = max(1, min(-(-N // min_rows), -(-target_blocks // ncb)))
    rpg = -(-N // P)
    return nt, ncb, -(-N // rpg), rpg


# --- row norms (layer / instance / group) ------------------------------------------------------

def _fused(R, M):
    """Whether rows of M elements go to the one-block-per-row kernels (x read once)."""
    return M <= FUSED_MAX and (R >= FUSED_MIN_ROWS or _split(R, M)[0] == 1)


def _fused_threads(M):
    return warp_threads(-(-M // FUSED_V), 1024)


def row_norm_fwd(x4, w2, b2, eps):
    xp, x = float_input("row_norm", x4, 4, half=True)
    N, G, S, I = x.shape  # noqa: E741
    M, R = S * I, N * G
    w, has_w = _like(xp, w2, acc_dtype(x.dtype), (G, S), "row_norm", "weight")
    b, has_b = _like(xp, b2, acc_dtype(x.dtype), (G, S), "row_norm", "bias")
    y = module.empty(xp, x.shape, x.dtype)
    if _fused(R, M):
        mean, rstd = module.empty(xp, (R,), F64), module.empty(xp, (R,), F64)
        _k("row_norm_fused_fwd_kernel", x.dtype)(R, _fused_threads(M), (
            x, w, b, has_w, has_b, M, *fastdiv(I), S, G, float(eps), y, mean, rstd))
        return y, mean.reshape(N, G), rstd.reshape(N, G)
    mean, rstd = _stats(xp, x, R, M, M, 0, M, eps, 0)
    B, chunk = _split(R, M)
    if chunk >= APPLY_CHUNK_MIN:  # the statistics' grid, each chunk walked from its end
        _k("row_norm_chunk_kernel", x.dtype)(R * B, _threads(chunk), (
            x, x, mean, rstd, mean, mean, w, b, has_w, has_b, 0, 0.0, M, B, chunk, *fastdiv(I),
            S, G, y))
    else:
        _k("row_norm_apply_kernel", x.dtype)(_grid(x.size, x), BLOCK, (
            x, mean, rstd, w, b, has_w, has_b, x.size, M, *fastdiv(M), I, *fastdiv(I), S, G,
            *fastdiv(G), y))
    return y, mean.reshape(N, G), rstd.reshape(N, G)


def row_norm_bwd(gy4, x4, mean, rstd, w2, out_shape=None):
    xp, x = float_input("row_norm_bwd", x4, 4, half=True)
    if tuple(gy4.shape) != tuple(x.shape):
        raise ValueError(f"row_norm_bwd: grad of shape {tuple(gy4.shape)} does not match input "
                         f"of shape {tuple(x.shape)}")
    N, G, S, I = x.shape  # noqa: E741
    M, R = S * I, N * G
    gy = xp.ascontiguousarray(gy4, dtype=x.dtype)
    mean = _f64(xp, mean, R, "row_norm_bwd", "mean")
    rstd = _f64(xp, rstd, R, "row_norm_bwd", "rstd")
    w, has_w = _like(xp, w2, acc_dtype(x.dtype), (G, S), "row_norm_bwd", "weight")
    gx_out = module.empty(xp, x.shape if out_shape is None else tuple(out_shape), x.dtype)
    if gx_out.size != x.size:
        raise ValueError(f"row_norm_bwd: out_shape {tuple(out_shape)} does not hold "
                         f"{tuple(x.shape)}")
    gx = gx_out.reshape(x.shape)
    if I == 1:
        # rows of S elements, affine per element: row sums, then one thread per column (g, s)
        ra, rc = _sums(xp, gy, x, mean, w, has_w, G, 1, R, S, S, 0, S)
        nt, ncb, P, rpg = _cols_grid(N, G * S, COL_MIN_ROWS, COL_BLOCKS)
        gw, gb = module.empty(xp, (P, G, S), F64), module.empty(xp, (P, G, S), F64)
        _k("row_norm_bwd_cols_kernel", x.dtype)(P * ncb, nt, (
            gy, x, mean, rstd, ra, rc, w, has_w, 1.0 / M, N, G, S, ncb, rpg, gx, gw, gb))
        return gx_out, gw, gb
    if S == 1 and _fused(R, M):  # instance norm, layer norm without affine: one pass
        gw, gb = module.empty(xp, (N, G, 1), F64), module.empty(xp, (N, G, 1), F64)
        _k("row_norm_fused_bwd_kernel", x.dtype)(R, _fused_threads(M), (
            gy, x, mean, rstd, w, has_w, M, G, gx, gw, gb))
        return gx_out, gw, gb
    # I > 1: sums over each (n, g, s) run of I elements, then per row, then gx
    a, c = _sums(xp, gy, x, mean, xp.empty(1, acc_dtype(x.dtype)), 0, 1, S, R * S, I, I, 0, I)
    ra, rc = module.empty(xp, (R,), F64), module.empty(xp, (R,), F64)
    gw = module.empty(xp, (N, G, S), F64)
    _k("norm_seg_rows_kernel", x.dtype)(_grid(R, x, 1), BLOCK, (
        a, c, rstd, w, has_w, S, G, R, ra, rc, gw))
    B, chunk = _split(R, M)
    if chunk >= APPLY_CHUNK_MIN:
        _k("row_norm_chunk_kernel", x.dtype)(R * B, _threads(chunk), (
            x, gy, mean, rstd, ra, rc, w, w, has_w, 0, 1, 1.0 / M, M, B, chunk, *fastdiv(I), S, G,
            gx))
    else:
        _k("row_norm_bwd_apply_kernel", x.dtype)(_grid(x.size, x), BLOCK, (
            gy, x, mean, rstd, ra, rc, w, has_w, 1.0 / M, x.size, M, *fastdiv(M), I, *fastdiv(I),
            S, G, *fastdiv(G), gx))
    return gx_out, gw, a.reshape(N, G, S)


# --- channel norm (batch) ----------------------------------------------------------------------

def _chan_input(op, x3):
    xp, x = float_input(op, x3, 3, half=True)
    N, C, I = x.shape  # noqa: E741
    return xp, x, N, C, I


def chan_stats(x3):
    xp, x, N, C, I = _chan_input("chan_stats", x3)  # noqa: E741
    if I < CHAN_COLS_MAX_I:
        nt, ncb, P, rpg = _cols_grid(N, C * I, CHAN_COL_MIN_ROWS, WAVE)
        part = module.empty(xp, (P * C * I * 3,), F64)
        _k("chan_cols_stats_kernel", x.dtype)(P * ncb, nt, (x, N, C * I, ncb, rpg, part))
        mean, var = module.empty(xp, (C,), F64), module.empty(xp, (C,), F64)
        _k("chan_cols_stats_final_kernel")(C, _threads(P * I), (
            part, P, I, C * I, 0.0, 1, mean, var))
        return mean, var
    return _stats(xp, x, C, N * I, I, C * I, I, 0.0, 1)


def chan_affine(x3, scale, shift):
    xp, x, N, C, I = _chan_input("chan_affine", x3)  # noqa: E741
    scale = _f64(xp, scale, C, "chan_affine", "scale")
    shift = _f64(xp, shift, C, "chan_affine", "shift")
    y = module.empty(xp, x.shape, x.dtype)
    if x.size:
        _k("chan_affine_kernel", x.dtype)(_grid(x.size, x), BLOCK, (
            x, scale, shift, x.size, *fastdiv(I), C, *fastdiv(C), y))
    return y


def chan_bwd_sums(gy3, x3, mean):
    xp, x, N, C, I = _chan_input("chan_bwd_sums", x3)  # noqa: E741
    gy = xp.ascontiguousarray(gy3, dtype=x.dtype)
    if gy.shape != x.shape:
        raise ValueError(f"chan_bwd_sums: grad of shape {tuple(gy.shape)} does not match input "
                         f"of shape {tuple(x.shape)}")
    mean = _f64(xp, mean, C, "chan_bwd_sums", "mean")
    if N * I == 0 or C == 0:
        return xp.zeros(C), xp.zeros(C)
    if I < CHAN_COLS_MAX_I:
        nt, ncb, P, rpg = _cols_grid(N, C * I, CHAN_COL_MIN_ROWS, WAVE)
        part = module.empty(xp, (P * C * I * 2,), F64)
        _k("chan_cols_sums_kernel", x.dtype)(P * ncb, nt, (gy, x, mean, N, C * I, I, ncb, rpg,
                                                             part))
        a, c = module.empty(xp, (C,), F64), module.empty(xp, (C,), F64)
        _k("chan_cols_sums_final_kernel")(C, _threads(P * I), (part, P, I, C * I, a, c))
        return a, c
    return _sums(xp, gy, x, mean, xp.empty(1, acc_dtype(x.dtype)), 0, 1, 1, C, N * I, I, C * I, I)


def chan_bwd_apply(gy3, x3, mean, rstd, w, sum_gy, sum_gyxmu):
    xp, x, N, C, I = _chan_input("chan_bwd_apply", x3)  # noqa: E741
    gy = xp.ascontiguousarray(gy3, dtype=x.dtype)
    if gy.shape != x.shape:
        raise ValueError(f"chan_bwd_apply: grad of shape {tuple(gy.shape)} does not match input "
                         f"of shape {tuple(x.shape)}")
    args = [_f64(xp, a, C, "chan_bwd_apply", n) for a, n in
            ((mean, "mean"), (rstd, "rstd"), (sum_gy, "sum_gy"), (sum_gyxmu, "sum_gyxmu"))]
    wv, has_w = _like(xp, w, acc_dtype(x.dtype), (C,), "chan_bwd_apply", "weight")
    gx = module.empty(xp, x.shape, x.dtype)
    if x.size:
        _k("chan_bwd_apply_kernel", x.dtype)(_grid(x.size, x), BLOCK, (
            gy, x, args[0], args[1], wv, has_w, args[2], args[3], 1.0 / (N * I), x.size,
            *fastdiv(I), C, *fastdiv(C), gx))
    return gx


# --- running statistics ------------------------------------------------------------------------

def running_update(rm, rv, mean, var, momentum, var_scale=1.0):
    """In place: rm = (1 - m) rm + m mean, rv = (1 - m) rv + m var * var_scale (one launch).
    rm, rv: contiguous arrays of one float dtype (the module's buffers); mean, var: (C,)."""
    xp = get_array_module(rm)
    C = rm.size
    if rv.size != C or rv.dtype != rm.dtype or not (rm.flags.c_contiguous and
                                                     rv.flags.c_contiguous):
        raise ValueError(f"running_update: running_mean {tuple(rm.shape)} {rm.dtype} and "
                         f"running_var {tuple(rv.shape)} {rv.dtype} must be contiguous, of one "
                         f"dtype and size")
    if not is_float(rm):
        raise TypeError(f"running_update: float32 or float64 buffers, got {rm.dtype}")
    mean = _f64(xp, mean, C, "running_update", "mean")
    var = _f64(xp, var, C, "running_update", "var")
    if C:
        _k("running_update_kernel", rm.dtype)(_grid(C, rm, 1), BLOCK, (
            rm.reshape(-1), rv.reshape(-1), mean, var, float(momentum), float(var_scale), C))
