"""The depthwise / grouped family on the CPU: direct Numba kernels and the calls that allocate
for them (the signatures of kernels/grouped/__init__.py; layouts in kernels/grouped/reference.py).

Every kernel gathers: one `prange` iteration owns one output plane ((n, k) of an output, k of a
depthwise weight gradient, (n, g) of a grouped 3x3 output) and writes only there, so there are no
races. Inner loops run over the valid output-column range of each kernel tap, so they vectorise.

Three kinds: the general depthwise kernels (any kernel size, stride, padding, dilation), the
3x3 stride-1 kernels (`grouped3x3s1_*`: depthwise or few channels per group, where im2col + tiny
per-group GEMMs were 2x slower than PyTorch), and of those the commonest, depthwise with
padding 1 (MobileNet's), reading its planes in place (`depthwise3x3_same`).
"""
import numpy as np
from numba import njit, prange

from .._numba import FASTMATH, chunks, run, valid_range

def fast3x3(KH, KW, SH, SW):
    """A 3x3 stride-1 kernel: the register-blocked kernels apply."""
    return KH == 3 and KW == 3 and SH == 1 and SW == 1


def _bias(b, K, dtype):
    return np.zeros(K, dtype) if b is None else np.ascontiguousarray(b)


def depthwise_conv2d(x, w, SH, SW, PH, PW, DH, DW, OH, OW, b=None):
    x, w = np.ascontiguousarray(x), np.ascontiguousarray(w)
    y = np.empty((x.shape[0], w.shape[0], OH, OW), x.dtype)
    if fast3x3(w.shape[2], w.shape[3], SH, SW):   # bias fused
        _depthwise3x3(x, w, _bias(b, w.shape[0], x.dtype), PH, PW, DH, DW, y)
        return y
    run(depthwise_fwd, y.size * w.shape[2] * w.shape[3], x, w, SH, SW, PH, PW, DH, DW, y)
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


def depthwise_grad_input(gy, w, C, H, W, SH, SW, PH, PW, DH, DW):
    gy, w = np.ascontiguousarray(gy), np.ascontiguousarray(w)
    gx = np.empty((gy.shape[0], C, H, W), gy.dtype)
    if (fast3x3(w.shape[2], w.shape[3], SH, SW) and w.shape[0] == C and PH <= 2 * DH
            and PW <= 2 * DW and gy.shape[2:] == (H + 2 * PH - 2 * DH, W + 2 * PW - 2 * DW)):
        # stride 1, one output channel per input channel: the adjoint is the forward on gy with
        # the kernel flipped and padding D*(3-1) - P (covers every (h, w) exactly as col2im)
        wf = np.ascontiguousarray(w[:, :, ::-1, ::-1])
        _depthwise3x3(gy, wf, np.zeros(C, gy.dtype), 2 * DH - PH, 2 * DW - PW, DH, DW, gx)
        return gx
    run(depthwise_grad_input_kernel, gy.size * w.shape[2] * w.shape[3], gy, w, SH, SW, PH, PW,
        DH, DW, gx)
    return gx


def _depthwise3x3(x, w, b, PH, PW, DH, DW, y):
    """y = the 3x3 stride-1 depthwise conv of x (+ b): `depthwise3x3_same` for the common
    padding 1, dilation 1, one output per input channel and planes of 3x3 or more (output the
    input's size), else grouped3x3s1_fwd."""
    N, C, H, W = x.shape
    if PH == PW == DH == DW == 1 and w.shape[0] == C and H >= 3 and W >= 3:
        run(depthwise3x3_same, y.size * 9, x, w, b, y, chunks(N * C))
    else:
        run(grouped3x3s1_fwd, y.size * 9, x, w, b, C, PH, PW, DH, DW, y, chunks(N * C))


def depthwise_grad_weight(x, gy, KH, KW, SH, SW, PH, PW, DH, DW):
    x, gy = np.ascontiguousarray(x), np.ascontiguousarray(gy)
    gw = np.empty((gy.shape[1], 1, KH, KW), x.dtype)
    if fast3x3(KH, KW, SH, SW):
        run(grouped3x3s1_grad_weight, gy.size * 9, x, gy, x.shape[1], PH, PW, DH, DW, gw)
        return gw
    run(depthwise_grad_weight_kernel, gy.size * KH * KW, x, gy, SH, SW, PH, PW, DH, DW, gw)
    return gw


