"""Shape ops: reshape, permute, broadcast / sum-to, concatenate, split, pad (indexing is
indexing.py).

Each backward is itself made of these differentiable ops, so gradients of gradients work.
"""
import math

import numpy

from ..autograd import Function
from ..devices import get_array_module
from ..kernels import in_float32
from ..tensor import Tensor
from . import autocast
from .util import as_tensor, broadcast_shapes, normalize_axis, shape_str


# --- reshape -----------------------------------------------------------------------------------

class Reshape(Function):
    saves = ()

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, gy):
        return reshape(gy, self.in_shape)


def _resolve_shape(shape, size, op):
    shape = tuple(int(s) for s in shape)
    unknown = [i for i, s in enumerate(shape) if s == -1]
    known = math.prod(s for s in shape if s != -1)
    if len(unknown) > 1 or any(s < -1 for s in shape):
        raise ValueError(f"{op}: invalid shape {shape}")
    if unknown:
        if known == 0 or size % known:
            raise ValueError(f"{op}: shape {shape} is invalid for input of size {size}")
        shape = shape[:unknown[0]] + (size // known,) + shape[unknown[0] + 1:]
    if math.prod(shape) != size:
        raise ValueError(f"{op}: shape {shape} is invalid for input of size {size}")
    return shape


def _shape_args(shape):
    """Accept f(2, 3) and f((2, 3)) alike, as PyTorch does."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def reshape(x, *shape):
    shape = _resolve_shape(_shape_args(shape), x.array.size, "reshape")
    if shape == tuple(x.shape):
        return x
    return Reshape(shape)(x)


def _is_dtype(obj):
    return isinstance(obj, numpy.dtype) or isinstance(obj, type) and issubclass(obj, numpy.generic)


def view(x, *shape):
    """Tensor.view: the same elements in a new shape, or, given one dtype, the same bytes read
    as that dtype (PyTorch's view(dtype): a larger element size divides the last dim, a smaller
    one multiplies it; outside the graph, as PyTorch's is not differentiable)."""
    if len(shape) == 1 and _is_dtype(shape[0]):
        return _view_dtype(x, numpy.dtype(shape[0]))
    return reshape(x, *shape)


def _view_dtype(x, dtype):
    a = x.array
    old, new = a.dtype.itemsize, dtype.itemsize
    what = f"view {a.dtype} as {dtype} (different element sizes)"
    if old != new:
        if a.ndim == 0:
            raise ValueError(f"view: a 0-d tensor cannot {what}")
        if a.shape[-1] != 1 and a.strides[-1] != old:
            raise ValueError(f"view: the last dim must be contiguous to {what}; tensor of shape "
                             f"{shape_str(a.shape)} has stride {a.strides[-1] // old} there")
        if (a.shape[-1] * old) % new:
            raise ValueError(f"view: the last dim must be divisible by {new // old} to {what}, "
                             f"but got {a.shape[-1]} (shape {shape_str(a.shape)})")
    return Tensor._wrap(a.view(dtype))


def flatten(x, start_dim=0, end_dim=-1):
    if x.ndim == 0:
        return reshape(x, 1)
    start = normalize_axis(start_dim, x.ndim, "flatten")
    end = normalize_axis(end_dim, x.ndim, "flatten")
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    shape = x.shape[:start] + (math.prod(x.shape[start:end + 1]),) + x.shape[end + 1:]
    return reshape(x, shape)


def squeeze(x, dim=None):
    if dim is None:
        return reshape(x, tuple(s for s in x.shape if s != 1))
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    dims = {normalize_axis(d, x.ndim, "squeeze") for d in dims}
    return reshape(x, tuple(s for i, s in enumerate(x.shape) if not (i in dims and s == 1)))


def unsqueeze(x, dim):
    d = normalize_axis(dim, x.ndim + 1, "unsqueeze")
    return reshape(x, x.shape[:d] + (1,) + x.shape[d:])


# --- permute / transpose -----------------------------------------------------------------------

class Permute(Function):
    saves = ()

    def __init__(self, perm):
        self.perm = perm

    def forward(self, x):
        return x.transpose(self.perm)

    def backward(self, gy):
        inverse = [0] * len(self.perm)
        for i, p in enumerate(self.perm):
            inverse[p] = i
        return Permute(tuple(inverse))(gy)


def permute(x, *dims):
    dims = _shape_args(dims)
    if len(dims) != x.ndim:
        raise ValueError(f"permute: got {len(dims)} dims {dims} for a tensor of shape "
                         f"{shape_str(x.shape)}")
    perm = tuple(normalize_axis(d, x.ndim, "permute") for d in dims)
    if sorted(perm) != list(range(x.ndim)):
        raise ValueError(f"permute: {dims} is not a permutation of the dims of {shape_str(x.shape)}")
    return Permute(perm)(x)


def transpose(x, dim0, dim1):
    d0 = normalize_axis(dim0, x.ndim, "transpose")
    d1 = normalize_axis(dim1, x.ndim, "transpose")
    perm = list(range(x.ndim))
    perm[d0], perm[d1] = perm[d1], perm[d0]
    return Permute(tuple(perm))(x)


def t(x):
    """Tensor.t(): a 2-D tensor transposed; 0-D and 1-D ones as they are."""
    if x.ndim > 2:
        raise ValueError(f"t: expects a tensor with <= 2 dimensions, but got shape "
                         f"{shape_str(x.shape)}; use transpose(dim0, dim1) or mT")
    return transpose(x, 0, 1) if x.ndim == 2 else x


def movedim(x, source, destination):
    """Dims `source` moved to positions `destination`, the others keeping their order."""
    src = [source] if isinstance(source, int) else list(source)
    dst = [destination] if isinstance(destination, int) else list(destination)
    if len(src) != len(dst):
        raise ValueError(f"movedim: Invalid source or destination dims: source ({src} dims) "
                         f"should contain the same number of dims as destination ({dst} dims)")
    src = [normalize_axis(d, x.ndim, "movedim") for d in src]
    dst = [normalize_axis(d, x.ndim, "movedim") for d in dst]
    if len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise ValueError(f"movedim: repeated dim in source {src} or destination {dst}")
    rest = iter(i for i in range(x.ndim) if i not in src)
    where = dict(zip(dst, src))
    perm = tuple(where[i] if i in where else next(rest) for i in range(x.ndim))
    return Permute(perm)(x) if perm != tuple(range(x.ndim)) else x


def narrow(x, dim, start, length):
    """The `length` elements of dim `dim` from `start` (negative counts from the end)."""
    axis = normalize_axis(dim, x.ndim, "narrow")
    n = x.shape[axis]
    start = int(start.item() if hasattr(start, "item") else start)
    if not -n <= start <= n:
        raise IndexError(f"narrow: start ({start}) is out of bounds for dim {axis} of size {n}")
    if start < 0:
        start += n
    if length < 0 or start + length > n:
        raise ValueError(f"narrow: start ({start}) + length ({length}) exceeds dimension size "
                         f"({n}) of a tensor of shape {shape_str(x.shape)}")
    from .indexing import getitem  # noqa: PLC0415 -- indexing imports this module
    return getitem(x, (slice(None),) * axis + (slice(start, start + length),))


def unflatten(x, dim, sizes):
    """Dim `dim` split into `sizes` (one of them may be -1)."""
    axis = normalize_axis(dim, x.ndim, "unflatten")
    sizes = tuple(int(s) for s in sizes)
    if not sizes:
        raise ValueError("unflatten: sizes must be non-empty")
    known = math.prod(s for s in sizes if s != -1)
    n = x.shape[axis]
    if sizes.count(-1) > 1 or (-1 not in sizes and known != n) or \
            (-1 in sizes and (known == 0 or n % known)):
        raise ValueError(f"unflatten: provided sizes {list(sizes)} don't multiply up to the size "
                         f"of dim {dim} ({n}) in the input tensor of shape {shape_str(x.shape)}")
    if -1 in sizes:
        sizes = tuple(n // known if s == -1 else s for s in sizes)
    return reshape(x, x.shape[:axis] + sizes + x.shape[axis + 1:])


# --- broadcasting ------------------------------------------------------------------------------

class BroadcastTo(Function):
    saves = ()

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        return get_array_module(x).broadcast_to(x, self.shape)

    def backward(self, gy):
        return sum_to(gy, self.in_shape)


class SumTo(Function):
    """Sum a broadcast result back down to `shape` (the gradient of broadcasting)."""
    saves = ()

    def __init__(self, shape):
        self.out_shape = shape

    @in_float32   # half: accumulated in float32 (every broadcast operand's gradient)
    def forward(self, x):
        self.in_shape = x.shape
        lead = x.ndim - len(self.out_shape)
        axes = tuple(range(lead)) + tuple(
            lead + i for i, s in enumerate(self.out_shape) if s == 1 and x.shape[lead + i] != 1)
        y = x.sum(axis=axes, keepdims=True) if axes else x
        return y.reshape(self.out_shape) if lead else y

    def backward(self, gy):
        return broadcast_to(gy, self.in_shape)


def broadcast_to(x, shape):
    shape = tuple(shape)
    if tuple(x.shape) == shape:
        return x
    try:
        broadcast_shapes(tuple(x.shape), shape)
    except ValueError:
        raise ValueError(f"expand: the shape {shape_str(x.shape)} cannot be broadcast to "
                         f"{shape_str(shape)}") from None
    return BroadcastTo(shape)(x)


def sum_to(x, shape):
    shape = tuple(shape)
    if tuple(x.shape) == shape:
        return x
    return SumTo(shape)(x)


def expand(x, *sizes):
    sizes = _shape_args(sizes)
    lead = len(sizes) - x.ndim
    if lead < 0:
        raise ValueError(f"expand: {len(sizes)} sizes given for a tensor of shape "
                         f"{shape_str(x.shape)}")
    shape = tuple(x.shape[i - lead] if s == -1 else s for i, s in enumerate(sizes))
    return broadcast_to(x, shape)


# --- concatenate / stack / split ---------------------------------------------------------------

class Concatenate(Function):
    saves = ()

    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        self.sizes = [x.shape[self.axis] for x in xs]
        return get_array_module(*xs).concatenate(xs, axis=self.axis)

    def backward(self, gy):
        return tuple(split(gy, self.sizes, self.axis))


class Split(Function):
    saves = ()

    def __init__(self, sizes, axis):
        self.sizes, self.axis = sizes, axis

    def forward(self, x):
        xp = get_array_module(x)
        bounds = list(_cumsum(self.sizes))[:-1]
        return tuple(xp.split(x, bounds, axis=self.axis))

    def backward(self, *gys):
        return concatenate(gys, self.axis)


def _cumsum(sizes):
    total = 0
    for s in sizes:
        total += s
        yield total


def concatenate(tensors, dim=0):
    tensors = autocast.sequence("cat", [as_tensor(t) for t in tensors])
    if not tensors:
        raise ValueError("cat: expected a non-empty list of tensors")
    ref = tensors[0]
    axis = normalize_axis(dim, ref.ndim, "cat")
    for t in tensors[1:]:
        if t.ndim != ref.ndim or any(a != b for i, (a, b) in enumerate(zip(t.shape, ref.shape))
                                     if i != axis):
            raise ValueError(
                f"cat: sizes of tensors must match except in dimension {axis}; got "
                + " and ".join(shape_str(u.shape) for u in tensors))
    if len(tensors) == 1:
        return tensors[0]
    return Concatenate(axis)(*tensors)


def stack(tensors, dim=0):
    tensors = autocast.sequence("stack", [as_tensor(t) for t in tensors])
    if not tensors:
        raise ValueError("stack: expected a non-empty list of tensors")
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) > 1:
        raise ValueError("stack: expects each tensor to be of equal size, but got "
                         + " and ".join(shape_str(t.shape) for t in tensors))
    d = normalize_axis(dim, tensors[0].ndim + 1, "stack")
    return concatenate([unsqueeze(t, d) for t in tensors], d)


def split(x, split_size_or_sections, dim=0):
    axis = normalize_axis(dim, x.ndim, "split")
    n = x.shape[axis]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        if step <= 0:
            raise ValueError(f"split: split_size must be positive, got {step}")
        sizes = [min(step, n - i) for i in range(0, n, step)] or [0]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != n or any(s < 0 for s in sizes):
            raise ValueError(f"split: sections {sizes} do not add up to size {n} of dim {axis} "
                             f"of a tensor of shape {shape_str(x.shape)}")
    if len(sizes) == 1:
        return (x,)
    out = Split(tuple(sizes), axis)(x)
    return out if isinstance(out, tuple) else (out,)


def chunk(x, chunks, dim=0):
    if chunks <= 0:
        raise ValueError(f"chunk: chunks must be positive, got {chunks}")
    axis = normalize_axis(dim, x.ndim, "chunk")
    return split(x, max(1, -(-x.shape[axis] // chunks)), axis)


# --- padding -----------------------------------------------------------------------------------

class PadConstant(Function):
    saves = ()

    def __init__(self, widths, value):
        self.widths, self.value = widths, value

    def forward(self, x):
        xp = get_array_module(x)
        return xp.pad(x, self.widths, mode="constant", constant_values=self.value)

    def backward(self, gy):
        from .indexing import getitem  # noqa: PLC0415 -- indexing imports this module
        key = tuple(slice(lo, gy.shape[i] - hi) for i, (lo, hi) in enumerate(self.widths))
        return getitem(gy, key)


_PAD_MODES = ("constant", "reflect", "replicate", "circular")


def _pad_source_index(size, lo, hi, mode, xp):
    """For each output position along one axis, the input position it copies (non-constant)."""
    pos = xp.arange(-lo, size + hi)
    if mode == "replicate":
        return xp.clip(pos, 0, size - 1)
    if mode == "circular":
        return pos % size
    period = 2 * (size - 1)  # reflect without repeating the edge
    pos = xp.abs(pos) % period if period else xp.zeros_like(pos)
    return xp.where(pos >= size, period - pos, pos)


def pad(x, pad, mode="constant", value=0.0):
    """F.pad: `pad` lists (left, right) pairs starting from the last dim, as PyTorch's does. A
    negative width crops that side, as in PyTorch: constant and circular padding crop first and
    pad what is left (circular padding wraps around the cropped tensor); reflect and replicate
    read every output position from the uncropped input, and must leave at least one element."""
    from .indexing import IndexSelect, getitem  # noqa: PLC0415 -- indexing imports this module
    if mode not in _PAD_MODES:
        raise ValueError(f"pad: mode must be one of {_PAD_MODES}, got {mode!r}")
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: padding of length {len(pad)} is invalid for a tensor of shape "
                         f"{shape_str(x.shape)}")
    widths = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        widths[x.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])

    def fail(axis, lo, hi, why):
        raise ValueError(f"pad: padding ({lo}, {hi}) {why} for {mode} padding of dim {axis} of "
                         f"size {x.shape[axis]} (input {shape_str(x.shape)})")
    if mode in ("constant", "circular"):
        for axis, (lo, hi) in enumerate(widths):
            if x.shape[axis] + min(lo, 0) + min(hi, 0) < 0:
                fail(axis, lo, hi, "crops more than the whole dim")
        if any(p < 0 for p in pad):
            x = getitem(x, tuple(slice(max(-lo, 0), x.shape[i] - max(-hi, 0))
                                 for i, (lo, hi) in enumerate(widths)))
            widths = [(max(lo, 0), max(hi, 0)) for lo, hi in widths]
        if mode == "constant":
            return PadConstant(tuple(widths), value)(x) if any(map(any, widths)) else x
    xp = get_array_module(x.array)
    for axis, (lo, hi) in enumerate(widths):
        if not (lo or hi):
            continue
        size = x.shape[axis]
        if mode == "circular" and max(lo, hi) > size:
            fail(axis, lo, hi, "is too large (at most the size left after cropping)")
        if mode != "circular" and size + lo + hi < 1:
            fail(axis, lo, hi, "leaves no element")
        if mode == "reflect" and max(lo, hi) > size - 1:
            fail(axis, lo, hi, "is too large")
        x = IndexSelect(_pad_source_index(size, lo, hi, mode, xp), axis)(x)
    return x
