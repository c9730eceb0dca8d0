"""Dispatchers of softmax and log-softmax along one axis: CuPy arrays go to the CUDA kernels
(kernels/cuda/softmax.cu), other arrays to the xp reference below (the NumPy code the
Softmax/LogSoftmax ops have always run on the CPU).

    softmax_fwd(x, axis, log=False) -> y           (log=True: log-softmax)
    softmax_bwd(y, gy, axis, log=False) -> gx      (y: the forward's output)
"""
from minicnn.devices import get_array_module, on_cuda_kernels


def _cuda():
    from .cuda import softmax  # noqa: PLC0415 -- lazy: only with CUDA arrays
    return softmax


def ref_softmax_fwd(x, axis, log=False):
    xp = get_array_module(x)
    if log:
        z = x - x.max(axis=axis, keepdims=True)
        z -= xp.log(xp.exp(z).sum(axis=axis, keepdims=True))
        return z
    e = xp.exp(x - x.max(axis=axis, keepdims=True))
    e /= e.sum(axis=axis, keepdims=True)
    return e


def ref_softmax_bwd(y, gy, axis, log=False):
    xp = get_array_module(y, gy)
    if log:
        return gy - xp.exp(y) * gy.sum(axis=axis, keepdims=True)
    gyy = gy * y
    return gyy - y * gyy.sum(axis=axis, keepdims=True)


def softmax_fwd(x, axis, log=False):
    if on_cuda_kernels(x):
        return _cuda().softmax_fwd(x, axis, log)
    return ref_softmax_fwd(x, axis, log)


def softmax_bwd(y, gy, axis, log=False):
    if on_cuda_kernels(y):
        return _cuda().softmax_bwd(y, gy, axis, log)
    return ref_softmax_bwd(y, gy, axis, log)
