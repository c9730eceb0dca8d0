"""Activation layers (PyTorch's names, arguments and reprs), over minicnn.functional."""
from ..ops import activation as A
from ..ops import composed
from ._affine import xp_and_dtype
from .module import Module
from .parameter import Parameter


class _Simple(Module):
    fn = None

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):  # noqa: A002
        return type(self).fn(input)


class ReLU(_Simple):
    preserves_channels = True
    fn = staticmethod(A.relu)


class ReLU6(_Simple):
    preserves_channels = True
    fn = staticmethod(A.relu6)


class SELU(_Simple):
    fn = staticmethod(A.selu)


class Sigmoid(_Simple):
    fn = staticmethod(A.sigmoid)


class Tanh(_Simple):
    preserves_channels = True
    fn = staticmethod(A.tanh)


class LogSigmoid(_Simple):
    preserves_channels = True
    fn = staticmethod(composed.logsigmoid)


class Hardsigmoid(_Simple):
    fn = staticmethod(A.hardsigmoid)


class Hardswish(_Simple):
    fn = staticmethod(A.hardswish)


class SiLU(_Simple):
    preserves_channels = True
    fn = staticmethod(A.silu)


Swish = SiLU


class Mish(_Simple):
    preserves_channels = True
    fn = staticmethod(A.mish)


class Softsign(_Simple):
    fn = staticmethod(A.softsign)


class LeakyReLU(Module):
    preserves_channels = True

    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace

    def forward(self, input):  # noqa: A002
        return A.leaky_relu(input, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class ELU(Module):
    preserves_channels = True

    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def forward(self, input):  # noqa: A002
        return A.elu(input, self.alpha)

    def extra_repr(self):
        return f"alpha={self.alpha}"


class CELU(ELU):
    def forward(self, input):  # noqa: A002
        return A.celu(input, self.alpha)


class GELU(Module):
    preserves_channels = True

    def __init__(self, approximate="none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, input):  # noqa: A002
        return A.gelu(input, self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class Hardtanh(Module):
    preserves_channels = True

    def __init__(self, min_val=-1.0, max_val=1.0, inplace=False):
        super().__init__()
        if min_val > max_val:
            raise ValueError(f"Hardtanh: min_val {min_val} cannot be greater than max_val "
                             f"{max_val}")
        self.min_val, self.max_val, self.inplace = min_val, max_val, inplace

    def forward(self, input):  # noqa: A002
        return A.hardtanh(input, self.min_val, self.max_val)

    def extra_repr(self):
        return f"min_val={self.min_val}, max_val={self.max_val}"


class Softplus(Module):
    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, input):  # noqa: A002
        return A.softplus(input, self.beta, self.threshold)

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"


class PReLU(Module):
    """Learnable slope for x < 0: one (num_parameters=1) or one per channel, init 0.25."""

    def __init__(self, num_parameters=1, init=0.25, device=None, dtype=None):
        super().__init__()
        self.num_parameters, self.init = int(num_parameters), init
        xp, dtype = xp_and_dtype(device, dtype)
        self.weight = Parameter(xp.full((self.num_parameters,), init, dtype=dtype))

    def reset_parameters(self):
        self.weight.array[...] = self.init

    def forward(self, input):  # noqa: A002
        return A.prelu(input, self.weight)

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"


class Softmax(Module):
    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):  # noqa: A002
        return A.softmax(input, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    def forward(self, input):  # noqa: A002
        return A.log_softmax(input, self.dim)


class Softmin(Softmax):
    def forward(self, input):  # noqa: A002
        return composed.softmin(input, self.dim)
