"""Linear and Identity layers, and the fused linear op behind F.linear."""
import math

from ..autograd import Function
from ..devices import get_array_module
from ..ops import matmul, reshape, sum as _sum, transpose
from ..ops.util import as_tensor
from ._affine import add_weight_and_bias, reset_weight_and_bias
from .module import Module


class LinearOp(Function):
    """y = x @ W^T + b over 2-D x (N, in), W (out, in), b (out,) or None; one GEMM each way."""

    def forward(self, x, w, b=None):
        xp = get_array_module(x, w)
        y = xp.matmul(x, w.T)  # (N, in) @ (in, out) -> (N, out)
        if b is not None:
            y += b
        return y

    def backward(self, gy):
        x, w, b = self.inputs
        gx = matmul(gy, w) if x.requires_grad else None                 # (N, out) @ (out, in)
        gw = matmul(transpose(gy, 0, 1), x) if w.requires_grad else None  # (out, N) @ (N, in)
        gb = _sum(gy, 0) if b is not None and b.requires_grad else None
        return gx, gw, gb


def linear(input, weight, bias=None):  # noqa: A002 -- PyTorch's name
    """F.linear: input (*, in_features) @ weight.T (in, out) + bias (out,) -> (*, out_features)."""
    x, w = as_tensor(input), as_tensor(weight)
    b = as_tensor(bias) if bias is not None else None
    if w.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got shape "
                         f"{list(w.shape)}")
    if x.ndim == 0 or x.shape[-1] != w.shape[1]:
        dims = "x".join(str(s) for s in (x.shape if x.ndim <= 2 else
                                          (math.prod(x.shape[:-1]), x.shape[-1])))
        raise ValueError(f"linear: mat1 and mat2 shapes cannot be multiplied ({dims} and "
                         f"{w.shape[1]}x{w.shape[0]})")
    if b is not None and tuple(b.shape) not in ((w.shape[0],), ()):
        raise ValueError(f"linear: bias of shape {list(b.shape)} does not match "
                         f"out_features={w.shape[0]}")
    if x.dtype != w.dtype or (b is not None and b.dtype != w.dtype):
        raise TypeError(f"linear: expected input, weight and bias to have the same dtype, got "
                        f"{x.dtype}, {w.dtype}" + (f" and {b.dtype}" if b is not None else ""))
    lead = tuple(x.shape[:-1])
    x2 = reshape(x, (-1, x.shape[-1])) if x.ndim != 2 else x  # (*, in) -> (N, in)
    y = LinearOp()(x2, w, b)
    return reshape(y, lead + (w.shape[0],)) if x.ndim != 2 else y  # (N, out) -> (*, out)


class Identity(Module):
    """Returns its input; accepts and ignores any constructor arguments (as PyTorch's)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x


class Linear(Module):
    """y = x W^T + b. weight (out_features, in_features) ~ kaiming_uniform_(a=sqrt(5)), i.e.
    U(-1/sqrt(in), 1/sqrt(in)); bias ~ U(-1/sqrt(in), 1/sqrt(in)), as PyTorch initializes."""

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        if in_features < 0 or out_features < 0:
            raise ValueError(f"Linear: in_features and out_features must be non-negative, got "
                             f"{in_features} and {out_features}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        add_weight_and_bias(self, (self.out_features, self.in_features), self.out_features, bias,
                            device, dtype)
        self.reset_parameters()

    def reset_parameters(self):
        reset_weight_and_bias(self.weight, self.bias)

    def forward(self, input):  # noqa: A002
        return linear(input, self.weight, self.bias)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")
