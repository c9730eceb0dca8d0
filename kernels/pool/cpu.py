"""The pooling family on the CPU: Numba kernels and the functions that allocate their outputs
and call them (the signatures of kernels/pool/__init__.py). One `prange` iteration per (n, c)
plane; every write stays in that plane, so accumulation (overlapping windows) has no races.

Indices are flat positions h * W + w inside the (H, W) plane, as PyTorch's max_pool2d returns.
"""
import math

import numpy as np
from numba import njit, prange

from .._numba import run, valid_range


def max_pool2d_fwd(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW):
    x = np.ascontiguousarray(x)
    y = np.empty(x.shape[:2] + (OH, OW), x.dtype)
    idx = np.empty(x.shape[:2] + (OH, OW), np.int64)
    if KH == 3 and KW == 3:  # separable, vectorised
        run(max_pool3x3_fwd, y.size * 9, x, SH, SW, PH, PW, DH, DW, y, idx)
    elif (KH == 2 and KW == 2 and PH == 0 and PW == 0 and DH == 1 and DW == 1
          and (OH - 1) * SH + 1 < x.shape[2] and (OW - 1) * SW + 1 < x.shape[3]):
        run(max_pool2x2_fwd, y.size * 4, x, SH, SW, y, idx)   # every window inside the plane
    else:
        run(max_pool_fwd, y.size * KH * KW, x, KH, KW, SH, SW, PH, PW, DH, DW, y, idx)
    return y, idx


def max_pool2d_bwd(gy, idx, H, W, KH, KW, SH, SW, PH, PW, DH, DW):  # noqa: ARG001 -- the API's
    """Scatter-add of gy to the argmax of each window (per plane, race-free)."""
    return plane_scatter(gy, idx, H, W)


def avg_pool2d_fwd(x, KH, KW, SH, SW, PH, PW, OH, OW, inv):
    x = np.ascontiguousarray(x)
    y = np.empty(x.shape[:2] + (OH, OW), x.dtype)
    run(avg_pool_fwd, y.size * KH * KW, x, KH, KW, SH, SW, PH, PW, np.ascontiguousarray(inv), y)
    return y


def avg_pool2d_bwd(gy, H, W, KH, KW, SH, SW, PH, PW, inv):
    gy = np.ascontiguousarray(gy)
    gx = np.empty(gy.shape[:2] + (H, W), gy.dtype)
    run(avg_pool_bwd, gy.size * KH * KW, gy, KH, KW, SH, SW, PH, PW, np.ascontiguousarray(inv),
        gx)
    return gx


def adaptive_max_pool2d_fwd(x, OH, OW):
    x = np.ascontiguousarray(x)
    N, C = x.shape[:2]
    y = np.empty((N, C, OH, OW), x.dtype)
    idx = np.empty((N, C, OH, OW), np.int64)
    run(adaptive_max_fwd, x.size, x, y, idx)
    return y, idx


def plane_scatter(g, idx, H, W):
    g = np.ascontiguousarray(g)
    out = np.empty(g.shape[:2] + (H, W), g.dtype)
    run(plane_scatter_kernel, out.size, g, np.ascontiguousarray(idx), out)
    return out


def plane_gather(x, idx):
    """x[n, c].flat[idx[n, c, o]]: one fancy-indexing gather; 0 for an index outside the plane
    (as the CUDA kernel; -1 must not wrap around to the last element)."""
    N, C, H, W = x.shape
    i = idx.reshape(N, C, -1)
    inside = (i >= 0) & (i < H * W)
    out = np.take_along_axis(x.reshape(N, C, H * W), np.where(inside, i, 0), axis=2)
    out[~inside] = 0
    return out.reshape(idx.shape)


# --- kernels ----------------------------------------------------------------------------------


@njit(inline="always")
def _tap_range(start, D, K, size):
    """[lo, hi) of taps k with 0 <= start + k*D < size."""
    lo = 0
    if start < 0:
        lo = (-start + D - 1) // D
    hi = K
    last = size - 1 - start
    if last < 0:
        hi = 0
    elif last // D + 1 < K:
        hi = last // D + 1
    if lo > hi:
        lo = hi
    return lo, hi


