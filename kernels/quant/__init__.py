"""The int8 quantization family: quantize / dequantize, an int8 GEMM with int32 accumulation,
an int8 im2col, and the weight scales that calibration uses.

    quantize_per_tensor(x, scale, zero_point, qmin, qmax)          float -> int8
    quantize_per_channel(x, scale, zero_point, axis, qmin, qmax)   one (scale, zp) per index
    dequantize(q, scale, zero_point, axis=None)                    int8 -> float32
    qgemm_nt(a, b, a_zp)        (M, K) int8 x (N, K) int8 -> (M, N) int32: sum_k (a - a_zp) b
    im2col_int8(x, KH, KW, SH, SW, PH, PW, DH, DW, pad_value) -> ((N*OH*OW, C*KH*KW) int8, OH, OW)
    symmetric_weight_scales(w, axis, qmax)                         per-channel max |w| / qmax

Conventions: q = clip(round_half_even(x / scale) + zero_point, qmin, qmax); weights symmetric
(zero point 0, range [-127, 127]); activations affine in [-128, 127] with 0.0 exact. The CPU
(Numba), CUDA and reference versions agree bit for bit.

float16 / bfloat16 x: quantized from its exact float32 value, so bit-equal to quantizing a
float32 copy; on the GPU the quantize kernels' half instances read it as it is, on the CPU it is
widened. Half storage has no meaning for the other kernels (int8 in; int8 / int32 out, or
dequantize's float32 by convention); scales and zero points are taken as float32.
"""
import numpy as np

from minicnn.devices import get_array_module, on_cuda_kernels

from .. import conv_out_size, lazy

_cpu = lazy(__name__ + ".cpu")
_cuda = lazy(__name__ + ".cuda")

_INT8_MIN, _INT8_MAX = -128, 127


def _impl(a):
    return _cuda if on_cuda_kernels(a) else _cpu


def quantize_per_tensor(x, scale, zero_point=0, qmin=_INT8_MIN, qmax=_INT8_MAX):
    return _impl(x).quantize_per_tensor(x, scale, zero_point, qmin, qmax)


def quantize_per_channel(x, scale, zero_point=None, axis=0, qmin=-127, qmax=127):
    return _impl(x).quantize_per_channel(x, scale, zero_point, axis, qmin, qmax)


def dequantize(q, scale, zero_point=0, axis=None):
    return _impl(q).dequantize(q, scale, zero_point, axis)


def qgemm_nt(a, b, a_zp=0):
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"qgemm_nt: mat1 and mat2 shapes cannot be multiplied "
                         f"({'x'.join(map(str, a.shape))} and "
                         f"{'x'.join(map(str, b.shape[::-1]))})")
    if a.dtype != np.int8 or b.dtype != np.int8:
        raise TypeError(f"qgemm_nt: expected int8 inputs, got {a.dtype} and {b.dtype}")
    return _impl(a).qgemm_nt(a, b, a_zp)


def im2col_int8(x, KH, KW, SH=1, SW=1, PH=0, PW=0, DH=1, DW=1, pad_value=0):
    N, C, H, W = x.shape
    OH, OW = conv_out_size(H, KH, SH, PH, DH), conv_out_size(W, KW, SW, PW, DW)
    if OH <= 0 or OW <= 0:
        raise ValueError(f"im2col_int8: kernel ({KH}x{KW}) with dilation ({DH}, {DW}) is larger "
                         f"than the padded input of size {list(x.shape)}")
    return _impl(x).im2col_int8(x, KH, KW, SH, SW, PH, PW, DH, DW, pad_value)


def symmetric_weight_scales(w, axis=0, qmax=127):
    """Per-channel symmetric scales of a NumPy weight: max |w| over everything but `axis`,
    divided by qmax (1 for an all-zero channel)."""
    w = np.asarray(w, np.float32)
    red = tuple(i for i in range(w.ndim) if i != axis % w.ndim)
    amax = np.abs(w).max(axis=red) if red else np.abs(w)
    scale = amax / np.float32(qmax)
    return np.where(scale > 0, scale, np.float32(1.0)).astype(np.float32)


def channel_params(xp, what, x_shape, axis, scale, zero_point):
    """(scale, zero point, C, Q): float32 arrays of C values on x's device (a single zero point
    is broadcast), C = x_shape[axis], Q = the product of the dims after axis."""
    ndim = len(x_shape)
    if not -ndim <= axis < ndim:
        raise ValueError(f"{what}: axis {axis} is out of range for shape {list(x_shape)}")
    axis %= ndim
    C = int(x_shape[axis])
    scale = xp.ascontiguousarray(xp.asarray(scale, dtype=xp.float32).reshape(-1))
    if zero_point is None:
        zp = xp.zeros(C, xp.float32)
    else:
        zp = xp.asarray(zero_point, dtype=xp.float32).reshape(-1)
        if zp.shape[0] == 1 and C != 1:
            zp = xp.broadcast_to(zp, (C,))
        zp = xp.ascontiguousarray(zp)
    if scale.shape[0] != C or zp.shape[0] != C:
        raise ValueError(f"{what}: expected {C} scales/zero points for axis {axis} of shape "
                         f"{list(x_shape)}, got {scale.shape[0]} and {zp.shape[0]}")
    Q = 1
    for s in x_shape[axis + 1:]:
        Q *= int(s)
    return scale, zp, C, Q
