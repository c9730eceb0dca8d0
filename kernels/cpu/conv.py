"""Numba kernels of the convolution family (CPU). Layouts as in kernels/reference/conv.py.

Every kernel gathers: one `prange` iteration owns one output plane ((n, c) of the column buffer,
of the image for col2im, (n, k) of a depthwise output, k of a depthwise weight gradient) and
writes only there, so there are no races. Inner loops run over the valid output-column range of
each kernel tap (computed once, no per-element bounds test) so they vectorise for stride 1.
Kernels write into a caller-allocated `out` so the dispatcher controls allocation.
"""
import numpy as np
from numba import njit, prange

from .._numba import valid_range


@njit(parallel=True, cache=True)
def im2col(x, KH, KW, SH, SW, PH, PW, DH, DW, col):
    N, C, H, W = x.shape
    OH, OW = col.shape[4], col.shape[5]
    xf = x.reshape(-1)      # (N, C, H, W) -> flat; contiguous input required
    cf = col.reshape(-1)    # (C, KH, KW, N, OH, OW) -> flat
    L = OH * OW
    for p in prange(N * C):
        c = p // N      # channel-major order: consecutive iterations fill consecutive blocks of
        n = p % N       # the column buffer (image-major order scattered its 64-byte blocks at 4x4)
        xbase = (n * C + c) * H * W
        for kh in range(KH):
            hoff = kh * DH - PH
            for kw in range(KW):
                woff = kw * DW - PW
                lo, hi = valid_range(woff, SW, W, OW)
                cbase = (((c * KH + kh) * KW + kw) * N + n) * L
                if lo > 0 or hi < OW or hoff < 0 or (OH - 1) * SH + hoff >= H:
                    cf[cbase:cbase + L] = 0     # padding: zero the block once, not per row
                for oh in range(OH):
                    h = oh * SH + hoff
                    if h < 0 or h >= H:
                        continue
                    o = cbase + oh * OW
                    src = xbase + h * W + woff
                    if SW == 1:
                        cf[o + lo:o + hi] = xf[src + lo:src + hi]
                    else:
                        for ow in range(lo, hi):
                            cf[o + ow] = xf[src + ow * SW]


@njit(parallel=True, cache=True)
def col2im(col, SH, SW, PH, PW, DH, DW, img):
    """img[n, c] = sum of the column entries that read each pixel (one plane per iteration)."""
    C, KH, KW, N, OH, OW = col.shape
    H, W = img.shape[2], img.shape[3]
    cf = col.reshape(-1)
    xf = img.reshape(-1)
    L = OH * OW
    for p in prange(N * C):
        c = p // N      # channel-major order, as in im2col: the column blocks are read in order
        n = p % N
        xbase = (n * C + c) * H * W
        xf[xbase:xbase + H * W] = 0
        for kh in range(KH):
            hoff = kh * DH - PH
            for kw in range(KW):
                woff = kw * DW - PW
                lo, hi = valid_range(woff, SW, W, OW)
                cbase = (((c * KH + kh) * KW + kw) * N + n) * L
                for oh in range(OH):
                    h = oh * SH + hoff
                    if h < 0 or h >= H:
                        continue
                    o = cbase + oh * OW
                    dst = xbase + h * W + woff
                    if SW == 1:
                        xf[dst + lo:dst + hi] += cf[o + lo:o + hi]
                    else:
                        for ow in range(lo, hi):
                            xf[dst + ow * SW] += cf[o + ow]


# The depthwise kernels index row views with plain range variables: Numba adds a negative-index
# wraparound test to an index like `ow * SW + off`, which stops LLVM from vectorising the loop
# (measured 3x slower for the 3x3 forward on (4, 256, 28, 28)).

@njit(parallel=True, cache=True)
def depthwise_fwd(x, w, SH, SW, PH, PW, DH, DW, y):
    """y[n, k] = sum_{kh, kw} w[k, 0, kh, kw] * x[n, k // M, shifted]; one (n, k) plane each."""
    N, C, H, W = x.shape
    K, _, KH, KW = w.shape
    OH, OW = y.shape[2], y.shape[3]
    M = K // C
    xf = x.reshape(-1)
    yf = y.reshape(-1)
    wf = w.reshape(-1)
    L = OH * OW
    for p in prange(N * K):
        n = p // K
        k = p % K
        c = k // M
        ybase = p * L
        xbase = (n * C + c) * H * W
        yf[ybase:ybase + L] = 0
        for kh in range(KH):
            hoff = kh * DH - PH
            for kw in range(KW):
                woff = kw * DW - PW
                wv = wf[(k * KH + kh) * KW + kw]
                lo, hi = valid_range(woff, SW, W, OW)
                cnt = hi - lo
                if cnt <= 0:
                    continue
                for oh in range(OH):
                    h = oh * SH + hoff
                    if h < 0 or h >= H:
                        continue
                    d0 = ybase + oh * OW + lo
                    dst = yf[d0:d0 + cnt]
                    s0 = xbase + h * W + woff + lo * SW
                    if SW == 1:  # a contiguous view: the loop vectorises
                        src = xf[s0:s0 + cnt]
                        for i in range(cnt):
                            dst[i] += wv * src[i]
                    else:
                        srcs = xf[s0:s0 + (cnt - 1) * SW + 1:SW]
                        for i in range(cnt):
                            dst[i] += wv * srcs[i]


