"""The resampling family: separable sparse linear maps over the last two dims of a (B, H, W)
array, the hot loop of F.interpolate's linear, bicubic and area modes.

    resample2d(x, rows, cols) -> y       y[b, o, p] = sum over row o's taps a of rows and
                                         column p's taps c of cols of
                                         rows.w[a] * cols.w[c] * x[b, rows.idx[a], cols.idx[c]]

`rows` and `cols` are Taps: an (out, in) sparse matrix in CSR form (ptr, idx, w) made on the
host by `taps(...)`, PyTorch's source indices and weights for one axis. Resampling is linear, so
its gradient is the same kernel with the transposed matrices: resample2d(gy, rows.T, cols.T)
(a gather per input element, deterministic, no atomics), and that one's gradient is the forward
again. The sums run over the row taps outside and the column taps inside, PyTorch's order.

    taps(n_in, n_out, mode, align_corners, scale, dtype) -> Taps   (mode: linear, cubic, area)
    identity(n)                                          -> Taps   (one tap of weight 1 each)
"""
import functools
import math

import numpy

from minicnn.devices import get_array_module, on_cuda_kernels
from minicnn.dtypes import HALF_FLOATS

from .. import lazy
from .._half import in_float32

_cpu = lazy(__name__ + ".cpu")
_cuda = lazy(__name__ + ".cuda")


@in_float32(half_kernels=True)
def resample2d(x, rows, cols):
    if x.ndim != 3 or x.shape[1] != rows.n_in or x.shape[2] != cols.n_in:
        raise ValueError(f"resample2d: x of shape {tuple(x.shape)} does not match taps from "
                         f"{rows.n_in} rows and {cols.n_in} columns")
    impl = _cuda if on_cuda_kernels(x) else _cpu
    xp = get_array_module(x)
    wdtype = numpy.float32 if x.dtype in HALF_FLOATS else x.dtype   # half x: float32 weights
    return impl.resample2d(x, *rows.arrays(xp, wdtype), *cols.arrays(xp, wdtype))


class Taps:
    """An (n_out, n_in) sparse matrix in CSR form: row o's entries are ptr[o]:ptr[o + 1] of idx
    (input positions) and w (weights, float64). `arrays(xp, dtype)` gives them on a device
    (weights in dtype), cached; `T` is the transpose (entries of a row in the order of the
    original rows)."""

    def __init__(self, ptr, idx, w, n_in):
        self.ptr, self.idx, self.w = (numpy.ascontiguousarray(ptr, numpy.int32),
                                      numpy.ascontiguousarray(idx, numpy.int32),
                                      numpy.ascontiguousarray(w, numpy.float64))
        self.n_in, self.n_out = int(n_in), len(self.ptr) - 1
        self._T = None
        self._on = {}

    def arrays(self, xp, dtype):
        key = (xp.__name__, numpy.dtype(dtype).str,
               int(xp.cuda.runtime.getDevice()) if xp is not numpy else None)
        got = self._on.get(key)
        if got is None:
            got = self._on[key] = (xp.asarray(self.ptr), xp.asarray(self.idx),
                                   xp.asarray(self.w.astype(dtype)))
        return got

    @property
    def T(self):  # noqa: N802
        if self._T is None:
            rows = numpy.repeat(numpy.arange(self.n_out, dtype=numpy.int32), numpy.diff(self.ptr))
            order = numpy.argsort(self.idx, kind="stable")
            ptr = numpy.zeros(self.n_in + 1, numpy.int64)
            ptr[1:] = numpy.cumsum(numpy.bincount(self.idx, minlength=self.n_in))
            self._T = Taps(ptr, rows[order], self.w[order], self.n_out)
            self._T._T = self
        return self._T

    def dense(self):
        """The matrix as a dense (n_out, n_in) float64 array (for references and tests)."""
        m = numpy.zeros((self.n_out, self.n_in))
        rows = numpy.repeat(numpy.arange(self.n_out), numpy.diff(self.ptr))
        numpy.add.at(m, (rows, self.idx), self.w)
        return m


def _from_rows(idx, w, n_in):
    """Taps with the same number of entries in every row: idx and w of shape (n_out, k)."""
    n_out, k = idx.shape
    return Taps(numpy.arange(n_out + 1) * k, idx.reshape(-1), w.reshape(-1), n_in)


def identity(n):
    return _from_rows(numpy.arange(n).reshape(n, 1), numpy.ones((n, 1)), n)


_CUBIC_A = -0.75


