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
from ..devices import get_array_module, scatter_add, syncs_on_read
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
            scatter_add(xp, gx, self.key, gy)
        return gx

    def backward(self, ggx):
        return GetItem(self.key)(ggx)


def _key_item(k, xp):
    """One index as NumPy understands it: Tensors and lists become arrays, and a 0-d integer
    Tensor an int (PyTorch treats it as one)."""
    if isinstance(k, Tensor):
        a = k.array
        if a.ndim == 0 and a.dtype.kind in "iu":
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
            basic.extend([slice(None)] * (k.ndim if k.dtype.kind == "b" else 1))
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
        scatter_add(xp, gx, key, gy)
        return gx

    def backward(self, ggx):
        return IndexSelect(self.index, self.axis)(ggx)


def index_select(x, dim, index):
    axis = normalize_axis(dim, x.ndim, "index_select")
    xp = get_array_module(x.array)
    index = xp.asarray(_array(index))
    if index.ndim != 1 or index.dtype.kind not in "iu":
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
        scatter_add(xp, out, along(self.index, self.axis, xp), g)
        return out

    def backward(self, gg):
        return Gather(self.index, self.axis)(gg)


def check_index_along(op, x, axis, index, other=None, other_name="src"):
    """torch.gather / scatter's rules for `index` (an array): integer, as many dims as the input,
    no longer than it in any dim but `axis` (and no longer than `other` in any dim), and its
    values in range of dim `axis` (checked where reading them does not stall a GPU)."""
    if index.dtype.kind not in "iu":
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
