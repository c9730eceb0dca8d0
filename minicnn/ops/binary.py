"""Element-wise functions of two tensors under PyTorch's names: fmod, remainder (%),
floor_divide (//), div with rounding_mode, copysign, lerp, logaddexp / logaddexp2, atan2,
hypot; comparisons (eq, ne, lt, le, gt, ge, isclose, allclose, equal), logical and bitwise
operators and shifts (no gradient).

Operands are promoted as in arith.binary_operands (a Python scalar takes the tensor's dtype, an
integer tensor meeting a float one becomes float). The differentiable ones are one Function,
Binary(name), with PyTorch's gradients from the table GRADIENTS.
"""
import math

import numpy

from ..autograd import Function
from ..devices import get_array_module
from ..dtypes import kind as dtype_kind
from ..tensor import Tensor
from .arith import _apply_binary, binary_operands, grad_to, where
from .util import broadcast_shapes, composite_in_float32, shape_str


def _trunc_div(xp, a, b):
    q = a / b
    return xp.trunc(q) if dtype_kind(q.dtype) == "f" else q


def _floor_div(xp, a, b):
    """PyTorch's floor division: floats as div_floor_floating (the quotient corrected from
    fmod, so a // b == floor(a / b) computed exactly); integers as NumPy's //."""
    if dtype_kind(a.dtype) not in "fc":
        return xp.floor_divide(a, b)
    with numpy.errstate(all="ignore"):
        mod = xp.fmod(a, b)
        div = (a - mod) / b
        div = xp.where((mod != 0) & ((b < 0) != (mod < 0)), div - 1, div)
        floor = xp.floor(div)
        floor = xp.where(div - floor > 0.5, floor + 1, floor)
        floor = xp.where(div != 0, floor, xp.copysign(xp.zeros_like(div), a / b))
        return xp.where(b == 0, a / b, floor)


def _logaddexp_grad(a, b, base):
    """(d/da, d/db) of log(base^a + base^b): the two shares of the sum, sigmoid(+-(a - b) ln b)."""
    from .activation import sigmoid  # noqa: PLC0415
    k = math.log(base)
    return sigmoid((a - b) * k), sigmoid((b - a) * k)


# name -> (forward(xp, a, b), gradients(a, b, y, gy) -> (ga, gb))
FORWARD = {
    "fmod": lambda xp, a, b: xp.fmod(a, b),
    "remainder": lambda xp, a, b: xp.remainder(a, b),   # fmod, moved to the divisor's sign
    "copysign": lambda xp, a, b: xp.copysign(a, b),
    "logaddexp": lambda xp, a, b: xp.logaddexp(a, b),
    "logaddexp2": lambda xp, a, b: xp.logaddexp2(a, b),
    "atan2": lambda xp, a, b: xp.arctan2(a, b),
    "hypot": lambda xp, a, b: xp.hypot(a, b),
}


def _fmod_grad(a, b, y, gy):
    xp = get_array_module(gy.array)
    return gy, -gy * Tensor._wrap(_trunc_div(xp, a.array, b.array))


def _remainder_grad(a, b, y, gy):
    xp = get_array_module(gy.array)
    return gy, -gy * Tensor._wrap(_floor_div(xp, a.array, b.array))


def _copysign_grad(a, b, y, gy):
    """PyTorch's: gy * y / a (0 where a is 0) for a; 0 for b."""
    xp = get_array_module(gy.array)
    zero = Tensor._wrap(a.array == 0)
    one = Tensor._wrap(xp.ones((), a.dtype))
    nil = Tensor._wrap(xp.zeros((), gy.dtype))
    return gy * where(zero, nil, y / where(zero, one, a)), gy * 0.0


def _atan2_grad(a, b, y, gy):
    r = a * a + b * b
    return gy * b / r, gy * -a / r


def _hypot_grad(a, b, y, gy):
    return gy * a / y, gy * b / y


GRADIENTS = {
    "fmod": _fmod_grad,
    "remainder": _remainder_grad,
    "copysign": _copysign_grad,
    "logaddexp": lambda a, b, y, gy: tuple(gy * s for s in _logaddexp_grad(a, b, math.e)),
    "logaddexp2": lambda a, b, y, gy: tuple(gy * s for s in _logaddexp_grad(a, b, 2.0)),
    "atan2": _atan2_grad,
    "hypot": _hypot_grad,
}


