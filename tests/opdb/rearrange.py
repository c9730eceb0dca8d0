"""Op table entries for the rearranging ops: flip, roll, repeat, repeat_interleave, tril/triu,
diagonal, Tensor.unfold, F.unfold / F.fold, meshgrid, movedim, narrow, unflatten, t."""
import numpy as np
from hypothesis import strategies as st

import minicnn as mc
from minicnn.testing.strategies import arrays, shapes

from . import ErrorCase, OpInfo, Sample

F = mc.functional


def a64(*shape):
    return np.random.default_rng(1).uniform(-2, 2, size=shape)


@st.composite
def with_dims(draw, min_dims=1, max_dims=4, max_side=4, **kwargs):
    """A sample array; kwargs map names to functions (draw, shape) -> value."""
    shape = draw(shapes(min_dims=min_dims, max_dims=max_dims, max_side=max_side))
    kw = {k: f(draw, shape) for k, f in kwargs.items()}
    return Sample((draw(arrays(shape)),), kw)


def _dim(draw, shape):
    return draw(st.integers(-len(shape), len(shape) - 1))


def _dims(draw, shape):
    return draw(st.lists(st.integers(0, len(shape) - 1), min_size=1, max_size=len(shape),
                         unique=True))


@st.composite
def roll_sample(draw):
    shape = draw(shapes(min_dims=1, max_dims=3, max_side=4))
    if draw(st.booleans()):
        return Sample((draw(arrays(shape)),), {"shifts": draw(st.integers(-7, 7)), "dims": None})
    dims = draw(st.lists(st.integers(-len(shape), len(shape) - 1), min_size=1, max_size=3))
    shifts = [draw(st.integers(-5, 5)) for _ in dims]
    return Sample((draw(arrays(shape)),), {"shifts": tuple(shifts), "dims": tuple(dims)})


@st.composite
def repeat_sample(draw):
    shape = draw(shapes(min_dims=0, max_dims=3, max_side=3))
    sizes = tuple(draw(st.integers(0, 3))
                  for _ in range(len(shape) + draw(st.integers(0 if shape else 1, 2))))
    return Sample((draw(arrays(shape)),), {"sizes": sizes})


@st.composite
def repeat_interleave_sample(draw):
    shape = draw(shapes(min_dims=1, max_dims=3, max_side=3))
    dim = draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))
    n = int(np.prod(shape)) if dim is None else shape[dim]
    if draw(st.booleans()):
        repeats = draw(st.integers(0, 3))
    else:
        repeats = np.array(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)))
    return Sample((draw(arrays(shape)),), {"repeats": repeats, "dim": dim})


@st.composite
def diagonal_sample(draw):
    shape = draw(shapes(min_dims=2, max_dims=4, max_side=4))
    d1, d2 = draw(st.lists(st.integers(0, len(shape) - 1), min_size=2, max_size=2, unique=True))
    return Sample((draw(arrays(shape)),), {"offset": draw(st.integers(-4, 4)),
                                          "dim1": d1 - len(shape) * draw(st.integers(0, 1)),
                                          "dim2": d2})


@st.composite
def tensor_unfold_sample(draw):
    shape = draw(shapes(min_dims=1, max_dims=3, max_side=5))
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    return Sample((draw(arrays(shape)),), {"dimension": dim,
                                          "size": draw(st.integers(0, shape[dim])),
                                          "step": draw(st.integers(1, 3))})


def _im2col_geometry(draw):
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    p = (draw(st.integers(0, 1)), draw(st.integers(0, 1)))
    s = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    hw = tuple(max(1, dd * (kk - 1) + 1 - 2 * pp) + draw(st.integers(0, 3))
               for kk, dd, pp in zip(k, d, p))
    return k, d, p, s, hw


@st.composite
def im2col_sample(draw):
    k, d, p, s, hw = _im2col_geometry(draw)
    lead = (draw(st.integers(1, 2)),) if draw(st.booleans()) else ()
    shape = lead + (draw(st.integers(1, 2)),) + hw
    return Sample((draw(arrays(shape)),), {"kernel_size": k, "dilation": d, "padding": p,
                                          "stride": s})


