"""Op table entries for the scatter family and the masks: scatter (tensor and value),
scatter_add, scatter_reduce (every reduction, with and without self), index_add, masked_fill,
masked_select, take_along_dim. (gather, index_select and x[key] are in core.py.)

scatter's indices are distinct along the scattered dim (which of two sources wins PyTorch does
not say); amax / amin draw distinct values (a tie has no derivative), prod values away from 0.
"""
import numpy as np
from hypothesis import strategies as st

import minicnn as mc
from minicnn.testing.strategies import arrays, shapes

from . import ErrorCase, OpInfo, Sample


def a64(*shape):
    return np.random.default_rng(1).uniform(-2, 2, size=shape)


def _distinct(rng, shape, low=-2.0):
    n = int(np.prod(shape))
    return (low + (rng.permutation(n) + rng.uniform(0.1, 0.9, n)) * (-2 * low) / max(n, 1)) \
        .reshape(shape)


@st.composite
def scatter_sample(draw, kind):
    shape = draw(shapes(min_dims=1, max_dims=3, max_side=4))
    nd = len(shape)
    dim = draw(st.integers(-nd, nd - 1))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    ishape = tuple(draw(st.integers(1, s)) for s in shape)
    if kind == "scatter":   # distinct along dim: a permutation's first entries
        index = np.moveaxis(np.argsort(rng.random(np.moveaxis(np.empty(shape), dim, -1).shape),
                                       axis=-1), -1, dim)
        index = index[tuple(slice(0, n) for n in ishape)]
    else:
        index = rng.integers(0, shape[dim], ishape)
    src_shape = ishape   # (a larger src is read over index's shape, but PyTorch's backward
    #                     refuses one: tests/test_torch_semantics.py checks its forward)
    if kind in ("amax", "amin"):
        both = _distinct(rng, (2,) + tuple(max(a, b) for a, b in zip(shape, src_shape)))
        x, src = both[0][tuple(map(slice, shape))], both[1][tuple(map(slice, src_shape))]
    elif kind == "prod":
        x = draw(arrays(shape, low=0.5, high=1.5)) * rng.choice([-1, 1], shape)
        src = draw(arrays(src_shape, low=0.5, high=1.5)) * rng.choice([-1, 1], src_shape)
    else:
        x, src = draw(arrays(shape)), draw(arrays(src_shape))
    kw = {"dim": dim, "index": index}
    if kind in ("sum", "prod", "mean", "amax", "amin"):
        kw["reduce"] = kind
        kw["include_self"] = draw(st.booleans())
    if kind == "value":
        return Sample((x,), dict(kw, value=draw(st.sampled_from([0.0, -1.5]))))
    return Sample((x, src), kw)


@st.composite
def index_add_sample(draw):
    shape = draw(shapes(min_dims=1, max_dims=3, max_side=4))
    nd = len(shape)
    dim = draw(st.integers(-nd, nd - 1))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    index = rng.integers(0, shape[dim], draw(st.integers(1, 5)))
    src_shape = list(shape)
    src_shape[dim] = len(index)
    return Sample((draw(arrays(shape)), draw(arrays(tuple(src_shape)))),
                  {"dim": dim, "index": index, "alpha": draw(st.sampled_from([1, 2.5]))})


@st.composite
def masked_sample(draw, value_tensor=False):
    shape = draw(shapes(min_dims=0, max_dims=3, max_side=4))
    mshape = shape[draw(st.integers(0, len(shape))):]   # broadcast from the right
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    mask = np.asarray(rng.random(mshape) < 0.5)
    if value_tensor:
        return Sample((draw(arrays(shape)), np.asarray(draw(st.floats(-2, 2)))), {"mask": mask})
    return Sample((draw(arrays(shape)),), {"mask": mask})


@st.composite
def take_along_dim_sample(draw):
    shape = draw(shapes(min_dims=1, max_dims=3, max_side=4))
    nd = len(shape)
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    if draw(st.integers(0, 3)) == 0:
        n = int(np.prod(shape))
        return Sample((draw(arrays(shape)),), {"indices": rng.integers(0, n, 4), "dim": None})
    dim = draw(st.integers(-nd, nd - 1))
    ishape = tuple(draw(st.integers(1, 3)) if i == dim % nd else draw(st.sampled_from([1, s]))
                   for i, s in enumerate(shape))
    xshape = tuple(s if i == dim % nd or draw(st.booleans()) else 1
                   for i, s in enumerate(shape))   # both sides broadcast
    index = rng.integers(-xshape[dim], xshape[dim], ishape)
    return Sample((draw(arrays(xshape)),), {"indices": index, "dim": dim})


@st.composite
def sparse_sample(draw):
    x = draw(arrays(shapes(min_dims=0, max_dims=3, max_side=4)))
    zeros = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1))).random(x.shape) < 0.5
    return Sample((np.where(zeros, 0.0, x),), {})