class Binary(Function):
    """y = FORWARD[fn](a, b) with the gradients of GRADIENTS[fn] (summed to each shape)."""
    saves_outputs = (0,)

    def __init__(self, fn):
        self.fn = fn

    def forward(self, a, b):
        with numpy.errstate(all="ignore"):
            self.y = FORWARD[self.fn](get_array_module(a, b), a, b)
        return self.y

    def backward(self, gy):
        a, b = self.inputs
        ga, gb = GRADIENTS[self.fn](a, b, self.retained_output(self.y), gy)
        return (grad_to(ga, a) if a.requires_grad else None,
                grad_to(gb, b) if b.requires_grad else None)


def _float_binary(fn):
    def op(input, other):
        a, b = binary_operands(input, other)
        if dtype_kind(a.array.dtype) not in "fc" and fn not in ("fmod", "remainder"):
            from ..dtypes import get_default_dtype  # noqa: PLC0415
            from .arith import cast  # noqa: PLC0415
            a, b = cast(a, get_default_dtype()), cast(b, get_default_dtype())
        if dtype_kind(a.array.dtype) not in "fc":   # integer fmod / remainder: no gradient
            _check_divisor(b, fn)
            xp = get_array_module(a.array, b.array)
            return Tensor._wrap(FORWARD[fn](xp, a.array, b.array))
        return _apply_binary(lambda: Binary(fn), fn, a, b)
    op.__name__ = op.__qualname__ = fn
    op.__doc__ = f"Element-wise {fn} (PyTorch's torch.{fn}), broadcasting."
    return op


def _check_divisor(b, op):
    from ..devices import syncs_on_read  # noqa: PLC0415
    if not syncs_on_read(b.array) and (b.array == 0).any():
        raise ZeroDivisionError(f"{op}: integer division by zero")


fmod = _float_binary("fmod")
remainder = _float_binary("remainder")
copysign = _float_binary("copysign")
# their gradients are Tensor expressions (a sigmoid of a difference): in float32 for half
logaddexp = composite_in_float32(_float_binary("logaddexp"))
logaddexp2 = composite_in_float32(_float_binary("logaddexp2"))
atan2 = composite_in_float32(_float_binary("atan2"))
arctan2 = atan2
hypot = _float_binary("hypot")


# --- rounded division --------------------------------------------------------------------------

class RoundedDiv(Function):
    """a / b rounded toward zero ('trunc') or down ('floor'); the gradient is 0, as PyTorch's."""
    saves = ()

    def __init__(self, mode):
        self.mode = mode

    def forward(self, a, b):
        xp = get_array_module(a, b)
        with numpy.errstate(all="ignore"):
            return (_trunc_div if self.mode == "trunc" else _floor_div)(xp, a, b)

    def backward(self, gy):
        a, b = self.inputs
        zeros = [Tensor._wrap(get_array_module(gy.array).zeros(t.shape, gy.dtype))
                 if t.requires_grad else None for t in (a, b)]
        return tuple(zeros)


def div_rounded(a, b, rounding_mode):
    if rounding_mode not in ("trunc", "floor"):
        raise ValueError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' "
                         f"but found {rounding_mode!r}")
    a, b = binary_operands(a, b)
    if dtype_kind(a.array.dtype) not in "fc":
        _check_divisor(b, "div")
        if rounding_mode == "trunc":   # NumPy's // floors; trunc from the exact quotient signs
            xp = get_array_module(a.array, b.array)
            q = xp.floor_divide(a.array, b.array)
            q = xp.where((q < 0) & (q * b.array != a.array), q + 1, q)
            return Tensor._wrap(q)
        return Tensor._wrap(get_array_module(a.array).floor_divide(a.array, b.array))
    return _apply_binary(lambda: RoundedDiv(rounding_mode), "div", a, b)


def floor_divide(input, other):
    """input // other, rounded down (PyTorch's floor_divide, which has no derivative: the result
    is outside the graph)."""
    a, b = binary_operands(input, other)
    if dtype_kind(a.array.dtype) not in "fc":
        return div_rounded(a, b, "floor")
    xp = get_array_module(a.array, b.array)
    with numpy.errstate(all="ignore"):
        return Tensor._wrap(_floor_div(xp, a.array, b.array))


# --- lerp --------------------------------------------------------------------------------------

