"""Element-wise functions of one tensor under PyTorch's names: the trigonometric, inverse and
hyperbolic families, erf / erfc, log2 / log10 / log1p, expm1 / exp2, rsqrt, reciprocal, frac,
the roundings (floor, ceil, round with decimals, trunc: gradient 0, as PyTorch), nan_to_num,
and the tests isnan / isinf / isfinite / isposinf / isneginf (no gradient).

One Function, Unary(name), runs every differentiable one from the table FUNCTIONS: its forward
(array code, NumPy or CuPy) and its derivative (a Tensor expression of x and y, so the backward
has a backward). Integer and bool inputs compute in the default float dtype, as in PyTorch;
the roundings keep integer tensors as they are.
"""
import math

import numpy

from ..autograd import Function
from ..devices import get_array_module
from ..dtypes import HALF_FLOATS, finfo, get_default_dtype
from ..dtypes import kind as dtype_kind
from ..tensor import Tensor
from . import autocast
from .arith import cast
from .elementwise import exp


def _c(x, array):
    """A constant Tensor of x's dtype."""
    return Tensor._wrap(array.astype(x.dtype, copy=False))


# --- erf / erfc: Cephes' rational approximations (ndtr.c), array code ---------------------------
# NumPy has no erf; these are accurate to a few ulp in float64 (erfc's exp(-x^2) taken in two
# parts, Cephes' expx2, so its relative error stays small far into the tail).
_T = (9.60497373987051638749E0, 9.00260197203842689217E1, 2.23200534594684319226E3,
      7.00332514112805075473E3, 5.55923013010394962768E4)
_U = (3.35617141647503099647E1, 5.21357949780152679795E2, 4.59432382970980127987E3,
      2.26290000613890934246E4, 4.92673942608635921086E4)
_P = (2.46196981473530512524E-10, 5.64189564831068821977E-1, 7.46321056442269912687E0,
      4.86371970985681366614E1, 1.96520832956077098242E2, 5.26445194995477358631E2,
      9.34528527171957607540E2, 1.02755188689515710272E3, 5.57535335369399327526E2)
_Q = (1.32281951154744992508E1, 8.67072140885989742329E1, 3.54937778887819891062E2,
      9.75708501743205489753E2, 1.82390916687909736289E3, 2.24633760818710981792E3,
      1.65666309194161350182E3, 5.57535340817727675546E2)
_R = (5.64189583547755073984E-1, 1.27536670759978104416E0, 5.01905042251180477414E0,
      6.16021097993053585195E0, 7.40974269950448939160E0, 2.97886665372100240670E0)
_S = (2.26052863220117276590E0, 9.39603524938001434673E0, 1.20489539808096656605E1,
      1.70814450747565897222E1, 9.60896809063285878198E0, 3.36907645100081516050E0)


def _poly(x, coeffs, monic=False):
    r = x + coeffs[0] if monic else x * 0 + coeffs[0]
    for c in coeffs[1:]:
        r = r * x + c
    return r


def _erf_near(x):          # |x| <= 1
    z = x * x
    return x * _poly(z, _T) / _poly(z, _U, monic=True)


def _erfc_far(xp, a):      # |a| >= 1 (beyond 30, exp(-x^2) is 0 in float64)
    x = xp.minimum(xp.abs(a), 30.0)
    m = xp.floor(x * 128.0 + 0.5) / 128.0          # exp(-x^2) = exp(-m^2) exp(-(2m f + f^2))
    f = x - m
    z = xp.exp(-m * m) * xp.exp(-(2.0 * m * f + f * f))
    near = x < 8.0
    p = xp.where(near, _poly(x, _P), _poly(x, _R))
    q = xp.where(near, _poly(x, _Q, monic=True), _poly(x, _S, monic=True))
    y = z * p / q
    return xp.where(a < 0, 2.0 - y, y)


def erf_array(xp, x):
    a = x.astype(numpy.float64)
    with numpy.errstate(over="ignore", invalid="ignore"):
        out = xp.where(xp.abs(a) <= 1.0, _erf_near(a), 1.0 - _erfc_far(xp, a))
    return out.astype(x.dtype)


