"""Indexing: x[key], index_select, gather; the ops that read or write elements by index.

PyTorch's indexing differs from NumPy's in one rule: integers are basic indices (each selects and
removes a dimension before any tensor index is applied), where NumPy counts an integer as an
advanced index. So `x[0, :, t]` is (3, 2) for x of shape (2, 3, 4) and t of 2 elements, where
NumPy gives (2, 3). `getitem` applies the basic part of such a key first and the tensor indices
to the view it leaves, which is PyTorch's layout; each step is its own Function, so gradients
(and their gradients) follow.
"""
import numbers

from ..autograd import Function
from ..devices import get_array_module, syncs_on_read
from ..devices import scatter_add as add_at
from ..dtypes import kind as dtype_kind
from ..tensor import Tensor
from .shape import reshape
from .util import normalize_axis, shape_str


def _array(x):
    return x.array if isinstance(x, Tensor) else x


# --- x[key] ------------------------------------------------------------------------------------

def _is_basic_key(key):
    items = key if isinstance(key, tuple) else (key,)
    return all(k is None or k is Ellipsis or isinstance(k, (int, slice)) and not isinstance(k, bool)
               for k in items)


def _saved_key(fn, key):
    """key, with each index array in it recorded by fn (save_array) for the in-place check."""
    for k in key if isinstance(key, tuple) else (key,):
        if hasattr(k, "ndim"):
            fn.save_array(k)
    return key


class GetItem(Function):
    saves = ()  # and the key's index arrays (save_array)

    def __init__(self, key):
        self.key = _saved_key(self, key)

    def forward(self, x):
        self.in_shape, self.in_dtype = x.shape, x.dtype
        return x[self.key]

    def backward(self, gy):
        return GetItemGrad(self.key, self.in_shape)(gy)


class GetItemGrad(Function):
    """Scatter a gradient back into zeros of the input's shape; repeated indices accumulate."""
    saves = ()  # and the key's index arrays (save_array)

    def __init__(self, key, in_shape):
        self.key, self.in_shape = _saved_key(self, key), in_shape

    def forward(self, gy):
        xp = get_array_module(gy)
        gx = xp.zeros(self.in_shape, gy.dtype)
        if _is_basic_key(self.key):
            gx[self.key] = gy
        else:
            add_at(xp, gx, self.key, gy)
        return gx

    def backward(self, ggx):
        return GetItem(self.key)(ggx)


def _key_item(k, xp):
    """One index as NumPy understands it: Tensors and lists become arrays, and a 0-d integer
    Tensor an int (PyTorch treats it as one)."""
    if isinstance(k, Tensor):
        a = k.array
        if a.ndim == 0 and dtype_kind(a.dtype) in "iu":
            return int(a)
        return a
    if isinstance(k, list):
        return xp.asarray(k)
    return k


def _key_to_arrays(key, xp):
    return tuple(_key_item(k, xp) for k in key) if isinstance(key, tuple) else _key_item(key, xp)


def _is_int(k):
    return isinstance(k, numbers.Integral) and not isinstance(k, bool)


def _is_advanced(k):
    return hasattr(k, "ndim") and hasattr(k, "dtype")


def split_key(key):
    """(basic, advanced): PyTorch's order of applying a key. When a key mixes integers with
    array indices, `basic` holds the integers, slices, None and Ellipsis (array positions become
    full slices) and `advanced` the array indices for the view `basic` leaves (other positions
    full slices); `x[key]` in PyTorch is `x[basic][advanced]` in NumPy. Otherwise (basic, None)
    with the key unchanged: NumPy and PyTorch agree."""
    items = key if isinstance(key, tuple) else (key,)
    if not (any(_is_int(k) for k in items) and any(_is_advanced(k) for k in items)):
        return key, None
    basic, advanced = [], []
    for k in items:
        if _is_int(k):
            basic.append(k)
        elif _is_advanced(k):
            # a bool mask consumes as many dims as it has
            basic.extend([slice(None)] * (k.ndim if dtype_kind(k.dtype) == "b" else 1))
            advanced.append(k)
        elif k is Ellipsis:
            basic.append(k)
            advanced.append(k)
        else:  # a slice, or None (a new dim of size 1)
            basic.append(k)
            advanced.append(slice(None))
    return tuple(basic), tuple(advanced)


