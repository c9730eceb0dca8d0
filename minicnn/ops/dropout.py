"""Dropout: inverted dropout, channel (spatial) dropout and alpha dropout.

Each is one Function, MaskedAffine: y = keep ? x * ka + kb : x * da + db with a random keep mask
of the input's shape (or one per (n, c) channel), run by the dropout kernel family, which keeps
the mask as it likes (an array on the CPU, drawn from minicnn.random's seeded generator; only a
Philox seed and offset on the GPU, drawing the same decisions again in the backward). So
mc.manual_seed(s) makes masks repeatable. In eval mode (training=False) each is the identity and
returns its input unchanged.
"""
from ..autograd import Function
from ..dtypes import kind as dtype_kind
from ..kernels import dropout as K


class MaskedAffine(Function):
    """y = keep ? x * ka + kb : x * da + db; backward: MaskedLinear with the same mask."""
    saves = ()

    def __init__(self, p, mask_shape, ka, kb=0.0, da=0.0, db=0.0):
        self.p, self.mask_shape = p, tuple(mask_shape)
        self.ka, self.kb, self.da, self.db = ka, kb, da, db

    def forward(self, x):
        y, self.mask = K.forward(x, self.p, self.mask_shape, self.ka, self.kb, self.da, self.db)
        return y

    def backward(self, gy):
        return MaskedLinear(self.mask)(gy)


class MaskedLinear(Function):
    """gx = gy * (keep ? ka : da): linear, so its backward is itself with the same mask."""
    saves = ()

    def __init__(self, mask):
        self.mask = mask

    def forward(self, gy):
        return K.backward(gy, self.mask)

    def backward(self, ggx):
        return MaskedLinear(self.mask)(ggx)


def _check_p(p, op):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: dropout probability has to be between 0 and 1, but got {p}")


def _dropout(x, p, training, shape, op):
    p = float(p)
    _check_p(p, op)
    if dtype_kind(x.dtype) != "f":
        raise TypeError(f"{op}: expected a floating point tensor, got dtype {x.dtype}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    return MaskedAffine(p, shape, 1.0 / (1.0 - p))(x)


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
    # kept: a x + alpha a p; dropped: alpha a (p - 1) (the affine keeps mean 0, variance 1)
    return MaskedAffine(p, shape, a, _ALPHA * a * p, 0.0, _ALPHA * a * (p - 1.0))(x)


def alpha_dropout(input, p=0.5, training=False, inplace=False):  # noqa: A002, ARG001
    """F.alpha_dropout (for SELU networks): keeps mean 0 and variance 1 of its input."""
    return _alpha_dropout(input, p, training, input.shape, "alpha_dropout")


def feature_alpha_dropout(input, p=0.5, training=False, inplace=False):  # noqa: A002, ARG001
    return _alpha_dropout(input, p, training, _feature_shape(input, "feature_alpha_dropout"),
                          "feature_alpha_dropout")
