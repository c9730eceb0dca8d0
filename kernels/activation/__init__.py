"""The activation family: element-wise activations and the fused bias + activation, forward and
backward, each named by a string.

    forward(x, act, slope=0.0)                  -> act(x)
    backward(x, gy, act, slope=0.0)             -> gy * act'(x)
    bias_act_fwd(x, b, act, dim, slope=0.0)     -> act(x + b[c]), c the index along `dim`
    bias_act_bwd(x, b, gy, act, dim, slope=0.0) -> (gx, gb): gx = gy * act'(x + b[c]), gb its sum
                                                   over every axis but `dim`
    bias_shape(ndim, dim, C)                    -> the shape that broadcasts a (C,) bias along dim

Activations: identity, relu, leaky_relu (`slope`), gelu, gelu_tanh, sigmoid, silu, tanh, mish.
The CPU finds `<act>_forward` / `<act>_backward` in cpu.py by name; the GPU runs activation.cu,
whose ACT_* codes cuda.py reads from the file. So adding an activation touches activation.cu,
cpu.py and reference.py here, nothing else in the family. Nothing is saved between the passes
but the input: recomputing sigmoid/erf costs less than reading a saved array.
"""
from minicnn.devices import on_cuda_kernels

from .. import lazy

_cpu = lazy(__name__ + ".cpu")
_cuda = lazy(__name__ + ".cuda")


def _cpu_impl(act, direction):
    fn = getattr(_cpu, f"{act}_{direction}", None)
    if fn is None:
        raise ValueError(f"unknown activation {act!r}")
    return fn


def forward(x, act, slope=0.0):
    if on_cuda_kernels(x):
        return _cuda.act_fwd(x, act, slope)
    return _cpu_impl(act, "forward")(x, slope)


def backward(x, gy, act, slope=0.0):
    if on_cuda_kernels(x):
        return _cuda.act_bwd(x, gy, act, slope)
    return _cpu_impl(act, "backward")(x, gy, slope)


def bias_shape(ndim, dim, C):
    return (1,) * dim + (C,) + (1,) * (ndim - dim - 1)


def bias_act_fwd(x, b, act, dim, slope=0.0):
    if on_cuda_kernels(x):   # one fused kernel
        return _cuda.bias_act_fwd(x, b, act, dim, slope)
    return forward(x + b.reshape(bias_shape(x.ndim, dim, b.shape[0])), act, slope)


def bias_act_bwd(x, b, gy, act, dim, slope=0.0):
    if on_cuda_kernels(x):   # one fused kernel, gb reduced without atomics
        return _cuda.bias_act_bwd(x, b, gy, act, dim, slope)
    gz = backward(x + b.reshape(bias_shape(x.ndim, dim, b.shape[0])), gy, act, slope)
    axes = tuple(i for i in range(x.ndim) if i != dim)
    return gz, gz.sum(axis=axes, dtype="float64").astype(x.dtype)