def getitem(x, key):
    key = _key_to_arrays(key, get_array_module(x.array))
    basic, advanced = split_key(key)
    try:
        y = GetItem(basic)(x)
        return y if advanced is None else GetItem(advanced)(y)
    except IndexError as e:
        raise IndexError(f"getitem: {e} (tensor of shape {shape_str(x.shape)})") from None


# --- index_select ------------------------------------------------------------------------------

class IndexSelect(Function):
    """y = take(x, index, axis): gathers along one axis; backward adds into the same slots."""

    saves = ()  # and the index (save_array)

    def __init__(self, index, axis):
        self.index, self.axis = self.save_array(index), axis

    def forward(self, x):
        self.in_shape = x.shape
        return get_array_module(x).take(x, self.index, axis=self.axis)

    def backward(self, gy):
        return IndexAdd(self.index, self.axis, self.in_shape)(gy)


class IndexAdd(Function):
    saves = ()  # and the index (save_array)

    def __init__(self, index, axis, out_shape):
        self.index, self.axis, self.out_shape = self.save_array(index), axis, out_shape

    def forward(self, gy):
        xp = get_array_module(gy)
        gx = xp.zeros(self.out_shape, gy.dtype)
        key = (slice(None),) * self.axis + (self.index,)
        add_at(xp, gx, key, gy)
        return gx

    def backward(self, ggx):
        return IndexSelect(self.index, self.axis)(ggx)


def index_select(x, dim, index):
    axis = normalize_axis(dim, x.ndim, "index_select")
    xp = get_array_module(x.array)
    index = xp.asarray(_array(index))
    if index.ndim != 1 or dtype_kind(index.dtype) not in "iu":
        raise ValueError(f"index_select: index must be a 1-D integer tensor, got shape "
                         f"{shape_str(index.shape)} dtype {index.dtype}")
    if index.size and (int(index.min()) < -x.shape[axis] or int(index.max()) >= x.shape[axis]):
        raise IndexError(f"index_select: index out of range for dim {axis} of size "
                         f"{x.shape[axis]}")
    return IndexSelect(index, axis)(x)


# --- gather ------------------------------------------------------------------------------------

def along(index, axis, xp):
    """The key that reads x[i_0, ..., index[i_0, ..., i_n], ..., i_n] for every position of
    `index` (torch.gather's addressing): open grids over index's own shape, `index` on `axis`.
    Each dim of x other than `axis` may be longer than index's."""
    nd = index.ndim          # (xp.indices(sparse=True) is NumPy only)
    key = [xp.arange(n).reshape((1,) * i + (n,) + (1,) * (nd - i - 1))
           for i, n in enumerate(index.shape)]
    key[axis] = index
    return tuple(key)


class Gather(Function):
    """y = x[along(index, axis)] (torch.gather); backward scatter-adds."""

    saves = ()  # and the index (save_array)

    def __init__(self, index, axis):
        self.index, self.axis = self.save_array(index), axis

    def forward(self, x):
        self.in_shape = x.shape
        return x[along(self.index, self.axis, get_array_module(x))]

    def backward(self, gy):
        return GatherGrad(self.index, self.axis, self.in_shape)(gy)


class GatherGrad(Function):
    """zeros(out_shape)[along(index, axis)] += g."""

    saves = ()  # and the index (save_array)

    def __init__(self, index, axis, out_shape):
        self.index, self.axis, self.out_shape = self.save_array(index), axis, out_shape

    def forward(self, g):
        xp = get_array_module(g)
        out = xp.zeros(self.out_shape, g.dtype)
        add_at(xp, out, along(self.index, self.axis, xp), g)
        return out

    def backward(self, gg):
        return Gather(self.index, self.axis)(gg)