class Lerp(Function):
    """start + weight * (end - start), PyTorch's form: exact at both ends (weight < 0.5 from
    start, otherwise from end)."""
    saves = None

    def forward(self, start, end, weight):
        xp = get_array_module(start, end, weight)
        diff = end - start
        return xp.where(xp.abs(weight) < 0.5, start + weight * diff, end - diff * (1 - weight))

    def backward(self, gy):
        start, end, weight = self.inputs
        gs = grad_to(gy * (1.0 - weight), start) if start.requires_grad else None
        ge = grad_to(gy * weight, end) if end.requires_grad else None
        gw = grad_to(gy * (end - start), weight) if weight.requires_grad else None
        return gs, ge, gw


@composite_in_float32
def lerp(input, end, weight):
    """input + weight * (end - input); weight a scalar or a tensor. Half inputs are computed in
    float32 (a scalar weight too, as PyTorch's opmath), rounded once."""
    from .util import as_tensor  # noqa: PLC0415
    start, end = binary_operands(input, end)
    weight = as_tensor(weight, like=start) if not isinstance(weight, Tensor) else weight
    if weight.array.dtype != start.array.dtype:
        raise TypeError(f"lerp: expected dtype {start.dtype} for weight but got dtype "
                        f"{weight.dtype}")
    try:
        broadcast_shapes(start.shape, end.shape, weight.shape)
    except ValueError:
        raise ValueError(f"lerp: the shapes {shape_str(start.shape)}, {shape_str(end.shape)} and "
                         f"{shape_str(weight.shape)} cannot be broadcast together") from None
    return Lerp()(start, end, weight)


# --- comparisons, logical and bitwise operators (no gradient) ----------------------------------

def _compare(name, ufunc, kinds=None):
    def op(input, other):
        a, b = binary_operands(input, other)
        if kinds is not None and (dtype_kind(a.array.dtype) not in kinds or
                                  dtype_kind(b.array.dtype) not in kinds):
            raise TypeError(f"{name}: expected integer or bool tensors, got {a.dtype} and "
                            f"{b.dtype}")
        try:
            broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise ValueError(f"{name}: the shapes {shape_str(a.shape)} and {shape_str(b.shape)} "
                             "cannot be broadcast together") from None
        xp = get_array_module(a.array, b.array)
        return Tensor._wrap(xp.asarray(getattr(xp, ufunc)(a.array, b.array)))
    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"Element-wise {name} (xp.{ufunc}), broadcasting; no gradient."
    return op


eq, ne = _compare("eq", "equal"), _compare("ne", "not_equal")
lt, le = _compare("lt", "less"), _compare("le", "less_equal")
gt, ge = _compare("gt", "greater"), _compare("ge", "greater_equal")
greater, greater_equal, less, less_equal, not_equal = gt, ge, lt, le, ne
logical_and = _compare("logical_and", "logical_and")
logical_or = _compare("logical_or", "logical_or")
logical_xor = _compare("logical_xor", "logical_xor")
bitwise_and = _compare("bitwise_and", "bitwise_and", "biu")
bitwise_or = _compare("bitwise_or", "bitwise_or", "biu")
bitwise_xor = _compare("bitwise_xor", "bitwise_xor", "biu")
bitwise_left_shift = _compare("bitwise_left_shift", "left_shift", "iu")
bitwise_right_shift = _compare("bitwise_right_shift", "right_shift", "iu")


def logical_not(input):
    xp = get_array_module(input.array)
    return Tensor._wrap(xp.logical_not(input.array))


def bitwise_not(input):
    if dtype_kind(input.array.dtype) not in "biu":
        raise TypeError(f"bitwise_not: expected an integer or bool tensor, got {input.dtype}")
    xp = get_array_module(input.array)
    a = input.array
    return Tensor._wrap(xp.logical_not(a) if dtype_kind(a.dtype) == "b" else xp.invert(a))


def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """|input - other| <= atol + rtol * |other| element-wise (equal infinities are close;
    NaNs only with equal_nan)."""
    a, b = binary_operands(input, other)
    if a.array.dtype != b.array.dtype:
        raise TypeError(f"isclose: expected the same dtype, got {a.dtype} and {b.dtype}")
    xp = get_array_module(a.array, b.array)
    return Tensor._wrap(xp.asarray(xp.isclose(a.array, b.array, rtol=rtol, atol=atol,
                                              equal_nan=equal_nan)))


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """Whether every element is close (isclose): a Python bool."""
    return bool(isclose(input, other, rtol, atol, equal_nan).array.all())


def equal(input, other):
    """Whether the two tensors have the same shape and elements: a Python bool."""
    if tuple(input.shape) != tuple(other.shape):
        return False
    return bool(eq(input, other).array.all())

