"""The dropout family: y = keep ? x * ka + kb : x * da + db with a random keep mask, and its
gradient gy * (keep ? ka : da), without the caller knowing how the mask is kept.

    forward(x, p, mask_shape, ka, kb=0.0, da=0.0, db=0.0) -> (y, mask)
    backward(gy, mask) -> gx

keep is True with probability 1 - p, drawn per element of `mask_shape` (x's shape, or
(N, C, 1, ...) for feature dropout, broadcast over the rest). This covers inverted dropout
(ka = 1/(1-p)) and alpha dropout (affine both ways). `mask` is opaque to the caller: on the CPU
the scale array itself, drawn from minicnn.random's generator; on the GPU only a Philox
(seed, offset) pair, the kernel drawing the same decisions again in the backward, so no mask is
ever stored in device memory.
"""
from minicnn import random as _random
from minicnn.devices import on_cuda_kernels

from .. import lazy
from .._half import in_float32

_cpu = lazy(__name__ + ".cpu")
_cuda = lazy(__name__ + ".cuda")


@in_float32(half_kernels=True)
def forward(x, p, mask_shape, ka, kb=0.0, da=0.0, db=0.0):
    if on_cuda_kernels(x):
        seed, offset = _random.philox()
        rows = None if tuple(mask_shape) == tuple(x.shape) else \
            int(mask_shape[0]) * int(mask_shape[1])
        mask = ("philox", seed, offset, p, rows, ka, da)
        return _cuda.dropout(x, seed, offset, p, ka, kb, da, db, rows=rows), mask
    scale, shift = _cpu.draw(x.dtype, p, mask_shape, ka, kb, da, db)
    y = x * scale
    if shift is not None:
        y += shift
    return y, ("array", scale)


@in_float32(half_kernels=True)
def backward(gy, mask):
    if mask[0] == "philox":
        _, seed, offset, p, rows, ka, da = mask
        return _cuda.dropout(gy, seed, offset, p, ka, 0.0, da, 0.0, rows=rows)
    return gy * mask[1]