@njit(parallel=True, cache=True)
def max_pool_fwd(x, KH, KW, SH, SW, PH, PW, DH, DW, y, idx):
    """Window max and its flat index, PyTorch's rule: a tap replaces the running max when it is
    larger or NaN. Loop order (oh, kh, kw, ow): each tap updates a row of outputs, with the
    tap and output ranges clipped up front so the inner loop has no bounds tests."""
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    khr = np.empty((OH, 2), np.int64)
    owr = np.empty((KW, 2), np.int64)
    for oh in range(OH):
        khr[oh, 0], khr[oh, 1] = _tap_range(oh * SH - PH, DH, KH, H)
    for kw in range(KW):  # outputs ow whose tap kw is inside the row
        owr[kw, 0], owr[kw, 1] = valid_range(kw * DW - PW, SW, W, OW)
    xf = x.reshape(-1)
    yf = y.reshape(-1)
    jf = idx.reshape(-1)
    HW = H * W
    L = OH * OW
    for p in prange(N * C):
        base = p * HW
        for oh in range(OH):
            o = p * L + oh * OW
            yr = yf[o:o + OW]   # row views indexed by range variables (no wraparound tests)
            jr = jf[o:o + OW]
            for i in range(OW):
                yr[i] = -np.inf
                jr[i] = -1
            h0 = oh * SH - PH
            for kh in range(khr[oh, 0], khr[oh, 1]):
                row = (h0 + kh * DH) * W
                for kw in range(KW):
                    lo = owr[kw, 0]
                    cnt = owr[kw, 1] - lo
                    if cnt <= 0:
                        continue
                    j0 = row + lo * SW + kw * DW - PW
                    xr = xf[base + j0:base + j0 + (cnt - 1) * SW + 1:SW]
                    yv = yr[lo:lo + cnt]
                    jv = jr[lo:lo + cnt]
                    for i in range(cnt):
                        v = xr[i]
                        if v > yv[i] or v != v:
                            yv[i] = v
                            jv[i] = j0 + i * SW
            for ow in range(OW):  # a window of only -inf: its first element, as PyTorch
                if jr[ow] < 0:
                    kw0 = 0
                    while kw0 < KW and not (owr[kw0, 0] <= ow < owr[kw0, 1]):
                        kw0 += 1
                    jr[ow] = (h0 + khr[oh, 0] * DH) * W + ow * SW + kw0 * DW - PW


@njit(parallel=True, cache=True)
def max_pool2x2_fwd(x, SH, SW, y, idx):
    """max_pool_fwd for 2x2 windows that all lie inside the plane (no padding or dilation): the
    four taps in max_pool_fwd's order, each kept or not by a select rather than a branch (the
    branch on random data mispredicts: 86 us instead of 20 us for a (4, 6, 28, 28) input). The
    first tap starts the window, which is what max_pool_fwd's -inf start and its fix-up of an
    all -inf window amount to."""
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    for p in prange(N * C):
        n = p // C
        c = p % C
        xp = x[n, c]
        for oh in range(OH):
            h = oh * SH
            r0 = xp[h]
            r1 = xp[h + 1]
            yr = y[n, c, oh]
            jr = idx[n, c, oh]
            for ow in range(OW):
                w = ow * SW
                m = r0[w]
                j = h * W + w
                v = r0[w + 1]
                t = (v > m) | (v != v)
                m = v if t else m
                j = h * W + w + 1 if t else j
                v = r1[w]
                t = (v > m) | (v != v)
                m = v if t else m
                j = (h + 1) * W + w if t else j
                v = r1[w + 1]
                t = (v > m) | (v != v)
                m = v if t else m
                j = (h + 1) * W + w + 1 if t else j
                yr[ow] = m
                jr[ow] = j


