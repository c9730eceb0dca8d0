"""The convolution family on the CPU: the im2col / col2im Numba kernels and the calls that
allocate for them (layouts in kernels/conv/reference.py).

Both kernels gather: one `prange` iteration owns one plane ((c, n) of the column buffer, (n, c)
of the image for col2im) and writes only there, so there are no races. Inner loops run over the
valid output-column range of each kernel tap (computed once, no per-element bounds test) so they
vectorise for stride 1.
"""
import numpy as np
from numba import njit, prange

from .._numba import run, valid_range


def im2col(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW, out=None):
    """col (C, KH, KW, N, OH, OW); `out`: an array of that shape to write into (a workspace)."""
    x = np.ascontiguousarray(x)
    N, C = x.shape[:2]
    col = np.empty((C, KH, KW, N, OH, OW), x.dtype) if out is None else out
    run(im2col_kernel, col.size, x, KH, KW, SH, SW, PH, PW, DH, DW, col)
    return col


def col2im(col, H, W, SH, SW, PH, PW, DH, DW):
    col = np.ascontiguousarray(col)
    C, N = col.shape[0], col.shape[3]
    img = np.empty((N, C, H, W), col.dtype)
    run(col2im_kernel, col.size, col, SH, SW, PH, PW, DH, DW, img)
    return img


# --- kernels ----------------------------------------------------------------------------------


@njit(parallel=True, cache=True)
def im2col_kernel(x, KH, KW, SH, SW, PH, PW, DH, DW, col):
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
def col2im_kernel(col, SH, SW, PH, PW, DH, DW, img):
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