def erfc_array(xp, x):
    a = x.astype(numpy.float64)
    with numpy.errstate(over="ignore", invalid="ignore"):
        out = xp.where(xp.abs(a) < 1.0, 1.0 - _erf_near(a), _erfc_far(xp, a))
    return out.astype(x.dtype)


# --- the table --------------------------------------------------------------------------------
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def _round(xp, x, decimals=0):
    """PyTorch's round: half to even; with decimals, nearbyint(x * 10^d) / 10^d (d >= 0) or
    nearbyint(x / 10^-d) * 10^-d."""
    if decimals == 0:
        return xp.rint(x)
    ten = x.dtype.type(10.0 ** abs(decimals))
    return xp.rint(x * ten) / ten if decimals > 0 else xp.rint(x / ten) * ten


def _zero(x, y):
    return None


# name -> (forward(xp, array), derivative(x, y) or a constant-zero marker)
FUNCTIONS = {
    "sin": (lambda xp, a: xp.sin(a), lambda x, y: cos(x)),
    "cos": (lambda xp, a: xp.cos(a), lambda x, y: -sin(x)),
    "tan": (lambda xp, a: xp.tan(a), lambda x, y: y * y + 1.0),
    "asin": (lambda xp, a: xp.arcsin(a), lambda x, y: rsqrt(1.0 - x * x)),
    "acos": (lambda xp, a: xp.arccos(a), lambda x, y: -rsqrt(1.0 - x * x)),
    "atan": (lambda xp, a: xp.arctan(a), lambda x, y: reciprocal(x * x + 1.0)),
    "sinh": (lambda xp, a: xp.sinh(a), lambda x, y: cosh(x)),
    "cosh": (lambda xp, a: xp.cosh(a), lambda x, y: sinh(x)),
    "asinh": (lambda xp, a: xp.arcsinh(a), lambda x, y: rsqrt(x * x + 1.0)),
    "acosh": (lambda xp, a: xp.arccosh(a), lambda x, y: rsqrt((x - 1.0) * (x + 1.0))),
    "atanh": (lambda xp, a: xp.arctanh(a), lambda x, y: reciprocal(1.0 - x * x)),
    "erf": (erf_array, lambda x, y: exp(-(x * x)) * _TWO_OVER_SQRT_PI),
    "erfc": (erfc_array, lambda x, y: exp(-(x * x)) * -_TWO_OVER_SQRT_PI),
    "log2": (lambda xp, a: xp.log2(a), lambda x, y: reciprocal(x * math.log(2.0))),
    "log10": (lambda xp, a: xp.log10(a), lambda x, y: reciprocal(x * math.log(10.0))),
    "log1p": (lambda xp, a: xp.log1p(a), lambda x, y: reciprocal(x + 1.0)),
    "expm1": (lambda xp, a: xp.expm1(a), lambda x, y: y + 1.0),
    "exp2": (lambda xp, a: xp.exp2(a), lambda x, y: y * math.log(2.0)),
    "rsqrt": (lambda xp, a: 1.0 / xp.sqrt(a), lambda x, y: y * y * y * -0.5),
    "reciprocal": (lambda xp, a: 1.0 / a, lambda x, y: -(y * y)),
    "frac": (lambda xp, a: a - xp.trunc(a), lambda x, y: _c(x, get_array_module(x.array)
                                                              .ones((), x.dtype))),
    "floor": (lambda xp, a: xp.floor(a), _zero),
    "ceil": (lambda xp, a: xp.ceil(a), _zero),
    "trunc": (lambda xp, a: xp.trunc(a), _zero),
    "round": (_round, _zero),
}
ROUNDINGS = ("floor", "ceil", "trunc", "round")


class Unary(Function):
    """y = FUNCTIONS[fn](x), backward gy * f'(x) (0 for the roundings)."""
    saves_outputs = (0,)

    def __init__(self, fn, **kwargs):
        self.fn, self.kwargs = fn, kwargs

    def forward(self, x):
        xp = get_array_module(x)
        with numpy.errstate(all="ignore"):   # NaN and inf results, as PyTorch, silently
            self.y = FUNCTIONS[self.fn][0](xp, x, **self.kwargs).astype(x.dtype, copy=False)
        return self.y

    def backward(self, gy):
        d = FUNCTIONS[self.fn][1](self.inputs[0], self.retained_output(self.y))
        if d is None:    # zeros, as PyTorch's zeros_like(grad) (also where gy is NaN)
            return Tensor._wrap(get_array_module(gy.array).zeros(gy.shape, gy.dtype))
        return gy * d


