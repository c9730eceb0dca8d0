"""Dropout: inverted dropout, channel (spatial) dropout and alpha dropout.

Masks come from the framework's seeded generator (minicnn.random.rng(device)), so
mc.manual_seed(s) makes them repeatable. In eval mode (training=False) each is the identity and
returns its input unchanged.

On CUDA no mask exists in memory: a Philox kernel (kernels/cuda/elementwise.cu) draws the keep
decision of each element (or channel) from (seed, offset, index), with seed and offset from
minicnn.random.philox() (seeded by mc.manual_seed; the offset advances once per call), and the
backward draws the same decisions again.
"""
from .. import random as _random
from ..autograd import Function
from ..devices import device_of, on_cuda_kernels
from ..random import rng
from ..tensor import Tensor


class MaskedScale(Function):
    """y = x * a + b with constant arrays a (broadcastable to x) and optional b."""

    def __init__(self, a, b=None):
        self.a, self.b = a, b

    def forward(self, x):
        y = x * self.a
        if self.b is not None:
            y += self.b
        return y

    def backward(self, gy):
        return gy * Tensor._wrap(self.a)


class PhiloxMask(Function):
    """y = keep ? x * ka + kb : x * da + db with keep drawn by the Philox dropout kernel from
    (seed, offset, element index), or (row index) when `rows` is given (x.reshape(rows, -1));
    the backward applies keep ? gy * ka : 0 with the same draws, so nothing is stored."""

    def __init__(self, seed, offset, p, rows, ka, kb=0.0, da=0.0, db=0.0):
        self.seed, self.offset, self.p, self.rows = seed, offset, p, rows
        self.ka, self.kb, self.da, self.db = ka, kb, da, db

    def forward(self, x):
        from ..kernels.cuda import elementwise  # noqa: PLC0415 -- CUDA (or its emulator) only
        return elementwise.dropout(x, self.seed, self.offset, self.p, self.ka, self.kb, self.da,
                                   self.db, rows=self.rows)

    def backward(self, gy):
        return PhiloxMask(self.seed, self.offset, self.p, self.rows, self.ka)(gy)


def _philox_rows(x, shape):
    """None for element-wise masks, else the number of mask rows (N * C) of a feature mask."""
    return None if tuple(shape) == tuple(x.shape) else int(shape[0]) * int(shape[1])


def _check_p(p, op):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: dropout probability has to be between 0 and 1, but got {p}")


def _keep_mask(x, shape, p):
    """A bool array of `shape`, True with probability 1 - p."""
    gen = rng(device_of(x.data))
    return gen.random(shape, dtype="float64" if x.dtype.itemsize == 8 else "float32") >= p


def _dropout(x, p, training, shape, op):
    p = float(p)
    _check_p(p, op)
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating point tensor, got dtype {x.dtype}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    if on_cuda_kernels(x.data):
        seed, offset = _random.philox()
        return PhiloxMask(seed, offset, p, _philox_rows(x, shape), 1.0 / (1.0 - p))(x)
    keep = _keep_mask(x, shape, p)
    a = keep.astype(x.dtype)
    a *= 1.0 / (1.0 - p)
    return MaskedScale(a)(x)


def dropout(input, p=0.5, training=True, inplace=False):  # noqa: A002, ARG001
    """F.dropout: zero each element with probability p and scale the rest by 1 / (1 - p)."""
    return _dropout(input, p, training, input.shape, "dropout")


def _feature_shape(x, op):
    if x.ndim < 2:
        raise ValueError(f"{op}: expected an input with at least 2 dims (N, C, *), got shape "
                         f"{list(x.shape)}")
    return tuple(x.shape[:2]) + (1,) * (x.ndim - 2)


def dropout2d(input, p=0.5, training=True, inplace=False):  # noqa: A002, ARG001
    """F.dropout2d: zero whole channels (N, C) with probability p."""
    return _dropout(input, p, training, _feature_shape(input, "dropout2d"), "dropout2d")


def dropout1d(input, p=0.5, training=True, inplace=False):  # noqa: A002, ARG001
    return _dropout(input, p, training, _feature_shape(input, "dropout1d"), "dropout1d")


def dropout3d(input, p=0.5, training=True, inplace=False):  # noqa: A002, ARG001
    return _dropout(input, p, training, _feature_shape(input, "dropout3d"), "dropout3d")


_ALPHA = 1.7580993408473766  # -SELU's negative saturation value, scale * alpha


def _alpha_dropout(x, p, training, shape, op):
    p = float(p)
    _check_p(p, op)
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    a = 1.0 / ((_ALPHA * _ALPHA * p + 1.0) * (1.0 - p)) ** 0.5
    if on_cuda_kernels(x.data):
        seed, offset = _random.philox()
        return PhiloxMask(seed, offset, p, _philox_rows(x, shape), a, _ALPHA * a * p, 0.0,
                          _ALPHA * a * (p - 1.0))(x)
    keep = _keep_mask(x, shape, p).astype(x.dtype)
    b = (keep - 1.0) * (_ALPHA * a) + _ALPHA * a * p
    return MaskedScale((keep * a).astype(x.dtype), b.astype(x.dtype))(x)


def alpha_dropout(input, p=0.5, training=False, inplace=False):  # noqa: A002, ARG001
    """F.alpha_dropout (for SELU networks): keeps mean 0 and variance 1 of its input."""
    return _alpha_dropout(input, p, training, input.shape, "alpha_dropout")


def feature_alpha_dropout(input, p=0.5, training=False, inplace=False):  # noqa: A002, ARG001
    return _alpha_dropout(input, p, training, _feature_shape(input, "feature_alpha_dropout"),
                          "feature_alpha_dropout")
