"""Broadcasting binary arithmetic: add, sub, mul, div, pow, maximum, minimum, where; and cast.

Gradients of broadcast inputs are summed back to each input's shape (and cast back to its dtype
when type promotion widened the result).
"""
from ..autograd import Function
from ..devices import get_array_module, to_device
from ..dtypes import get_default_dtype
from ..dtypes import kind as dtype_kind
from ..tensor import Tensor
from .shape import sum_to
from .util import as_tensor, broadcast_shapes, composite_in_float32, shape_str


def grad_to(g, t):
    """g reduced to input t's shape and dtype."""
    g = sum_to(g, t.shape)
    if g.array.dtype != t.array.dtype:
        g = Cast(t.array.dtype)(g)
    return g


class Cast(Function):
    saves = ()

    def __init__(self, dtype):
        self.dtype = dtype

    def forward(self, x):
        self.in_dtype = x.dtype
        return x.astype(self.dtype, copy=False)

    def backward(self, gy):
        return Cast(self.in_dtype)(gy) if dtype_kind(self.in_dtype) == "f" else None


class Add(Function):
    saves = ()

    def forward(self, a, b):
        return a + b

    def backward(self, gy):
        a, b = self.inputs
        return grad_to(gy, a), grad_to(gy, b)


class Sub(Function):
    saves = ()

    def forward(self, a, b):
        return a - b

    def backward(self, gy):
        a, b = self.inputs
        return grad_to(gy, a), grad_to(-gy, b) if b.requires_grad else None


class Mul(Function):
    saves = {0: (1,), 1: (0,)}   # the gradient of each side reads the other

    def forward(self, a, b):
        return a * b

    def backward(self, gy):
        a, b = self.inputs
        ga = grad_to(gy * b, a) if a.requires_grad else None
        gb = grad_to(gy * a, b) if b.requires_grad else None
        return ga, gb


class Div(Function):
    saves = {0: (1,), 1: (0, 1)}

    def forward(self, a, b):
        return a / b

    def backward(self, gy):
        a, b = self.inputs
        ga = grad_to(gy / b, a) if a.requires_grad else None
        gb = grad_to(-gy * a / (b * b), b) if b.requires_grad else None
        return ga, gb


class Pow(Function):
    """y = a ** b. PyTorch's gradients where 0 * inf would make a NaN: d/da is 0 where b == 0
    (also at a == 0), d/db is 0 where a == 0 and b >= 0. Both are taken with a safe base
    (1 there), so no inf appears in them or in their own derivatives."""
    saves = {0: (0, 1), 1: (0, 1)}
    saves_outputs = {1: (0,)}

    def forward(self, a, b):
        if b.ndim == 0 and b == -0.5:   # PyTorch's rsqrt for a scalar -0.5: NaN at -inf (C's
            self.y = 1 / get_array_module(a).sqrt(a)   # pow gives 0), -inf at -0.0
        else:
            self.y = a ** b
        return self.y

    def backward(self, gy):
        a, b = self.inputs
        xp = get_array_module(a.array, b.array)
        ga = gb = None
        if a.requires_grad:
            b_zero = Tensor._wrap(b.array == 0)
            base = where(b_zero, 1.0, a)
            ga = grad_to(gy * b * base ** (b - 1), a)
        if b.requires_grad:
            from .elementwise import log  # noqa: PLC0415
            zero_base = Tensor._wrap(xp.logical_and(a.array == 0, b.array >= 0))
            gb = grad_to(gy * self.retained_output(self.y) * log(where(zero_base, 1.0, a)), b)
        return ga, gb


class Maximum(Function):
    """PyTorch's gradient: each side gets it unless it lost (a < b for a), ties half each; so
    where either is NaN (which wins) both sides get it."""
    saves = ()  # only the shares, made in the forward
    select, a_loses = "maximum", "less"

    def forward(self, a, b):
        xp = get_array_module(a, b)
        tie = a == b
        self.share_a = xp.where(tie, 0.5, xp.where(getattr(xp, self.a_loses)(a, b), 0.0, 1.0))
        self.share_b = xp.where(tie, 0.5, xp.where(getattr(xp, self.a_loses)(b, a), 0.0, 1.0))
        return getattr(xp, self.select)(a, b)

    def backward(self, gy):
        a, b = self.inputs
        dtype = gy.array.dtype
        ga = grad_to(gy * Tensor._wrap(self.share_a.astype(dtype, copy=False)), a) \
            if a.requires_grad else None
        gb = grad_to(gy * Tensor._wrap(self.share_b.astype(dtype, copy=False)), b) \
            if b.requires_grad else None
        return ga, gb


class Minimum(Maximum):
    select, a_loses = "minimum", "greater"


