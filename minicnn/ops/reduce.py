"""Reductions: sum, mean, prod, logsumexp, amax/amin (max/min), var, std (var_mean, std_mean),
and those without gradient: all, any, argmax, argmin.

Each takes PyTorch's dim/keepdim; the public wrappers also accept NumPy's axis/keepdims.
"""
import collections
import math

import numpy

from ..autograd import Function, is_grad_enabled
from ..devices import get_array_module
from ..dtypes import get_default_dtype, resolve
from ..dtypes import kind as dtype_kind
from ..kernels import in_float32
from ..tensor import Tensor
from . import autocast
from .shape import broadcast_to, reshape
from .util import normalize_axes, normalize_axis, shape_str


def _kept_shape(in_shape, axes):
    """The output shape with keepdims=True, so gradients broadcast back."""
    if axes is None:
        return (1,) * len(in_shape)
    return tuple(1 if i in axes else s for i, s in enumerate(in_shape))


def _spread(gy, in_shape, axes):
    """Broadcast an output gradient back over the reduced axes."""
    return broadcast_to(reshape(gy, _kept_shape(in_shape, axes)), in_shape)


def _count(shape, axes):
    return math.prod(shape) if axes is None else math.prod(shape[a] for a in axes)


class Sum(Function):
    saves = ()

    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    @in_float32   # half: accumulated in float32, as PyTorch does
    def forward(self, x):
        self.in_shape = x.shape
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        return _spread(gy, self.in_shape, self.axes)


