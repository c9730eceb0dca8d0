"""Ops that rearrange elements without arithmetic: flip, roll, repeat, repeat_interleave,
tril / triu, diagonal, Tensor.unfold (sliding windows), meshgrid, and F.unfold / F.fold
(im2col and its adjoint, col2im).

Each is a composition of the indexing and shape Functions (getitem, index_select, reshape,
broadcast_to, where), so gradients and their gradients come with them; F.unfold and F.fold are
one IndexSelect / IndexAdd pair (each other's gradient) over a padded, flattened plane.
"""
import numbers

import numpy

from ..devices import get_array_module
from ..dtypes import kind as dtype_kind
from ..tensor import Tensor
from .arith import where
from .indexing import IndexAdd, IndexSelect, getitem
from .shape import _shape_args, broadcast_to, flatten, pad, permute, reshape
from .util import normalize_axis, shape_str


def _dims(dims, ndim, op):
    """A list of distinct, non-negative dims from an int or a sequence."""
    dims = [dims] if isinstance(dims, numbers.Integral) else list(dims)
    axes = [normalize_axis(d, ndim, op) for d in dims]
    if len(set(axes)) != len(axes):
        raise ValueError(f"{op}: dims has duplicates: {tuple(dims)}")
    return axes


# --- flip / roll -------------------------------------------------------------------------------

def flip(x, dims):
    axes = _dims(dims, x.ndim, "flip")
    if x.ndim == 0 or not axes:
        return x
    return getitem(x, tuple(slice(None, None, -1) if i in axes else slice(None)
                            for i in range(x.ndim)))


def fliplr(x):
    if x.ndim < 2:
        raise ValueError(f"fliplr: input must be at least 2-D, got shape {shape_str(x.shape)}")
    return flip(x, [1])


def flipud(x):
    if x.ndim < 1:
        raise ValueError("flipud: input must be at least 1-D, got a 0-d tensor")
    return flip(x, [0])


def roll(x, shifts, dims=None):
    """Elements shifted along dims, wrapping around; without dims, over the flattened tensor
    (its shape restored)."""
    shifts = [shifts] if isinstance(shifts, numbers.Integral) else list(shifts)
    if dims is None:
        if len(shifts) != 1:
            raise ValueError(f"roll: without dims, shifts must be one int, got {shifts}")
        return reshape(roll(flatten(x), shifts, 0), x.shape)
    dims = [dims] if isinstance(dims, numbers.Integral) else list(dims)
    if len(shifts) != len(dims):
        raise ValueError(f"roll: shifts and dims must align, got {len(shifts)} shifts and "
                         f"{len(dims)} dims")
    xp = get_array_module(x.array)
    for shift, dim in zip(shifts, dims):
        axis = normalize_axis(dim, x.ndim, "roll")
        n = x.shape[axis] if x.ndim else 1
        if n and int(shift) % n:
            x = IndexSelect((xp.arange(n) - int(shift)) % n, axis)(x)
    return x


# --- repeat / repeat_interleave ----------------------------------------------------------------

def repeat(x, *sizes):
    """Tensor.repeat: the tensor tiled sizes[i] times along each dim (NumPy's tile), new leading
    dims where sizes are longer than the shape."""
    sizes = tuple(int(s) for s in _shape_args(sizes))
    if len(sizes) < x.ndim:
        raise ValueError(f"repeat: number of repeat dims ({len(sizes)}) can not be smaller than "
                         f"the number of dims of the tensor of shape {shape_str(x.shape)}")
    if any(s < 0 for s in sizes):
        raise ValueError(f"repeat: repeats must be non-negative, got {sizes}")
    shape = (1,) * (len(sizes) - x.ndim) + tuple(x.shape)
    spread = tuple(v for s in shape for v in (1, s))                 # (1, s0, 1, s1, ...)
    tiled = tuple(v for r, s in zip(sizes, shape) for v in (r, s))   # (r0, s0, r1, s1, ...)
    out = broadcast_to(reshape(x, spread), tiled)
    return reshape(out, tuple(r * s for r, s in zip(sizes, shape)))