def check_index_along(op, x, axis, index, other=None, other_name="src"):
    """torch.gather / scatter's rules for `index` (an array): integer, as many dims as the input,
    no longer than it in any dim but `axis` (and no longer than `other` in any dim), and its
    values in range of dim `axis` (checked where reading them does not stall a GPU)."""
    if dtype_kind(index.dtype) not in "iu":
        raise TypeError(f"{op}: expected an integer index, got dtype {index.dtype}")
    if index.ndim != x.ndim and not (index.ndim <= 1 and x.ndim <= 1):
        raise ValueError(f"{op}: index of shape {shape_str(index.shape)} must have as many "
                         f"dims as the input of shape {shape_str(x.shape)}")
    if any(i != axis and n > s for i, (n, s) in enumerate(zip(index.shape, x.shape))):
        raise ValueError(f"{op}: index of shape {shape_str(index.shape)} is larger than the input "
                         f"of shape {shape_str(x.shape)} apart from dim {axis}")
    if other is not None and any(n > s for n, s in zip(index.shape, other.shape)):
        raise ValueError(f"{op}: index of shape {shape_str(index.shape)} is larger than "
                         f"{other_name} of shape {shape_str(other.shape)}")
    size = x.shape[axis] if x.ndim else 1
    if index.size and not syncs_on_read(index):
        lo, hi = int(index.min()), int(index.max())
        if lo < 0 or hi >= size:
            raise IndexError(f"{op}: index {lo if lo < 0 else hi} is out of bounds for dim "
                             f"{axis} with size {size} (input {shape_str(x.shape)})")


def gather(x, dim, index):
    axis = normalize_axis(dim, x.ndim, "gather")
    index = get_array_module(x.array).asarray(_array(index))
    check_index_along("gather", x, axis, index)
    if x.ndim == 0:  # a 0-d input with a 0-d or one-element index, as torch allows
        return reshape(Gather(index.reshape(-1), 0)(reshape(x, 1)), index.shape)
    return Gather(index, axis)(x)


# --- scatter family ----------------------------------------------------------------------------

def _index_along(op, x, dim, index, src=None):
    """(axis, index array) for a scatter-like op, after torch's checks."""
    axis = normalize_axis(dim, x.ndim, op)
    index = get_array_module(x.array).asarray(_array(index))
    check_index_along(op, x, axis, index, src)
    return axis, index


def _source(src, index):
    """src read over index's shape (torch reads src[:index.shape] in every dim)."""
    if tuple(src.shape) == tuple(index.shape):
        return src
    return getitem(src, tuple(slice(0, n) for n in index.shape))


class Scatter(Function):
    """out = x, then out[along(index, axis)] = src (src of index's shape). Where an index
    repeats, one of its sources wins (NumPy: the last; PyTorch does not say which)."""
    saves = ()  # and the index (save_array)

    def __init__(self, index, axis):
        self.index, self.axis = self.save_array(index), axis

    def forward(self, x, src):
        out = x.copy()
        out[along(self.index, self.axis, get_array_module(x))] = src
        return out

    def backward(self, gy):
        x, src = self.inputs
        gx = gsrc = None
        if x.requires_grad:   # what was overwritten gets no gradient
            zeros = Tensor._wrap(get_array_module(gy.array).zeros(self.index.shape, gy.dtype))
            gx = Scatter(self.index, self.axis)(gy, zeros)
        if src.requires_grad:
            gsrc = Gather(self.index, self.axis)(gy)
        return gx, gsrc


def _scalar_source(value, x, index):
    xp = get_array_module(x.array)
    return Tensor._wrap(xp.full(index.shape, value, dtype=x.dtype))


def scatter(input, dim, index, src=None, *, value=None, reduce=None):
    """torch.scatter: input with src (a tensor, or a scalar `value`) written along dim at
    `index`. The deprecated `reduce` argument is scatter_reduce's job."""
    if reduce is not None:
        raise ValueError("scatter: the reduce argument is not supported; use scatter_add or "
                         "scatter_reduce")
    if src is None and value is None:
        raise TypeError("scatter: expected a src tensor or a value")
    if src is not None and not isinstance(src, Tensor):
        src, value = None, src            # Tensor.scatter(dim, index, 1.5)
    axis, index = _index_along("scatter", input, dim, index, src)
    if src is None:
        return Scatter(index, axis)(input, _scalar_source(value, input, index))
    if src.dtype != input.dtype:
        raise TypeError(f"scatter: expected self.dtype to be equal to src.dtype, got "
                        f"{input.dtype} and {src.dtype}")
    return Scatter(index, axis)(input, _source(src, index))


