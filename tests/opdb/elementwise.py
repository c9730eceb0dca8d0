"""Op table entries for the element-wise functions of issue 16: the trigonometric, inverse and
hyperbolic families, erf / erfc, logs and exponentials, rsqrt / reciprocal, the roundings and
frac (kept away from the integers, where they jump), nan_to_num; fmod, remainder, copysign,
lerp, logaddexp(2), atan2, hypot, div with rounding_mode; and without gradient: the tests
(isnan, isinf, isfinite, ...), comparisons, logical and bitwise operators, isclose."""
import numpy as np
from hypothesis import strategies as st

import minicnn as mc
from minicnn.testing.strategies import arrays, broadcastable_shapes, shapes

from . import ErrorCase, OpInfo, Sample


def a64(*shape):
    return np.random.default_rng(1).uniform(-2, 2, size=shape)


def away_from(x, points, d=0.05):
    """x with values within d of a point of the lattice `points` (spacing) moved d away."""
    x = np.array(x, copy=True)
    nearest = np.round(x / points) * points
    close = np.abs(x - nearest) < d
    x[close] = nearest[close] + np.where(x[close] >= nearest[close], d, -d)
    return x


@st.composite
def unary(draw, low=-2.0, high=2.0, lattice=None, **kwargs):
    x = draw(arrays(shapes(min_dims=0, max_dims=3, max_side=4), low=low, high=high))
    if lattice is not None:
        x = away_from(x, lattice)
    return Sample((np.asarray(x),), {k: draw(v) for k, v in kwargs.items()})


@st.composite
def binary(draw, a=(-2.0, 2.0), b=(-2.0, 2.0), b_min_abs=0.0, quotient=False):
    sa, sb = draw(broadcastable_shapes(2, max_dims=3, max_side=4))
    x = draw(arrays(sa, low=a[0], high=a[1]))
    y = draw(arrays(sb, low=b[0], high=b[1], min_abs=b_min_abs))
    if quotient:   # a / b away from the integers, where fmod's and remainder's jump
        q = away_from(np.broadcast_to(x, np.broadcast_shapes(sa, sb)) / y, 1.0, 0.08)
        x = q * y
    return Sample((np.asarray(x), np.asarray(y)))


@st.composite
def lerp_sample(draw):
    sa, sb, sw = draw(broadcastable_shapes(3, max_dims=3, max_side=4))
    args = (draw(arrays(sa)), draw(arrays(sb)))
    if draw(st.booleans()):
        return Sample(args, {"weight": draw(st.sampled_from([0.25, 0.5, 0.8, -0.3, 1.7]))})
    return Sample(args + (draw(arrays(sw, low=-0.5, high=1.5)),))


@st.composite
def special(draw, kind="float"):
    x = draw(arrays(shapes(min_dims=0, max_dims=3, max_side=4)))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    pick = rng.random(x.shape)
    x = np.where(pick < 0.1, np.nan, np.where(pick < 0.2, np.inf, np.where(pick < 0.3, -np.inf,
                                                                          x)))
    return Sample((np.asarray(x),))


@st.composite
def pair(draw, kind):
    sa, sb = draw(broadcastable_shapes(2, max_dims=3, max_side=4))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    if kind == "float":     # small integers as floats: equal values happen
        return Sample((rng.integers(-2, 3, sa).astype(float), rng.integers(-2, 3, sb)
                       .astype(float)))
    if kind == "bool":
        return Sample((np.asarray(rng.random(sa) < 0.5), np.asarray(rng.random(sb) < 0.5)))
    if kind == "shift":
        return Sample((rng.integers(-50, 50, sa), rng.integers(0, 8, sb)))
    return Sample((rng.integers(-50, 50, sa), rng.integers(-50, 50, sb)))


@st.composite
def isclose_sample(draw):
    a = draw(arrays(shapes(min_dims=0, max_dims=3, max_side=4)))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    b = a + rng.choice([0.0, 1e-9, 1e-6, 1e-3], a.shape) * rng.choice([-1, 1], a.shape)
    b = np.where(rng.random(a.shape) < 0.1, np.nan, b)
    return Sample((np.asarray(a), np.asarray(b)),
                  {"rtol": draw(st.sampled_from([1e-5, 1e-7])),
                   "atol": draw(st.sampled_from([1e-8, 1e-5])),
                   "equal_nan": draw(st.booleans())})


@st.composite
def round_sample(draw):
    """Values a third of a step or less from a multiple of 10^-decimals: away from the
    half-steps, where rounding jumps."""
    decimals = draw(st.sampled_from([0, 1, 2, -1]))
    shape = draw(shapes(min_dims=0, max_dims=3, max_side=4))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    x = (rng.integers(-30, 30, shape) + rng.uniform(-0.3, 0.3, shape)) * 10.0 ** -decimals
    return Sample((np.asarray(x),), {"decimals": decimals})


def _fn(name):
    return dict(op=getattr(mc, name), ref=lambda t, *a, **k: getattr(t, name)(*a, **k))