def _cubic_weights(t):
    """Keys' cubic convolution weights (a = -0.75, PyTorch's) of the 4 taps around a point at
    fraction t past the second one."""
    a = t.dtype.type(_CUBIC_A)

    def near(x):      # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):       # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    one = t.dtype.type(1)
    return numpy.stack([far(t + one), near(t), near(one - t), far(one - t + one)], axis=1)


def _half_pixel(s, n_out, dtype):
    """PyTorch's source positions s * (dst + 0.5) - 0.5 (no align_corners) rounded once, as a
    fused multiply-add: its AVX2 / AVX-512 CPU kernels are built with FMA and the compiler fuses
    area_pixel_compute_source_index's expression (nvcc does the same on the GPU). With two
    roundings (PyTorch's ATEN_CPU_CAPABILITY=default build) 0.2 * 2.5 - 0.5 is 0; fused it is
    2.8e-17, so the next input gets a weight of 2.8e-17, not 0, and an inf there gives inf
    where 0 * inf would give NaN. Exact in integers: s = num / den, the position is
    (num (2 dst + 1) - den) / (2 den), which Python's int division rounds correctly to float64;
    for float32 (24-bit num) that float64 is the exact value, rounded once more to float32."""
    num, den = float(s).as_integer_ratio()
    exact = numpy.array([(num * (2 * d + 1) - den) / (2 * den) for d in range(n_out)],
                        numpy.float64)
    return exact.astype(dtype)


def _guard(src, n_in, dtype):
    """UpSample.h guard_index_and_lambda: the input index is floorf(src), the floor of src
    rounded to float32 even for float64 (so a position a hair below an integer k counts as k),
    at most n_in - 1, and the fraction past it is clamped to [0, 1]."""
    f = numpy.dtype(dtype).type
    i0 = numpy.minimum(numpy.floor(src.astype(numpy.float32)).astype(numpy.int64), n_in - 1)
    return i0, numpy.clip(src - i0.astype(dtype), f(0), f(1))


@functools.lru_cache(maxsize=256)
def taps(n_in, n_out, mode, align_corners=False, scale=None, dtype="float64"):
    """PyTorch's interpolation along one axis (aten/src/ATen/native/UpSample.h, computed in
    `dtype`, as its kernels compute in the input's type): mode 'linear' (2 taps, the source
    position clamped at 0), 'cubic' (4 taps, clamped to the border), or 'area' (the windows of
    adaptive average pooling). `scale` is the user's scale factor, which PyTorch uses instead of
    n_in / n_out for the source positions unless align_corners. The positions and weights are
    its CPU kernels' to the bit where they decide a weight of exactly 0 (what makes 0 * inf NaN):
    the fused half-pixel position (_half_pixel) and its float32 floor (_guard)."""
    if mode == "area":
        o = numpy.arange(n_out)
        start, end = (o * n_in) // n_out, -((-(o + 1) * n_in) // n_out)
        ptr = numpy.concatenate([[0], numpy.cumsum(end - start)])
        idx = numpy.concatenate([numpy.arange(s, e) for s, e in zip(start, end)])
        w = numpy.repeat(1.0 / (end - start), end - start)
        return Taps(ptr, idx, w, n_in)
    f = numpy.dtype(dtype).type
    if align_corners:
        s = f(n_in - 1) / f(n_out - 1) if n_out > 1 else f(0)
    else:
        s = f(1.0 / scale) if scale is not None and scale > 0 else f(n_in) / f(n_out)
    src = s * numpy.arange(n_out).astype(dtype) if align_corners else _half_pixel(s, n_out, dtype)
    if mode == "linear":
        if n_out == n_in:   # PyTorch copies: both taps the same input, weights 1 and 0
            idx = numpy.arange(n_in)
            return _from_rows(numpy.stack([idx, idx], 1), numpy.stack(
                [numpy.ones(n_in, dtype), numpy.zeros(n_in, dtype)], 1), n_in)
        i0, l1 = _guard(numpy.maximum(src, f(0)), n_in, dtype)
        i1 = numpy.where(i0 < n_in - 1, i0 + 1, i0)
        return _from_rows(numpy.stack([i0, i1], 1), numpy.stack([f(1) - l1, l1], 1), n_in)
    if mode == "cubic":
        i0, t = _guard(src, n_in, dtype)
        w = _cubic_weights(t)
        idx = numpy.clip(i0[:, None] + numpy.arange(-1, 3), 0, n_in - 1)
        return _from_rows(idx, w, n_in)
    raise ValueError(f"taps: unknown mode {mode!r}")


def check_sizes(n_in, n_out, op):
    if n_in < 1 or n_out < 1 or not math.isfinite(n_out):
        raise ValueError(f"{op}: input and output sizes should be greater than 0, but got input "
                         f"size {n_in} and output size {n_out}")
