"""The softmax family on the CPU: cross-entropy over rows of logits, NumPy array code with two
Numba kernels for float32 (the vectorised exp of kernels/_numba.py, one pass each way).

    ce_fwd(x, t, w, ignore_index, smooth)          -> per-row loss (M,), lse (M,), float64
    ce_bwd(x, t, w, ignore_index, smooth, lse, g)  -> gx (M, C)

(Softmax itself is NumPy array code, in the family's __init__.) float64 stays NumPy: its SIMD exp
beats Numba's per-element libm call (33 ms vs 93 ms for the forward on 4096 x 1000).
"""
import math

import numpy as np
from numba import njit, prange

from .._numba import exp_f32, run

_CE_BLOCK = 1 << 16  # elements per block of rows: the block's temporaries stay in L2


def _row_blocks(M, C):
    step = max(1, _CE_BLOCK // max(C, 1))
    return [(i, min(M, i + step)) for i in range(0, M, step)]


def ce_fwd(x, t, w, ignore_index, smooth):
    """x (M, C), t (M,) int -> per-row loss (M,) and lse (M,), float64 (formula in the
    family's reference). Row blocks keep the exp temporaries in cache: x is read about once."""
    M, C = x.shape
    rows = np.arange(M)
    keep = t != ignore_index
    tc = np.where(keep, t, 0)
    lse = np.empty(M)
    if x.dtype == np.float32 and M and C:  # Numba with the vectorised exp_f32: one pass
        xc = np.ascontiguousarray(x)
        run(row_lse_f32, xc.size, xc, xc.max(axis=1), lse)
        blocks = []
    else:
        blocks = _row_blocks(M, C)
    buf = np.empty((blocks[0][1] - blocks[0][0], C), x.dtype) if blocks else None
    for a, b in blocks:
        xb, e = x[a:b], buf[:b - a]
        mx = xb.max(axis=1)                                 # (rows,)
        np.subtract(xb, mx[:, None], out=e)
        np.exp(e, out=e)                                    # in (0, 1]: a float32 sum is fine
        lse[a:b] = mx + np.log(e.sum(axis=1).astype(np.float64))
    wv = None if w is None else w.astype(np.float64)
    wt = 1.0 if wv is None else wv[tc]
    loss = (1.0 - smooth) * wt * (lse - x[rows, tc])
    if smooth:
        wsum = C if wv is None else wv.sum()
        wx = x.sum(axis=1, dtype=np.float64) if wv is None else x.astype(np.float64) @ wv
        loss = loss + smooth / C * (wsum * lse - wx)
    return np.where(keep, loss, 0.0), lse


def ce_bwd(x, t, w, ignore_index, smooth, lse, g):
    """Gradient of sum_i g_i loss_i with respect to x: g_i (p_i * sum_c q_ic - q_i)."""
    M, C = x.shape
    rows = np.arange(M)
    keep = t != ignore_index
    tc = np.where(keep, t, 0)
    g = np.where(keep, g, 0.0)
    wv = None if w is None else w.astype(np.float64)
    wt = (1.0 - smooth) * (1.0 if wv is None else wv[tc])
    qsum = wt + smooth / C * (C if wv is None else wv.sum())
    shift = lse.astype(x.dtype)                             # lse in x's precision ...
    rest = (lse - shift).astype(x.dtype)[:, None]           # ... and what rounding dropped
    scale = (g * qsum).astype(x.dtype)[:, None]
    gx = np.empty(x.shape, x.dtype)
    fused = x.dtype == np.float32 and M and C
    if fused:  # Numba with the vectorised exp_f32: one pass
        run(ce_softmax_scale_f32, x.size, np.ascontiguousarray(x), np.ascontiguousarray(shift),
            np.ascontiguousarray(rest.reshape(-1)), np.ascontiguousarray(scale.reshape(-1)), gx)
    for a, b in ([] if fused else _row_blocks(M, C)):
        gb = gx[a:b]
        np.subtract(x[a:b], shift[a:b, None], out=gb)       # exact where it matters (x ~ lse)
        gb -= rest[a:b]
        np.exp(gb, out=gb)                                  # softmax p
        gb *= scale[a:b]
    if smooth:
        gx -= (g * (smooth / C)).astype(x.dtype)[:, None] * (
            np.ones((1, C), x.dtype) if wv is None else wv.astype(x.dtype)[None, :])
    gx[rows, tc] -= (g * wt).astype(x.dtype)
    return gx


# --- kernels ----------------------------------------------------------------------------------

@njit(parallel=True, cache=True, fastmath={"contract", "reassoc"})
def row_lse_f32(x, mx, lse):
    """lse[m] = mx[m] + log(sum_c exp(x[m, c] - mx[m])) for float32 x (M, C), mx its row maxima
    (NumPy's max: LLVM does not vectorise this max reduction); the sum in float64."""
    M, C = x.shape
    for m in prange(M):
        xr = x[m]
        a = mx[m]
        s = 0.0
        for c in range(C):
            s += exp_f32(xr[c] - a)
        lse[m] = np.float64(a) + math.log(s)


@njit(parallel=True, cache=True, fastmath={"contract"})
def ce_softmax_scale_f32(x, shift, rest, scale, gx):
    """gx[m, c] = exp((x[m, c] - shift[m]) - rest[m]) * scale[m] (float32; the softmax
    times each row's gradient scale, lse split in shift + rest as in ce_bwd)."""
    M, C = x.shape
    for m in prange(M):
        a = shift[m]
        b = rest[m]
        k = scale[m]
        for c in range(C):
            gx[m, c] = exp_f32((x[m, c] - a) - b) * k