UNARY = {   # name: sample strategy
    "sin": unary(), "cos": unary(), "tan": unary(low=-1.3, high=1.3),
    "asin": unary(low=-0.95, high=0.95), "acos": unary(low=-0.95, high=0.95), "atan": unary(),
    "sinh": unary(), "cosh": unary(), "asinh": unary(), "acosh": unary(low=1.05, high=3.0),
    "atanh": unary(low=-0.95, high=0.95), "erf": unary(), "erfc": unary(low=-3.0, high=3.0),
    "log2": unary(low=0.1, high=3.0), "log10": unary(low=0.1, high=3.0),
    "log1p": unary(low=-0.9, high=3.0), "expm1": unary(), "exp2": unary(),
    "rsqrt": unary(low=0.2, high=3.0), "reciprocal": unary(low=0.3, high=2.0),
    "frac": unary(lattice=1.0), "floor": unary(lattice=1.0), "ceil": unary(lattice=1.0),
    "trunc": unary(lattice=1.0), "nan_to_num": unary(),
}

OPS = [OpInfo(name, **_fn(name), samples=strategy) for name, strategy in UNARY.items()] + [
    OpInfo("round", op=lambda x, decimals: mc.round(x, decimals=decimals),
           ref=lambda t, x, decimals: t.round(x, decimals=decimals), samples=round_sample()),
    OpInfo("reciprocal_negative", op=mc.reciprocal, ref=lambda t, x: t.reciprocal(x),
           samples=unary(low=-2.0, high=-0.3)),
    OpInfo("fmod", **_fn("fmod"), samples=binary(b_min_abs=0.3, quotient=True)),
    OpInfo("remainder", **_fn("remainder"), samples=binary(b_min_abs=0.3, quotient=True)),
    OpInfo("remainder_op", op=lambda a, b: a % b, ref=lambda t, a, b: a % b,
           samples=binary(b_min_abs=0.3, quotient=True)),
    OpInfo("copysign", **_fn("copysign"), samples=binary().map(
        lambda s: Sample((away_from(s.args[0], 100.0, 0.05), away_from(s.args[1], 100.0, 0.05))))),
    OpInfo("lerp", op=lambda a, b, w=None, weight=None: mc.lerp(a, b, w if w is not None
                                                                 else weight),
           ref=lambda t, a, b, w=None, weight=None: t.lerp(a, b, w if w is not None else weight),
           samples=lerp_sample(),
           errors=[ErrorCase((a64(2, 3), a64(3), a64(4)), {}, ValueError,
                             r"lerp: the shapes \[2, 3\], \[3\] and \[4\] cannot be broadcast")]),
    OpInfo("logaddexp", **_fn("logaddexp"), samples=binary(a=(-4, 4), b=(-4, 4))),
    OpInfo("logaddexp2", **_fn("logaddexp2"), samples=binary(a=(-4, 4), b=(-4, 4))),
    OpInfo("atan2", **_fn("atan2"), samples=binary(b_min_abs=0.2)),
    OpInfo("hypot", **_fn("hypot"), samples=binary(b_min_abs=0.2)),
    OpInfo("div_trunc", op=lambda a, b, rounding_mode="trunc": mc.div(
        a, b, rounding_mode=rounding_mode),
           ref=lambda t, a, b: t.div(a, b, rounding_mode="trunc"),
           samples=binary(b_min_abs=0.3, quotient=True),
           errors=[ErrorCase((a64(2), a64(2)), {"rounding_mode": "round"}, ValueError,
                             "div expected rounding_mode to be one of None, 'trunc', or "
                             "'floor' but found 'round'")]),
    OpInfo("div_floor", op=lambda a, b: mc.div(a, b, rounding_mode="floor"),
           ref=lambda t, a, b: t.div(a, b, rounding_mode="floor"),
           samples=binary(b_min_abs=0.3, quotient=True)),
    OpInfo("floor_divide", op=lambda a, b: a // b, ref=lambda t, a, b: a // b,
           samples=binary(b_min_abs=0.3, quotient=True), gradcheck=False),
    *[OpInfo(name, **_fn(name), samples=special(), gradcheck=False)
      for name in ("isnan", "isinf", "isfinite", "isposinf", "isneginf", "signbit")],
    OpInfo("nan_to_num_special", op=lambda x: mc.nan_to_num(x, nan=1.5, neginf=-7.0),
           ref=lambda t, x: t.nan_to_num(x, nan=1.5, neginf=-7.0), samples=special(),
           gradcheck=False),   # (finite differences through NaN; the parity test's gradient
    #                             against PyTorch's checks the gradient)
    *[OpInfo(name, **_fn(name), samples=pair("float"), gradcheck=False)
      for name in ("eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or",
                   "logical_xor")],
    *[OpInfo(f"{name}_bool", **_fn(name), samples=pair("bool"), gradcheck=False)
      for name in ("logical_and", "bitwise_and", "bitwise_or", "bitwise_xor")],
    *[OpInfo(name, **_fn(name), samples=pair("int"), gradcheck=False)
      for name in ("bitwise_and", "bitwise_or", "bitwise_xor")],
    *[OpInfo(name, **_fn(name), samples=pair("shift"), gradcheck=False)
      for name in ("bitwise_left_shift", "bitwise_right_shift")],
    OpInfo("bitwise_not", **_fn("bitwise_not"),
           samples=pair("int").map(lambda s: Sample(s.args[:1])), gradcheck=False,
           errors=[ErrorCase((a64(2),), {}, TypeError, "bitwise_not: expected an integer")]),
    OpInfo("logical_not", **_fn("logical_not"), samples=special(), gradcheck=False),
    OpInfo("isclose", **_fn("isclose"), samples=isclose_sample(), gradcheck=False),
]
