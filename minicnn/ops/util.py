"""Small helpers shared by the ops: argument normalisation and error text."""
import functools
import numbers

import numpy

from ..dtypes import HALF_FLOATS
from ..dtypes import kind as dtype_kind
from ..tensor import Tensor


def broadcast_shapes(*shapes):
    """The broadcast shape (host-side shape arithmetic; CuPy has no broadcast_shapes)."""
    return numpy.broadcast_shapes(*shapes)


def shape_str(shape):
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"


KERNEL_FLOATS = (numpy.dtype(numpy.float32), numpy.dtype(numpy.float64)) + HALF_FLOATS


def check_kernel_float(x, op):
    """The kernel families compute in float32 and float64, and take float16 and bfloat16 as
    storage (computed in float32, rounded back; kernels/_half.py). Another float dtype (NumPy's
    longdouble) is refused here, by the op's name, rather than failing inside a Numba kernel."""
    dt = x.array.dtype
    if dt.kind == "f" and dt not in KERNEL_FLOATS:
        raise TypeError(f"{op}: {dt} input (shape {shape_str(x.shape)}) is not supported: the "
                        "kernels take float16, bfloat16, float32 and float64; convert it with "
                        ".float()")


def _storage_of(args, kwargs):
    """The half dtype when every floating Tensor among the arguments has that one storage
    dtype (float16 or bfloat16), else None (float32 / float64, a mix of dtypes, no Tensor)."""
    found = None
    for a in (*args, *kwargs.values()):
        if not isinstance(a, Tensor):
            continue
        dt = a.array.dtype
        if dt in HALF_FLOATS:
            if found is not None and dt != found:
                return None
            found = dt
        elif dt.kind == "f":
            return None
    return found


def composite_in_float32(op):
    """op, a composition of ops, computed in float32 when its floating Tensor arguments are
    float16 / bfloat16 storage, with one rounding at the end, as kernels/_half.py does for one
    kernel (and as PyTorch's CPU half kernels do): each such argument is cast to float32 (exact,
    and differentiable), op runs as it does for float32 and its float32 outputs are cast back.
    The gradient reaching op's outputs is widened by that last cast's backward, every step of
    op's backward runs in float32, and the first casts' backward round the input gradients
    once, where op's parts would each round to the half dtype (a gradient several ulps off, or
    one ulp where it cancels to 0). Casts are Functions, so gradients of every order go through.
    Other dtypes, and a mix of storage dtypes (op's own checks or promotion decide), run op as
    it is."""
    @functools.wraps(op)
    def call(*args, **kwargs):
        dtype = _storage_of(args, kwargs)
        if dtype is None:
            return op(*args, **kwargs)
        from .arith import cast  # noqa: PLC0415 -- arith imports this module

        def wide(a):
            return cast(a, numpy.float32) if isinstance(a, Tensor) and a.array.dtype == dtype \
                else a

        def narrow(y):
            return cast(y, dtype) if isinstance(y, Tensor) and y.array.dtype == _F32 else y
        out = op(*map(wide, args), **{k: wide(v) for k, v in kwargs.items()})
        return tuple(map(narrow, out)) if isinstance(out, tuple) else narrow(out)
    return call


_F32 = numpy.dtype(numpy.float32)


def check_tensor(t, name, op):
    """A Tensor argument that must be given (F.conv2d(x, None) would fail on an attribute)."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")


def normalize_axis(axis, ndim, op):
    if not isinstance(axis, (int, numpy.integer)) or isinstance(axis, bool):
        raise TypeError(f"{op}: dim must be an int, got {axis!r}")
    lo, hi = -max(ndim, 1), max(ndim, 1) - 1
    if not lo <= axis <= hi:
        raise IndexError(f"{op}: dimension out of range (expected to be in range of "
                         f"[{lo}, {hi}], but got {axis})")
    return int(axis) % max(ndim, 1)


def normalize_axes(axis, ndim, op):
    """None -> None (all axes); int or sequence -> sorted tuple of non-negative axes."""
    if axis is None:
        return None
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    out = tuple(sorted({normalize_axis(a, ndim, op) for a in axes}))
    if ndim == 0:
        return None
    return out


def reduce_args(dim, keepdim, axis, keepdims):
    """PyTorch's dim/keepdim and NumPy's axis/keepdims, whichever the caller used."""
    if axis is not None:
        if dim is not None:
            raise TypeError("give either dim or axis, not both")
        dim = axis
    return dim, bool(keepdim or keepdims)


def as_tensor(x, like=None):
    """A Tensor from a Tensor, array or Python scalar; scalars take `like`'s dtype and device
    (an int tensor meeting a float scalar becomes float32, as in PyTorch)."""
    if isinstance(x, Tensor):
        return x
    if like is not None and isinstance(x, numbers.Number):
        xp = _xp(like.array)
        dt = like.array.dtype
        kind = dtype_kind(dt)
        if isinstance(x, bool):
            dtype = dt
        elif isinstance(x, numbers.Integral):
            dtype = dt if kind != "b" else numpy.dtype("int64")
        elif isinstance(x, numbers.Real):
            dtype = dt if kind == "f" else numpy.dtype("float32")
        else:
            raise TypeError(f"complex scalars are not supported: {x!r}")
        if xp is numpy:
            return Tensor._wrap(xp.asarray(x, dtype=dtype))
        # CuPy: a fill kernel, not a host-to-device copy through a pinned staging buffer
        return Tensor._wrap(xp.full((), x, dtype=dtype))
    from ..creation import tensor  # noqa: PLC0415
    if like is not None:
        return tensor(x, device=like.device)
    return tensor(x)


def _xp(a):
    from ..devices import get_array_module  # noqa: PLC0415
    return get_array_module(a)
