"""Plain NumPy references of the convolution kernels: the tests' oracle (xp-generic, so the GPU
tests use them on CuPy arrays too).

Layouts (the same for every implementation):
  x    (N, C, H, W)                 input image
  col  (C, KH, KW, N, OH, OW)       col[c, kh, kw, n, oh, ow] = x[n, c, oh*SH - PH + kh*DH,
                                                                  ow*SW - PW + kw*DW] (0 outside)
       channel-major with the batch inside, so that a conv is ONE GEMM per group over all
       N * OH * OW positions: (K, C*KH*KW) @ (C*KH*KW, N*OH*OW).
  w    (K, C // groups, KH, KW)
im2col/col2im copy one strided slice per kernel tap (KH*KW array operations), as Chainer's CPU
path does; col2im accumulates, so overlapping windows add up.
"""
from minicnn.devices import get_array_module


def im2col(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW):
    xp = get_array_module(x)
    cols = windows(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)     # (N, C, KH, KW, OH, OW)
    return xp.ascontiguousarray(cols.transpose(1, 2, 3, 0, 4, 5))  # -> (C, KH, KW, N, OH, OW)


def windows(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW):
    """(N, C, KH, KW, OH, OW): every kernel tap's strided view of the padded image."""
    xp = get_array_module(x)
    N, C, H, W = x.shape
    img = xp.pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW)))
    col = xp.empty((N, C, KH, KW, OH, OW), x.dtype)
    for kh in range(KH):
        h0 = kh * DH
        for kw in range(KW):
            w0 = kw * DW
            col[:, :, kh, kw] = img[:, :, h0:h0 + SH * (OH - 1) + 1:SH,
                                    w0:w0 + SW * (OW - 1) + 1:SW]
    return col


def col2im(col, H, W, SH, SW, PH, PW, DH, DW):
    xp = get_array_module(col)
    col = col.transpose(3, 0, 1, 2, 4, 5)             # (C, KH, KW, N, OH, OW) -> (N, C, ...)
    N, C, KH, KW, OH, OW = col.shape
    HP = max(H + 2 * PH, (KH - 1) * DH + SH * (OH - 1) + 1)
    WP = max(W + 2 * PW, (KW - 1) * DW + SW * (OW - 1) + 1)
    img = xp.zeros((N, C, HP, WP), col.dtype)
    for kh in range(KH):
        h0 = kh * DH
        for kw in range(KW):
            w0 = kw * DW
            img[:, :, h0:h0 + SH * (OH - 1) + 1:SH,
                w0:w0 + SW * (OW - 1) + 1:SW] += col[:, :, kh, kw]
    return img[:, :, PH:PH + H, PW:PW + W]


def conv2d(x, w, SH, SW, PH, PW, DH, DW, groups):
    """Direct definition (slow, for tests): y[n, k] = sum_{c in group, kh, kw} w * x."""
    xp = get_array_module(x)
    N, C, H, W = x.shape
    K, Cg, KH, KW = w.shape
    OH = (H + 2 * PH - DH * (KH - 1) - 1) // SH + 1
    OW = (W + 2 * PW - DW * (KW - 1) - 1) // SW + 1
    col = windows(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)     # (N, C, KH, KW, OH, OW)
    Kg = K // groups
    y = xp.zeros((N, K, OH, OW), x.dtype)
    for g in range(groups):
        cg = col[:, g * Cg:(g + 1) * Cg]
        wg = w[g * Kg:(g + 1) * Kg]
        y[:, g * Kg:(g + 1) * Kg] = xp.einsum("nchwij,kchw->nkij", cg, wg)
    return y


# --- Winograd F(2x2, 3x3) and F(4x4, 3x3) ---------------------------------------------------------
# y = A^T [(G w G^T) * (B^T d B)] A for each m x m output tile and its (m + 2) x (m + 2) input
# tile d (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks"): (m + 2)^2
# multiplications instead of 9 m^2 (16 for 36 at m = 2, 36 for 144 at m = 4).

WINOGRAD_BT = ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1))
WINOGRAD_G = ((1, 0, 0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0, 0, 1))
WINOGRAD_AT = ((1, 1, 1, 0), (0, 1, -1, -1))

WINOGRAD4_BT = ((4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0),
                (0, -2, -1, 2, 1, 0), (0, 2, -1, -2, 1, 0), (0, 4, 0, -5, 0, 1))
