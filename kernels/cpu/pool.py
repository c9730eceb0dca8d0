"""Numba kernels of the pooling family (CPU). One `prange` iteration per (n, c) plane; every
write stays in that plane, so accumulation (overlapping windows) has no races.

Indices are flat positions h * W + w inside the (H, W) plane, as PyTorch's max_pool2d returns.
"""
import math

from numba import njit, prange


@njit(parallel=True, cache=True)
def max_pool_fwd(x, KH, KW, SH, SW, PH, PW, DH, DW, y, idx):
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    for p in prange(N * C):
        n = p // C
        c = p % C
        for oh in range(OH):
            h0 = oh * SH - PH
            for ow in range(OW):
                w0 = ow * SW - PW
                best = -math.inf
                arg = -1
                for kh in range(KH):
                    h = h0 + kh * DH
                    if h < 0 or h >= H:
                        continue
                    for kw in range(KW):
                        w = w0 + kw * DW
                        if w < 0 or w >= W:
                            continue
                        v = x[n, c, h, w]
                        if v > best or arg < 0 or (math.isnan(v) and not math.isnan(best)):
                            best = v
                            arg = h * W + w
                y[n, c, oh, ow] = best
                idx[n, c, oh, ow] = arg


@njit(parallel=True, cache=True)
def plane_scatter(g, idx, out):
    """out[n, c].flat[idx[n, c, o]] += g[n, c, o] (max-pool backward, max_unpool2d)."""
    N, C, OH, OW = g.shape
    H, W = out.shape[2], out.shape[3]
    for p in prange(N * C):
        n = p // C
        c = p % C
        plane = out[n, c]
        plane[:, :] = 0
        for oh in range(OH):
            for ow in range(OW):
                i = idx[n, c, oh, ow]
                if i >= 0:  # -1: a window with no input element (all padding)
                    plane[i // W, i % W] += g[n, c, oh, ow]


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
                s = x[n, c, 0, 0] * 0
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
def adaptive_max_fwd(x, hs, he, ws, we, y, idx):
    """Max over the window [hs[oh], he[oh]) x [ws[ow], we[ow]] of each output."""
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    for p in prange(N * C):
        n = p // C
        c = p % C
        for oh in range(OH):
            for ow in range(OW):
                best = -math.inf
                arg = -1
                for h in range(hs[oh], he[oh]):
                    for w in range(ws[ow], we[ow]):
                        v = x[n, c, h, w]
                        if v > best or arg < 0 or (math.isnan(v) and not math.isnan(best)):
                            best = v
                            arg = h * W + w
                y[n, c, oh, ow] = best
                idx[n, c, oh, ow] = arg
