"""The activation family: element-wise activations and the fused bias + activation, forward and
backward, each named by a string.

    forward(x, act, slope=0.0)                  -> act(x)
    backward(x, gy, act, slope=0.0)             -> gy * act'(x)
    bias_act_fwd(x, b, act, dim, slope=0.0)     -> act(x + b[c]), c the index along `dim`
    bias_act_bwd(x, b, gy, act, dim, slope=0.0) -> (gx, gb): gx = gy * act'(x + b[c]), gb its sum
                                                   over every axis but `dim`
    bias_shape(ndim, dim, C)                    -> the shape that broadcasts a (C,) bias along dim

Activations (`names()`): identity, relu, leaky_relu (`slope`), gelu, gelu_tanh, sigmoid, silu,
tanh, mish, hardswish.
`codes()` reads the list from the ACT_* defines of activation.cu; the CPU finds `<act>_forward`
/ `<act>_backward` in cpu.py by name. So adding an activation touches activation.cu,
cpu.py and reference.py here, nothing else in the family. Nothing is saved between the passes
but the input: recomputing sigmoid/erf costs less than reading a saved array. float16 / bfloat16
arrays run in the CUDA kernels' half instances on the GPU (and under the emulator), and widened
to float32 on the CPU (kernels._half).
"""
import functools
import re

from minicnn.devices import on_cuda_kernels
from minicnn.dtypes import is_floating

from .. import lazy
from .._half import in_float32
from ..cuda import source

_cpu = lazy(__name__ + ".cpu")
_cuda = lazy(__name__ + ".cuda")


@functools.lru_cache(maxsize=1)
def codes():
    """{activation name: code}: the `#define ACT_<NAME> <code>` lines of activation.cu, the one
    list of the activations the family knows (each must have its `case` in DISPATCH_ACT, which
    would otherwise run the identity)."""
    text = source.family_path("activation").read_text()
    found = {m.group(1).lower(): int(m.group(2))
             for m in re.finditer(r"^#define ACT_(\w+) (\d+)$", text, re.M)}
    for name in found:
        if name != "identity" and f"case ACT_{name.upper()}:" not in text:
            raise RuntimeError(f"activation.cu: ACT_{name.upper()} has no case in DISPATCH_ACT")
    return found


def names():
    return sorted(codes())


def _check(op, x, act, gy=None):
    if act not in codes():
        raise ValueError(f"{op}: unknown activation {act!r}; expected one of {names()}")
    if not is_floating(x.dtype):
        raise TypeError(f"{op}: expected a floating point array, got {x.dtype}")
    if gy is not None and tuple(gy.shape) != tuple(x.shape):
        raise ValueError(f"{op}: grad of shape {tuple(gy.shape)} does not match the input of "
                         f"shape {tuple(x.shape)}")


@in_float32(half_kernels=True)
def forward(x, act, slope=0.0):
    _check(f"{act} forward", x, act)
    if on_cuda_kernels(x):
        return _cuda.act_fwd(x, act, slope)
    return getattr(_cpu, f"{act}_forward")(x, slope)


@in_float32(half_kernels=True)
def backward(x, gy, act, slope=0.0):
    _check(f"{act} backward", x, act, gy)
    if on_cuda_kernels(x):
        return _cuda.act_bwd(x, gy, act, slope)
    return getattr(_cpu, f"{act}_backward")(x, gy, slope)


def bias_shape(ndim, dim, C):
    return (1,) * dim + (C,) + (1,) * (ndim - dim - 1)


@in_float32(half_kernels=True)
def bias_act_fwd(x, b, act, dim, slope=0.0):
    if on_cuda_kernels(x):   # one fused kernel
        return _cuda.bias_act_fwd(x, b, act, dim, slope)
    return forward(x + b.reshape(bias_shape(x.ndim, dim, b.shape[0])), act, slope)


@in_float32(half_kernels=True)
def bias_act_bwd(x, b, gy, act, dim, slope=0.0):
    if on_cuda_kernels(x):   # one fused kernel, gb reduced without atomics
        return _cuda.bias_act_bwd(x, b, gy, act, dim, slope)
    gz = backward(x + b.reshape(bias_shape(x.ndim, dim, b.shape[0])), gy, act, slope)
    axes = tuple(i for i in range(x.ndim) if i != dim)
    return gz, gz.sum(axis=axes, dtype="float64").astype(x.dtype)
