"""mc.autocast / mc.amp.autocast: PyTorch's torch.autocast, per thread.

    with mc.autocast("cpu", dtype=mc.bfloat16):
        loss = F.cross_entropy(model(x), y)     # conv and linear in bfloat16, the loss in float32
    loss.backward()                             # outside the region, as with PyTorch

The casting rules and op lists are in minicnn/ops/autocast.py; this is the region itself:
a context manager and a decorator, nestable (an inner region may switch autocast off or change
its dtype), restoring the outer state on exit, exceptions included.
"""
import functools

import numpy

from ..dtypes import bfloat16, float16, float32
from ..ops import autocast as _rules

_DTYPES = {"cpu": (bfloat16, float16), "cuda": (float16, bfloat16)}


def is_autocast_enabled(device_type=None):
    return _rules.is_autocast_enabled(device_type)


def get_autocast_dtype(device_type):
    return _rules.get_autocast_dtype(device_type)


class autocast:
    """autocast(device_type, dtype=None, enabled=True, cache_enabled=True): device_type 'cpu' or
    'cuda'; dtype float16 or bfloat16 (default: bfloat16 on 'cpu', float16 on 'cuda'). A
    float32 dtype is refused with a TypeError (PyTorch warns and switches autocast off)."""

    def __init__(self, device_type, dtype=None, enabled=True, cache_enabled=True):
        if not isinstance(device_type, str) or device_type.split(":")[0] not in _DTYPES:
            raise ValueError(f"autocast: device_type must be 'cpu' or 'cuda', got "
                             f"{device_type!r}")
        self.device_type = device_type.split(":")[0]
        allowed = _DTYPES[self.device_type]
        self.fast_dtype = allowed[0] if dtype is None else _dtype(dtype)
        if self.fast_dtype not in allowed:
            raise TypeError(f"autocast: {self.fast_dtype} is not supported on "
                            f"{self.device_type}; use one of "
                            + ", ".join(str(d) for d in allowed))
        self.enabled = bool(enabled)
        self.cache_enabled = bool(cache_enabled)
        self._saved = []

    def __enter__(self):
        self._saved.append(_rules.enter(self.device_type, self.fast_dtype, self.enabled,
                                        self.cache_enabled))
        return self

    def __exit__(self, *exc):
        _rules.leave(self._saved.pop())
        return False

    def __call__(self, func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with autocast(self.device_type, self.fast_dtype, self.enabled, self.cache_enabled):
                return func(*args, **kwargs)
        return wrapper


def _dtype(dtype):
    try:
        d = numpy.dtype(dtype)
    except TypeError:
        raise TypeError(f"autocast: unknown dtype {dtype!r}") from None
    if d == float32:
        raise TypeError("autocast: dtype float32 is not a lower precision; use enabled=False "
                        "to switch autocast off")
    return d