@njit(parallel=True, cache=True)
def plane_scatter_kernel(g, idx, out):
    """out[n, c].flat[idx[n, c, o]] += g[n, c, o] (max-pool backward, max_unpool2d). Flat
    indexing: splitting i into (i // W, i % W) cost two integer divisions per element."""
    N, C, OH, OW = g.shape
    H, W = out.shape[2], out.shape[3]
    HW = H * W
    L = OH * OW
    gf = g.reshape(-1)
    jf = idx.reshape(-1)
    of = out.reshape(-1)
    for p in prange(N * C):
        plane = of[p * HW:(p + 1) * HW]
        gp = gf[p * L:(p + 1) * L]
        jp = jf[p * L:(p + 1) * L]
        plane[:] = 0
        for o in range(L):
            i = jp[o]
            # an index outside the plane (-1, or PyTorch's index of a window that has no
            # input element) takes no gradient
            if 0 <= i < HW:
                plane[i] += gp[o]


@njit(parallel=True, cache=True)
def avg_pool_fwd(x, KH, KW, SH, SW, PH, PW, inv, y):
    """y = (sum of the window's in-bounds values) * inv[oh, ow] (inv: 1 / divisor)."""
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    for p in prange(N * C):
        n = p // C
        c = p % C
        for oh in range(OH):
            h0 = max(oh * SH - PH, 0)
            h1 = min(oh * SH - PH + KH, H)
            for ow in range(OW):
                w0 = max(ow * SW - PW, 0)
                w1 = min(ow * SW - PW + KW, W)
                s = inv[oh, ow] * 0   # a typed 0 (x's first element may be inf or NaN)
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        s += x[n, c, h, w]
                y[n, c, oh, ow] = s * inv[oh, ow]


@njit(parallel=True, cache=True)
def avg_pool_bwd(gy, KH, KW, SH, SW, PH, PW, inv, gx):
    """gx[n, c, h, w] = sum over the windows holding (h, w) of gy * inv; one plane each."""
    N, C, OH, OW = gy.shape
    H, W = gx.shape[2], gx.shape[3]
    for p in prange(N * C):
        n = p // C
        c = p % C
        plane = gx[n, c]
        plane[:, :] = 0
        for oh in range(OH):
            h0 = max(oh * SH - PH, 0)
            h1 = min(oh * SH - PH + KH, H)
            for ow in range(OW):
                w0 = max(ow * SW - PW, 0)
                w1 = min(ow * SW - PW + KW, W)
                g = gy[n, c, oh, ow] * inv[oh, ow]
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        plane[h, w] += g


@njit(parallel=True, cache=True)
def adaptive_max_fwd(x, y, idx):
    """Max over each output's window [oh H / OH, ceil((oh + 1) H / OH)) x (the same along W),
    PyTorch's adaptive rule."""
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    for p in prange(N * C):
        n = p // C
        c = p % C
        for oh in range(OH):
            h0, h1 = (oh * H) // OH, ((oh + 1) * H + OH - 1) // OH
            for ow in range(OW):
                w0, w1 = (ow * W) // OW, ((ow + 1) * W + OW - 1) // OW
                best = -math.inf
                arg = -1
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        v = x[n, c, h, w]
                        if v > best or arg < 0 or math.isnan(v):   # the last NaN, as PyTorch
                            best = v
                            arg = h * W + w
                y[n, c, oh, ow] = best
                idx[n, c, oh, ow] = arg



# --- 3x3 max pool (ResNet's stem pool), any stride, padding and dilation -----------------------
# Separable: a row pass takes the max over the 3 taps of each input row for every output column,
# then a column pass takes the max over the 3 row results of each window. The scan rule
# (replace when larger or NaN, starting from the window's first element with -inf) applied row by
# row and then across rows gives the same value and index as PyTorch's row-major scan: with a
# NaN, the last NaN of the last row holding one (= the last NaN in row-major order); without, the
# first row holding the maximum and its first maximum (= the first maximum in row-major order).
# Interior columns and rows are written as branch-free selects over local values, which LLVM
# vectorises; border ones (a tap in the padding) take the generic loop.

