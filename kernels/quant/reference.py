"""Plain-NumPy references of the int8 quantization kernels (small and obviously right): the
tests' oracle.

Conventions (those of the family's API, kernels/quant/__init__.py):

  quantize:    q = clip(round_half_even(x / scale) + zero_point, qmin, qmax)   -> int8
  dequantize:  x = (q - zero_point) * scale                                     -> float32
  per-channel: `scale` / `zero_point` are 1-D, one value per index of `axis`.
  weights:     symmetric, zero_point 0, range [-127, 127] (so -w is representable too).
  activations: affine, range [-128, 127], zero_point chosen so that 0.0 is exact.

  qgemm_nt(a, b, a_zp):    out[m, n] = sum_k (a[m, k] - a_zp) * b[n, k]        int8 x int8 -> int32
  im2col_int8(x, ...):     (N, C, H, W) int8 -> (N*OH*OW, C*KH*KW) int8, padding filled with
                           pad_value (the activation's zero point, which stands for 0.0).
"""
import numpy as np

from minicnn.devices import get_array_module


def quantize_per_tensor(x, scale, zero_point, qmin=-128, qmax=127):
    q = np.rint(np.asarray(x, np.float32) / np.float32(scale)) + np.float32(zero_point)
    return np.clip(q, qmin, qmax).astype(np.int8)


def quantize_per_channel(x, scale, zero_point=None, axis=0, qmin=-127, qmax=127):
    x = np.asarray(x, np.float32)
    shape = [1] * x.ndim
    shape[axis] = -1
    s = np.asarray(scale, np.float32).reshape(shape)
    zp = 0 if zero_point is None else np.asarray(zero_point, np.float32).reshape(shape)
    q = np.rint(x / s) + zp
    return np.clip(q, qmin, qmax).astype(np.int8)


def dequantize(q, scale, zero_point=0, axis=None):
    q = np.asarray(q).astype(np.float32)
    if axis is None:
        return (q - np.float32(zero_point)) * np.float32(scale)
    shape = [1] * q.ndim
    shape[axis] = -1
    s = np.asarray(scale, np.float32).reshape(shape)
    zp = np.asarray(zero_point, np.float32).reshape(shape) if np.ndim(zero_point) else \
        np.float32(zero_point)
    return (q - zp) * s


def qgemm_nt(a, b, a_zp=0):
    """(M, K) int8 x (N, K) int8 -> (M, N) int32, the activation's zero point subtracted."""
    a32 = a.astype(np.int64) - int(a_zp)
    return (a32 @ b.astype(np.int64).T).astype(np.int32)


def im2col_int8(x, KH, KW, SH=1, SW=1, PH=0, PW=0, DH=1, DW=1, pad_value=0):
    """xp-generic (the GPU tests run it on CuPy arrays)."""
    xp = get_array_module(x)
    N, C, H, W = x.shape
    OH = (H + 2 * PH - DH * (KH - 1) - 1) // SH + 1   # the output size, written out here
    OW = (W + 2 * PW - DW * (KW - 1) - 1) // SW + 1
    xpad = xp.full((N, C, H + 2 * PH, W + 2 * PW), pad_value, dtype=xp.int8)
    xpad[:, :, PH:PH + H, PW:PW + W] = x
    cols = xp.empty((N, OH, OW, C, KH, KW), dtype=xp.int8)
    for i in range(KH):
        for j in range(KW):
            patch = xpad[:, :, i * DH:i * DH + SH * (OH - 1) + 1:SH,
                         j * DW:j * DW + SW * (OW - 1) + 1:SW]         # (N, C, OH, OW)
            cols[:, :, :, :, i, j] = patch.transpose(0, 2, 3, 1)       # -> (N, OH, OW, C)
    return cols.reshape(N * OH * OW, C * KH * KW), OH, OW              # (N*OH*OW, C*KH*KW)