def _scatter_reduce(x, src, dim, index, reduce, include_self):
    return mc.scatter_reduce(x, dim, index, src, reduce, include_self=include_self)


def _torch_scatter_reduce(t, x, src, dim, index, reduce, include_self):
    return t.scatter_reduce(x, dim, index, src, reduce, include_self=include_self)


I2 = np.zeros((2, 2), int)

OPS = [
    OpInfo("scatter", op=lambda x, src, dim, index: mc.scatter(x, dim, index, src),
           ref=lambda t, x, src, dim, index: t.scatter(x, dim, index, src),
           samples=scatter_sample("scatter"),
           errors=[ErrorCase((a64(2, 3), a64(1, 1)), {"dim": 0, "index": I2}, ValueError,
                             r"scatter: index of shape \[2, 2\] is larger than src of shape "
                             r"\[1, 1\]"),
                   ErrorCase((a64(2, 3), a64(2, 2)), {"dim": 0, "index": I2 + 2}, IndexError,
                             "scatter: index 2 is out of bounds for dim 0 with size 2")]),
    OpInfo("scatter_value", op=lambda x, dim, index, value: x.scatter(dim, index, value),
           ref=lambda t, x, dim, index, value: x.scatter(dim, index, value),
           samples=scatter_sample("value")),
    OpInfo("scatter_add", op=lambda x, src, dim, index: mc.scatter_add(x, dim, index, src),
           ref=lambda t, x, src, dim, index: t.scatter_add(x, dim, index, src),
           samples=scatter_sample("add"),
           errors=[ErrorCase((a64(2, 3), a64(2, 2).astype(np.float32)), {"dim": 0, "index": I2},
                             TypeError, "scatter_add: expected self.dtype to be equal to "
                                        "src.dtype")]),
    *[OpInfo(f"scatter_reduce_{r}", op=_scatter_reduce, ref=_torch_scatter_reduce,
             samples=scatter_sample(r)) for r in ("sum", "prod", "mean", "amax", "amin")],
    OpInfo("index_add", op=lambda x, src, dim, index, alpha: x.index_add(dim, index, src,
                                                                        alpha=alpha),
           ref=lambda t, x, src, dim, index, alpha: x.index_add(dim, index, src, alpha=alpha),
           samples=index_add_sample(),
           errors=[ErrorCase((a64(2, 3), a64(2, 2)), {"dim": 1, "index": np.array([0, 1, 2]),
                                                       "alpha": 1}, ValueError, r"index_add: source of shape \[2, 2\] should be "
                                         r"\[2, 3\]")]),
    OpInfo("masked_fill", op=lambda x, mask: x.masked_fill(mask, -0.75),
           ref=lambda t, x, mask: x.masked_fill(mask, -0.75), samples=masked_sample(),
           errors=[ErrorCase((a64(2, 3),), {"mask": np.ones(3)}, TypeError,
                             "masked_fill: expected a bool mask")]),
    OpInfo("masked_fill_tensor", op=lambda x, v, mask: x.masked_fill(mask, v),
           ref=lambda t, x, v, mask: x.masked_fill(mask, v),
           samples=masked_sample(value_tensor=True),
           errors=[ErrorCase((a64(2, 3), a64(2)), {"mask": np.ones(3, bool)}, ValueError,
                             "masked_fill: only supports a 0-dimensional value tensor")]),
    OpInfo("masked_select", op=lambda x, mask: x.masked_select(mask),
           ref=lambda t, x, mask: x.masked_select(mask), samples=masked_sample(),
           errors=[ErrorCase((a64(2, 3),), {"mask": np.ones(2, bool)}, ValueError,
                             r"masked_select: the shape of the mask \[2\] must be broadcastable")]),
    OpInfo("nonzero", op=mc.nonzero, ref=lambda t, x: t.nonzero(x), samples=sparse_sample(),
           gradcheck=False),
    OpInfo("nonzero_tuple", op=lambda x: mc.nonzero(x, as_tuple=True),
           ref=lambda t, x: t.nonzero(x, as_tuple=True), samples=sparse_sample(),
           gradcheck=False),
    OpInfo("argwhere", op=mc.argwhere, ref=lambda t, x: t.argwhere(x), samples=sparse_sample(),
           gradcheck=False),
    OpInfo("take_along_dim", op=lambda x, **kw: mc.take_along_dim(x, **kw),
           ref=lambda t, x, **kw: t.take_along_dim(x, **kw), samples=take_along_dim_sample(),
           errors=[ErrorCase((a64(2, 3),), {"indices": np.zeros(2, int), "dim": 1}, ValueError,
                             "take_along_dim: input and indices should have the same number")]),
]
