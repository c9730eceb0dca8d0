"""Scans along one dim: cumsum, cumprod, logcumsumexp, cummax, cummin.

Float tensors run the scan kernel family (kernels/scan); integer ones (no gradient) array code,
cumsum and cumprod in int64 as PyTorch. The gradients are PyTorch's, written with these ops so
they have gradients too:

    cumsum          gx = reverse cumsum of gy
    cumprod         gx = reverse cumsum(gy * y) / x; with zeros, PyTorch's first-zero form, or
                    under create_graph its O(n^2) one (see _cumprod_grad)
    logcumsumexp    gx = exp(x + reverse logcumsumexp(log|gy| - y)), positive and negative
                    parts of gy apart (TensorFlow's and PyTorch's stable form)
    cummax/cummin   values = gather(x, indices), so the gradient goes to the indices
"""
import collections

from ..autograd import Function, is_grad_enabled
from ..devices import get_array_module
from ..dtypes import resolve
from ..dtypes import kind as dtype_kind
from ..kernels import scan as K
from ..tensor import Tensor
from . import autocast
from .arith import cast, where
from .elementwise import abs as _abs
from .elementwise import exp, log
from .indexing import Gather
from .rearrange import flip
from .util import normalize_axis

ScanResult = collections.namedtuple("ScanResult", ["values", "indices"])


class Scan(Function):
    """y = scan_op(x) along axis (op: 'sum', 'prod', 'logsumexp'), by the scan kernels."""
    saves = {0: (0,)}
    saves_outputs = (0,)

    def __init__(self, axis, op):
        self.axis, self.op = axis, op

    def forward(self, x):
        self.y = K.scan(x, self.axis, self.op)
        return self.y

    def backward(self, gy):
        x, y = self.inputs[0], self.retained_output(self.y)
        if self.op == "sum" or x.ndim == 0:
            return _reverse(gy, self.axis, "sum")
        if self.op == "logsumexp":
            return _logcumsumexp_grad(x, y, gy, self.axis)
        return _cumprod_grad(x, y, gy, self.axis)


def _reverse(t, axis, op):
    """The scan from the end of the axis."""
    return flip(Scan(axis, op)(flip(t, [axis])), [axis])


def _logcumsumexp_grad(x, y, gy, axis):
    xp = get_array_module(gy.array)
    lowest = Tensor._wrap(xp.full((), xp.finfo(gy.dtype).min, gy.dtype))
    log_abs = log(_abs(gy))
    pos = where(Tensor._wrap(gy.array > 0), log_abs, lowest)
    neg = where(Tensor._wrap(gy.array < 0), log_abs, lowest)
    return exp(_reverse(pos - y, axis, "logsumexp") + x) - \
        exp(_reverse(neg - y, axis, "logsumexp") + x)


def _cumprod_grad(x, y, gy, axis):
    """PyTorch's cumprod_backward: reverse_cumsum(gy * y) / x with no zero. With zeros, for a
    first derivative, its first-zero form (before a line's first zero as without zeros; at it,
    the sum over j of gy_j times the products that skip it; after it, 0), and when the backward
    is recorded (create_graph), its O(n^2) form, differentiable again: gx_k = sum over j >= k
    of gy_j times the product of x_0..x_j without x_k."""
    if x.array.size <= 1 or x.shape[axis] == 1:   # PyTorch's shortcuts (where x is NaN too)
        return gy
    zero = x.array == 0
    if not zero.any():
        return _reverse(gy * y, axis, "sum") / x
    xp = get_array_module(x.array)
    one = Tensor._wrap(xp.ones((), x.dtype))
    if not is_grad_enabled():
        n = x.shape[axis]
        pos = xp.arange(n).reshape((n,) + (1,) * (x.ndim - axis - 1))
        first = xp.where(zero.any(axis=axis, keepdims=True),
                         zero.argmax(axis=axis, keepdims=True), n)
        before, at = Tensor._wrap(pos < first), Tensor._wrap(pos == first)
        nil = Tensor._wrap(xp.zeros((), x.dtype))
        # before the zero: y_j is 0 from the zero on, so only the terms before it (as PyTorch)
        g_before = _reverse(where(before, gy * y, nil), axis, "sum") / where(before, x, one)
        # at it: (product before it) * sum over j >= z of gy_j * (product after it, to j)
        prefix = Scan(axis, "prod")(where(before, x, one))
        after = Tensor._wrap(pos > first)
        g_at = prefix * _reverse(gy * Scan(axis, "prod")(where(after, x, one)), axis, "sum")
        return where(before, g_before, where(at, g_at, nil))
    from .indexing import getitem  # noqa: PLC0415
    from .reduce import prod, sum as _sum  # noqa: PLC0415
    from .shape import concatenate, stack  # noqa: PLC0415

    def part(t, lo, hi=None):
        return getitem(t, (slice(None),) * axis + (slice(lo, hi),))
    grads = []
    for k in range(x.shape[axis]):
        until = prod(part(x, 0, k), axis, keepdim=True)            # x_0 .. x_(k-1)
        omitted = concatenate([until, until * Scan(axis, "prod")(part(x, k + 1))], axis)
        grads.append(_sum(part(gy, k) * omitted, axis))
    return stack(grads, axis)


