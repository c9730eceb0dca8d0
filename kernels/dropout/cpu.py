"""The dropout family on the CPU: the keep mask drawn from minicnn.random's NumPy generator (so
mc.manual_seed makes it repeatable), as the scale and shift arrays the forward applies."""
import numpy as np

from minicnn import random as _random


def draw(dtype, p, mask_shape, ka, kb, da, db):
    """(scale, shift) of `mask_shape`: keep ? ka : da, and keep ? kb : db (None when both are 0),
    keep True with probability 1 - p."""
    u = _random.rng("cpu").random(mask_shape, dtype=np.float64 if dtype.itemsize == 8 else
                                  np.float32)
    keep = u >= p
    t = np.dtype(dtype).type
    scale = np.where(keep, t(ka), t(da))
    shift = np.where(keep, t(kb), t(db)) if (kb or db) else None
    return scale, shift