def _only_3x3_stride1(op, KH, KW, SH, SW):
    """These kernels compute a 3x3 stride-1 convolution whatever they are given: refuse the rest
    (the API routes only what grouped_ok accepts here)."""
    if not fast3x3(KH, KW, SH, SW):
        raise ValueError(f"{op}: the CPU grouped kernels take 3x3 stride-1 convolutions, got "
                         f"{KH}x{KW} stride ({SH}, {SW})")


def grouped_conv2d(x, w, G, SH, SW, PH, PW, DH, DW, OH, OW, b=None):
    _only_3x3_stride1("grouped_conv2d", w.shape[2], w.shape[3], SH, SW)
    x, w = np.ascontiguousarray(x), np.ascontiguousarray(w)
    y = np.empty((x.shape[0], w.shape[0], OH, OW), x.dtype)
    run(grouped3x3s1_fwd, y.size * 9 * w.shape[1], x, w, _bias(b, w.shape[0], x.dtype), G, PH,
        PW, DH, DW, y, chunks(x.shape[0] * G))
    return y


def grouped_grad_input(gy, w, G, C, H, W, SH, SW, PH, PW, DH, DW):
    """The adjoint as a forward on gy: per group the weight transposed (Kg <-> Cg) and flipped,
    padding D*(3-1) - P. gy must have the full output size of (H, W)."""
    _only_3x3_stride1("grouped_grad_input", w.shape[2], w.shape[3], SH, SW)
    if gy.shape[2:] != (H + 2 * PH - 2 * DH, W + 2 * PW - 2 * DW):
        raise ValueError(f"grouped_grad_input: gy {gy.shape} is not the full output of "
                         f"({H}, {W})")
    gy = np.ascontiguousarray(gy)
    K, Cg = w.shape[0], w.shape[1]
    Kg = K // G
    wt = np.ascontiguousarray(
        w.reshape(G, Kg, Cg, 3, 3).transpose(0, 2, 1, 3, 4)[..., ::-1, ::-1]).reshape(C, Kg, 3, 3)
    gx = np.empty((gy.shape[0], C, H, W), gy.dtype)
    run(grouped3x3s1_fwd, gx.size * 9 * Kg, gy, wt, np.zeros(C, gy.dtype), G, 2 * DH - PH,
        2 * DW - PW, DH, DW, gx, chunks(gy.shape[0] * G))
    return gx


def grouped_grad_weight(x, gy, G, KH, KW, SH, SW, PH, PW, DH, DW):
    _only_3x3_stride1("grouped_grad_weight", KH, KW, SH, SW)
    x, gy = np.ascontiguousarray(x), np.ascontiguousarray(gy)
    Cg = x.shape[1] // G
    gw = np.empty((gy.shape[1], Cg, 3, 3), x.dtype)
    run(grouped3x3s1_grad_weight, gy.size * 9 * Cg, x, gy, G, PH, PW, DH, DW, gw)
    return gw


# --- kernels ----------------------------------------------------------------------------------

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
def depthwise_grad_input_kernel(gy, w, SH, SW, PH, PW, DH, DW, gx):
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
def depthwise_grad_weight_kernel(x, gy, SH, SW, PH, PW, DH, DW, gw):
    """gw[k, 0, kh, kw] = sum_{n, oh, ow} gy[n, k, oh, ow] * x[n, k // M, shifted]; one k each
    (accumulated in the input's precision per row, then in float64 across rows)."""
    N, C, H, W = x.shape
    K, OH, OW = gy.shape[1], gy.shape[2], gy.shape[3]
    KH, KW = gw.shape[2], gw.shape[3]
    M = K // C
    xf = x.reshape(-1)
    gf = gy.reshape(-1)
    L = OH * OW
    zero = np.zeros(1, gy.dtype)[0]   # a typed 0 (g[0] * 0 would be NaN for an infinite g[0])
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
                        row = zero
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
# same forward on gy with the kernel flipped (and, per group, transposed); the family's API
# routes it here when gy has the full output size.
# `reassoc`/`contract` let LLVM vectorise the grad-weight row sums and fuse multiply-adds; no
# flag that assumes finite values is used, so NaN and inf propagate as in the reference.

