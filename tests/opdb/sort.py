"""Op table entries for the order statistics: sort, argsort (no gradient), topk, kthvalue,
median (distinct values: a tie has no derivative, and PyTorch does not say which of two equal
elements comes first, unless a sort is stable=True; test_nan_inf_parity's NaNs and infs make
ties, which index_ties tells it)."""
import numpy as np
from hypothesis import strategies as st

import minicnn as mc
from minicnn.testing.strategies import shapes

from . import ErrorCase, OpInfo, Sample


def a64(*shape):
    return np.random.default_rng(1).uniform(-2, 2, size=shape)


@st.composite
def distinct(draw, min_dims=1, **kwargs):
    shape = draw(shapes(min_dims=min_dims, max_dims=3, max_side=5))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    n = int(np.prod(shape))
    x = ((rng.permutation(n) - n / 2) * 0.1 + rng.uniform(-0.02, 0.02, n)).reshape(shape)
    nd = max(len(shape), 1)
    dim = draw(st.integers(-nd, nd - 1))
    kw = {k: f(draw, shape, dim) for k, f in kwargs.items()}
    return Sample((x,), dict(kw, dim=dim))


def _k(draw, shape, dim):
    return draw(st.integers(0, shape[dim] if shape else 1))


def _k1(draw, shape, dim):
    return draw(st.integers(1, shape[dim] if shape else 1))


def _bool(draw, shape, dim):
    return draw(st.booleans())


OPS = [
    OpInfo("sort", op=lambda x, **kw: x.sort(**kw), ref=lambda t, x, **kw: x.sort(**kw),
           samples=distinct(min_dims=0, descending=_bool, stable=_bool), index_ties=True),
    OpInfo("argsort", op=lambda x, **kw: x.argsort(**kw), ref=lambda t, x, **kw: x.argsort(**kw),
           samples=distinct(min_dims=0, descending=_bool, stable=_bool), gradcheck=False,
           index_ties=True),
    OpInfo("topk", op=lambda x, **kw: x.topk(**kw), ref=lambda t, x, **kw: x.topk(**kw),
           samples=distinct(k=_k, largest=_bool), index_ties=True,
           errors=[ErrorCase((a64(2, 3),), {"k": 4}, ValueError,
                             r"topk: selected index k \(4\) out of range for dim 1 of size 3")]),
    OpInfo("kthvalue", op=lambda x, **kw: x.kthvalue(**kw),
           ref=lambda t, x, **kw: x.kthvalue(**kw), samples=distinct(k=_k1, keepdim=_bool),
           index_ties=True,
           errors=[ErrorCase((a64(2, 3),), {"k": 0}, ValueError,
                             r"kthvalue: selected number k \(0\) out of range")]),
    OpInfo("median", op=lambda x, **kw: x.median(**kw), ref=lambda t, x, **kw: x.median(**kw),
           samples=distinct(keepdim=_bool), index_ties=True),
    OpInfo("median_all", op=lambda x: mc.median(x), ref=lambda t, x: x.median(),
           samples=distinct().map(lambda s: Sample(s.args))),
]
