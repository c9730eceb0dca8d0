"""F.interpolate (nearest, nearest-exact, linear / bilinear / trilinear, bicubic, area; 1-D, 2-D
and 3-D; size or scale_factor; align_corners; recompute_scale_factor), PyTorch's source
positions and weights.

Nearest modes pick one input per output along each axis: an IndexSelect per axis (any dtype;
the gradient adds back, IndexAdd). The others are separable linear maps, one sparse matrix per
axis (kernels/resample `taps`), applied two axes at a time by the resample kernel:

    Resample2d(rows, cols)(x)     y = R x C^T per plane    backward: Resample2d(rows.T, cols.T)

so the backward is the same kernel with the transposed matrices, and its backward the forward.
"""
import math
import numbers

import numpy

from ..autograd import Function
from ..devices import get_array_module
from ..dtypes import HALF_FLOATS
from ..dtypes import kind as dtype_kind
from ..kernels import resample as K
from .indexing import IndexSelect
from .shape import reshape
from .util import shape_str


class Resample2d(Function):
    """y[b] = rows @ x[b] @ cols^T for x (B, H, W), rows and cols kernels/resample Taps."""
    saves = ()

    def __init__(self, rows, cols):
        self.rows, self.cols = rows, cols

    def forward(self, x):
        return K.resample2d(x, self.rows, self.cols)

    def backward(self, gy):
        return Resample2d(self.rows.T, self.cols.T)(gy)


_MODES = {"nearest": None, "nearest-exact": None, "area": None, "linear": 1, "bilinear": 2,
          "bicubic": 2, "trilinear": 3}


def _nearest_index(n_in, n_out, scale, exact, shortcuts):
    """PyTorch's nearest source index for each output (UpSample.h nearest_idx /
    nearest_exact_idx), in float32 arithmetic; with `shortcuts` (its 2-D 'nearest' kernel, not
    the 1-D and 3-D ones) out == in and out == 2 in are exact, whatever the scale factor."""
    dst = numpy.arange(n_out)
    if shortcuts and n_out == n_in:
        return dst
    if shortcuts and n_out == 2 * n_in:
        return dst >> 1
    f32 = numpy.float32
    s = f32(1.0 / scale) if scale is not None and scale > 0 else f32(n_in) / f32(n_out)
    pos = ((dst + 0.5) * numpy.float64(s)).astype(f32) if exact else dst.astype(f32) * s
    return numpy.minimum(numpy.floor(pos).astype(numpy.int64), n_in - 1)


def _sizes(input, size, scale_factor, recompute_scale_factor, op):
    """(output sizes, the scales PyTorch hands its kernels: None entries where it recomputes)."""
    dims = input.ndim - 2
    spatial = tuple(input.shape[2:])
    if size is None and scale_factor is None:
        raise ValueError(f"{op}: either size or scale_factor should be defined")
    if size is not None and scale_factor is not None:
        raise ValueError(f"{op}: only one of size or scale_factor should be defined")
    if size is not None:
        if recompute_scale_factor:
            raise ValueError(f"{op}: recompute_scale_factor is not meaningful with an explicit "
                             "size")
        out = (size,) * dims if isinstance(size, numbers.Integral) else tuple(size)
        if len(out) != dims:
            raise ValueError(f"{op}: Input and output must have the same number of spatial "
                             f"dimensions, but got input with spatial dimensions of "
                             f"{list(spatial)} and output size of {list(out)}. Please provide "
                             "input tensor in (N, C, d1, d2, ...,dK) format and output size in "
                             "(o1, o2, ...,oK) format.")
        return tuple(int(o) for o in out), (None,) * dims
    scales = (scale_factor,) * dims if isinstance(scale_factor, numbers.Real) else \
        tuple(scale_factor)
    if len(scales) != dims:
        raise ValueError(f"{op}: Input and scale_factor must have the same number of spatial "
                         f"dimensions, but got input with spatial dimensions of {list(spatial)} "
                         f"and scale_factor of shape {list(scales)}. Please provide input tensor "
                         "in (N, C, d1, d2, ...,dK) format and scale_factor in (s1, s2, ...,sK) "
                         "format.")
    out = tuple(int(math.floor(float(n) * float(s))) for n, s in zip(spatial, scales))
    return out, (None,) * dims if recompute_scale_factor else tuple(float(s) for s in scales)


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """F.interpolate on (N, C, L), (N, C, H, W) or (N, C, D, H, W) inputs."""
    op = "interpolate"
    if mode not in _MODES:
        raise ValueError(f"{op}: mode must be one of {', '.join(_MODES)}, got {mode!r}")
    if input.ndim not in (3, 4, 5):
        raise ValueError(f"{op}: expected a 3-D, 4-D or 5-D input (N, C, ...), got shape "
                         f"{shape_str(input.shape)}")
    dims = input.ndim - 2
    if _MODES[mode] is not None and _MODES[mode] != dims:
        raise ValueError(f"{op}: got {input.ndim}D input, but {mode} mode needs "
                         f"{_MODES[mode] + 2}D input")
    if align_corners is not None and _MODES[mode] is None:
        raise ValueError(f"{op}: align_corners option can only be set with the interpolating "
                         "modes: linear | bilinear | bicubic | trilinear")
    if antialias:
        raise ValueError(f"{op}: antialias=True is not supported")
    out, scales = _sizes(input, size, scale_factor, recompute_scale_factor, op)
    for n, o in zip(input.shape[2:], out):
        K.check_sizes(n, o, op)
    if mode in ("nearest", "nearest-exact"):
        xp = get_array_module(input.array)
        for axis, (n, o, s) in enumerate(zip(input.shape[2:], out, scales)):
            index = _nearest_index(n, o, s, mode == "nearest-exact",
                                   shortcuts=mode == "nearest" and dims == 2)
            if o != n or (index != numpy.arange(n)).any():
                input = IndexSelect(xp.asarray(index), axis + 2)(input)
        return input
    if dtype_kind(input.array.dtype) != "f":
        raise TypeError(f"{op}: {mode} mode expects a floating point input, got {input.dtype}")
    # half inputs take float32 weights (computed in float32, as PyTorch's acc type)
    dtype = "float32" if input.array.dtype in HALF_FLOATS else input.array.dtype.name
    kind = {"area": "area", "bicubic": "cubic"}.get(mode, "linear")
    maps = [K.taps(n, o, kind, bool(align_corners), s, dtype)
            for n, o, s in zip(input.shape[2:], out, scales)]
    N, C = input.shape[:2]
    if dims == 1:
        y = Resample2d(K.identity(1), maps[0])(reshape(input, (N * C, 1, input.shape[2])))
    elif dims == 2:
        y = Resample2d(*maps)(reshape(input, (N * C,) + input.shape[2:]))
    else:   # depth with the (H * W) planes as columns, then the planes
        D, H, W = input.shape[2:]
        y = Resample2d(maps[0], K.identity(H * W))(reshape(input, (N * C, D, H * W)))
        y = Resample2d(maps[1], maps[2])(reshape(y, (N * C * out[0], H, W)))
    return reshape(y, (N, C) + out)


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    """F.upsample (deprecated in PyTorch): interpolate."""
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input, size=None, scale_factor=None):
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input, size=None, scale_factor=None):
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)