@njit(parallel=True, cache=True, fastmath=FASTMATH)
def grouped3x3s1_fwd(x, w, b, G, PH, PW, DH, DW, y, chunks):
    """y[n, k] = b[k] + sum_{ci < Cg, kh, kw < 3} w[k, ci, kh, kw] * xpad[n, g*Cg + ci,
    oh + kh*DH, ow + kw*DW] with g = k // Kg (depthwise: Cg == 1); b: (K,) (zeros: no bias).
    One (n, g) each: its Cg padded input planes are built once and feed the group's Kg output
    planes. The sums run over a "wide" output spanning whole rows of the padded plane (output
    (oh, ow) at oh * Wp + ow, the 2 * DW columns past each row's end computed and dropped), so
    each is one long vectorised loop instead of one per output row. A/B in one process, 2
    threads: depthwise (4, 256, 28, 28) 727 -> 518 us, (8, 64, 56, 56) 1073 -> 887 us; 32
    groups of 4 (4, 128, 28, 28) 997 -> 464 us. The (n, g) are cut into `chunks`, each making
    its buffers once: 496 -> 459 us, 461 -> 415 us, 339 -> 330 us."""
    N, C, H, W = x.shape
    K, Cg = w.shape[0], w.shape[1]
    OH, OW = y.shape[2], y.shape[3]
    Kg = K // G
    Hp, Wp = H + 2 * PH, W + 2 * PW
    L = (OH - 1) * Wp + OW
    planes = N * G
    for chunk in prange(chunks):
        # buffers made once per chunk: the border of xp stays zero, its inside is rewritten
        xp = np.zeros((Cg, Hp * Wp), x.dtype)
        acc = np.empty(L, x.dtype)
        for p in range(planes * chunk // chunks, planes * (chunk + 1) // chunks):
            n = p // G
            g = p % G
            for ci in range(Cg):
                for h in range(H):
                    xp[ci, (PH + h) * Wp + PW:(PH + h) * Wp + PW + W] = x[n, g * Cg + ci, h]
            for kk in range(Kg):
                k = g * Kg + kk
                for ci in range(Cg):
                    w00, w01, w02 = w[k, ci, 0, 0], w[k, ci, 0, 1], w[k, ci, 0, 2]
                    w10, w11, w12 = w[k, ci, 1, 0], w[k, ci, 1, 1], w[k, ci, 1, 2]
                    w20, w21, w22 = w[k, ci, 2, 0], w[k, ci, 2, 1], w[k, ci, 2, 2]
                    src = xp[ci]
                    r1, r2 = DH * Wp, 2 * DH * Wp
                    a0, a1, a2 = src[0:L], src[DW:DW + L], src[2 * DW:2 * DW + L]
                    b0, b1, b2 = src[r1:r1 + L], src[r1 + DW:r1 + DW + L], \
                        src[r1 + 2 * DW:r1 + 2 * DW + L]
                    c0, c1, c2 = src[r2:r2 + L], src[r2 + DW:r2 + DW + L], \
                        src[r2 + 2 * DW:r2 + 2 * DW + L]
                    if ci == 0:
                        bk = b[k]
                        for i in range(L):
                            acc[i] = bk + (w00 * a0[i] + w01 * a1[i] + w02 * a2[i]
                                           + w10 * b0[i] + w11 * b1[i] + w12 * b2[i]
                                           + w20 * c0[i] + w21 * c1[i] + w22 * c2[i])
                    else:
                        for i in range(L):
                            acc[i] += (w00 * a0[i] + w01 * a1[i] + w02 * a2[i]
                                       + w10 * b0[i] + w11 * b1[i] + w12 * b2[i]
                                       + w20 * c0[i] + w21 * c1[i] + w22 * c2[i])
                for oh in range(OH):
                    y[n, k, oh, :] = acc[oh * Wp:oh * Wp + OW]


@njit(inline="always")
def _point3x3(xs, H, W, oh, ow, wk, bk):
    """Output (oh, ow) of a 3x3 padding-1 conv of the flat plane xs (H, W), taps in the
    padding skipped."""
    s = bk
    for kh in range(3):
        h = oh + kh - 1
        if 0 <= h < H:
            for kw in range(3):
                c = ow + kw - 1
                if 0 <= c < W:
                    s += wk[kh, kw] * xs[h * W + c]
    return s


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def depthwise3x3_same(x, w, b, y, chunks):
    """y[n, c] = b[c] + the 3x3 conv of x[n, c] with w[c, 0], padding 1, stride 1 (H, W >= 3),
    read in place: no padded copy, and no copy of a wide result (grouped3x3s1_fwd's two row
    by row copies, which cost as much as its arithmetic here). Rows 1 .. H-2 are one run over
    the flat plane whose taps are the plane shifted by (kh - 1) * W + kw - 1; in it the first
    and last columns read across the row's end and are redone exactly afterwards, as are the
    first and last rows (their missing row of taps left out). A/B in one process at one and two
    threads, against grouped3x3s1_fwd: (4, 256, 28, 28) 0.55 -> 0.40 and 0.34 -> 0.22 ms, (8,
    64, 56, 56) 0.95 -> 0.59 and 0.51 -> 0.36 ms."""
    N, C, H, W = x.shape
    HW = H * W
    L, M = HW - 2 * W - 2, W - 2        # the inner rows' run; the inside of a row
    xf = x.reshape(N * C, HW)
    yf = y.reshape(N * C, HW)
    planes = N * C
    for chunk in prange(chunks):
        for p in range(planes * chunk // chunks, planes * (chunk + 1) // chunks):
            c = p % C
            xs, ys, wk, bk = xf[p], yf[p], w[c, 0], b[c]
            w00, w01, w02 = wk[0, 0], wk[0, 1], wk[0, 2]
            w10, w11, w12 = wk[1, 0], wk[1, 1], wk[1, 2]
            w20, w21, w22 = wk[2, 0], wk[2, 1], wk[2, 2]
            # slices, not shifted indices: Numba's negative-index test on `i + off` would stop
            # LLVM vectorising (see depthwise_fwd)
            a0, a1, a2 = xs[0:L], xs[1:1 + L], xs[2:2 + L]
            b0, b1, b2 = xs[W:W + L], xs[W + 1:W + 1 + L], xs[W + 2:W + 2 + L]
            c0, c1, c2 = xs[2 * W:2 * W + L], xs[2 * W + 1:2 * W + 1 + L], \
                xs[2 * W + 2:2 * W + 2 + L]
            out = ys[W + 1:W + 1 + L]
            for i in range(L):
                out[i] = bk + (w00 * a0[i] + w01 * a1[i] + w02 * a2[i]
                               + w10 * b0[i] + w11 * b1[i] + w12 * b2[i]
                               + w20 * c0[i] + w21 * c1[i] + w22 * c2[i])
            a0, a1, a2 = xs[0:M], xs[1:1 + M], xs[2:2 + M]              # the first row
            b0, b1, b2 = xs[W:W + M], xs[W + 1:W + 1 + M], xs[W + 2:W + 2 + M]
            out = ys[1:1 + M]
            for i in range(M):
                out[i] = bk + (w10 * a0[i] + w11 * a1[i] + w12 * a2[i]
                               + w20 * b0[i] + w21 * b1[i] + w22 * b2[i])
            r = HW - 2 * W                                               # the last row
            a0, a1, a2 = xs[r:r + M], xs[r + 1:r + 1 + M], xs[r + 2:r + 2 + M]
            b0, b1, b2 = xs[r + W:r + W + M], xs[r + W + 1:r + W + 1 + M], \
                xs[r + W + 2:r + W + 2 + M]
            out = ys[r + W + 1:r + W + 1 + M]
            for i in range(M):
                out[i] = bk + (w00 * a0[i] + w01 * a1[i] + w02 * a2[i]
                               + w10 * b0[i] + w11 * b1[i] + w12 * b2[i])
            for oh in range(1, H - 1):                     # the first and last columns
                q = oh * W
                ys[q] = bk + (w01 * xs[q - W] + w02 * xs[q - W + 1] + w11 * xs[q]
                              + w12 * xs[q + 1] + w21 * xs[q + W] + w22 * xs[q + W + 1])
                q += W - 1
                ys[q] = bk + (w00 * xs[q - W - 1] + w01 * xs[q - W] + w10 * xs[q - 1]
                              + w11 * xs[q] + w20 * xs[q + W - 1] + w21 * xs[q + W])
            for oh in (0, H - 1):                          # ... and the four corners
                ys[oh * W] = _point3x3(xs, H, W, oh, 0, wk, bk)
                ys[oh * W + W - 1] = _point3x3(xs, H, W, oh, W - 1, wk, bk)


@njit(parallel=True, cache=True, fastmath=FASTMATH)
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
        zero = xp[0, 0]   # a typed 0 (g[0] * 0 would be NaN for an infinite g[0])
        acc = np.zeros(9, np.float64)
        for n in range(N):
            xp[PH:PH + H, PW:PW + W] = x[n, c]
            for oh in range(OH):
                g = gy[n, k, oh]
                r0, r1, r2 = xp[oh], xp[oh + DH], xp[oh + 2 * DH]
                a0, a1, a2 = r0[0:OW], r0[DW:DW + OW], r0[2 * DW:2 * DW + OW]
                b0, b1, b2 = r1[0:OW], r1[DW:DW + OW], r1[2 * DW:2 * DW + OW]
                c0, c1, c2 = r2[0:OW], r2[DW:DW + OW], r2[2 * DW:2 * DW + OW]
                z = zero
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