def _scan(x, dim, dtype, op, name):
    axis = normalize_axis(dim, x.ndim, name)
    if dtype is not None:
        x = cast(x, resolve(dtype))
    else:
        x = autocast.args(name, x)
    if dtype_kind(x.array.dtype) not in "f":
        if op == "logsumexp":
            raise TypeError(f"{name}: expected a floating point tensor, got {x.dtype}")
        xp = get_array_module(x.array)
        fn = xp.cumsum if op == "sum" else xp.cumprod
        a = x.array.reshape(1) if x.ndim == 0 else x.array
        return Tensor._wrap(fn(a, axis=axis, dtype=xp.int64).reshape(x.shape))
    return Scan(axis if x.ndim else 0, op)(x)


def cumsum(input, dim, *, dtype=None):
    """Cumulative sum along dim (integer and bool tensors: in int64)."""
    return _scan(input, dim, dtype, "sum", "cumsum")


def cumprod(input, dim, *, dtype=None):
    """Cumulative product along dim (integer and bool tensors: in int64)."""
    return _scan(input, dim, dtype, "prod", "cumprod")


def logcumsumexp(input, dim):
    """log(cumsum(exp(input))) along dim, computed stably."""
    return _scan(input, dim, None, "logsumexp", "logcumsumexp")


def _running_arg(xp, a, axis, op):
    """Indices of the running max / min of an integer array along axis (a later tie takes
    over), by a log-step scan over (value, index) pairs: array code for NumPy and CuPy."""
    a = xp.moveaxis(a, axis, 0)
    v = a.copy()
    i = xp.broadcast_to(xp.arange(a.shape[0]).reshape((-1,) + (1,) * (a.ndim - 1)),
                        a.shape).copy()
    s = 1
    while s < a.shape[0]:
        take = v[s:] >= v[:-s] if op == "max" else v[s:] <= v[:-s]
        v[s:], i[s:] = xp.where(take, v[s:], v[:-s]), xp.where(take, i[s:], i[:-s])
        s *= 2
    return xp.moveaxis(i, 0, axis)


def _cum_extreme(x, dim, op):
    name = "cum" + op
    axis = normalize_axis(dim, x.ndim, name)
    xp = get_array_module(x.array)
    a = x.array.reshape(1) if x.ndim == 0 else x.array
    if dtype_kind(a.dtype) == "f":
        index = K.scan_arg(a, axis, op)[1]
    elif dtype_kind(a.dtype) == "b":
        index = _running_arg(xp, a.astype(xp.int8), axis, op)
    else:
        index = _running_arg(xp, a, axis, op)
    if x.ndim == 0:
        return ScanResult(x, Tensor._wrap(xp.zeros((), xp.int64)))
    return ScanResult(Gather(index, axis)(x), Tensor._wrap(index))


def cummax(input, dim):
    """(values, indices) of the running maximum along dim; a later tie or NaN takes over."""
    return _cum_extreme(input, dim, "max")


def cummin(input, dim):
    """(values, indices) of the running minimum along dim; a later tie or NaN takes over."""
    return _cum_extreme(input, dim, "min")