@njit(inline="always")
def _pick(v, m, j, c):
    t = (v > m) | (v != v)
    return (v if t else m), (c if t else j)


@njit(parallel=True, cache=True)
def max_pool3x3_fwd(x, SH, SW, PH, PW, DH, DW, y, idx):
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    # output columns whose 3 taps are all inside the row, and rows likewise
    olo = (PW + SW - 1) // SW
    ohi = (W - 1 - 2 * DW + PW) // SW + 1 if W - 1 - 2 * DW + PW >= 0 else 0
    ohi = min(ohi, OW)
    olo = min(olo, ohi)
    rlo = (PH + SH - 1) // SH
    rhi = (H - 1 - 2 * DH + PH) // SH + 1 if H - 1 - 2 * DH + PH >= 0 else 0
    rhi = min(rhi, OH)
    rlo = min(rlo, rhi)
    ninf = -np.inf
    for p in prange(N * C):
        n = p // C
        c = p % C
        xpl = x[n, c]
        hv = np.empty((H, OW), x.dtype)     # row-pass max of each input row, per output column
        hc = np.empty((H, OW), np.int64)    # and its column
        for h in range(H):
            xr = xpl[h]
            mv = hv[h]
            mc = hc[h]
            for ow in range(olo):
                m, j = _col_scan(xr, ow * SW - PW, DW, W)
                mv[ow] = m
                mc[ow] = j
            cnt = ohi - olo
            if cnt > 0:
                s0 = olo * SW - PW
                a = xr[s0:s0 + (cnt - 1) * SW + 1:SW]
                b = xr[s0 + DW:s0 + DW + (cnt - 1) * SW + 1:SW]
                d = xr[s0 + 2 * DW:s0 + 2 * DW + (cnt - 1) * SW + 1:SW]
                mvv = mv[olo:ohi]
                mcv = mc[olo:ohi]
                for i in range(cnt):
                    c0 = s0 + i * SW
                    m = a[i]
                    j = c0
                    m, j = _pick(b[i], m, j, c0 + DW)
                    m, j = _pick(d[i], m, j, c0 + 2 * DW)
                    mvv[i] = m
                    mcv[i] = j
            for ow in range(ohi, OW):
                m, j = _col_scan(xr, ow * SW - PW, DW, W)
                mv[ow] = m
                mc[ow] = j
        ypl = y[n, c]
        jpl = idx[n, c]
        for oh in range(OH):
            h0 = oh * SH - PH
            yr = ypl[oh]
            jr = jpl[oh]
            if rlo <= oh < rhi:
                r0, r1, r2 = hv[h0], hv[h0 + DH], hv[h0 + 2 * DH]
                c0, c1, c2 = hc[h0], hc[h0 + DH], hc[h0 + 2 * DH]
                b0 = h0 * W
                b1 = b0 + DH * W
                b2 = b1 + DH * W
                for i in range(OW):
                    m = r0[i]
                    j = b0 + c0[i]
                    m, j = _pick(r1[i], m, j, b1 + c1[i])
                    m, j = _pick(r2[i], m, j, b2 + c2[i])
                    yr[i] = m
                    jr[i] = j
            else:
                for i in range(OW):
                    m = ninf
                    j = -1
                    for kh in range(3):
                        h = h0 + kh * DH
                        if h < 0 or h >= H:
                            continue
                        if j < 0:
                            m = hv[h, i]
                            j = h * W + hc[h, i]
                        else:
                            m, j = _pick(hv[h, i], m, j, h * W + hc[h, i])
                    yr[i] = m
                    jr[i] = j


@njit(inline="always")
def _col_scan(xr, s, DW, W):
    """max over the in-row taps s, s+DW, s+2DW of a row, from -inf at the first valid tap."""
    m = -np.inf
    j = -1
    for kw in range(3):
        col = s + kw * DW
        if col < 0 or col >= W:
            continue
        if j < 0:
            j = col
        m, j = _pick(xr[col], m, j, col)
    return m, j