class Mean(Function):
    saves = ()

    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    @in_float32   # half: accumulated in float32, as PyTorch does
    def forward(self, x):
        self.in_shape = x.shape
        return x.mean(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        return _spread(gy, self.in_shape, self.axes) / _count(self.in_shape, self.axes)


class AMax(Function):
    """Max over axes; ties share the gradient evenly (PyTorch's amax)."""
    saves = ()  # the shares, made in the forward
    reduce = "max"

    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        self.in_shape = x.shape
        y = getattr(x, self.reduce)(axis=self.axes, keepdims=True)
        mask = x == y
        self.share = mask / mask.sum(axis=self.axes, keepdims=True)
        return y if self.keepdims else y.reshape(
            tuple(s for i, s in enumerate(x.shape) if self.axes is not None and i not in self.axes))

    def backward(self, gy):
        return _spread(gy, self.in_shape, self.axes) * Tensor._wrap(
            self.share.astype(gy.array.dtype, copy=False))


class AMin(AMax):
    reduce = "min"


class Var(Function):
    saves = (0,)

    def __init__(self, axes, correction, keepdims):
        self.axes, self.correction, self.keepdims = axes, correction, keepdims

    @in_float32   # half: accumulated in float32, as PyTorch does
    def forward(self, x):
        self.in_shape = x.shape
        self.dof = _count(x.shape, self.axes) - self.correction
        return x.var(axis=self.axes, ddof=self.correction, keepdims=self.keepdims)

    def backward(self, gy):
        x = self.inputs[0]
        centered = x - Mean(self.axes, True)(x)
        # PyTorch's 2 / (n - correction): inf with no degrees of freedom (a NaN gradient)
        scale = 2.0 / self.dof if self.dof else math.inf
        return _spread(gy, self.in_shape, self.axes) * centered * scale


def _check_float(x, op):
    if dtype_kind(x.array.dtype) != "f" and x.requires_grad:
        raise TypeError(f"{op}: expected a floating point tensor, got dtype {x.array.dtype}")


def _as_dtype(x, dtype):
    """x cast to `dtype` when given (PyTorch's dtype= of sum, mean, prod); integer and bool
    tensors otherwise reduce in int64."""
    from .arith import cast  # noqa: PLC0415
    if dtype is not None:
        return cast(x, resolve(dtype))
    if dtype_kind(x.array.dtype) in "biu":
        return cast(x, numpy.int64)
    return x


def sum(x, dim=None, keepdim=False, *, dtype=None):  # noqa: A001 -- PyTorch's name
    axes = normalize_axes(dim, x.ndim, "sum")
    x = autocast.args("sum", x) if dtype is None else x
    return Sum(axes, keepdim)(_as_dtype(x, dtype))


def mean(x, dim=None, keepdim=False, *, dtype=None):
    x = _as_dtype(x, dtype) if dtype is not None else x
    if dtype_kind(x.array.dtype) not in "fc":
        raise TypeError(f"mean: expected a floating point tensor, got dtype {x.array.dtype}")
    return Mean(normalize_axes(dim, x.ndim, "mean"), keepdim)(x)


class Prod(Function):
    """Product over one axis (or all). PyTorch's gradient: gy * y / x with no zero; 0 for the
    product of all with two zeros or more (outside create_graph); otherwise gy times the
    product of the other elements, from the exclusive products on each side (its
    prod_safe_zeros_backward), which is differentiable again."""
    saves = (0,)
    saves_outputs = (0,)

    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        self.in_shape = x.shape
        self.y = x.prod(axis=self.axes, keepdims=self.keepdims)
        return self.y

    def backward(self, gy):
        x = self.inputs[0]
        g = _spread(gy, self.in_shape, self.axes)
        zeros = int((x.array == 0).sum())
        if not zeros:
            return g * _spread(self.retained_output(self.y), self.in_shape, self.axes) / x
        if zeros > 1 and self.axes is None and not is_grad_enabled():
            # PyTorch's product of all outside create_graph: zeros, NaN or not
            return Tensor._wrap(get_array_module(x.array).zeros(x.shape, x.dtype))
        return g * _others_product(x, self.axes)


def _others_product(x, axes):
    """prod over `axes` (one axis, or None: all) of every element but the one at each place."""
    from .indexing import getitem  # noqa: PLC0415
    from .rearrange import flip  # noqa: PLC0415
    from .scan import cumprod  # noqa: PLC0415
    from .shape import concatenate  # noqa: PLC0415
    if axes is None:
        return reshape(_others_product(reshape(x, -1), (0,)), x.shape)
    axis = axes[0]
    n = x.shape[axis]
    ones = Tensor._wrap(get_array_module(x.array).ones(
        x.shape[:axis] + (1,) + x.shape[axis + 1:], x.dtype))

    def part(lo, hi):
        return getitem(x, (slice(None),) * axis + (slice(lo, hi),))
    before = cumprod(concatenate([ones, part(0, n - 1)], axis), axis)
    after = flip(cumprod(concatenate([ones, flip(part(1, n), [axis])], axis), axis), [axis])
    return before * after


def prod(x, dim=None, keepdim=False, *, dtype=None):
    """Product of the elements (over one dim, as PyTorch's prod takes an int dim)."""
    if dim is not None and not isinstance(dim, int):
        raise TypeError(f"prod: dim must be an int, got {dim!r}")
    axes = normalize_axes(dim, x.ndim, "prod")
    x = autocast.args("prod", x) if dtype is None else x
    return Prod(axes, keepdim)(_as_dtype(x, dtype))


def logsumexp(x, dim, keepdim=False):
    """log(sum(exp(x))) over dim, computed stably: the max is taken out (as a constant, where it
    is finite), so the gradient is softmax(x)."""
    from .arith import cast  # noqa: PLC0415
    from .elementwise import exp, log  # noqa: PLC0415
    x = autocast.args("logsumexp", x)
    if dtype_kind(x.array.dtype) != "f":
        x = cast(x, get_default_dtype())
    axes = normalize_axes(dim, x.ndim, "logsumexp")
    if x.array.size == 0:
        return log(sum(exp(x), dim, keepdim))
    xp = get_array_module(x.array)
    m = x.array.max(axis=axes, keepdims=True)
    m = Tensor._wrap(xp.where(xp.isinf(m), 0, m).astype(x.dtype))
    out = log(sum(exp(x - m), dim, True)) + m
    return out if keepdim else reshape(out, tuple(
        n for i, n in enumerate(x.shape) if axes is not None and i not in axes))


def _bool_reduce(x, dim, keepdim, name):
    axes = normalize_axes(dim, x.ndim, name)
    xp = get_array_module(x.array)
    out = getattr(xp, name)(x.array, axis=axes, keepdims=keepdim)
    if x.array.dtype == numpy.uint8:      # PyTorch keeps uint8 for uint8 input
        out = out.astype(numpy.uint8)
    return Tensor._wrap(xp.asarray(out))


def all_(x, dim=None, keepdim=False):   # mc.all (the builtin stays usable in this module)
    """Whether every element (over dim) is non-zero: bool (uint8 for uint8 input)."""
    return _bool_reduce(x, dim, keepdim, "all")


def any_(x, dim=None, keepdim=False):   # mc.any
    """Whether some element (over dim) is non-zero: bool (uint8 for uint8 input)."""
    return _bool_reduce(x, dim, keepdim, "any")


def _check_nonempty(x, axes, op):
    if x.array.size == 0 or (axes is not None and any(x.shape[a] == 0 for a in axes)):
        raise ValueError(f"{op}: cannot reduce over an empty dimension of a tensor of shape "
                         f"{shape_str(x.shape)}")


def amax(x, dim=None, keepdim=False):
    axes = normalize_axes(dim, x.ndim, "amax")
    _check_nonempty(x, axes, "amax")
    return AMax(axes, keepdim)(x)


def amin(x, dim=None, keepdim=False):
    axes = normalize_axes(dim, x.ndim, "amin")
    _check_nonempty(x, axes, "amin")
    return AMin(axes, keepdim)(x)


MaxResult = collections.namedtuple("MaxResult", ["values", "indices"])


def _value_and_index(x, dim, keepdim, arg, op):
    """torch.max(x, dim): (values, indices); the gradient goes to the selected index only."""
    from .indexing import gather  # noqa: PLC0415
    from .shape import squeeze  # noqa: PLC0415
    axis = normalize_axis(dim, x.ndim, op)
    _check_nonempty(x, (axis,), op)
    xp = get_array_module(x.array)
    idx = xp.expand_dims(xp.asarray(getattr(xp, arg)(x.array, axis=axis)), axis)
    values = gather(x, axis, idx)
    if not keepdim:
        values, idx = squeeze(values, axis), idx.squeeze(axis)
    return MaxResult(values, Tensor._wrap(idx))


def max(x, dim=None, keepdim=False):  # noqa: A001
    if dim is None:
        return amax(x)
    if isinstance(dim, Tensor):
        from .arith import maximum  # noqa: PLC0415
        return maximum(x, dim)
    return _value_and_index(x, dim, keepdim, "argmax", "max")


def min(x, dim=None, keepdim=False):  # noqa: A001
    if dim is None:
        return amin(x)
    if isinstance(dim, Tensor):
        from .arith import minimum  # noqa: PLC0415
        return minimum(x, dim)
    return _value_and_index(x, dim, keepdim, "argmin", "min")


def _correction(unbiased, correction):
    if correction is not None:
        return correction
    return 1 if unbiased is None or unbiased else 0


def var(x, dim=None, unbiased=None, keepdim=False, correction=None):
    _check_float(x, "var")
    axes = normalize_axes(dim, x.ndim, "var")
    return Var(axes, _correction(unbiased, correction), keepdim)(x)


def std(x, dim=None, unbiased=None, keepdim=False, correction=None):
    from .elementwise import sqrt  # noqa: PLC0415
    return sqrt(var(x, dim, unbiased, keepdim, correction))


def var_mean(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """(var, mean) over dim, as torch.var_mean."""
    return var(x, dim, unbiased, keepdim, correction), mean(x, dim, keepdim)


def std_mean(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """(std, mean) over dim, as torch.std_mean."""
    return std(x, dim, unbiased, keepdim, correction), mean(x, dim, keepdim)


def _arg(x, dim, keepdim, name):
    xp = get_array_module(x.array)
    if dim is None:
        out = getattr(xp, name)(x.array)
        return Tensor._wrap(xp.asarray(out).reshape((1,) * x.ndim if keepdim else ()))
    axis = normalize_axis(dim, x.ndim, name)
    return Tensor._wrap(getattr(xp, name)(x.array, axis=axis, keepdims=keepdim))


def argmax(x, dim=None, keepdim=False):
    return _arg(x, dim, keepdim, "argmax")


def argmin(x, dim=None, keepdim=False):
    return _arg(x, dim, keepdim, "argmin")
