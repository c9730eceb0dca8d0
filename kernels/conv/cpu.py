"""The convolution family on the CPU: the im2col / col2im Numba kernels and the calls that
allocate for them (layouts in kernels/conv/reference.py).

im2col first copies x into a zero-bordered, channel-major image split into its stride phases
(C, N, SH, SW, HP / SH, WP / SW) (`pad_phases`), then each (c, kh, kw) block of the columns is
rows of one phase with no bounds tests: a plain slice for any stride. Against gathering straight
from x with per-row valid ranges, measured at one thread: DCGAN's stride-2 4x4 convs 1.7-2x
faster ((64, 64, 32, 32): 24.4 -> 14.5 ms, (64, 256, 8, 8): 11.3 -> 5.8 ms, with 2-D element
indexing of an unsplit image), 3x3 stride 1 with padding 5-20% faster, without padding up to
15% slower ((64, 32, 26, 26): 3.7 -> 4.3 ms, the extra copy). Splitting the phases (before:
element-wise indexing of the unsplit image for strides above 1), at 2 threads: the ResNet stem
(4, 3, 224, 224) 7x7 stride 2 2.6-4.4 -> 1.5 ms; DCGAN's 4x4 stride-2 im2cols 24.6 -> 21.2 ms in
all, though its (64, 256, 8, 8) one went 4.5 -> 5.9 ms (rows of 4 outputs: a slice each).

col2im, its adjoint, sums into such a zero-bordered plane (one (c, n) plane per `prange`
iteration, so no races) and copies its inside out: 1.1-1.8x faster than per-row valid ranges,
except (8, 64, 56, 56) 3x3 (8.9 -> 9.4 ms).
"""
import numpy as np
from numba import njit, prange

from .._numba import chunks, matmuls, run