@st.composite
def col2im_sample(draw):
    k, d, p, s, hw = _im2col_geometry(draw)
    L = np.prod([(n + 2 * pp - dd * (kk - 1) - 1) // ss + 1
                 for n, kk, dd, pp, ss in zip(hw, k, d, p, s)])
    lead = (draw(st.integers(1, 2)),) if draw(st.booleans()) else ()
    shape = lead + (draw(st.integers(1, 2)) * k[0] * k[1], int(L))
    return Sample((draw(arrays(shape)),), {"output_size": hw, "kernel_size": k, "dilation": d,
                                          "padding": p, "stride": s})


@st.composite
def meshgrid_sample(draw):
    n = draw(st.integers(1, 3))
    xs = tuple(draw(arrays((draw(st.integers(1, 4)),) if draw(st.integers(0, 4)) else ()))
               for _ in range(n))
    return Sample(xs, {"indexing": draw(st.sampled_from(["ij", "xy"]))})


@st.composite
def movedim_sample(draw):
    shape = draw(shapes(min_dims=1, max_dims=4, max_side=3))
    n = draw(st.integers(1, len(shape)))
    src = draw(st.permutations(range(len(shape))))[:n]
    dst = draw(st.permutations(range(len(shape))))[:n]
    if n == 1 and draw(st.booleans()):
        src, dst = src[0], dst[0] - len(shape)
    return Sample((draw(arrays(shape)),), {"source": src, "destination": dst})


@st.composite
def narrow_sample(draw):
    shape = draw(shapes(min_dims=1, max_dims=3, max_side=5))
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    n = shape[dim]
    start = draw(st.integers(-n, n))
    length = draw(st.integers(0, n - (start % n if start < 0 else start)))
    return Sample((draw(arrays(shape)),), {"dim": dim, "start": start, "length": length})