def repeat_interleave(x, repeats=None, dim=None, *, output_size=None):
    """Each element repeated `repeats` times along dim (the flattened tensor without dim);
    repeats an int or a 1-D tensor (one count per element, or one for all).
    repeat_interleave(counts) alone gives the indices 0, 0, 1, ... counts[i] times each."""
    if repeats is None:            # torch.repeat_interleave(repeats)
        counts = x.array
        xp = get_array_module(counts)
        _check_counts(counts, "repeat_interleave")
        return Tensor._wrap(xp.repeat(xp.arange(counts.shape[0]), counts))
    if dim is None:
        x, axis = flatten(x), 0
    else:
        axis = normalize_axis(dim, x.ndim, "repeat_interleave")
    n = x.shape[axis] if x.ndim else 1
    xp = get_array_module(x.array)
    if isinstance(repeats, numbers.Integral):
        if repeats < 0:
            raise ValueError(f"repeat_interleave: repeats must be non-negative, got {repeats}")
        counts = xp.full(n, int(repeats))
    else:
        counts = xp.asarray(repeats.array if isinstance(repeats, Tensor) else repeats)
        _check_counts(counts, "repeat_interleave")
        if counts.shape[0] == 1:
            counts = xp.repeat(counts, n)
        if counts.shape[0] != n:
            raise ValueError(f"repeat_interleave: repeats must have the same size as input "
                             f"along dim {axis}: {counts.shape[0]} repeats for size {n}")
    index = xp.repeat(xp.arange(n), counts)
    if output_size is not None and int(output_size) != index.shape[0]:
        raise ValueError(f"repeat_interleave: output_size {output_size} differs from the sum of "
                         f"repeats, {index.shape[0]}")
    if x.ndim == 0:
        x = reshape(x, 1)
    return IndexSelect(index, axis)(x)


def _check_counts(counts, op):
    if counts.ndim > 1 or dtype_kind(counts.dtype) not in "iu":
        raise ValueError(f"{op}: repeats must be a 0-d or 1-D integer tensor, got shape "
                         f"{shape_str(counts.shape)} dtype {counts.dtype}")
    if counts.size and int(counts.min()) < 0:
        raise ValueError(f"{op}: repeats can not be negative")


# --- triangles and diagonals -------------------------------------------------------------------

def _triangle(x, diagonal, op, lower):
    if x.ndim < 2:
        raise ValueError(f"{op}: input tensor must have at least 2 dimensions, got shape "
                         f"{shape_str(x.shape)}")
    xp = get_array_module(x.array)
    rows, cols = x.shape[-2:]
    tri = xp.tri(rows, cols, int(diagonal), dtype=bool)
    keep = tri if lower else ~xp.tri(rows, cols, int(diagonal) - 1, dtype=bool)
    return where(keep, x, Tensor._wrap(xp.zeros((), x.dtype)))


def tril(x, diagonal=0):
    """The lower triangle of the last two dims (on and below the diagonal-th diagonal)."""
    return _triangle(x, diagonal, "tril", lower=True)


def triu(x, diagonal=0):
    """The upper triangle of the last two dims (on and above the diagonal-th diagonal)."""
    return _triangle(x, diagonal, "triu", lower=False)


def diagonal(x, offset=0, dim1=0, dim2=1):
    """The diagonal of the (dim1, dim2) planes, offset above (> 0) or below it, as a new last
    dim (the other dims keep their order)."""
    if x.ndim < 2:
        raise ValueError(f"diagonal: input must be at least 2-D, got shape {shape_str(x.shape)}")
    d1, d2 = normalize_axis(dim1, x.ndim, "diagonal"), normalize_axis(dim2, x.ndim, "diagonal")
    if d1 == d2:
        raise ValueError(f"diagonal: diagonal dimensions cannot be identical {dim1}, {dim2}")
    rest = [i for i in range(x.ndim) if i not in (d1, d2)]
    x = permute(x, rest + [d1, d2])
    xp = get_array_module(x.array)
    n1, n2 = x.shape[-2:]
    offset = int(offset)
    length = max(0, min(n1 + min(offset, 0), n2 - max(offset, 0)))
    i = xp.arange(length)
    return getitem(x, (Ellipsis, i - min(offset, 0), i + max(offset, 0)))


