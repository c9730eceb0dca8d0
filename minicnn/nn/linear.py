"""Linear and Identity layers (the op behind them is ops.linalg.linear)."""
from ..ops.linalg import linear
from ._affine import add_weight_and_bias, reset_weight_and_bias
from .module import Module


class Identity(Module):
    """Returns its input; accepts and ignores any constructor arguments (as PyTorch's)."""
    preserves_channels = True

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