@njit(parallel=True, cache=True)
def depthwise_grad_input(gy, w, SH, SW, PH, PW, DH, DW, gx):
    """gx[n, c] = sum over the M channels k of c and the taps of w * gy; one (n, c) plane each."""
    N, K, OH, OW = gy.shape
    _, _, KH, KW = w.shape
    C, H, W = gx.shape[1], gx.shape[2], gx.shape[3]
    M = K // C
    gf = gy.reshape(-1)
    xf = gx.reshape(-1)
    wf = w.reshape(-1)
    L = OH * OW
    for p in prange(N * C):
        n = p // C
        c = p % C
        xbase = p * H * W
        xf[xbase:xbase + H * W] = 0
        for m in range(M):
            k = c * M + m
            gbase = (n * K + k) * L
            for kh in range(KH):
                hoff = kh * DH - PH
                for kw in range(KW):
                    woff = kw * DW - PW
                    wv = wf[(k * KH + kh) * KW + kw]
                    lo, hi = valid_range(woff, SW, W, OW)
                    cnt = hi - lo
                    if cnt <= 0:
                        continue
                    for oh in range(OH):
                        h = oh * SH + hoff
                        if h < 0 or h >= H:
                            continue
                        s0 = gbase + oh * OW + lo
                        src = gf[s0:s0 + cnt]
                        d0 = xbase + h * W + woff + lo * SW
                        if SW == 1:
                            dst = xf[d0:d0 + cnt]
                            for i in range(cnt):
                                dst[i] += wv * src[i]
                        else:
                            dsts = xf[d0:d0 + (cnt - 1) * SW + 1:SW]
                            for i in range(cnt):
                                dsts[i] += wv * src[i]


@njit(parallel=True, cache=True)
def depthwise_grad_weight(x, gy, SH, SW, PH, PW, DH, DW, gw):
    """gw[k, 0, kh, kw] = sum_{n, oh, ow} gy[n, k, oh, ow] * x[n, k // M, shifted]; one k each
    (accumulated in the input's precision per row, then in float64 across rows)."""
    N, C, H, W = x.shape
    K, OH, OW = gy.shape[1], gy.shape[2], gy.shape[3]
    KH, KW = gw.shape[2], gw.shape[3]
    M = K // C
    xf = x.reshape(-1)
    gf = gy.reshape(-1)
    L = OH * OW
    for k in prange(K):
        c = k // M
        for kh in range(KH):
            hoff = kh * DH - PH
            for kw in range(KW):
                woff = kw * DW - PW
                lo, hi = valid_range(woff, SW, W, OW)
                cnt = hi - lo
                acc = 0.0
                for n in range(N):
                    xbase = (n * C + c) * H * W
                    gbase = (n * K + k) * L
                    for oh in range(OH):
                        h = oh * SH + hoff
                        if h < 0 or h >= H or cnt <= 0:
                            continue
                        s0 = xbase + h * W + woff + lo * SW
                        g0 = gbase + oh * OW + lo
                        g = gf[g0:g0 + cnt]
                        row = g[0] * 0
                        if SW == 1:
                            src = xf[s0:s0 + cnt]
                            for i in range(cnt):
                                row += g[i] * src[i]
                        else:
                            srcs = xf[s0:s0 + (cnt - 1) * SW + 1:SW]
                            for i in range(cnt):
                                row += g[i] * srcs[i]
                        acc += row
                gw[k, 0, kh, kw] = acc


# --- 3x3, stride 1, depthwise or few channels per group, any padding and dilation -------------
# Each input plane is copied once into a zero-padded buffer, so the 9 taps of a row are 9 views
# of that buffer at fixed offsets and the output-column loop has no border logic: LLVM vectorises
# it over output columns with the 9 products kept in registers (no store/reload of the output
# row per tap, as the generic depthwise kernel above does). grad_input of a stride-1 conv is this
# same forward on gy with the kernel flipped (and, per group, transposed); kernels/conv.py
# routes it here when gy has the full output size.
# `reassoc`/`contract` let LLVM vectorise the grad-weight row sums and fuse multiply-adds; no
# flag that assumes finite values is used, so NaN and inf propagate as in the reference.

_FM = {"reassoc", "contract"}