# --- sliding windows ---------------------------------------------------------------------------

def unfold(x, dimension, size, step):
    """Tensor.unfold: every window of `size` elements `step` apart along `dimension`, that dim
    becoming the window count and the windows a new last dim."""
    if x.ndim == 0:
        if size != 1 or step < 1:
            raise ValueError(f"unfold: a 0-d tensor has one window of size 1, got size {size}")
        return reshape(x, 1)
    axis = normalize_axis(dimension, x.ndim, "unfold")
    n = x.shape[axis]
    if not 0 <= size <= n:
        raise ValueError(f"unfold: maximum size for tensor at dimension {axis} is {n} but size "
                         f"is {size}")
    if step <= 0:
        raise ValueError(f"unfold: step is {step} but must be > 0")
    xp = get_array_module(x.array)
    count = (n - size) // step + 1
    index = (xp.arange(count)[:, None] * step + xp.arange(size)).reshape(-1)
    y = IndexSelect(index, axis)(x)
    y = reshape(y, x.shape[:axis] + (count, size) + x.shape[axis + 1:])
    order = list(range(y.ndim))
    order.append(order.pop(axis + 1))
    return permute(y, order)


def meshgrid(*tensors, indexing="ij"):
    """Coordinate grids: output i varies along dim i ('ij') or, for the first two, with the
    first two dims swapped ('xy', NumPy's default)."""
    tensors = _shape_args(tensors)
    if indexing not in ("ij", "xy"):
        raise ValueError(f"meshgrid: indexing must be 'ij' or 'xy', got {indexing!r}")
    if not tensors:
        raise ValueError("meshgrid: expects a non-empty list of tensors")
    if any(t.ndim > 1 for t in tensors):
        raise ValueError("meshgrid: expects 0-D or 1-D tensors, got shapes "
                         + ", ".join(shape_str(t.shape) for t in tensors))
    sizes = [t.array.size for t in tensors]
    swap = indexing == "xy" and len(tensors) > 1
    if swap:
        sizes[0], sizes[1] = sizes[1], sizes[0]
    out = []
    for i, t in enumerate(tensors):
        pos = (1 - i if i < 2 else i) if swap else i
        shape = [1] * len(tensors)
        shape[pos] = t.array.size
        out.append(broadcast_to(reshape(t, tuple(shape)), tuple(sizes)))
    return tuple(out)


# --- F.unfold / F.fold (im2col / col2im) -------------------------------------------------------

def _pair(v, name, op):
    v = (v, v) if isinstance(v, numbers.Integral) else tuple(v)
    if len(v) != 2 or not all(isinstance(e, numbers.Integral) for e in v):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {v!r}")
    return tuple(int(e) for e in v)


def _window_index(H, W, k, d, p, s, op):
    """(columns index into a padded (H + 2p) * (W + 2p) plane, (OH, OW)): entry
    (c_k, l) -> flat position of tap c_k = (i, j) of window l, tap-major as PyTorch's rows."""
    Hp, Wp = H + 2 * p[0], W + 2 * p[1]
    OH = (Hp - d[0] * (k[0] - 1) - 1) // s[0] + 1
    OW = (Wp - d[1] * (k[1] - 1) - 1) // s[1] + 1
    if OH < 1 or OW < 1:
        raise ValueError(f"{op}: the kernel {k} with dilation {d} and padding {p} does not fit "
                         f"the input of spatial size ({H}, {W}): output size ({OH}, {OW})")
    ki, kj = numpy.meshgrid(numpy.arange(k[0]) * d[0], numpy.arange(k[1]) * d[1], indexing="ij")
    oi, oj = numpy.meshgrid(numpy.arange(OH) * s[0], numpy.arange(OW) * s[1], indexing="ij")
    rows = ki.reshape(-1, 1) + oi.reshape(1, -1)
    cols = kj.reshape(-1, 1) + oj.reshape(1, -1)
    return (rows * Wp + cols).reshape(-1), (OH, OW)