class Where(Function):
    saves = ()  # and the condition (save_array)

    def __init__(self, cond):
        self.cond = self.save_array(cond)

    def forward(self, a, b):
        return get_array_module(a, b).where(self.cond, a, b)

    def backward(self, gy):
        a, b = self.inputs
        zero = gy * 0.0
        ga = grad_to(where(self.cond, gy, zero), a) if a.requires_grad else None
        gb = grad_to(where(self.cond, zero, gy), b) if b.requires_grad else None
        return ga, gb


def _same_device(a, b):
    """A CPU 0-d tensor meets a CUDA tensor: it moves (as PyTorch allows); anything else on two
    devices is an error naming both (CuPy would refuse the NumPy operand less clearly)."""
    if a.ndim == 0 and a.device == "cpu":
        return Tensor._wrap(to_device(a.array, b.device)), b
    if b.ndim == 0 and b.device == "cpu":
        return a, Tensor._wrap(to_device(b.array, a.device))
    raise RuntimeError(f"Expected all tensors to be on the same device, but found at least two "
                       f"devices, {a.device} and {b.device} (shapes {shape_str(a.shape)} and "
                       f"{shape_str(b.shape)}); move one with .to(...)")


def binary_operands(a, b):
    """Tensors for a binary op: scalars take the other side's dtype; an int tensor meeting a
    float tensor is cast to the float dtype (PyTorch's promotion, not NumPy's float64)."""
    if not isinstance(a, Tensor):  # isinstance: a Parameter (a Tensor subclass) is a Tensor
        a = as_tensor(a, like=b)
    elif not isinstance(b, Tensor):
        b = as_tensor(b, like=a)
    if a.device != b.device:
        a, b = _same_device(a, b)
    da, db = a.array.dtype, b.array.dtype
    if da is not db and da != db:
        ka, kb = dtype_kind(da), dtype_kind(db)
        if ka == "f" and kb != "f":
            b = Tensor._wrap(b.array.astype(da))
        elif kb == "f" and ka != "f":
            a = Tensor._wrap(a.array.astype(db))
    return a, b


def _apply_binary(fn_class, name, a, b):
    a, b = binary_operands(a, b)
    try:
        return fn_class()(a, b)
    except ValueError:
        if a.shape != b.shape:
            try:
                broadcast_shapes(a.shape, b.shape)
            except ValueError:
                raise ValueError(
                    f"{name}: the shapes {shape_str(a.shape)} and {shape_str(b.shape)} cannot be "
                    "broadcast together") from None
        raise


def add(a, b):
    return _apply_binary(Add, "add", a, b)


def sub(a, b):
    return _apply_binary(Sub, "sub", a, b)


def mul(a, b):
    return _apply_binary(Mul, "mul", a, b)


def div(a, b, *, rounding_mode=None):
    """True division; integer and bool operands divide in the default float dtype (PyTorch's
    promotion, not NumPy's float64). rounding_mode 'trunc' or 'floor' rounds the quotient
    (ops/binary.py)."""
    if rounding_mode is not None:
        from .binary import div_rounded  # noqa: PLC0415 -- binary imports this module
        return div_rounded(a, b, rounding_mode)
    a, b = binary_operands(a, b)
    if dtype_kind(a.array.dtype) not in "fc":
        a, b = cast(a, get_default_dtype()), cast(b, get_default_dtype())
    return _true_div(a, b)


# Their gradients are several ops (a / b^2; a^(b-1) and y log a): in float32 for half storage, one
# rounding (ops.util.composite_in_float32), so a broadcast operand's summed gradient keeps its
# precision where the terms cancel.
@composite_in_float32
def _true_div(a, b):
    return _apply_binary(Div, "div", a, b)


@composite_in_float32
def pow(a, b):  # noqa: A001 -- PyTorch's name
    return _apply_binary(Pow, "pow", a, b)


def maximum(a, b):
    return _apply_binary(Maximum, "maximum", a, b)


def minimum(a, b):
    return _apply_binary(Minimum, "minimum", a, b)


def where(condition, a, b):
    cond = condition.array if isinstance(condition, Tensor) else condition
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        a = as_tensor(a)
    a, b = binary_operands(a, b)
    xp = get_array_module(a.array, b.array)
    cond = xp.asarray(cond)
    if cond.dtype.kind != "b":
        raise TypeError(f"where: condition must be a bool tensor, got dtype {cond.dtype}")
    try:
        shape = broadcast_shapes(cond.shape, a.shape, b.shape)
    except ValueError:
        raise ValueError(f"where: the shapes {shape_str(cond.shape)}, {shape_str(a.shape)} and "
                         f"{shape_str(b.shape)} cannot be broadcast together") from None
    del shape
    return Where(cond)(a, b)


def cast(x, dtype):
    import numpy  # noqa: PLC0415
    dtype = numpy.dtype(dtype)
    if x.array.dtype == dtype:
        return x
    return Cast(dtype)(x)
