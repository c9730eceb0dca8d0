"""Dispatchers of the int8 quantization kernels: NumPy arrays go to the Numba kernels
(kernels/cpu/quant.py), CuPy arrays to the CUDA kernels (kernels/cuda/quant.py: element-wise
quantize/dequantize, a tiled __dp4a int8 GEMM with int32 accumulation, an int8 im2col gather).
The NumPy references live in kernels/reference/quant.py; all three agree bit for bit.
"""
import numpy as np

from minicnn.devices import get_array_module, on_cuda_kernels

_INT8_MIN, _INT8_MAX = -128, 127


def _cuda():
    from .cuda import quant  # noqa: PLC0415 -- only with CuPy arrays
    return quant


def _conv_out(H, W, KH, KW, SH, SW, PH, PW, DH, DW):
    OH = (H + 2 * PH - DH * (KH - 1) - 1) // SH + 1
    OW = (W + 2 * PW - DW * (KW - 1) - 1) // SW + 1
    return OH, OW


def quantize_per_tensor(x, scale, zero_point=0, qmin=_INT8_MIN, qmax=_INT8_MAX):
    """float -> int8: clip(rint(x / scale) + zero_point, qmin, qmax)."""
    if on_cuda_kernels(x):
        return _cuda().quantize_per_tensor(x, scale, zero_point, qmin, qmax)
    from .cpu.quant import quantize_per_tensor_kernel  # noqa: PLC0415
    xc = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty(xc.shape, np.int8)
    quantize_per_tensor_kernel(xc.reshape(-1), np.float32(scale), np.float32(zero_point),
                               np.float32(qmin), np.float32(qmax), out.reshape(-1))
    return out


def quantize_per_channel(x, scale, zero_point=None, axis=0, qmin=-127, qmax=127):
    """float -> int8 with one (scale, zero_point) per index of `axis` (weights: symmetric)."""
    xp = get_array_module(x)
    axis = axis % x.ndim
    C = x.shape[axis]
    scale = xp.asarray(scale, dtype=xp.float32).reshape(-1)
    zp = xp.zeros(C, xp.float32) if zero_point is None else \
        xp.asarray(zero_point, dtype=xp.float32).reshape(-1)
    if scale.shape[0] != C or zp.shape[0] != C:
        raise ValueError(f"quantize_per_channel: expected {C} scales/zero points for axis {axis} "
                         f"of shape {list(x.shape)}, got {scale.shape[0]} and {zp.shape[0]}")
    if on_cuda_kernels(x):
        return _cuda().quantize_per_channel(x, scale, zp, axis, qmin, qmax)
    from .cpu.quant import quantize_per_channel_kernel  # noqa: PLC0415
    xc = np.ascontiguousarray(x, dtype=np.float32)
    P = int(np.prod(x.shape[:axis], dtype=np.int64))
    Q = int(np.prod(x.shape[axis + 1:], dtype=np.int64))
    out = np.empty(xc.shape, np.int8)
    quantize_per_channel_kernel(xc.reshape(P, C, Q), scale, zp, np.float32(qmin),
                                np.float32(qmax), out.reshape(P, C, Q))
    return out


def dequantize(q, scale, zero_point=0, axis=None):
    """int8 -> float32: (q - zero_point) * scale; per channel along `axis` when given."""
    xp = get_array_module(q)
    if on_cuda_kernels(q):
        return _cuda().dequantize(q, scale, zero_point, axis)
    if axis is not None:
        shape = [1] * q.ndim
        shape[axis] = -1
        s = xp.asarray(scale, dtype=xp.float32).reshape(shape)
        zp = xp.asarray(zero_point, dtype=xp.float32)
        zp = zp.reshape(shape) if zp.ndim else zp
        return (q.astype(xp.float32) - zp) * s
    from .cpu.quant import dequantize_kernel  # noqa: PLC0415
    qc = np.ascontiguousarray(q)
    out = np.empty(qc.shape, np.float32)
    dequantize_kernel(qc.reshape(-1), np.float32(scale), np.float32(zero_point), out.reshape(-1))
    return out


def qgemm_nt(a, b, a_zp=0):
    """(M, K) int8 x (N, K) int8 -> (M, N) int32: out[m, n] = sum_k (a[m, k] - a_zp) * b[n, k]."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"qgemm_nt: mat1 and mat2 shapes cannot be multiplied "
                         f"({'x'.join(map(str, a.shape))} and "
                         f"{'x'.join(map(str, b.shape[::-1]))})")
    if a.dtype != np.int8 or b.dtype != np.int8:
        raise TypeError(f"qgemm_nt: expected int8 inputs, got {a.dtype} and {b.dtype}")
    if on_cuda_kernels(a):
        return _cuda().qgemm_nt(a, b, a_zp)
    from .cpu.quant import qgemm_nt_kernel  # noqa: PLC0415
    out = np.empty((a.shape[0], b.shape[0]), np.int32)
    qgemm_nt_kernel(np.ascontiguousarray(a), np.ascontiguousarray(b), np.int32(a_zp), out)
    return out


def im2col_int8(x, KH, KW, SH=1, SW=1, PH=0, PW=0, DH=1, DW=1, pad_value=0):
    """(N, C, H, W) int8 -> ((N*OH*OW, C*KH*KW) int8, OH, OW); padding reads pad_value."""
    N, C, H, W = x.shape
    OH, OW = _conv_out(H, W, KH, KW, SH, SW, PH, PW, DH, DW)
    if OH <= 0 or OW <= 0:
        raise ValueError(f"im2col_int8: kernel ({KH}x{KW}) with dilation ({DH}, {DW}) is larger "
                         f"than the padded input of size {list(x.shape)}")
    if on_cuda_kernels(x):
        return _cuda().im2col_int8(x, KH, KW, SH, SW, PH, PW, DH, DW, pad_value)
    from .cpu.quant import im2col_int8_kernel  # noqa: PLC0415
    out = np.empty((N * OH * OW, C * KH * KW), np.int8)
    im2col_int8_kernel(np.ascontiguousarray(x, dtype=np.int8), KH, KW, SH, SW, PH, PW, DH, DW,
                       OH, OW, np.int8(pad_value), out)
    return out, OH, OW