def scatter_add(input, dim, index, src):
    """input plus src added along dim at `index` (repeated indices accumulate)."""
    axis, index = _index_along("scatter_add", input, dim, index, src)
    if src.dtype != input.dtype:
        raise TypeError(f"scatter_add: expected self.dtype to be equal to src.dtype, got "
                        f"{input.dtype} and {src.dtype}")
    from .arith import add  # noqa: PLC0415
    return add(input, GatherGrad(index, axis, input.shape)(_source(src, index)))


def index_add(input, dim, index, source, *, alpha=1):
    """input plus alpha * source added along dim at the 1-D `index` (repeats accumulate)."""
    axis = normalize_axis(dim, input.ndim, "index_add")
    xp = get_array_module(input.array)
    index = xp.asarray(_array(index))
    if index.ndim > 1 or dtype_kind(index.dtype) not in "iu":
        raise ValueError(f"index_add: index must be a 0-D or 1-D integer tensor, got shape "
                         f"{shape_str(index.shape)} dtype {index.dtype}")
    index = index.reshape(-1)
    want = input.shape[:axis] + (index.shape[0],) + input.shape[axis + 1:]
    if tuple(source.shape) != tuple(want) and not (input.ndim == 0 and source.array.size == 1):
        raise ValueError(f"index_add: source of shape {shape_str(source.shape)} should be "
                         f"{shape_str(want)} (input {shape_str(input.shape)}, {index.shape[0]} "
                         f"indices along dim {axis})")
    n = input.shape[axis] if input.ndim else 1
    if index.size and not syncs_on_read(index) and \
            (int(index.min()) < -n or int(index.max()) >= n):
        raise IndexError(f"index_add: index out of range for dim {axis} of size {n}")
    from .arith import add  # noqa: PLC0415
    added = IndexAdd(index, axis, input.shape)(reshape(source, want))
    return add(input, added if alpha == 1 else added * alpha)


_REDUCE_UFUNCS = {"sum": "add", "prod": "multiply", "mean": "add", "amax": "maximum",
                  "amin": "minimum"}


def _reduce_at(xp, out, key, values, ufunc):
    """out[key] = ufunc(out[key], values) for every entry, repeated positions included (each
    position's entries applied in order: round r applies the r-th entry of every position),
    on NumPy and CuPy alike."""
    lin = xp.ravel_multi_index(tuple(xp.broadcast_to(k, values.shape) for k in key),
                               out.shape).reshape(-1)
    vals = values.reshape(-1)
    order = xp.argsort(lin, kind="stable")
    lin, vals = lin[order], vals[order]
    rank = xp.arange(lin.size) - xp.searchsorted(lin, lin, side="left")
    flat = out.reshape(-1)
    op = getattr(xp, ufunc)
    for r in range(int(rank.max()) + 1 if rank.size else 0):
        pick = rank == r
        flat[lin[pick]] = op(flat[lin[pick]], vals[pick])
    return out


class ScatterReduce(Function):
    """torch.scatter_reduce with reduce in sum, prod, mean, amax, amin; positions no index
    reaches keep the input's value."""
    saves = None

    def __init__(self, index, axis, reduce, include_self):
        self.index, self.axis = self.save_array(index), axis
        self.reduce, self.include_self = reduce, include_self

    def forward(self, x, src):
        xp = get_array_module(x, src)
        key = along(self.index, self.axis, xp)
        hit = xp.zeros(x.shape, bool)
        hit[key] = True
        self.hit = hit
        start = {"sum": 0, "mean": 0, "prod": 1,
                 "amax": _lowest(xp, x.dtype), "amin": _highest(xp, x.dtype)}[self.reduce]
        out = x.copy() if self.include_self else xp.where(hit, x.dtype.type(start), x)
        _reduce_at(xp, out, key, src, _REDUCE_UFUNCS[self.reduce])
        if self.reduce == "mean":
            count = xp.zeros(x.shape, x.dtype) + (1 if self.include_self else 0)
            _reduce_at(xp, count, key, xp.ones(src.shape, x.dtype), "add")
            count = xp.maximum(count, 1)
            out = out // count if dtype_kind(x.dtype) in "iu" else out / count
            self.count = count
        self.y = out
        return out

    def backward(self, gy):
        return _scatter_reduce_grads(self, gy)