def _unary(fn):
    def op(input):
        input = autocast.args(fn, input)
        if dtype_kind(input.array.dtype) not in "fc":
            if fn in ROUNDINGS:
                return input              # integer tensors are already rounded
            if fn == "frac":
                raise TypeError(f"frac: expected a floating point tensor, got {input.dtype}")
            input = cast(input, get_default_dtype())
        return Unary(fn)(input)
    op.__name__ = op.__qualname__ = fn
    op.__doc__ = f"Element-wise {fn} (PyTorch's torch.{fn}); integers compute in the default " \
                 "float dtype" + (", and roundings keep them" if fn in ROUNDINGS else "") + "."
    return op


sin, cos, tan = _unary("sin"), _unary("cos"), _unary("tan")
asin, acos, atan = _unary("asin"), _unary("acos"), _unary("atan")
sinh, cosh = _unary("sinh"), _unary("cosh")
asinh, acosh, atanh = _unary("asinh"), _unary("acosh"), _unary("atanh")
erf, erfc = _unary("erf"), _unary("erfc")
log2, log10, log1p = _unary("log2"), _unary("log10"), _unary("log1p")
expm1, exp2 = _unary("expm1"), _unary("exp2")
rsqrt, reciprocal, frac = _unary("rsqrt"), _unary("reciprocal"), _unary("frac")
floor, ceil, trunc = _unary("floor"), _unary("ceil"), _unary("trunc")
arcsin, arccos, arctan = asin, acos, atan
arcsinh, arccosh, arctanh = asinh, acosh, atanh
fix = trunc


def round(input, *, decimals=0):  # noqa: A001 -- PyTorch's name
    """Element-wise rounding, half to even, to `decimals` decimal places (gradient 0)."""
    if dtype_kind(input.array.dtype) not in "fc":
        return input
    return Unary("round", decimals=int(decimals))(input)


class NanToNum(Function):
    """NaN, +inf and -inf replaced by given values (the dtype's extremes by default); the
    gradient passes where x is finite (PyTorch's)."""
    saves = (0,)

    def __init__(self, nan, posinf, neginf):
        self.values = nan, posinf, neginf

    def forward(self, x):
        nan, posinf, neginf = self.values
        if x.dtype not in HALF_FLOATS:
            return get_array_module(x).nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf)
        # NumPy knows neither half's extremes (bfloat16 not at all): in float32, with them
        top = float(finfo(x.dtype).max)
        y = get_array_module(x).nan_to_num(x.astype("float32"), nan=nan,
                                           posinf=top if posinf is None else posinf,
                                           neginf=-top if neginf is None else neginf)
        return y.astype(x.dtype)

    def backward(self, gy):
        x = self.inputs[0]
        return gy * _c(x, get_array_module(x.array).isfinite(x.array))


def nan_to_num(input, nan=0.0, posinf=None, neginf=None):
    if dtype_kind(input.array.dtype) not in "fc":
        return input
    return NanToNum(nan, posinf, neginf)(input)


def _test(name, fn):
    def op(input):
        xp = get_array_module(input.array)
        return Tensor._wrap(xp.asarray(fn(xp, input.array)))
    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"Element-wise {name}: a bool tensor (no gradient)."
    return op


isnan = _test("isnan", lambda xp, a: xp.isnan(a))
isinf = _test("isinf", lambda xp, a: xp.isinf(a))
isfinite = _test("isfinite", lambda xp, a: xp.isfinite(a))
isposinf = _test("isposinf", lambda xp, a: xp.isposinf(a) if dtype_kind(a.dtype) == "f" else
                 xp.zeros(a.shape, bool))
isneginf = _test("isneginf", lambda xp, a: xp.isneginf(a) if dtype_kind(a.dtype) == "f" else
                 xp.zeros(a.shape, bool))
isreal = _test("isreal", lambda xp, a: xp.isreal(a))
signbit = _test("signbit", lambda xp, a: xp.signbit(a))
