"""Op table entries for the reductions added with issue 16: prod (zeros included), logsumexp,
var_mean / std_mean, sum with dtype=, all / any (no gradient)."""
import numpy as np
from hypothesis import strategies as st

import minicnn as mc
from minicnn.testing.strategies import arrays, shapes

from . import ErrorCase, OpInfo, Sample


def a64(*shape):
    return np.random.default_rng(1).uniform(-2, 2, size=shape)


@st.composite
def reduce_sample(draw, int_dim=False, tuple_dim=True, zero=False, low=-2.0, high=2.0,
                  min_side=1):
    shape = draw(shapes(min_dims=1, max_dims=3, min_side=min_side, max_side=4))
    x = draw(arrays(shape, low=low, high=high))
    for _ in range(draw(st.integers(0, 2)) if zero else 0):   # exact zeros: prod's gradient
        x = np.array(x, copy=True)                               # takes them apart
        x[tuple(draw(st.integers(0, n - 1)) for n in shape)] = 0.0
    nd = len(shape)
    if int_dim:
        dim = draw(st.one_of(st.none(), st.integers(-nd, nd - 1)))
    elif tuple_dim and draw(st.booleans()):
        dim = tuple(draw(st.lists(st.integers(-nd, nd - 1), min_size=1, max_size=nd,
                                  unique_by=lambda d: d % nd)))
    else:
        dim = draw(st.integers(-nd, nd - 1))
    return Sample((x,), {"dim": dim, "keepdim": draw(st.booleans())})


@st.composite
def bool_sample(draw):
    s = draw(reduce_sample(int_dim=True))
    x = s.args[0]
    x = np.where(np.random.default_rng(draw(st.integers(0, 99))).random(x.shape) < 0.3, 0.0, x)
    kind = draw(st.sampled_from(["float", "bool", "uint8"]))
    x = x if kind == "float" else (x != 0) if kind == "bool" else (x != 0).astype(np.uint8)
    return Sample((x,), s.kwargs)


@st.composite
def var_mean_sample(draw):
    s = draw(reduce_sample(min_side=2))   # at least one degree of freedom
    s.kwargs["correction"] = draw(st.sampled_from([0, 1]))
    return s


def _prod(x, dim, keepdim):
    return x.prod() if dim is None else x.prod(dim, keepdim)


def _torch_prod(t, x, dim, keepdim):
    return x.prod() if dim is None else x.prod(dim, keepdim)


OPS = [
    OpInfo("prod", op=_prod, ref=_torch_prod, samples=reduce_sample(int_dim=True, zero=True),
           errors=[ErrorCase((a64(2, 3),), {"dim": (0, 1), "keepdim": False}, TypeError,
                             "prod: dim must be an int")]),
    OpInfo("logsumexp", op=lambda x, dim, keepdim: mc.logsumexp(x, dim, keepdim),
           ref=lambda t, x, dim, keepdim: t.logsumexp(x, dim, keepdim),
           samples=reduce_sample(low=-4.0, high=4.0)),
    OpInfo("var_mean", op=lambda x, **kw: mc.var_mean(x, **kw),
           ref=lambda t, x, **kw: t.var_mean(x, **kw), samples=var_mean_sample()),
    OpInfo("std_mean", op=lambda x, **kw: mc.std_mean(x, **kw),
           ref=lambda t, x, **kw: t.std_mean(x, **kw),
           samples=var_mean_sample().map(lambda s: Sample((s.args[0] * 3.0,), s.kwargs))),
    OpInfo("sum_dtype", op=lambda x, **kw: x.sum(**kw, dtype=mc.float64),
           ref=lambda t, x, **kw: x.sum(**kw, dtype=t.float64), samples=reduce_sample()),
    OpInfo("all", op=lambda x, dim, keepdim: x.all() if dim is None else x.all(dim, keepdim),
           ref=lambda t, x, dim, keepdim: x.all() if dim is None else x.all(dim, keepdim),
           samples=bool_sample(), gradcheck=False),
    OpInfo("any", op=lambda x, dim, keepdim: x.any() if dim is None else x.any(dim, keepdim),
           ref=lambda t, x, dim, keepdim: x.any() if dim is None else x.any(dim, keepdim),
           samples=bool_sample(), gradcheck=False),
]
