"""The depthwise / grouped family: direct convolutions for groups with few channels, where
im2col + a GEMM per group would multiply tiny matrices.

    depthwise_conv2d(x, w, SH, SW, PH, PW, DH, DW, OH, OW, b=None)  -> y  (N, K, OH, OW) (+ b)
    depthwise_grad_input(gy, w, C, H, W, SH, SW, PH, PW, DH, DW)     -> gx (N, C, H, W)
    depthwise_grad_weight(x, gy, KH, KW, SH, SW, PH, PW, DH, DW)     -> gw (K, 1, KH, KW)
    grouped_conv2d(x, w, G, SH, SW, PH, PW, DH, DW, OH, OW, b=None)  -> y  (N, K, OH, OW) (+ b)
    grouped_grad_input(gy, w, G, C, H, W, SH, SW, PH, PW, DH, DW)    -> gx (N, C, H, W)
    grouped_grad_weight(x, gy, G, KH, KW, SH, SW, PH, PW, DH, DW)    -> gw (K, C/G, KH, KW)
    grouped_ok(a, pass_, x_shape, w_shape, G, SH, SW, PH, PW, DH, DW, out_hw)
                          whether the grouped kernels take this conv on a's device

Depthwise (groups == C, weight (C*M, 1, KH, KW)) takes these kernels on every device. Other
grouped convolutions: on the GPU any kernel, stride and padding with at most MAX_CG channels per
group; on the CPU the 3x3 stride-1 case with at most MAX_CG channels per group, and its
backward only when gy is the full output. The conv family (kernels/conv) asks `grouped_ok`.
float16 / bfloat16 arrays run in the CUDA kernels' half instances on the GPU (half loads and
stores, float32 products and sums), widened to float32 elsewhere (kernels._half).
"""
from minicnn.devices import on_cuda_kernels

from .. import lazy
from .._half import in_float32

_cpu = lazy(__name__ + ".cpu")
_cuda = lazy(__name__ + ".cuda")

MAX_CG = 8  # channels per group up to which the direct kernels beat im2col + GEMM


def _impl(a):
    return _cuda if on_cuda_kernels(a) else _cpu


def is_depthwise(C, w_shape, G):
    return G == C and G > 1 and w_shape[1] == 1


def grouped_ok(a, pass_, x_shape, w_shape, G, SH, SW, PH, PW, DH, DW, out_hw):
    """pass_: 'forward', 'grad_input' or 'grad_weight'; out_hw: that pass's output size (the
    forward's) or gy's size (the backward passes')."""
    if G <= 1 or w_shape[1] > MAX_CG:
        return False
    if on_cuda_kernels(a):
        return True
    KH, KW = w_shape[2:]
    if not (KH == 3 and KW == 3 and SH == 1 and SW == 1 and PH <= 2 * DH and PW <= 2 * DW):
        return False
    H, W = x_shape[2:]
    full = (H + 2 * PH - 2 * DH, W + 2 * PW - 2 * DW)
    return pass_ == "forward" or tuple(out_hw) == full


@in_float32(half_kernels=True)
def depthwise_conv2d(x, w, SH, SW, PH, PW, DH, DW, OH, OW, b=None):
    return _impl(x).depthwise_conv2d(x, w, SH, SW, PH, PW, DH, DW, OH, OW, b)


@in_float32(half_kernels=True)
def depthwise_grad_input(gy, w, C, H, W, SH, SW, PH, PW, DH, DW):
    return _impl(gy).depthwise_grad_input(gy, w, C, H, W, SH, SW, PH, PW, DH, DW)


@in_float32(half_kernels=True)
def depthwise_grad_weight(x, gy, KH, KW, SH, SW, PH, PW, DH, DW):
    return _impl(x).depthwise_grad_weight(x, gy, KH, KW, SH, SW, PH, PW, DH, DW)


@in_float32(half_kernels=True)
def grouped_conv2d(x, w, G, SH, SW, PH, PW, DH, DW, OH, OW, b=None):
    return _impl(x).grouped_conv2d(x, w, G, SH, SW, PH, PW, DH, DW, OH, OW, b)


@in_float32(half_kernels=True)
def grouped_grad_input(gy, w, G, C, H, W, SH, SW, PH, PW, DH, DW):
    return _impl(gy).grouped_grad_input(gy, w, G, C, H, W, SH, SW, PH, PW, DH, DW)


@in_float32(half_kernels=True)
def grouped_grad_weight(x, gy, G, KH, KW, SH, SW, PH, PW, DH, DW):
    return _impl(x).grouped_grad_weight(x, gy, G, KH, KW, SH, SW, PH, PW, DH, DW)
