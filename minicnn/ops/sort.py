"""Order statistics: sort, argsort, msort, topk, kthvalue, median.

The indices come from the top-k kernel family (kernels/topk: its kernels for topk, PyTorch's
sort order otherwise: NaN largest, stable); the values are the input gathered at them (Gather),
so the gradient goes to the selected elements and has a gradient itself.
"""
import collections

from ..autograd import Function
from ..devices import get_array_module
from ..dtypes import kind as dtype_kind
from ..kernels import topk as K
from ..tensor import Tensor
from .indexing import Gather
from .shape import reshape, squeeze
from .util import normalize_axis, shape_str

class EvenShare(Function):
    """y = x.flat[index] (a 0-d result); the gradient is shared evenly by every element equal
    to y (every NaN, when y is NaN), as PyTorch's median(), max() and min() without a dim."""
    saves = ()

    def __init__(self, index):
        self.index = index

    def forward(self, x):
        y = x.reshape(-1)[self.index]
        xp = get_array_module(x)
        mask = xp.isnan(x) if y != y else x == y
        self.share = (mask / mask.sum()).astype(x.dtype)
        return y.reshape(())

    def backward(self, gy):
        return gy * Tensor._wrap(self.share)


def _median_all(input):
    flat = reshape(input, -1)
    if flat.shape[0] == 0:
        raise ValueError("median: cannot compute the median of an empty tensor")
    index = int(median(flat.detach(), 0).indices.item())
    return EvenShare(index)(input)


SortResult = collections.namedtuple("SortResult", ["values", "indices"])
TopkResult = collections.namedtuple("TopkResult", ["values", "indices"])
KthvalueResult = collections.namedtuple("KthvalueResult", ["values", "indices"])
MedianResult = collections.namedtuple("MedianResult", ["values", "indices"])


def _last(a, axis, xp):
    """a with `axis` moved last, as (rows, L), and the moved shape."""
    moved = xp.moveaxis(a, axis, -1)
    return moved.reshape(-1, moved.shape[-1]), moved.shape


def _back(idx, moved_shape, axis, xp):
    return xp.moveaxis(idx.reshape(moved_shape[:-1] + (idx.shape[-1],)), -1, axis)


def _axis(x, dim, op):
    return normalize_axis(dim, x.ndim, op) if x.ndim else 0


def _order(x, axis, descending):
    xp = get_array_module(x.array)
    rows, moved = _last(x.array.reshape(1) if x.ndim == 0 else x.array, axis, xp)
    return _back(K.argsort(rows, descending), moved, axis, xp)


def argsort(input, dim=-1, descending=False, *, stable=False):
    """The indices that sort input along dim (stable; NaN largest)."""
    axis = _axis(input, dim, "argsort")
    idx = _order(input, axis, descending)
    return Tensor._wrap(idx.reshape(()) if input.ndim == 0 else idx)


def sort(input, dim=-1, descending=False, *, stable=False):
    """(values, indices) of input sorted along dim (stable; NaN largest)."""
    axis = _axis(input, dim, "sort")
    if input.ndim == 0:
        return SortResult(input, Tensor._wrap(get_array_module(input.array).zeros((), "int64")))
    idx = _order(input, axis, descending)
    return SortResult(Gather(idx, axis)(input), Tensor._wrap(idx))


def msort(input):
    return sort(input, 0).values


def topk(input, k, dim=-1, largest=True, sorted=True):  # noqa: A002 -- PyTorch's names
    """(values, indices) of the k largest (smallest) elements along dim, largest first
    (sorted is accepted; the result is always sorted)."""
    axis = _axis(input, dim, "topk")
    n = input.shape[axis] if input.ndim else 1
    k = int(k)
    if not 0 <= k <= n:
        raise ValueError(f"topk: selected index k ({k}) out of range for dim {axis} of size {n} "
                         f"(input {shape_str(input.shape)})")
    xp = get_array_module(input.array)
    if input.ndim == 0:     # PyTorch: the element itself, for k 0 or 1
        return TopkResult(input, Tensor._wrap(xp.zeros((), xp.int64)))
    rows, moved = _last(input.array, axis, xp)
    idx = _back(K.topk(rows, k, largest)[1], moved, axis, xp)
    return TopkResult(Gather(idx, axis)(input), Tensor._wrap(idx))


def _select(input, dim, keepdim, position, op, result):
    """The element at sorted position `position(n)` of each line along dim (ascending)."""
    axis = _axis(input, dim, op)
    n = input.shape[axis] if input.ndim else 1
    if n == 0:
        raise ValueError(f"{op}: cannot select from an empty dim {axis} (input "
                         f"{shape_str(input.shape)})")
    xp = get_array_module(input.array)
    order = _order(input, axis, False)
    k = position(n, order, xp, axis)
    idx = xp.take_along_axis(order, k, axis=axis) if input.ndim else order[:1]
    if input.ndim == 0:
        return result(input, Tensor._wrap(xp.zeros((), xp.int64)))
    values = Gather(idx, axis)(input)
    if not keepdim:
        values, idx = squeeze(values, axis), idx.squeeze(axis)
    return result(values, Tensor._wrap(idx))


def kthvalue(input, k, dim=-1, keepdim=False):
    """(values, indices) of the k-th smallest element along dim (k from 1)."""
    axis = _axis(input, dim, "kthvalue")
    n = input.shape[axis] if input.ndim else 1
    if not 1 <= int(k) <= n:
        raise ValueError(f"kthvalue: selected number k ({k}) out of range for dim {axis} of "
                         f"size {n} (input {shape_str(input.shape)})")

    def position(n, order, xp, axis):
        shape = list(order.shape)
        shape[axis] = 1
        return xp.full(shape, int(k) - 1, xp.int64)
    return _select(input, dim, keepdim, position, "kthvalue", KthvalueResult)


def median(input, dim=None, keepdim=False):
    """The lower median ((n - 1) // 2-th smallest) of all elements, or (values, indices) along
    dim; a line with a NaN has median NaN (at its first NaN), as in PyTorch."""
    if dim is None:
        return _median_all(input)

    def position(n, order, xp, axis):
        a = input.array
        nan = xp.isnan(a) if dtype_kind(a.dtype) == "f" else xp.zeros(a.shape, bool)
        any_nan = nan.any(axis=axis, keepdims=True)
        # the first NaN's place in the sorted order (NaNs sort last, stably)
        first_nan = n - nan.sum(axis=axis, keepdims=True)
        return xp.where(any_nan, first_nan, (n - 1) // 2).astype(xp.int64)
    return _select(input, dim, keepdim, position, "median", MedianResult)
