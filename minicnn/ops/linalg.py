"""Matrix product: batched, broadcasting, with NumPy's 1-D rules."""
from ..autograd import Function
from ..devices import get_array_module
from .arith import grad_to
from .shape import reshape, transpose


class MatMul(Function):
    """Both inputs at least 2-D; batch dims broadcast."""

    def forward(self, a, b):
        return get_array_module(a, b).matmul(a, b)

    def backward(self, gy):
        a, b = self.inputs
        ga = grad_to(matmul(gy, transpose(b, -1, -2)), a) if a.requires_grad else None
        gb = grad_to(matmul(transpose(a, -1, -2), gy), b) if b.requires_grad else None
        return ga, gb


def _dims(t):
    return "x".join(str(s) for s in t.shape)


def matmul(a, b):
    from .util import as_tensor  # noqa: PLC0415
    a, b = as_tensor(a), as_tensor(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both arguments need at least 1 dimension, got shapes "
                         f"({_dims(a)}) and ({_dims(b)})")
    if a.data.dtype != b.data.dtype:
        raise TypeError(f"matmul: expected both operands to have the same dtype, but got "
                        f"{a.data.dtype} and {b.data.dtype}")
    if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise ValueError(f"matmul: mat1 and mat2 shapes cannot be multiplied "
                         f"({_dims(a)} and {_dims(b)})")
    squeeze_a, squeeze_b = a.ndim == 1, b.ndim == 1
    a2 = reshape(a, (1,) + a.shape) if squeeze_a else a
    b2 = reshape(b, b.shape + (1,)) if squeeze_b else b
    try:
        y = MatMul()(a2, b2)
    except ValueError:
        raise ValueError(f"matmul: batch dimensions of ({_dims(a)}) and ({_dims(b)}) cannot be "
                         "broadcast together") from None
    if squeeze_a or squeeze_b:
        shape = y.shape
        if squeeze_b:
            shape = shape[:-1]
        if squeeze_a:
            shape = shape[:-2] + shape[-1:] if not squeeze_b else shape[:-1]
        y = reshape(y, shape)
    return y
