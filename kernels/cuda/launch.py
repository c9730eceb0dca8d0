"""Host-side helpers shared by the launch layers (kernels/cuda/<family>.py):

    fastdiv(d)                  -> (mul, shift) for common.cuh's fastdiv(n, mul, shift) == n / d
    sm_count(like=None)         -> the SMs of the GPU holding `like` (132, an H100's, otherwise)
    blocks(n, threads, waves)   -> the grid of a grid-stride loop over n work items
    is_float(a), check_float(op, *arrays)     -> float32/float64 (the template kernels' types)
        (half=True: float16 / bfloat16 too, the HALF_STORAGE templates' types; half.cuh)
    acc_dtype(dtype)            -> acc_t<T>: what a HALF_STORAGE template computes in
    float_input(op, x, ndim)    -> (xp, x contiguous) after checking x is float32/float64
    data_ptr(a)                 -> the address of a's first element (CuPy or NumPy)
    warp_threads(n, cap), pow2ceil(n), split_axis(shape, axis), rows_block(L), rows_grid(...)
                                -> launch-plan arithmetic

Nothing here synchronizes with the host: the SM count is a device attribute (a driver query,
cached per device), never a read of device memory.
"""
import functools

import numpy

from minicnn.devices import get_array_module, is_cuda_array
from minicnn.dtypes import HALF_FLOATS

from .. import split_axis  # noqa: F401 -- part of this module's API (see above)
from . import module

H100_SMS = 132      # the SM count assumed for NumPy arrays (the emulator) or when it is unknown

_sms = {}


@functools.lru_cache(maxsize=1024)   # Python time per launch matters on the GPU (a few us)
def fastdiv(d):
    """(mul, shift) with n // d == (n * mul) >> shift for every 0 <= n < 2**31 (1 <= d < 2**31);
    common.cuh's fastdiv computes it with one 32x32->64-bit multiply and a shift.

    shift = 31 + l with l = ceil(log2 d), mul = ceil(2**shift / d) (Granlund & Montgomery,
    PLDI'94, with N = 31 bits). Exact: write mul * d = 2**shift + e with 0 <= e < d; then
    n * mul / 2**shift = n / d + n * e / (d * 2**shift), whose error term is below
    2**31 * d / (d * 2**(31 + l)) = 2**-l <= 1 / d. With n = q * d + r (0 <= r <= d - 1),
    q <= n / d + error < q + (d - 1) / d + 1 / d = q + 1, so the floor is q. Fits 32 bits:
    d = 1 gives mul = 2**31; for l >= 1, d >= 2**(l - 1) + 1, so 2**shift / d <=
    2**32 / (1 + 2**(1 - l)) <= 2**32 - 2, and mul <= 2**32 - 1.
    """
    d = int(d)
    if not 1 <= d < 2**31:
        raise ValueError(f"fastdiv: divisor must be in [1, 2**31), got {d}")
    shift = 31 + (d - 1).bit_length()
    return -(-(1 << shift) // d), shift


def fastdivs(*divisors):
    """fastdiv of each divisor, flattened: (mul0, shift0, mul1, shift1, ...)."""
    return tuple(v for d in divisors for v in fastdiv(d))


def sm_count(like=None):
    """The number of SMs of the GPU that holds `like` (a CuPy array), cached per device;
    H100_SMS for NumPy arrays (the emulator), None, or a device that does not say."""
    if like is None or not is_cuda_array(like):
        return H100_SMS
    device = like.device
    n = _sms.get(device.id)
    if n is None:
        try:
            n = int(device.attributes["MultiProcessorCount"])
        except Exception:  # noqa: BLE001 -- a CuPy without attributes: assume an H100
            n = H100_SMS
        _sms[device.id] = n
    return n


def blocks(n, threads=256, waves=8, like=None, cap=None):
    """Blocks of `threads` for a grid-stride loop over n work items: one item per thread, at
    most `waves` blocks per SM of like's GPU (or at most `cap` when given: the tests' small
    grids), at least 1."""
    if cap is None:
        cap = waves * sm_count(like)
    return max(1, min(-(-int(n) // threads), int(cap)))


EMULATOR_BLOCKS = 2  # grids under the emulator: small, so the grid-stride loops are exercised


def emulator_cap(like):
    """The `cap` of `blocks` for a grid-stride launch: None on a GPU, EMULATOR_BLOCKS for the
    emulator's NumPy arrays."""
    return None if is_cuda_array(like) else EMULATOR_BLOCKS


_FLOATS = (numpy.dtype(numpy.float32), numpy.dtype(numpy.float64))
_HALF_FLOATS = _FLOATS + tuple(HALF_FLOATS)


def is_float(a, half=False):
    """Whether a's dtype is one the template kernels (half: the HALF_STORAGE ones) are
    instantiated for."""
    return numpy.dtype(a.dtype) in (_HALF_FLOATS if half else _FLOATS)


def check_float(op, *arrays, half=False):
    """TypeError naming `op` unless every array is float32 or float64 (or, with half=True,
    float16 / bfloat16)."""
    for a in arrays:
        if not is_float(a, half):
            kinds = "float32, float64, float16 or bfloat16" if half else "float32 or float64"
            raise TypeError(f"{op}: expected {kinds}, got {a.dtype}")


def acc_dtype(dtype):
    """acc_t<T> of half.cuh: float64 for float64, float32 for the other float types."""
    return numpy.dtype(numpy.float64 if numpy.dtype(dtype) == _FLOATS[1] else numpy.float32)


def float_input(op, x, ndim=None, half=False):
    """(xp, x as a C-contiguous array of the same shape, 0-d included) after checking x: `ndim`
    dimensions (when given), float32 or float64 (or half: see check_float), small enough for
    32-bit indices."""
    xp = get_array_module(x)
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{op}: expected a {ndim}-D array, got shape {tuple(x.shape)}")
    check_float(op, x, half=half)
    module.check_size(op, x.shape)
    return xp, xp.ascontiguousarray(x).reshape(x.shape)  # ascontiguousarray makes 0-d 1-d


def data_ptr(a):
    """The address of a's first element (CuPy or NumPy), for alignment decisions."""
    return a.data.ptr if hasattr(a.data, "ptr") else a.ctypes.data


def warp_threads(n, cap=256):
    """Threads of a block for n work items, one each: a whole number of warps, from one warp
    up to `cap`."""
    return int(min(cap, max(32, -(-int(n) // 32) * 32)))


def pow2ceil(n):
    """The least power of two >= n (1 for n <= 1)."""
    return 1 << max(int(n) - 1, 0).bit_length()


MAX_GRID_Y = 65535


def rows_block(L, threads=256):
    """Block (bx, threads // bx) for a kernel whose threads x walk rows of length L (bx a power
    of two from 32 to `threads`) and whose threads y take rows."""
    bx = min(threads, max(32, pow2ceil(L)))
    return bx, threads // bx


def rows_grid(R, L, bx, by, cap):
    """The 2-D grid of a grid-stride kernel over R rows of length L, at most `cap` blocks."""
    gx = max(1, min((L + bx - 1) // bx, cap))
    gy = max(1, min((R + by - 1) // by, max(1, cap // gx), MAX_GRID_Y))
    return gx, gy