def im2col(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW, out=None, padded=None):
    """col (C, KH, KW, N, OH, OW); `out`: an array of that shape to write into (a workspace);
    `padded(shape, dtype)`: where the zero-bordered image goes (a workspace), or a new array."""
    x = np.ascontiguousarray(x)
    N, C = x.shape[:2]
    col = np.empty((C, KH, KW, N, OH, OW), x.dtype) if out is None else out
    HP, WP = _padded_shape(C, N, KH, KW, SH, SW, DH, DW, OH, OW)[2:]
    shape = (C, N, SH, SW, -(-HP // SH), -(-WP // SW))
    xp = np.empty(shape, x.dtype) if padded is None else padded(shape, x.dtype)
    run(pad_phases_kernel, xp.size, x, PH, PW, xp)
    run(im2col_kernel, col.size, xp, KH, KW, DH, DW, col)
    return col


def col2im(col, H, W, SH, SW, PH, PW, DH, DW, padded=None):
    """img (N, C, H, W); `padded` as for im2col: where the zero-bordered sums go."""
    col = np.ascontiguousarray(col)
    C, KH, KW, N, OH, OW = col.shape
    img = np.empty((N, C, H, W), col.dtype)
    shape = _padded_shape(C, N, KH, KW, SH, SW, DH, DW, OH, OW)
    xp = np.empty(shape, col.dtype) if padded is None else padded(shape, col.dtype)
    run(col2im_kernel, col.size, col, SH, SW, PH, PW, DH, DW, xp, img)
    return img


def direct_conv2d(x, w, b, PH, PW, DH, DW, OH, OW, padded=None):
    """The stride-1 conv y (N, K, OH, OW) of x (N, C, H, W) with w (K, C, KH, KW) (+ b) computed
    output channel by output channel, without columns (`direct_kernel`). `padded` as for im2col:
    where the zero-bordered copy of x goes, when there is padding."""
    N, C, H, W = x.shape
    K, _, KH, KW = w.shape
    HP, WP = OH + (KH - 1) * DH, OW + (KW - 1) * DW
    if PH or PW:
        shape = (N, C, 1, 1, HP, WP)      # pad_phases' layout with n and c swapped: one phase
        xp = np.empty(shape, x.dtype) if padded is None else padded(shape, x.dtype)
        run(pad_phases_kernel, xp.size, np.ascontiguousarray(x), PH, PW,
            xp.transpose(1, 0, 2, 3, 4, 5))
    else:
        xp, WP = np.ascontiguousarray(x), W   # the windows stay inside x's rows (see the kernel)
    y = np.empty((N, K, OH, OW), x.dtype)
    bias = np.zeros(K, x.dtype) if b is None else np.ascontiguousarray(b, x.dtype)
    run(direct_kernel, y.size * C * KH * KW, xp.reshape(N, C, -1), WP,
        np.ascontiguousarray(w), bias, DH, DW, OH, OW, y)
    return y


def _padded_shape(C, N, KH, KW, SH, SW, DH, DW, OH, OW):
    """(C, N, HP, WP): the zero-bordered image as far as the windows reach."""
    return C, N, (OH - 1) * SH + (KH - 1) * DH + 1, (OW - 1) * SW + (KW - 1) * DW + 1


def winograd_conv2d(x, w, PH, PW, OH, OW, u, v, m, y, tile=2):
    """F(2x2, 3x3) or, tile=4, F(4x4, 3x3) (kernels/conv/reference.py): x (N, C, H, W), w (K, C,
    3, 3); u (a, K, C), v (a, C, T), m (a, K, T) the transformed weight, input and their
    products, a = (tile + 2)^2, T = N * ceil(OH/tile) * ceil(OW/tile) (workspaces); y (N, K, OH,
    OW) written. Returns whether every output is finite (see the caller)."""
    x = np.ascontiguousarray(x)
    TH, TW = -(-OH // tile), -(-OW // tile)
    if tile == 2:
        run(winograd_input_kernel, v.size, x, PH, PW, TH, TW, v)
        run(winograd_weight_kernel, u.size, np.ascontiguousarray(w), u)
    else:
        run(winograd4_input_kernel, v.size, x, PH, PW, TH, TW, v,
            chunks(x.shape[0] * x.shape[1]))
        run(winograd4_weight_kernel, u.size, np.ascontiguousarray(w), u)
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite: the caller redoes it
        matmuls(u, v, m)                                   # a GEMMs (K, C) @ (C, T)
    if tile == 2:
        return run(winograd_output_kernel, m.size, m, TH, TW, y,
                   chunks(y.shape[0] * y.shape[1])) == 0
    return run(winograd4_output_kernel, m.size, m, TH, TW, y,
               chunks(y.shape[0] * y.shape[1])) == 0


def winograd_grad_weight(x, gy, PH, PW, v, z, mw):
    """The weight gradient of winograd_conv2d: gw[k, c] = G^T (sum over tiles t of
    (A gy_t A^T) * (B^T d_t B)) G, its adjoint. v (16, C, T), z (16, K, T), mw (16, K, C):
    workspaces. Returns gw (K, C, 3, 3), or None where a value is not finite (see the caller)."""
    x, gy = np.ascontiguousarray(x), np.ascontiguousarray(gy)
    OH, OW = gy.shape[2:]
    TH, TW = (OH + 1) // 2, (OW + 1) // 2
    run(winograd_input_kernel, v.size, x, PH, PW, TH, TW, v)
    run(winograd_gy_kernel, z.size, gy, TH, TW, z)
    with np.errstate(invalid="ignore", over="ignore"):   # non-finite: the caller redoes it
        matmuls(z, v.transpose(0, 2, 1), mw)             # 16 GEMMs (K, T) @ (T, C)
    gw = np.empty((z.shape[1], x.shape[1], 3, 3), x.dtype)
    return gw if run(winograd_weight_grad_kernel, mw.size, mw, gw) == 0 else None


def phase_images(a, DH, DW):
    """a (N, C, H, W) as the batch of its dilation phase planes, (N * DH * DW, C, ceil(H / DH),
    ceil(W / DW)): image (n * DH + ph) * DW + pw is a[n, :, ph::DH, pw::DW], zero-filled where
    the phase is a row or column short. A conv dilated by (DH, DW) whose padding is a multiple
    of it is the undilated conv of each phase plane (padding over the dilation), the output's
    phase planes from the input's of the same phase (TensorFlow's space-to-batch for atrous
    convolutions), so Winograd takes it."""
    N, C, H, W = a.shape
    out = np.empty((N * DH * DW, C, -(-H // DH), -(-W // DW)), a.dtype)
    run(phase_images_kernel, out.size, np.ascontiguousarray(a), DH, DW, out)
    return out


def from_phase_images(images, DH, DW, out):
    """The inverse of phase_images into out (N, K, OH, OW): out[n, k, ph::DH, pw::DW] = the
    first rows and columns of image (n * DH + ph) * DW + pw."""
    run(from_phase_images_kernel, out.size, images, DH, DW, out)
    return out


# --- kernels ----------------------------------------------------------------------------------


@njit(parallel=True, cache=True)
def phase_images_kernel(x, DH, DW, xs):
    """One (n, c) plane per iteration, each row of x read once and dealt to its DW phases
    (for DW = 2 as pairs, which vectorises: (4, 64, 56, 56) 0.29 -> 0.13 ms at 2 threads, against
    a phase per iteration); the short phases' last row and column zeroed."""
    N, C, H, W = x.shape
    Hs, Ws = xs.shape[2], xs.shape[3]
    for p in prange(N * C):
        n, c = p // C, p % C
        for h in range(DH * Hs):
            ph, i = h % DH, h // DH
            first = (n * DH + ph) * DW
            if h >= H:
                for pw in range(DW):
                    xs[first + pw, c, i] = 0
                continue
            row = x[n, c, h]
            if DW == 2:
                out0, out1 = xs[first, c, i], xs[first + 1, c, i]
                for j in range(W // 2):
                    out0[j] = row[2 * j]
                    out1[j] = row[2 * j + 1]
                if W % 2:
                    out0[Ws - 1] = row[W - 1]
                    out1[Ws - 1] = 0
                continue
            for pw in range(DW):
                out = xs[first + pw, c, i]
                wi = -(-(W - pw) // DW)
                out[:wi] = row[pw::DW]
                out[wi:] = 0


@njit(parallel=True, cache=True)
def from_phase_images_kernel(ys, DH, DW, y):
    """One (n, k) plane per iteration, each row of y written once from its DW phases (for DW =
    2 as pairs: 0.26 -> 0.09 ms, as phase_images_kernel)."""
    N, K, OH, OW = y.shape
    for p in prange(N * K):
        n, k = p // K, p % K
        for h in range(OH):
            ph, i = h % DH, h // DH
            first = (n * DH + ph) * DW
            row = y[n, k, h]
            if DW == 2:
                in0, in1 = ys[first, k, i], ys[first + 1, k, i]
                for j in range(OW // 2):
                    row[2 * j] = in0[j]
                    row[2 * j + 1] = in1[j]
                if OW % 2:
                    row[OW - 1] = in0[OW // 2]
                continue
            for pw in range(DW):
                row[pw::DW] = ys[first + pw, k, i, :-(-(OW - pw) // DW)]


@njit(parallel=True, cache=True)
def pad_phases_kernel(x, PH, PW, xp):
    """xp[c, n, a, b, i, j] = x[n, c, i * SH + a - PH, j * SW + b - PW], zeros outside x (SH,
    SW = xp.shape[2:4]): the zero-bordered image split into its SH * SW stride phases, so that
    every kernel tap of a strided conv reads rows of one phase (for stride 1 the one phase is
    the zero-bordered image, each row copied in place). For larger strides each row goes
    through a zero-bordered row buffer, then its columns are dealt to the SW phases (for stride
    2 as pairs, which vectorises)."""
    N, C, H, W = x.shape
    SH, SW, HQ, WQ = xp.shape[2], xp.shape[3], xp.shape[4], xp.shape[5]
    hn = min(H, HQ * SH - PH)                     # the rows a window reads
    wn = max(0, min(W, WQ * SW - PW))
    for p in prange(C * N):
        c = p // N
        n = p % N
        plane = xp[c, n]
        buf = np.zeros(WQ * SW, x.dtype)
        for a in range(SH):                       # the rows of the top and bottom border
            for i in range(HQ):
                h = i * SH + a - PH
                if h < 0 or h >= hn:
                    for b in range(SW):
                        plane[a, b, i, :] = 0
        for h in range(hn):
            a, i = (h + PH) % SH, (h + PH) // SH
            if SW == 1:
                row = plane[a, 0, i]
                row[:PW] = 0
                row[PW:PW + wn] = x[n, c, h, :wn]
                row[PW + wn:] = 0
                continue
            buf[PW:PW + wn] = x[n, c, h, :wn]
            if SW == 2:
                for j in range(WQ):
                    plane[a, 0, i, j] = buf[2 * j]
                    plane[a, 1, i, j] = buf[2 * j + 1]
            else:
                for b in range(SW):
                    for j in range(WQ):
                        plane[a, b, i, j] = buf[j * SW + b]


@njit(parallel=True, cache=True)
def im2col_kernel(xp, KH, KW, DH, DW, col):
    """col[c, kh, kw, n, oh, ow] = the phase-split image xp (pad_phases_kernel) at row
    oh * SH + kh * DH, column ow * SW + kw * DW: rows of one phase, a plain slice each; one
    (c, kh, kw) block, written in order, per iteration."""
    C, N, SH, SW = xp.shape[0], xp.shape[1], xp.shape[2], xp.shape[3]
    OH, OW = col.shape[4], col.shape[5]
    for q in prange(C * KH * KW):
        c = q // (KH * KW)
        kh = (q // KW) % KH
        kw = q % KW
        a, i0 = (kh * DH) % SH, (kh * DH) // SH
        b, j0 = (kw * DW) % SW, (kw * DW) // SW
        for n in range(N):
            plane = xp[c, n, a, b]
            block = col[c, kh, kw, n]
            for oh in range(OH):
                block[oh, :] = plane[oh + i0, j0:j0 + OW]


@njit(parallel=True, cache=True)
def col2im_kernel(col, SH, SW, PH, PW, DH, DW, xp, img):
    """img[n, c] = the sums of the column entries over one zero-bordered plane xp[c, n] (one
    plane per iteration), then its inside. Element-wise 2-D indexing: a row view per output
    row cost more than the row (4 elements at DCGAN's 4x4 outputs)."""
    C, KH, KW, N, OH, OW = col.shape
    H, W = img.shape[2], img.shape[3]
    HP, WP = xp.shape[2], xp.shape[3]
    hn, wn = max(0, min(H, HP - PH)), max(0, min(W, WP - PW))
    for p in prange(C * N):
        c = p // N
        n = p % N
        plane = xp[c, n]
        plane[:] = 0
        for kh in range(KH):
            for kw in range(KW):
                w0 = kw * DW
                block = col[c, kh, kw, n]
                for oh in range(OH):
                    r = oh * SH + kh * DH
                    if SW == 1:
                        for ow in range(OW):
                            plane[r, w0 + ow] += block[oh, ow]
                    elif SW == 2:           # a constant stride: vectorised
                        for ow in range(OW):
                            plane[r, w0 + 2 * ow] += block[oh, ow]
                    else:
                        for ow in range(OW):
                            plane[r, w0 + SW * ow] += block[oh, ow]
        out = img[n, c]
        for h in range(H):
            for w in range(W):
                out[h, w] = plane[h + PH, w + PW] if h < hn and w < wn else 0


@njit(parallel=True, cache=True, fastmath={"contract"})
def direct_kernel(xf, WP, w, b, DH, DW, OH, OW, y):
    """y[n, k] = b[k] + sum over (c, kh, kw) of w[k, c, kh, kw] * the window plane of xf[n, c]
    (planes HP * WP wide, flattened), one (n, k) per iteration. Each tap is one long vectorised
    multiply-add over a "wide" output that runs across whole rows of the plane: output (oh, ow)
    sits at oh * WP + ow, so the source of a tap is the plane shifted by kh * DH * WP + kw * DW,
    and the WP - OW columns past each row's end are computed and dropped. That reads no further
    than the plane's last element, for any WP >= OW + (KW - 1) * DW."""
    N, K = y.shape[0], y.shape[1]
    C, KH, KW = w.shape[1], w.shape[2], w.shape[3]
    L = (OH - 1) * WP + OW
    for q in prange(N * K):
        n = q // K
        k = q % K
        acc = np.empty(L, y.dtype)
        acc[:] = b[k]
        for c in range(C):
            plane = xf[n, c]
            for kh in range(KH):
                for kw in range(KW):
                    wv = w[k, c, kh, kw]
                    shift = kh * DH * WP + kw * DW
                    src = plane[shift:shift + L]
                    for i in range(L):
                        acc[i] += wv * src[i]
        out = y[n, k]
        for oh in range(OH):
            out[oh, :] = acc[oh * WP:oh * WP + OW]


# Winograd F(2x2, 3x3): the transforms of reference.winograd_conv2d written out (B^T, G and A^T
# have entries 0, +-1 and 1/2). Tile t = (n * TH + th) * TW + tw; component xi = 4 * a + b.

@njit(inline="always")
def _bt(d0, d1, d2, d3):
    """B^T applied to a column (or, transposed, B to a row) of four values."""
    return d0 - d2, d1 + d2, d2 - d1, d1 - d3


@njit(inline="always")
def _put4(v, xi, t, q):
    v[xi, t], v[xi + 1, t], v[xi + 2, t], v[xi + 3, t] = q


@njit(parallel=True, cache=True)
def winograd_input_kernel(x, PH, PW, TH, TW, v):
    """v[4a + b, c, t] = (B^T d B)[a, b], d the 4x4 input tile of tile t (zeros outside x)."""
    N, C, H, W = x.shape
    T = TH * TW
    hi, wi = min(H, 2 * TH + 2 - PH), min(W, 2 * TW + 2 - PW)
    for p in prange(N * C):
        c = p // N      # channel-major: consecutive iterations write consecutive runs of v
        n = p % N
        b = np.zeros((2 * TH + 2, 2 * TW + 2), x.dtype)   # the padded plane, in L1
        # the plane's 16 components gathered here, then copied out as 16 runs: written to v
        # directly, one value per tile to each of 16 rows a power of two apart thrashed the
        # cache (25 ms instead of 6 at (32, 64, 32, 32))
        vb = np.empty((16, T), x.dtype)
        for h in range(hi):
            b[PH + h, PW:PW + wi] = x[n, c, h, :wi]
        for th in range(TH):
            r = 2 * th
            for tw in range(TW):
                q = 2 * tw
                t = th * TW + tw
                c0 = _bt(b[r, q], b[r + 1, q], b[r + 2, q], b[r + 3, q])   # B^T d, by column
                c1 = _bt(b[r, q + 1], b[r + 1, q + 1], b[r + 2, q + 1], b[r + 3, q + 1])
                c2 = _bt(b[r, q + 2], b[r + 1, q + 2], b[r + 2, q + 2], b[r + 3, q + 2])
                c3 = _bt(b[r, q + 3], b[r + 1, q + 3], b[r + 2, q + 3], b[r + 3, q + 3])
                _put4(vb, 0, t, _bt(c0[0], c1[0], c2[0], c3[0]))          # ... then B
                _put4(vb, 4, t, _bt(c0[1], c1[1], c2[1], c3[1]))
                _put4(vb, 8, t, _bt(c0[2], c1[2], c2[2], c3[2]))
                _put4(vb, 12, t, _bt(c0[3], c1[3], c2[3], c3[3]))
        for xi in range(16):
            v[xi, c, n * T:(n + 1) * T] = vb[xi]


@njit(parallel=True, cache=True)
def winograd_weight_kernel(w, u):
    """u[4a + b, k, c] = (G w[k, c] G^T)[a, b]."""
    K, C = w.shape[:2]
    half = w.dtype.type(0.5)
    for k in prange(K):
        g = np.empty((4, 3), w.dtype)
        ub = np.empty((16, C), w.dtype)   # copied out as 16 runs, as in the input kernel
        for c in range(C):
            for j in range(3):  # G w: rows w0, (w0 + w1 + w2) / 2, (w0 - w1 + w2) / 2, w2
                w0, w1, w2 = w[k, c, 0, j], w[k, c, 1, j], w[k, c, 2, j]
                g[0, j], g[1, j] = w0, half * (w0 + w1 + w2)
                g[2, j], g[3, j] = half * (w0 - w1 + w2), w2
            for i in range(4):  # (G w) G^T: the same on the columns
                w0, w1, w2 = g[i, 0], g[i, 1], g[i, 2]
                ub[4 * i, c], ub[4 * i + 1, c] = w0, half * (w0 + w1 + w2)
                ub[4 * i + 2, c], ub[4 * i + 3, c] = half * (w0 - w1 + w2), w2
        for xi in range(16):
            u[xi, k] = ub[xi]


@njit(inline="always")
def _at(m0, m1, m2, m3):
    """A^T applied to a column of four values."""
    return m0 + m1 + m2, m1 - m2 - m3


@njit(inline="always")
def _tiles_to_plane(yb, tile, TW, plane):
    """Copy the output transform's rows of whole tiles, yb[i, tile * t + j] (row i of tile t),
    into one output plane (OH, OW) where inside it; returns the number of non-finite values
    copied (see winograd_conv2d's caller)."""
    bad = 0
    OH, OW = plane.shape
    for h in range(OH):
        out = plane[h]
        start = tile * TW * (h // tile)
        src = yb[h % tile, start:start + OW]
        for w in range(OW):
            out[w] = src[w]
            if src[w] - src[w] != 0:          # NaN or inf
                bad += 1
    return bad


@njit(parallel=True, cache=True)
def winograd_output_kernel(m, TH, TW, y, chunks):
    """y[n, k, 2th + i, 2tw + j] = (A^T m_t A)[i, j] where inside y; returns the number of
    non-finite values written. One (n, k) plane per iteration, all its tiles at once, as
    winograd4_output_kernel. A/B in one process at 2 threads, against a tile at a time: (4,
    256, 14, 14) 0.29 -> 0.25 ms, (32, 128, 8, 8) 0.52 -> 0.41 ms, (8, 64, 15, 15) 0.18 ->
    0.14 ms."""
    N, K, OH, OW = y.shape
    T = TH * TW
    bad = 0
    planes = N * K
    for chunk in prange(chunks):
        mb = np.empty((16, T), y.dtype)
        s = np.empty((2, 4, T), y.dtype)           # A^T m
        yb = np.empty((2, 2 * T), y.dtype)         # (A^T m) A: row i of every tile
        for p in range(planes * chunk // chunks, planes * (chunk + 1) // chunks):
            k = p // N
            n = p % N
            for xi in range(16):
                mb[xi] = m[xi, k, n * T:(n + 1) * T]
            for b in range(4):                                          # A^T m
                for t in range(T):
                    s[0, b, t], s[1, b, t] = _at(mb[b, t], mb[4 + b, t], mb[8 + b, t],
                                                 mb[12 + b, t])
            for i in range(2):                                          # ... then A
                row = yb[i]
                for t in range(T):
                    row[2 * t], row[2 * t + 1] = _at(s[i, 0, t], s[i, 1, t], s[i, 2, t],
                                                     s[i, 3, t])
            bad += _tiles_to_plane(yb, 2, TW, y[n, k])
    return bad


@njit(inline="always")
def _a(g0, g1):
    """A applied to a column of two values: the transpose of A^T."""
    return g0, g0 + g1, g0 - g1, -g1


@njit(parallel=True, cache=True)
def winograd_gy_kernel(gy, TH, TW, z):
    """z[4a + b, k, t] = (A g A^T)[a, b], g the 2x2 tile t of gy (zeros past its edges)."""
    N, K, OH, OW = gy.shape
    T = TH * TW
    for p in prange(N * K):
        k = p // N
        n = p % N
        g = np.zeros((2 * TH, 2 * TW), gy.dtype)     # the plane, whole tiles
        g[:OH, :OW] = gy[n, k]
        zb = np.empty((16, T), gy.dtype)            # copied out as runs (the input kernel)
        for th in range(TH):
            r = 2 * th
            for tw in range(TW):
                q = 2 * tw
                t = th * TW + tw
                c0 = _a(g[r, q], g[r + 1, q])            # A g, by column
                c1 = _a(g[r, q + 1], g[r + 1, q + 1])
                for a in range(4):                       # ... then A^T on the right
                    _put4(zb, 4 * a, t, _a(c0[a], c1[a]))
        for xi in range(16):
            z[xi, k, n * T:(n + 1) * T] = zb[xi]


@njit(inline="always")
def _gt(m0, m1, m2, m3, half):
    """G^T applied to a column of four values."""
    return m0 + half * (m1 + m2), half * (m1 - m2), half * (m1 + m2) + m3


@njit(parallel=True, cache=True)
def winograd_weight_grad_kernel(mw, gw):
    """gw[k, c] = G^T mw[:, k, c] G (4x4 -> 3x3); returns the number of non-finite values."""
    K, C = gw.shape[:2]
    half = gw.dtype.type(0.5)
    bad = 0
    for k in prange(K):
        mb = np.empty((16, C), gw.dtype)
        for xi in range(16):
            mb[xi] = mw[xi, k]
        for c in range(C):
            s0 = _gt(mb[0, c], mb[4, c], mb[8, c], mb[12, c], half)   # G^T m, by column
            s1 = _gt(mb[1, c], mb[5, c], mb[9, c], mb[13, c], half)
            s2 = _gt(mb[2, c], mb[6, c], mb[10, c], mb[14, c], half)
            s3 = _gt(mb[3, c], mb[7, c], mb[11, c], mb[15, c], half)
            for i in range(3):                                          # ... then G
                r = _gt(s0[i], s1[i], s2[i], s3[i], half)
                gw[k, c, i, 0], gw[k, c, i, 1], gw[k, c, i, 2] = r
                for j in range(3):
                    if r[j] - r[j] != 0:
                        bad += 1
    return bad


# Winograd F(4x4, 3x3), the forward (and the stride-1 input gradient, a forward of gy): the
# transforms of reference.winograd_conv2d(tile=4) written out, for winograd_conv2d(tile=4).
# 36 components xi = 6 * a + b.

@njit(inline="always")
def _bt6(d0, d1, d2, d3, d4, d5, two, four, five):
    """B^T of F(4x4, 3x3) applied to six values (the constants in the values' type: an integer
    literal would widen float32 to float64)."""
    return (four * d0 - five * d2 + d4, d3 + d4 - four * (d1 + d2), four * (d1 - d2) + d4 - d3,
            two * (d3 - d1) + d4 - d2, two * (d1 - d3) + d4 - d2, four * d1 - five * d3 + d5)


@njit(parallel=True, cache=True)
def winograd4_input_kernel(x, PH, PW, TH, TW, v, chunks):
    """v[6a + b, c, t] = (B^T d B)[a, b], d the 6x6 input tile of tile t (zeros outside x).
    One (n, c) plane per iteration, a row of tiles at a time and vectorised across it: B^T
    over the tile row's six plane rows at every column (contiguous), then B across each of the
    six results at the tiles' columns (stride 4). Against a tile at a time (36 scalar outputs),
    A/B in one process at 2 threads: 3.2 -> 2.0 ms at (16, 64, 32, 32), 2.2 -> 1.4 ms at
    (4, 64, 56, 56), 0.47 -> 0.38 ms at (8, 128, 16, 16). The planes are cut into `chunks`,
    each making its buffers once (0-3% faster; 10% for the output kernel)."""
    N, C, H, W = x.shape
    T = TH * TW
    WB = 4 * TW + 2
    hi, wi = min(H, 4 * TH + 2 - PH), min(W, WB - PW)
    planes = N * C
    for chunk in prange(chunks):
        b = np.zeros((4 * TH + 2, WB), x.dtype)   # the padded plane, in L1 (its border stays 0)
        u = np.empty((6, WB), x.dtype)            # B^T d for one row of tiles
        vb = np.empty((36, T), x.dtype)           # copied out as runs of T
        two, four, five = x.dtype.type(2), x.dtype.type(4), x.dtype.type(5)
        for p in range(planes * chunk // chunks, planes * (chunk + 1) // chunks):
            c = p // N
            n = p % N
            for h in range(hi):
                b[PH + h, PW:PW + wi] = x[n, c, h, :wi]
            for th in range(TH):
                r = 4 * th
                for j in range(WB):                                         # B^T d
                    u[0, j], u[1, j], u[2, j], u[3, j], u[4, j], u[5, j] = _bt6(
                        b[r, j], b[r + 1, j], b[r + 2, j], b[r + 3, j], b[r + 4, j],
                        b[r + 5, j], two, four, five)
                for a in range(6):                                          # ... then B
                    e = 6 * a
                    for tw in range(TW):
                        q = 4 * tw
                        t = th * TW + tw
                        vb[e, t], vb[e + 1, t], vb[e + 2, t], vb[e + 3, t], vb[e + 4, t], \
                            vb[e + 5, t] = _bt6(u[a, q], u[a, q + 1], u[a, q + 2], u[a, q + 3],
                                                u[a, q + 4], u[a, q + 5], two, four, five)
            for xi in range(36):
                v[xi, c, n * T:(n + 1) * T] = vb[xi]


@njit(inline="always")
def _g6(w0, w1, w2, q, s6, s12, s24):
    """G of F(4x4, 3x3) applied to three values; q, s6, s12, s24: 1/4, 1/6, 1/12, 1/24."""
    s, d = w0 + w2, w0 * s24 + w2 * s6
    return w0 * q, -(s + w1) * s6, (w1 - s) * s6, d + w1 * s12, d - w1 * s12, w2


@njit(parallel=True, cache=True)
def winograd4_weight_kernel(w, u):
    """u[6a + b, k, c] = (G w[k, c] G^T)[a, b]."""
    K, C = w.shape[:2]
    for k in prange(K):
        g = np.empty((3, 6), w.dtype)
        ub = np.empty((36, C), w.dtype)
        q, s6, s12, s24 = (w.dtype.type(1 / 4), w.dtype.type(1 / 6), w.dtype.type(1 / 12),
                           w.dtype.type(1 / 24))
        for c in range(C):
            for j in range(3):                                  # G w, by column
                g[j] = _g6(w[k, c, 0, j], w[k, c, 1, j], w[k, c, 2, j], q, s6, s12, s24)
            for i in range(6):                                  # (G w) G^T
                o = _g6(g[0, i], g[1, i], g[2, i], q, s6, s12, s24)
                for jj in range(6):
                    ub[6 * i + jj, c] = o[jj]
        for xi in range(36):
            u[xi, k] = ub[xi]


@njit(inline="always")
def _at6(m0, m1, m2, m3, m4, m5, two, four, eight):
    """A^T of F(4x4, 3x3) applied to six values."""
    s, d = m1 + m2, m1 - m2
    p, q = m3 + m4, m3 - m4
    return m0 + s + p, d + two * q, s + four * p, d + eight * q + m5


@njit(parallel=True, cache=True)
def winograd4_output_kernel(m, TH, TW, y, chunks):
    """y[n, k, 4th + i, 4tw + j] = (A^T m_t A)[i, j] where inside y; returns the number of
    non-finite values written. One (n, k) plane per iteration, all its T tiles at once: A^T down
    each tile's columns (contiguous across the tiles), then A along its rows into four rows of
    whole tiles, yb[i, 4t + j] (stores interleaved by four, which vectorise), whose row i of tile
    row th is output row 4th + i, copied to y. A/B in one process at 2 threads, against a row of
    tiles at a time: (4, 64, 56, 56) 0.74 -> 0.48 ms, (16, 64, 32, 32) 1.23 -> 0.63 ms, (8, 128,
    16, 16) 0.55 -> 0.24 ms (and 2.8 -> 1.9 ms at (16, 64, 32, 32) for a row of tiles against
    a tile at a time). The planes are cut into `chunks`, each making its buffers once."""
    N, K, OH, OW = y.shape
    T = TH * TW
    bad = 0
    planes = N * K
    for chunk in prange(chunks):
        mb = np.empty((36, T), y.dtype)
        s = np.empty((4, 6, T), y.dtype)           # A^T m
        yb = np.empty((4, 4 * T), y.dtype)         # (A^T m) A: row i of every tile
        two, four, eight = y.dtype.type(2), y.dtype.type(4), y.dtype.type(8)
        for p in range(planes * chunk // chunks, planes * (chunk + 1) // chunks):
            k = p // N
            n = p % N
            for xi in range(36):
                mb[xi] = m[xi, k, n * T:(n + 1) * T]
            for b in range(6):                                          # A^T m
                for t in range(T):
                    s[0, b, t], s[1, b, t], s[2, b, t], s[3, b, t] = _at6(
                        mb[b, t], mb[6 + b, t], mb[12 + b, t], mb[18 + b, t],
                        mb[24 + b, t], mb[30 + b, t], two, four, eight)
            for i in range(4):                                          # ... then A
                row = yb[i]
                for t in range(T):
                    q = 4 * t
                    row[q], row[q + 1], row[q + 2], row[q + 3] = _at6(
                        s[i, 0, t], s[i, 1, t], s[i, 2, t], s[i, 3, t], s[i, 4, t],
                        s[i, 5, t], two, four, eight)
            bad += _tiles_to_plane(yb, 4, TW, y[n, k])
    return bad