def _lowest(xp, dtype):
    return -xp.inf if dtype_kind(dtype) == "f" else xp.iinfo(dtype).min


def _highest(xp, dtype):
    return xp.inf if dtype_kind(dtype) == "f" else xp.iinfo(dtype).max


def _scatter_reduce_grads(fn, gy):
    """PyTorch's gradients of scatter_reduce (its scatter_reduce_backward): sum and mean pass
    the gradient (divided by the count); amax / amin share it evenly between every element
    equal to the result; prod divides the result by each factor, with zeros handled apart."""
    from .arith import div, where  # noqa: PLC0415
    x, src = fn.inputs
    index, axis, reduce = fn.index, fn.axis, fn.reduce
    xp = get_array_module(gy.array)
    hit = Tensor._wrap(fn.hit)
    keep_self = fn.include_self
    zero = Tensor._wrap(xp.zeros((), gy.dtype))

    def gather(t):
        return Gather(index, axis)(t)

    if reduce in ("sum", "mean"):
        g = gy if reduce == "sum" else div(gy, Tensor._wrap(fn.count.astype(gy.dtype)))
        gx = g if keep_self else where(hit, zero, g)
        return gx, gather(g)
    y = fn.retained_output(fn.y)
    if reduce in ("amax", "amin"):   # (PyTorch counts self in the share even when excluded)
        self_hit = Tensor._wrap(x.array == fn.y)
        src_hit = Tensor._wrap(src.array == gather(y).array)
        count = self_hit.array.astype(gy.dtype)
        _reduce_at(xp, count, along(index, axis, xp), src_hit.array.astype(gy.dtype), "add")
        share = div(gy, Tensor._wrap(count))   # masks multiply, as PyTorch's: 0 * (g / 0) is NaN
        gx = share * Tensor._wrap(self_hit.array.astype(gy.dtype))
        gsrc = gather(share) * Tensor._wrap(src_hit.array.astype(gy.dtype))
        return gx if keep_self else where(hit, zero, gx), gsrc
    # prod: d/dself = result / self, d/dsrc = result / src, zeros taken apart
    one = Tensor._wrap(xp.ones((), gy.dtype))
    self_zero = Tensor._wrap(x.array == 0)
    masked_self = where(self_zero, one, x)
    masked_result = ScatterReduce(index, axis, "prod", keep_self)(masked_self, src)
    gx = gy * masked_result / masked_self
    gx = gx if keep_self else where(hit, zero, gx)
    src_zero = src.array == 0
    zeros_at = xp.zeros(x.shape, gy.dtype)
    _reduce_at(xp, zeros_at, along(index, axis, xp), src_zero.astype(gy.dtype), "add")
    zeros_at = Tensor._wrap(zeros_at)
    single = Tensor._wrap(src_zero & (gather(zeros_at).array == 1))
    masked_src_result = ScatterReduce(index, axis, "prod", keep_self)(x, where(single, one, src))
    gsrc = where(single, gather(gy * masked_src_result),
                 gather(gy * y) / where(Tensor._wrap(src_zero), one, src))
    gsrc = where(Tensor._wrap(gather(zeros_at).array > 1), zero, gsrc)
    return gx, gsrc


def scatter_reduce(input, dim, index, src, reduce, *, include_self=True):
    """src reduced into input along dim at `index` with `reduce` in sum, prod, mean, amax, amin
    (include_self: the input's value takes part where an index reaches)."""
    if reduce not in _REDUCE_UFUNCS:
        raise ValueError(f"scatter_reduce: reduce argument must be one of "
                         f"{tuple(_REDUCE_UFUNCS)}, got {reduce!r}")
    axis, index = _index_along("scatter_reduce", input, dim, index, src)
    if src.dtype != input.dtype:
        raise TypeError(f"scatter_reduce: expected self.dtype to be equal to src.dtype, got "
                        f"{input.dtype} and {src.dtype}")
    return ScatterReduce(index, axis, reduce, include_self)(input, _source(src, index))


# --- masks -------------------------------------------------------------------------------------

