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