@njit(parallel=True, cache=True, fastmath=_FM)
def grouped3x3s1_fwd(x, w, b, G, PH, PW, DH, DW, y):
    """y[n, k] = b[k] + sum_{ci < Cg, kh, kw < 3} w[k, ci, kh, kw] * xpad[n, g*Cg + ci,
    oh + kh*DH, ow + kw*DW] with g = k // Kg (depthwise: Cg == 1); b: (K,) (zeros: no bias).
    One (n, g) each: its Cg padded input planes are built once and feed the group's Kg output
    planes."""
    N, C, H, W = x.shape
    K, Cg = w.shape[0], w.shape[1]
    OH, OW = y.shape[2], y.shape[3]
    Kg = K // G
    Hp, Wp = H + 2 * PH, W + 2 * PW
    for p in prange(N * G):
        n = p // G
        g = p % G
        xp = np.zeros((Cg, Hp, Wp), x.dtype)
        for ci in range(Cg):
            xp[ci, PH:PH + H, PW:PW + W] = x[n, g * Cg + ci]
        for kk in range(Kg):
            k = g * Kg + kk
            for oh in range(OH):
                yr = y[n, k, oh]
                for ci in range(Cg):
                    w00, w01, w02 = w[k, ci, 0, 0], w[k, ci, 0, 1], w[k, ci, 0, 2]
                    w10, w11, w12 = w[k, ci, 1, 0], w[k, ci, 1, 1], w[k, ci, 1, 2]
                    w20, w21, w22 = w[k, ci, 2, 0], w[k, ci, 2, 1], w[k, ci, 2, 2]
                    r0, r1, r2 = xp[ci, oh], xp[ci, oh + DH], xp[ci, oh + 2 * DH]
                    a0, a1, a2 = r0[0:OW], r0[DW:DW + OW], r0[2 * DW:2 * DW + OW]
                    b0, b1, b2 = r1[0:OW], r1[DW:DW + OW], r1[2 * DW:2 * DW + OW]
                    c0, c1, c2 = r2[0:OW], r2[DW:DW + OW], r2[2 * DW:2 * DW + OW]
                    if ci == 0:
                        bk = b[k]
                        for i in range(OW):
                            yr[i] = bk + (w00 * a0[i] + w01 * a1[i] + w02 * a2[i]
                                          + w10 * b0[i] + w11 * b1[i] + w12 * b2[i]
                                          + w20 * c0[i] + w21 * c1[i] + w22 * c2[i])
                    else:
                        for i in range(OW):
                            yr[i] += (w00 * a0[i] + w01 * a1[i] + w02 * a2[i]
                                      + w10 * b0[i] + w11 * b1[i] + w12 * b2[i]
                                      + w20 * c0[i] + w21 * c1[i] + w22 * c2[i])


@njit(parallel=True, cache=True, fastmath=_FM)
def grouped3x3s1_grad_weight(x, gy, G, PH, PW, DH, DW, gw):
    """gw[k, ci, kh, kw] = sum_{n, oh, ow} gy[n, k, oh, ow] * xpad[n, g*Cg + ci, oh + kh*DH,
    ow + kw*DW]; one (k, ci) each, row sums in the input's precision, then float64 across rows."""
    N, C, H, W = x.shape
    K, OH, OW = gy.shape[1], gy.shape[2], gy.shape[3]
    Cg = gw.shape[1]
    Kg = K // G
    Hp, Wp = H + 2 * PH, W + 2 * PW
    for q in prange(K * Cg):
        k = q // Cg
        ci = q % Cg
        c = (k // Kg) * Cg + ci
        xp = np.zeros((Hp, Wp), x.dtype)
        acc = np.zeros(9, np.float64)
        for n in range(N):
            xp[PH:PH + H, PW:PW + W] = x[n, c]
            for oh in range(OH):
                g = gy[n, k, oh]
                r0, r1, r2 = xp[oh], xp[oh + DH], xp[oh + 2 * DH]
                a0, a1, a2 = r0[0:OW], r0[DW:DW + OW], r0[2 * DW:2 * DW + OW]
                b0, b1, b2 = r1[0:OW], r1[DW:DW + OW], r1[2 * DW:2 * DW + OW]
                c0, c1, c2 = r2[0:OW], r2[DW:DW + OW], r2[2 * DW:2 * DW + OW]
                z = g[0] * 0
                s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = s8 = z
                for i in range(OW):
                    gi = g[i]
                    s0 += gi * a0[i]
                    s1 += gi * a1[i]
                    s2 += gi * a2[i]
                    s3 += gi * b0[i]
                    s4 += gi * b1[i]
                    s5 += gi * b2[i]
                    s6 += gi * c0[i]
                    s7 += gi * c1[i]
                    s8 += gi * c2[i]
                acc[0] += s0
                acc[1] += s1
                acc[2] += s2
                acc[3] += s3
                acc[4] += s4
                acc[5] += s5
                acc[6] += s6
                acc[7] += s7
                acc[8] += s8
        for j in range(9):
            gw[k, ci, j // 3, j % 3] = acc[j]