def _mask(mask, x, op):
    mask = get_array_module(x.array).asarray(_array(mask))
    if dtype_kind(mask.dtype) != "b":
        raise TypeError(f"{op}: expected a bool mask, got dtype {mask.dtype}")
    return mask


def masked_fill(input, mask, value):
    """input with value where mask is True (mask broadcast; value a scalar or a 0-d tensor,
    whose gradient is the sum over the filled places)."""
    from .arith import cast, where  # noqa: PLC0415
    mask = _mask(mask, input, "masked_fill")
    if isinstance(value, Tensor):
        if value.ndim:
            raise ValueError(f"masked_fill: only supports a 0-dimensional value tensor, but got "
                             f"tensor with {value.ndim} dimension(s)")
        value = cast(value, input.dtype)
    try:
        return where(Tensor._wrap(mask), value, input)
    except ValueError:
        raise ValueError(f"masked_fill: the shape of the mask {shape_str(mask.shape)} must be "
                         f"broadcastable with the shape of the input "
                         f"{shape_str(input.shape)}") from None


def masked_select(input, mask):
    """The elements of input where mask is True (both broadcast), as a 1-D tensor."""
    from .shape import broadcast_to  # noqa: PLC0415
    from .util import broadcast_shapes  # noqa: PLC0415
    mask = _mask(mask, input, "masked_select")
    try:
        shape = broadcast_shapes(tuple(mask.shape), tuple(input.shape))
    except ValueError:
        raise ValueError(f"masked_select: the shape of the mask {shape_str(mask.shape)} must be "
                         f"broadcastable with the shape of the input "
                         f"{shape_str(input.shape)}") from None
    xp = get_array_module(mask)
    return getitem(broadcast_to(input, shape), xp.broadcast_to(mask, shape))


def nonzero(input, *, as_tuple=False):
    """The indices of the non-zero elements: (count, ndim) int64, or one 1-D tensor per dim."""
    xp = get_array_module(input.array)
    a = input.array
    if as_tuple:
        return tuple(Tensor._wrap(i.astype(xp.int64)) for i in xp.nonzero(a.reshape(-1) if
                                                                          a.ndim == 0 else a))
    if a.ndim == 0:   # (1, 0) or (0, 0)
        return Tensor._wrap(xp.zeros((int(a != 0), 0), xp.int64))
    return Tensor._wrap(xp.argwhere(a).astype(xp.int64))


def argwhere(input):
    return nonzero(input)


def take_along_dim(input, indices, dim=None):
    """torch.take_along_dim: gather along dim after broadcasting input and indices in the other
    dims, negative indices counting from the end; without dim, over both flattened."""
    from .shape import broadcast_to, flatten  # noqa: PLC0415
    from .util import broadcast_shapes  # noqa: PLC0415
    xp = get_array_module(input.array)
    index = xp.asarray(_array(indices))
    if dtype_kind(index.dtype) not in "iu":
        raise TypeError(f"take_along_dim: expected an integer indices tensor, got dtype "
                        f"{index.dtype}")
    if dim is None:   # PyTorch gathers from the flattened input as it is: no wrapping
        input, index, axis = flatten(input), index.reshape(-1), 0
    else:
        axis = normalize_axis(dim, input.ndim, "take_along_dim")
        if index.ndim != input.ndim:
            raise ValueError(f"take_along_dim: input and indices should have the same number of "
                             f"dimensions, but got {input.ndim} and {index.ndim} (shapes "
                             f"{shape_str(input.shape)} and {shape_str(index.shape)})")
        try:
            rest = broadcast_shapes(*((s[:axis] + (1,) + s[axis + 1:])
                                      for s in (tuple(input.shape), tuple(index.shape))))
        except ValueError:
            raise ValueError(f"take_along_dim: input of shape {shape_str(input.shape)} and "
                             f"indices of shape {shape_str(index.shape)} cannot be broadcast "
                             f"apart from dim {axis}") from None
        input = broadcast_to(input, rest[:axis] + (input.shape[axis],) + rest[axis + 1:])
        index = xp.broadcast_to(index, rest[:axis] + (index.shape[axis],) + rest[axis + 1:])
        index = xp.where(index < 0, index + input.shape[axis], index)
    check_index_along("take_along_dim", input, axis, index)
    return Gather(index, axis)(input)
