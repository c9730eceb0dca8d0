"""Element-wise unary ops: neg, exp, log, sqrt, abs, clamp, sign; and comparisons (no grad)."""
from ..autograd import Function
from ..devices import get_array_module
from ..dtypes import kind as dtype_kind
from ..tensor import Tensor
from . import autocast


class Neg(Function):
    saves = ()

    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class Exp(Function):
    saves = ()
    saves_outputs = (0,)

    def forward(self, x):
        self.y = get_array_module(x).exp(x)
        return self.y

    def backward(self, gy):
        return gy * self.retained_output(self.y)


class Log(Function):
    saves = (0,)

    def forward(self, x):
        return get_array_module(x).log(x)

    def backward(self, gy):
        return gy / self.inputs[0]


class Sqrt(Function):
    saves = ()
    saves_outputs = (0,)

    def forward(self, x):
        self.y = get_array_module(x).sqrt(x)
        return self.y

    def backward(self, gy):
        return gy / (2.0 * self.retained_output(self.y))


class Abs(Function):
    saves = (0,)

    def forward(self, x):
        return get_array_module(x).abs(x)

    def backward(self, gy):
        return gy * sign(self.inputs[0])


class Clamp(Function):
    """Gradient passes where min <= x <= max (both ends inclusive, as in PyTorch)."""
    saves = ()  # a mask made in the forward

    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    def forward(self, x):
        xp = get_array_module(x)
        mask = xp.ones(x.shape, dtype=bool)
        if self.lo is not None:
            mask &= x >= self.lo
        if self.hi is not None:
            mask &= x <= self.hi
        self.mask = mask
        return xp.clip(x, self.lo, self.hi)

    def backward(self, gy):
        return gy * Tensor._wrap(self.mask.astype(gy.array.dtype))


def _unary(fn_class):
    name = fn_class.__name__.lower()

    def op(x):
        return fn_class()(autocast.args(name, x))
    op.__name__ = name
    op.__doc__ = f"Element-wise {op.__name__} (differentiable)."
    return op


neg = _unary(Neg)
exp = _unary(Exp)
log = _unary(Log)
sqrt = _unary(Sqrt)
abs = _unary(Abs)  # noqa: A001 -- PyTorch's name


def clamp(x, min=None, max=None):  # noqa: A002 -- PyTorch's names
    """Where min > max every element becomes max, as in PyTorch (and NumPy's clip)."""
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    return Clamp(min, max)(x)


def _constant(x, fn):
    return Tensor._wrap(fn(get_array_module(x.array), x.array))


def _sign(xp, a):
    """PyTorch's sign: 0 for NaN (NumPy's is NaN), and what the gradient of abs multiplies by."""
    if dtype_kind(a.dtype) != "f":
        return xp.sign(a)
    return (a > 0).astype(a.dtype) - (a < 0).astype(a.dtype)


def sign(x):
    return _constant(x, _sign)


def compare(a, b, name):
    """eq/ne/lt/le/gt/ge: a bool tensor, outside the graph."""
    from .arith import binary_operands  # noqa: PLC0415
    a, b = binary_operands(a, b)
    xp = get_array_module(a.array, b.array)
    return Tensor._wrap(getattr(xp, name)(a.array, b.array))
