"""The dropout family on the CPU: the keep mask drawn from minicnn.random's NumPy generator (so
mc.manual_seed makes it repeatable), as the scale and shift arrays the forward applies."""
import numpy as np

from minicnn import random as _random


def draw(dtype, p, mask_shape, ka, kb, da, db):
    """(scale, shift) of `mask_shape`: keep ? ka : da, and keep ? kb : db (None when both are 0),
    keep True with probability 1 - p."""
    u = _random.rng("cpu").random(mask_shape, dtype=np.float64 if dtype.itemsize == 8 else
                                  np.float32)
    k = (u >= p).astype(dtype)       # 1 where kept, 0 where dropped
    shift = _pick(k, kb, db, dtype) if (kb or db) else None
    return _pick(k, ka, da, dtype, in_place=True), shift


def _pick(k, a, b, dtype, in_place=False):
    """k ? a : b for k of 0s and 1s, exactly (a * 1 + b * 0 adds an exact 0). Arithmetic, not
    np.where: np.where with scalars took 6.4 ms on (8, 64, 56, 56), a multiply 0.3 ms."""
    t = np.dtype(dtype).type
    if b:
        out = k * t(a)
        out += (1 - k) * t(b)
        return out
    if in_place:
        k *= t(a)
        return k
    return k * t(a)
