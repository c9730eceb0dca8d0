"""Op table entries for the scans: cumsum, cumprod (a zero included), logcumsumexp, cummax,
cummin (distinct values: a tie has no derivative)."""
import numpy as np
from hypothesis import strategies as st

import minicnn as mc
from minicnn.testing.strategies import arrays, shapes

from . import ErrorCase, OpInfo, Sample


def a64(*shape):
    return np.random.default_rng(1).uniform(-2, 2, size=shape)


@st.composite
def scan_sample(draw, zero=False, distinct=False, low=-2.0, high=2.0):
    shape = draw(shapes(min_dims=0, max_dims=3, max_side=5))
    if distinct:
        rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
        n = int(np.prod(shape))
        x = ((rng.permutation(n) - n / 2) * 0.1 + rng.uniform(-0.02, 0.02, n)).reshape(shape)
    else:
        x = draw(arrays(shape, low=low, high=high))
    if zero and shape and draw(st.booleans()):
        x = np.array(x, copy=True)
        x[tuple(draw(st.integers(0, n - 1)) for n in shape)] = 0.0
    nd = max(len(shape), 1)
    return Sample((x,), {"dim": draw(st.integers(-nd, nd - 1))})


def _method(name):
    return dict(op=lambda x, dim: getattr(x, name)(dim), ref=lambda t, x, dim:
                getattr(x, name)(dim))


OPS = [
    OpInfo("cumsum", **_method("cumsum"), samples=scan_sample(),
           errors=[ErrorCase((a64(2, 3),), {"dim": 2}, IndexError,
                             r"cumsum: dimension out of range")]),
    OpInfo("cumprod", **_method("cumprod"), samples=scan_sample(zero=True, low=0.5, high=1.5)
           .map(lambda s: Sample((np.asarray(s.args[0] * np.sign(np.cos(7 * s.args[0] + 1))),),
                                 s.kwargs))),
    OpInfo("logcumsumexp", **_method("logcumsumexp"), samples=scan_sample(low=-4.0, high=4.0),
           errors=[ErrorCase((np.arange(3),), {"dim": 0}, TypeError,
                             "logcumsumexp: expected a floating point tensor")]),
    OpInfo("cummax", **_method("cummax"), samples=scan_sample(distinct=True)),
    OpInfo("cummin", **_method("cummin"), samples=scan_sample(distinct=True)),
]
