"""Creating layers' parameters: the array module and dtype they live in, and the weight and
bias of Linear and the Conv layers with PyTorch's default initialisation (shared by both
families)."""
import math

from .. import dtypes
from ..devices import xp_for
from . import init
from .parameter import Parameter


def xp_and_dtype(device, dtype):
    """The array module and dtype of a new layer's parameters (defaults: CPU, the default
    float dtype)."""
    return xp_for(device or "cpu"), dtypes.resolve(dtype) or dtypes.get_default_dtype()


def add_weight_and_bias(module, weight_shape, out_features, bias, device=None, dtype=None):
    """Register module.weight (weight_shape) and module.bias (out_features,), or None when bias
    is false; both left uninitialised (the caller runs reset_parameters())."""
    xp, dtype = xp_and_dtype(device, dtype)
    module.weight = Parameter(xp.empty(weight_shape, dtype=dtype))
    if bias:
        module.bias = Parameter(xp.empty((out_features,), dtype=dtype))
    else:
        module.register_parameter("bias", None)


def reset_weight_and_bias(weight, bias):
    """weight ~ kaiming_uniform_(a=sqrt(5)), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)); bias ~
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = weight.shape[1] * prod(kernel), as PyTorch."""
    init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = init.calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        init.uniform_(bias, -bound, bound)
