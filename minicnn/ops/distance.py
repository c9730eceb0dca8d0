"""Norms and distances under PyTorch's names: norm (torch.linalg.vector_norm's p-norms),
F.normalize, F.cosine_similarity, F.pairwise_distance.

VectorNorm's backward is PyTorch's norm_backward written with Tensor ops (so it has a backward
too): p = 2 gives x * gy / ||x|| and 0 where ||x|| = 0 (not NaN), p = 1 sign(x) * gy, p = inf
shares gy evenly among the entries of largest magnitude (and NaNs), p = 0 no gradient.
"""
import math
import numbers

import numpy

from ..autograd import Function
from ..devices import get_array_module
from ..dtypes import is_floating
from ..tensor import Tensor
from .arith import where
from .elementwise import sign
from .util import broadcast_shapes, composite_in_float32, normalize_axes, shape_str


def _c(like, array):
    """A constant Tensor of like's dtype."""
    return Tensor._wrap(array.astype(like.dtype, copy=False))


class VectorNorm(Function):
    """(sum |x|^p)^(1/p) over `axes` (all when None); any real p, inf and -inf."""
    saves = (0,)
    saves_outputs = (0,)

    def __init__(self, p, axes, keepdim):
        self.p, self.axes, self.keepdim = p, axes, keepdim

    def forward(self, x):
        xp = get_array_module(x)
        p, axes = self.p, self.axes
        a = xp.abs(x)
        with numpy.errstate(all="ignore"):
            if p == 2:
                y = xp.sqrt((x * x).sum(axis=axes, keepdims=True))
            elif p == 1:
                y = a.sum(axis=axes, keepdims=True)
            elif p == math.inf:
                y = a.max(axis=axes, keepdims=True)
            elif p == -math.inf:
                y = a.min(axis=axes, keepdims=True)
            elif p == 0:
                y = (x != 0).sum(axis=axes, keepdims=True).astype(x.dtype)
            else:
                y = (a ** p).sum(axis=axes, keepdims=True) ** (1.0 / p)
        self.y = y.astype(x.dtype, copy=False)     # kept dims: broadcasts against x
        return self.y if self.keepdim else _squeeze(self.y, axes, x.ndim)

    def backward(self, gy):
        x, y, p = self.inputs[0], self.retained_output(self.y), self.p
        if not self.keepdim:
            gy = gy.reshape(self.y.shape)
        xp = get_array_module(x.array)
        if p == 0:
            return Tensor._wrap(xp.zeros(x.shape, x.dtype))
        if p == 1:
            return sign(x) * gy
        if math.isinf(p):     # an even share for every entry at the extreme (or NaN)
            ax = x.abs()
            mask = _c(x, (ax.array == y.array) | xp.isnan(ax.array))
            return sign(x) * (gy / mask.sum(dim=self.axes, keepdim=True)) * mask
        zero = y.array == 0
        safe = where(zero, 1.0, y)
        if p == 2:
            return x * where(zero, 0.0, gy / safe)
        if p < 1:
            scaled = where(x.array == 0, 0.0, sign(x) * x.abs() ** (p - 1))
            return scaled * gy * safe ** (1 - p)
        scale = where(zero, 0.0, gy / safe ** (p - 1))
        return x * x.abs() ** (p - 2) * scale


def _squeeze(a, axes, ndim):
    axes = range(ndim) if axes is None else axes
    return a.reshape(tuple(s for i, s in enumerate(a.shape) if i not in axes))


def _check_float(op, *tensors):
    for t in tensors:
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: expected Tensor inputs, got {type(t).__name__}")
        if not is_floating(t.array.dtype):
            raise TypeError(f"{op}: expected a floating point input, got {t.dtype} (shape "
                            f"{shape_str(t.shape)})")


def _check_p(op, p):
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or math.isnan(p):
        raise ValueError(f"{op}: p must be a number (or inf), got {p!r}")
    return float(p)


def norm(input, p=2, dim=None, keepdim=False):
    """The p-norm of the entries (all, or over `dim`): torch.norm / torch.linalg.vector_norm for
    p = 'fro' or any real p (0 counts the non-zeros), inf and -inf."""
    _check_float("norm", input)
    p = 2.0 if p == "fro" else _check_p("norm", p)
    axes = normalize_axes(dim, input.ndim, "norm")
    return VectorNorm(p, axes, bool(keepdim))(input)


@composite_in_float32
def normalize(input, p=2.0, dim=1, eps=1e-12):
    """F.normalize: input / max(||input||_p over dim, eps)."""
    _check_float("normalize", input)
    p = _check_p("normalize", p)
    denom = _kept_norm(input, p, normalize_axes(dim, input.ndim, "normalize"))
    return input / denom.clamp(min=eps)


def _kept_norm(x, p, axes):
    """||x||_p over axes, kept as size-1 dims. Over one element that is |x| for every p but 0,
    and taken as abs(x): exact, where (|x|^p)^(1/p) is not, so that x / ||x|| is exactly +-1
    and its gradient, 0 in exact arithmetic, cancels to 0 (abs's and the quotient's terms are
    equal) rather than leaving a rounding residue (which the half dtypes keep)."""
    if p != 0 and all(x.shape[a] == 1 for a in (range(x.ndim) if axes is None else axes)):
        return x.abs()
    return VectorNorm(p, axes, True)(x)


class _ClampMinThrough(Function):
    """max(x, eps) whose gradient passes as if unclamped: PyTorch's cosine_similarity clamps the
    norms in place under no_grad, so their gradient is the plain norm's."""
    saves = ()

    def __init__(self, eps):
        self.eps = eps

    def forward(self, x):
        return get_array_module(x).maximum(x, x.dtype.type(self.eps))

    def backward(self, gy):
        return gy


def _broadcast(op, x1, x2):
    try:
        shape = broadcast_shapes(x1.shape, x2.shape)
    except ValueError:
        raise ValueError(f"{op}: the shapes of x1 {shape_str(x1.shape)} and x2 "
                         f"{shape_str(x2.shape)} cannot be broadcast together") from None
    if x1.dtype != x2.dtype:
        raise TypeError(f"{op}: x1 ({x1.dtype}) and x2 ({x2.dtype}) must have the same dtype")
    return x1.expand(*shape), x2.expand(*shape)


@composite_in_float32
def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """F.cosine_similarity: sum(x1 / ||x1|| * x2 / ||x2||) over dim, each norm at least eps
    (PyTorch's form: each side normalised first, so the result stays within [-1, 1])."""
    op = "cosine_similarity"
    _check_float(op, x1, x2)
    x1, x2 = _broadcast(op, x1, x2)
    axes = normalize_axes(dim, x1.ndim, op)
    n1 = _ClampMinThrough(eps)(_kept_norm(x1, 2.0, axes))
    n2 = _ClampMinThrough(eps)(_kept_norm(x2, 2.0, axes))
    return ((x1 / n1) * (x2 / n2)).sum(dim=axes)


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """F.pairwise_distance: ||x1 - x2 + eps||_p over the last dim."""
    op = "pairwise_distance"
    _check_float(op, x1, x2)
    p = _check_p(op, p)
    _broadcast(op, x1, x2)
    d = x1 - x2 + eps
    if d.ndim == 0:
        raise ValueError(f"{op}: expected inputs with at least one dimension, got x1 "
                         f"{shape_str(x1.shape)} and x2 {shape_str(x2.shape)}")
    return VectorNorm(p, (d.ndim - 1,), bool(keepdim))(d)
