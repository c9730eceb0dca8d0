"""The int8 family on the GPU: the launch layer of quant.cu, with the signatures of the family's API
(kernels/quant/__init__.py). Results are bit-exact with the CPU kernels and the reference.

Scales and zero points of per-tensor quantization are Python numbers (the calibrated qparams);
per-channel ones are arrays (on the device), taken as float32 (channel_params; a half array is
widened exactly). Nothing here reads a device value. float16 / bfloat16 x goes to the quantize
kernels' half instances as it is; the other kernels have no floating input (int8 in, int8 /
int32 out) or a float32 output by convention (dequantize), so no half instances.
"""
import numpy

from minicnn.devices import get_array_module

from ..cuda import launch, module
from ..cuda.launch import data_ptr, is_float
from .. import conv_out_size
from . import channel_params

BLOCK = 256
QG_BM = QG_BN = 64
GRID_Y_MAX = 65535
WAVES = 8


def blocks(n, like):
    return launch.blocks(n, BLOCK, WAVES, like, cap=launch.emulator_cap(like))


def _float_input(xp, x):
    """x as a contiguous array of a quantize kernel's element types: float32, float64, float16
    or bfloat16 as it is (the half instances read half values: no float32 copy), anything else
    converted to float32."""
    if is_float(x, half=True):
        return xp.ascontiguousarray(x)
    return xp.ascontiguousarray(x, dtype=xp.float32)


def quantize_per_tensor(x, scale, zero_point=0, qmin=-128, qmax=127):
    """float -> int8: clip(rint(x / scale) + zero_point, qmin, qmax)."""
    xp = get_array_module(x)
    x = _float_input(xp, x)
    module.check_size("quantize_per_tensor", x.shape)
    out = module.empty(xp, x.shape, numpy.int8)
    n = x.size
    if n:
        module.kernel("quant", "quantize_per_tensor_kernel", x.dtype)(
            (blocks(n, x),), (BLOCK,), (x, out, n, scale, zero_point, qmin, qmax))
    return out


def quantize_per_channel(x, scale, zero_point=None, axis=0, qmin=-127, qmax=127):
    """float -> int8 with one (scale, zero_point) per index of `axis`."""
    xp = get_array_module(x)
    x = _float_input(xp, x)
    scale, zp, C, Q = channel_params(xp, "quantize_per_channel", x.shape, axis, scale,
                                      zero_point)
    module.check_size("quantize_per_channel", x.shape)
    out = module.empty(xp, x.shape, numpy.int8)
    n = x.size
    if n:
        module.kernel("quant", "quantize_per_channel_kernel", x.dtype)(
            (blocks(n, x),), (BLOCK,), (x, scale, zp, out, n, C, Q, qmin, qmax))
    return out


def dequantize(q, scale, zero_point=0, axis=None):
    """int8 -> float32: (q - zero_point) * scale; per channel along `axis` when given. Always
    float32 (the family's convention, whatever the dtype the scales came from): a caller that
    stores activations in half rounds this result."""
    xp = get_array_module(q)
    if q.dtype != numpy.int8:  # not a kernel's input: the plain formula
        if axis is None:
            return (q.astype(xp.float32) - xp.float32(zero_point)) * xp.float32(scale)
        scale, zp, C, Q = channel_params(xp, "dequantize", q.shape, axis, scale, zero_point)
        shape = [1] * q.ndim
        shape[axis] = C
        return (q.astype(xp.float32) - zp.reshape(shape)) * scale.reshape(shape)
    q = xp.ascontiguousarray(q)
    module.check_size("dequantize", q.shape)
    out = module.empty(xp, q.shape, numpy.float32)
    n = q.size
    if not n:
        return out
    if axis is None:
        module.kernel("quant", "dequantize_kernel")(
            (blocks(n, q),), (BLOCK,), (q, out, n, scale, zero_point))
    else:
        scale, zp, C, Q = channel_params(xp, "dequantize", q.shape, axis, scale, zero_point)
        module.kernel("quant", "dequantize_per_channel_kernel")(
            (blocks(n, q),), (BLOCK,), (q, scale, zp, out, n, C, Q))
    return out


def qgemm_nt(a, b, a_zp=0):
    """(M, K) int8 x (N, K) int8 -> (M, N) int32: out[m, n] = sum_k (a[m, k] - a_zp) * b[n, k].
    The family's API checks the shapes and dtypes."""
    xp = get_array_module(a, b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or \
            a.dtype != numpy.int8 or b.dtype != numpy.int8:
        raise ValueError(f"qgemm_nt: expected int8 (M, K) and (N, K) matrices, got "
                         f"{a.dtype} {list(a.shape)} and {b.dtype} {list(b.shape)}")
    a, b = xp.ascontiguousarray(a), xp.ascontiguousarray(b)
    (M, K), N = a.shape, b.shape[0]
    module.check_size("qgemm_nt", a.shape, b.shape, (M, N))
    if M == 0 or N == 0:
        return xp.zeros((M, N), xp.int32)
    if (N + QG_BN - 1) // QG_BN > GRID_Y_MAX:
        raise ValueError(f"qgemm_nt: {N} rows of mat2 exceed the grid ({GRID_Y_MAX * QG_BN})")
    out = module.empty(xp, (M, N), numpy.int32)
    a_zp = int(a_zp)
    if a_zp != 0:
        bzp = module.empty(xp, (N,), numpy.int32)
        module.kernel("quant", "qgemm_bsum_kernel")(
            (blocks(32 * N, b),), (BLOCK,), (b, bzp, N, K, a_zp))
    else:
        bzp = xp.empty(0, xp.int32)
    words = K % 4 == 0 and data_ptr(a) % 4 == 0 and data_ptr(b) % 4 == 0
    grid = ((M + QG_BM - 1) // QG_BM, (N + QG_BN - 1) // QG_BN)
    module.kernel("quant", "qgemm_nt_kernel")(
        grid, (BLOCK,), (a, b, bzp, out, M, N, K, words, a_zp != 0))
    return out


def im2col_int8(x, KH, KW, SH=1, SW=1, PH=0, PW=0, DH=1, DW=1, pad_value=0):
    """(N, C, H, W) int8 -> ((N*OH*OW, C*KH*KW) int8, OH, OW); padding reads pad_value."""
    xp = get_array_module(x)
    N, C, H, W = x.shape
    OH, OW = conv_out_size(H, KH, SH, PH, DH), conv_out_size(W, KW, SW, PW, DW)
    x = xp.ascontiguousarray(x, dtype=xp.int8)
    shape = (N * OH * OW, C * KH * KW)
    module.check_size("im2col_int8", x.shape, shape)
    out = module.empty(xp, shape, numpy.int8)
    total = shape[0] * shape[1]
    if total:
        module.kernel("quant", "im2col_int8_kernel")(
            (blocks(total, x),), (BLOCK,),
            (x, out, total, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW, pad_value))
    return out, OH, OW
