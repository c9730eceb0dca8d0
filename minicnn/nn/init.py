"""nn.init: in-place initializers with PyTorch's names, formulas and gain table.

Every function fills `tensor` in place (its array keeps its identity, so views stay valid), runs
outside the autograd graph, returns the tensor, and draws from the framework's seeded generator
(`minicnn.random.rng(device)`), so `mc.manual_seed(s)` makes initialization repeat. A `generator`
argument (a `minicnn.random.Generator`) may be given instead.
"""
import math
import numbers

import numpy

from .. import devices
from ..autograd.version import bump as bump_version
from ..random import rng
from ..tensor import Tensor

__all__ = ["calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "ones_",
           "zeros_", "eye_", "dirac_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
           "kaiming_normal_", "orthogonal_"]


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for a nonlinearity (PyTorch's table).

    linear, conv*, sigmoid: 1; tanh: 5/3; relu: sqrt(2); leaky_relu: sqrt(2 / (1 + slope^2))
    (slope defaults to 0.01); selu: 3/4.
    """
    linear_fns = ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                  "conv_transpose2d", "conv_transpose3d"]
    if nonlinearity in linear_fns or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            negative_slope = 0.01
        elif not isinstance(param, bool) and isinstance(param, numbers.Number):
            negative_slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + negative_slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _calculate_fan_in_and_fan_out(tensor):
    shape = tuple(tensor.shape)
    if len(shape) < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 "
                         f"dimensions (got shape {list(shape)})")
    receptive = int(numpy.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _calculate_correct_fan(tensor, mode):
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _check(tensor, fn):
    if not isinstance(tensor, Tensor):
        raise TypeError(f"nn.init.{fn}: expected a Tensor, got {type(tensor).__name__}")
    if tensor.dtype.kind not in "fc" and fn not in ("constant_", "zeros_", "ones_"):
        raise TypeError(f"nn.init.{fn}: expected a floating point tensor, got {tensor.dtype}")


def _write(tensor, values):
    """Copy values (float64 samples) into the tensor's array in place."""
    data = tensor.array
    if not getattr(data.flags, "writeable", True):  # read-only NumPy buffer (CuPy: no flag)
        tensor.array = devices.get_array_module(data).array(values, dtype=data.dtype)
    else:
        data[...] = values
        bump_version(data)   # an in-place write, as PyTorch's init under no_grad
    return tensor


def _gen(tensor, generator):
    return rng(tensor.device, generator)


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """Fill with samples of U(a, b)."""
    _check(tensor, "uniform_")
    u = _gen(tensor, generator).random(tuple(tensor.shape), dtype=numpy.float64)
    return _write(tensor, a + (b - a) * u)


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """Fill with samples of N(mean, std^2)."""
    _check(tensor, "normal_")
    z = _gen(tensor, generator).standard_normal(tuple(tensor.shape), dtype=numpy.float64)
    return _write(tensor, mean + std * z)


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
    """Fill with N(mean, std^2) samples truncated to [a, b] (rejection: out-of-range draws are
    redrawn, which gives exactly the truncated distribution)."""
    _check(tensor, "trunc_normal_")
    if not a < b:
        raise ValueError(f"trunc_normal_: expected a < b, got a={a}, b={b}")
    g = _gen(tensor, generator)
    xp = devices.get_array_module(tensor.array)
    n = tensor.numel()
    out = xp.empty(n, dtype=numpy.float64)
    todo = xp.arange(n)
    for _ in range(1000):
        if todo.size == 0:
            break
        z = mean + std * g.standard_normal(int(todo.size), dtype=numpy.float64)
        ok = (z >= a) & (z <= b)
        out[todo[ok]] = z[ok]
        todo = todo[~ok]
    else:
        raise ValueError(f"trunc_normal_: the interval [{a}, {b}] is too unlikely under "
                         f"N({mean}, {std}^2) to sample by rejection")
    return _write(tensor, out.reshape(tuple(tensor.shape)))


def constant_(tensor, val):
    _check(tensor, "constant_")
    return _write(tensor, val)


def ones_(tensor):
    return constant_(tensor, 1.0)


def zeros_(tensor):
    return constant_(tensor, 0.0)


def eye_(tensor):
    """The identity matrix (2-D tensors only)."""
    if tensor.ndim != 2:
        raise ValueError(f"eye_: only tensors with 2 dimensions are supported, got shape "
                         f"{list(tensor.shape)}")
    xp = devices.get_array_module(tensor.array)
    return _write(tensor, xp.eye(*tensor.shape))


def dirac_(tensor, groups=1):
    """The Dirac delta for convolution weights (3, 4 or 5 dims): identity of the channels."""
    shape = tuple(tensor.shape)
    if len(shape) not in (3, 4, 5):
        raise ValueError("dirac_: only tensors with 3, 4, or 5 dimensions are supported")
    if shape[0] % groups != 0:
        raise ValueError("dirac_: dim 0 must be divisible by groups")
    out_per_group = shape[0] // groups
    min_dim = min(out_per_group, shape[1])
    values = numpy.zeros(shape)
    centre = tuple(s // 2 for s in shape[2:])
    for g in range(groups):
        for d in range(min_dim):
            values[(g * out_per_group + d, d) + centre] = 1
    return _write(tensor, devices.to_device(values, tensor.device))


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010)."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    a = math.sqrt(3.0) * std
    return uniform_(tensor, -a, a, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    """N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return normal_(tensor, 0.0, std, generator)


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """U(-bound, bound) with bound = gain * sqrt(3 / fan) (He et al., 2015); gain from
    calculate_gain(nonlinearity, a), fan from mode ('fan_in' or 'fan_out')."""
    _check(tensor, "kaiming_uniform_")
    if tensor.numel() == 0:
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    gain = calculate_gain(nonlinearity, a)
    bound = math.sqrt(3.0) * gain / math.sqrt(fan)
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """N(0, std^2) with std = gain / sqrt(fan)."""
    _check(tensor, "kaiming_normal_")
    if tensor.numel() == 0:
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return normal_(tensor, 0.0, std, generator)


def orthogonal_(tensor, gain=1.0, generator=None):
    """A (semi-)orthogonal matrix from the QR decomposition of a normal sample, the trailing
    dimensions flattened (Saxe et al., 2013), times gain."""
    _check(tensor, "orthogonal_")
    if tensor.ndim < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported")
    if tensor.numel() == 0:
        return tensor
    rows = tensor.shape[0]
    cols = tensor.numel() // rows
    xp = devices.get_array_module(tensor.array)
    flat = _gen(tensor, generator).standard_normal((rows, cols), dtype=numpy.float64)
    if rows < cols:
        flat = flat.T
    q, r = xp.linalg.qr(flat)
    q = q * xp.sign(xp.diag(r))  # makes the decomposition unique (uniform over O(n))
    if rows < cols:
        q = q.T
    return _write(tensor, gain * q.reshape(tuple(tensor.shape)))


# PyTorch's deprecated aliases without the underscore are not provided; the private fan helper is
# exported under PyTorch's private name for layers that need it.
calculate_fan_in_and_fan_out = _calculate_fan_in_and_fan_out
