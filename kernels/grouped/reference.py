"""Plain NumPy references of the depthwise kernels: the tests' oracle (xp-generic). A depthwise
weight is (C * M, 1, KH, KW): output channel k reads input channel c = k // M. Grouped
convolutions in general have conv.reference.conv2d(..., groups) as their reference.
"""
from minicnn.devices import get_array_module

from ..conv.reference import col2im, windows


def depthwise_conv2d(x, w, SH, SW, PH, PW, DH, DW, OH, OW):
    xp = get_array_module(x)
    N, C, H, W = x.shape
    K, _, KH, KW = w.shape
    M = K // C
    col = windows(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)    # (N, C, KH, KW, OH, OW)
    col = xp.repeat(col, M, axis=1)                               # (N, K, KH, KW, OH, OW)
    return xp.einsum("nkhwij,khw->nkij", col, w[:, 0])


def depthwise_grad_input(gy, w, C, H, W, SH, SW, PH, PW, DH, DW):
    N, K, OH, OW = gy.shape
    col = gy[:, :, None, None] * w[None, :, 0, :, :, None, None]  # (N, K, KH, KW, OH, OW)
    col = col.transpose(1, 2, 3, 0, 4, 5)                         # -> (K, KH, KW, N, OH, OW)
    gx = col2im(col, H, W, SH, SW, PH, PW, DH, DW)                # (N, K, H, W)
    return gx.reshape(N, C, K // C, H, W).sum(axis=2)             # sum the M multipliers of c


def depthwise_grad_weight(x, gy, KH, KW, SH, SW, PH, PW, DH, DW):
    xp = get_array_module(x)
    N, C, H, W = x.shape
    _, K, OH, OW = gy.shape
    M = K // C
    col = xp.repeat(windows(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW), M, axis=1)
    return xp.einsum("nkhwij,nkij->khw", col, gy)[:, None]