WINOGRAD4_G = ((1 / 4, 0, 0), (-1 / 6, -1 / 6, -1 / 6), (-1 / 6, 1 / 6, -1 / 6),
               (1 / 24, 1 / 12, 1 / 6), (1 / 24, -1 / 12, 1 / 6), (0, 0, 1))
WINOGRAD4_AT = ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0),
                (0, 1, -1, 8, -8, 1))


def winograd_conv2d(x, w, PH, PW, OH, OW, absolute=False, tile=2):
    """3x3, stride 1, dilation 1, one group: the first (OH, OW) outputs of conv(x, w), in
    output tiles of tile x tile (2 or 4). absolute=True: the same with |B^T|, |G|, |A^T|, |x|
    and |w|, which bounds every partial sum of the computation, so float32 rounding errors are
    at most a few eps times it (tests)."""
    xp = get_array_module(x)
    BT, G, AT, x, w = _winograd_operands(x, w, absolute, tile)
    N, K = x.shape[0], w.shape[0]
    TH, TW = -(-OH // tile), -(-OW // tile)
    v = xp.einsum("ai,nctuij,bj->nctuab", BT, _tiles(x, PH, PW, TH, TW, tile), BT)  # B^T d B
    u = xp.einsum("ai,kcij,bj->kcab", G, w, G)                                 # G w G^T
    m = xp.einsum("kcab,nctuab->nktuab", u, v)                   # summed over the channels
    y = xp.einsum("ia,nktuab,jb->nktiuj", AT, m, AT)             # A^T m A: (N, K, TH, m, TW, m)
    return y.reshape(N, K, tile * TH, tile * TW)[:, :, :OH, :OW]


def winograd_grad_weight(x, gy, PH, PW, absolute=False):
    """The weight gradient of winograd_conv2d (its adjoint in w): G^T [sum over the tiles of
    (A gy_t A^T) * (B^T d_t B)] G, for gy (N, K, OH, OW); absolute as there."""
    xp = get_array_module(x)
    BT, G, AT, x, gy = _winograd_operands(x, gy, absolute)
    (N, K, OH, OW), TH, TW = gy.shape, (gy.shape[2] + 1) // 2, (gy.shape[3] + 1) // 2
    g = xp.zeros((N, K, 2 * TH, 2 * TW), gy.dtype)               # whole tiles, zeros past OH, OW
    g[:, :, :OH, :OW] = gy
    g = g.reshape(N, K, TH, 2, TW, 2)
    v = xp.einsum("ai,nctuij,bj->nctuab", BT, _tiles(x, PH, PW, TH, TW), BT)   # B^T d B
    z = xp.einsum("ia,nktiuj,jb->nktuab", AT, g, AT)
    m = xp.einsum("nktuab,nctuab->kcab", z, v)                   # summed over the tiles
    return xp.einsum("ai,kcab,bj->kcij", G, m, G)                # G^T m G


def _winograd_operands(a, b, absolute, tile=2):
    xp = get_array_module(a)
    mats = (WINOGRAD_BT, WINOGRAD_G, WINOGRAD_AT) if tile == 2 else \
        (WINOGRAD4_BT, WINOGRAD4_G, WINOGRAD4_AT)
    mats = [xp.asarray(m, a.dtype) for m in mats]
    return [abs(t) for t in mats + [a, b]] if absolute else mats + [a, b]


def _tiles(x, PH, PW, TH, TW, tile=2):
    """(N, C, TH, TW, tile + 2, tile + 2): the input tiles of the tile x tile output tiles,
    overlapping by 2, of x zero-padded by PH, PW."""
    xp = get_array_module(x)
    N, C, H, W = x.shape
    a = tile + 2
    img = xp.zeros((N, C, tile * TH + 2, tile * TW + 2), x.dtype)      # padded, whole tiles
    hi, wi = min(H, tile * TH + 2 - PH), min(W, tile * TW + 2 - PW)
    img[:, :, PH:PH + hi, PW:PW + wi] = x[:, :, :hi, :wi]
    d = xp.empty((N, C, TH, TW, a, a), x.dtype)
    for i in range(a):
        for j in range(a):
            d[..., i, j] = img[:, :, i:i + tile * TH:tile, j:j + tile * TW:tile]
    return d