def _im2col_args(op, kernel_size, dilation, padding, stride):
    k, d = _pair(kernel_size, "kernel_size", op), _pair(dilation, "dilation", op)
    p, s = _pair(padding, "padding", op), _pair(stride, "stride", op)
    if min(k) < 1 or min(d) < 1 or min(s) < 1 or min(p) < 0:
        raise ValueError(f"{op}: kernel_size, dilation and stride must be positive and padding "
                         f"non-negative, got kernel_size={k}, dilation={d}, padding={p}, "
                         f"stride={s}")
    return k, d, p, s


def im2col(input, kernel_size, dilation=1, padding=0, stride=1):
    """F.unfold: (N, C, H, W) -> (N, C * kh * kw, L), the blocks a convolution multiplies, rows
    channel-major then tap, columns the L windows in raster order."""
    op = "unfold"
    if input.ndim not in (3, 4):
        raise ValueError(f"{op}: expected a 3-D (unbatched) or 4-D input, got shape "
                         f"{shape_str(input.shape)}")
    if input.ndim == 3:
        out = im2col(reshape(input, (1,) + input.shape), kernel_size, dilation, padding, stride)
        return reshape(out, out.shape[1:])
    k, d, p, s = _im2col_args(op, kernel_size, dilation, padding, stride)
    N, C, H, W = input.shape
    index, (OH, OW) = _window_index(H, W, k, d, p, s, op)
    xp = get_array_module(input.array)
    plane = reshape(pad(input, (p[1], p[1], p[0], p[0])), (N, C, -1))
    cols = IndexSelect(xp.asarray(index), 2)(plane)               # (N, C, K * L)
    return reshape(cols, (N, C * k[0] * k[1], OH * OW))


def col2im(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """F.fold: (N, C * kh * kw, L) -> (N, C, H, W), each block added back where F.unfold took
    it (overlaps sum): F.unfold's adjoint."""
    op = "fold"
    if input.ndim not in (2, 3):
        raise ValueError(f"{op}: expected a 2-D (unbatched) or 3-D input, got shape "
                         f"{shape_str(input.shape)}")
    if input.ndim == 2:
        out = col2im(reshape(input, (1,) + input.shape), output_size, kernel_size, dilation,
                     padding, stride)
        return reshape(out, out.shape[1:])
    k, d, p, s = _im2col_args(op, kernel_size, dilation, padding, stride)
    H, W = _pair(output_size, "output_size", op)
    N, CK, L = input.shape
    if CK % (k[0] * k[1]):
        raise ValueError(f"{op}: expected size of input's dim 1 to be divisible by the product "
                         f"of kernel_size {k}, but got input of shape {shape_str(input.shape)}")
    index, (OH, OW) = _window_index(H, W, k, d, p, s, op)
    if OH * OW != L:
        raise ValueError(f"{op}: given output_size ({H}, {W}), kernel_size {k}, dilation {d}, "
                         f"padding {p}, stride {s}, expected size of input's dim 2 to be "
                         f"{OH * OW}, but got {L} (input {shape_str(input.shape)})")
    C = CK // (k[0] * k[1])
    Hp, Wp = H + 2 * p[0], W + 2 * p[1]
    xp = get_array_module(input.array)
    cols = reshape(input, (N, C, -1))
    plane = IndexAdd(xp.asarray(index), 2, (N, C, Hp * Wp))(cols)
    return getitem(reshape(plane, (N, C, Hp, Wp)),
                   (Ellipsis, slice(p[0], p[0] + H), slice(p[1], p[1] + W)))