@st.composite
def unflatten_sample(draw):
    shape = draw(shapes(min_dims=1, max_dims=3, max_side=6))
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    n = shape[dim]
    f = draw(st.sampled_from([f for f in range(1, n + 1) if n % f == 0]))
    sizes = draw(st.sampled_from([(f, n // f), (-1, f), (n,), (1, n, 1)]))
    return Sample((draw(arrays(shape)),), {"dim": dim, "sizes": sizes})


def _method(name):
    return (lambda x, **kw: getattr(x, name)(**kw)), (lambda t, x, **kw: getattr(x, name)(**kw))


def _entry(name, samples, errors=(), **kw):
    op, ref = _method(name)
    return OpInfo(name, op=op, ref=ref, samples=samples, errors=list(errors), **kw)


OPS = [
    _entry("flip", with_dims(dims=_dims),
           [ErrorCase((a64(2, 3),), {"dims": (0, -2)}, ValueError, "flip: dims has duplicates")]),
    OpInfo("fliplr", op=mc.fliplr, ref=lambda t, x: t.fliplr(x), samples=with_dims(min_dims=2),
           errors=[ErrorCase((a64(3),), {}, ValueError, "fliplr: input must be at least 2-D")]),
    OpInfo("flipud", op=mc.flipud, ref=lambda t, x: t.flipud(x), samples=with_dims()),
    _entry("roll", roll_sample(),
           [ErrorCase((a64(2, 3),), {"shifts": (1, 2), "dims": 0}, ValueError,
                      "roll: shifts and dims must align")]),
    OpInfo("repeat", op=lambda x, sizes: x.repeat(*sizes),
           ref=lambda t, x, sizes: x.repeat(*sizes), samples=repeat_sample(),
           errors=[ErrorCase((a64(2, 3),), {"sizes": (2,)}, ValueError,
                             r"repeat: number of repeat dims \(1\) can not be smaller")]),
    OpInfo("repeat_interleave", op=lambda x, **kw: x.repeat_interleave(**kw),
           ref=lambda t, x, **kw: x.repeat_interleave(**kw), samples=repeat_interleave_sample(),
           errors=[ErrorCase((a64(2, 3),), {"repeats": np.array([1, 2]), "dim": 1}, ValueError,
                             "repeat_interleave: repeats must have the same size as input"),
                   ErrorCase((a64(3),), {"repeats": -1}, ValueError,
                             "repeat_interleave: repeats must be non-negative")]),
    _entry("tril", with_dims(min_dims=2, diagonal=lambda d, s: d(st.integers(-4, 4)))),
    _entry("triu", with_dims(min_dims=2, diagonal=lambda d, s: d(st.integers(-4, 4))),
           [ErrorCase((a64(3),), {}, ValueError,
                      "triu: input tensor must have at least 2 dimensions")]),
    _entry("diagonal", diagonal_sample(),
           [ErrorCase((a64(2, 3),), {"dim1": 1, "dim2": -1}, ValueError,
                      "diagonal: diagonal dimensions cannot be identical 1, -1")]),
    _entry("unfold", tensor_unfold_sample(),
           [ErrorCase((a64(2, 3),), {"dimension": 1, "size": 4, "step": 1}, ValueError,
                      "unfold: maximum size for tensor at dimension 1 is 3 but size is 4")]),
    OpInfo("F.unfold", op=lambda x, **kw: F.unfold(x, **kw),
           ref=lambda t, x, **kw: t.nn.functional.unfold(x, **kw), samples=im2col_sample(),
           errors=[ErrorCase((a64(1, 1, 2, 2),), {"kernel_size": 3}, ValueError,
                             "unfold: the kernel .* does not fit the input"),
                   ErrorCase((a64(2, 2),), {"kernel_size": 1}, ValueError,
                             "unfold: expected a 3-D .* or 4-D input")]),
    OpInfo("F.fold", op=lambda x, **kw: F.fold(x, **kw),
           ref=lambda t, x, **kw: t.nn.functional.fold(x, **kw), samples=col2im_sample(),
           errors=[ErrorCase((a64(1, 5, 4),), {"output_size": 3, "kernel_size": 2}, ValueError,
                             "fold: expected size of input's dim 1 to be divisible"),
                   ErrorCase((a64(1, 4, 5),), {"output_size": 3, "kernel_size": 2}, ValueError,
                             "fold: .* expected size of input's dim 2 to be 4, but got 5")]),
    OpInfo("meshgrid", op=lambda *xs, indexing: mc.meshgrid(*xs, indexing=indexing),
           ref=lambda t, *xs, indexing: t.meshgrid(*xs, indexing=indexing),
           samples=meshgrid_sample(),
           errors=[ErrorCase((a64(2, 2),), {"indexing": "ij"}, ValueError,
                             "meshgrid: expects 0-D or 1-D tensors")]),
    _entry("movedim", movedim_sample(),
           [ErrorCase((a64(2, 3),), {"source": (0, 1), "destination": 0}, ValueError,
                      "movedim: Invalid source or destination dims")]),
    _entry("narrow", narrow_sample(),
           [ErrorCase((a64(2, 3),), {"dim": 1, "start": 2, "length": 2}, ValueError,
                      r"narrow: start \(2\) \+ length \(2\) exceeds dimension size \(3\)")]),
    _entry("unflatten", unflatten_sample(),
           [ErrorCase((a64(2, 6),), {"dim": 1, "sizes": (4, 2)}, ValueError,
                      r"unflatten: provided sizes \[4, 2\] don't multiply up to the size of "
                      r"dim 1 \(6\)")]),
    OpInfo("t", op=lambda x: x.t(), ref=lambda t, x: x.t(), samples=with_dims(min_dims=0,
                                                                            max_dims=2),
           errors=[ErrorCase((a64(2, 2, 2),), {}, ValueError,
                             "t: expects a tensor with <= 2 dimensions")]),
]
