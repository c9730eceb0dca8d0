"""Plain array references of the activation kernels: the tests' oracle (xp-generic: NumPy or
CuPy), small and obviously right.

    forward(x, act, slope)       act(x)
    backward(x, gy, act, slope)  gy * act'(x)
"""
import math

from minicnn.devices import get_array_module

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_C = 0.044715


def _erf(xp, a):
    if xp.__name__ == "numpy":
        import numpy  # noqa: PLC0415
        return numpy.vectorize(math.erf, otypes=[a.dtype])(a)
    from cupyx.scipy.special import erf  # noqa: PLC0415
    return erf(a)


def sigmoid(x):
    """Stable logistic function (no overflow for any x)."""
    xp = get_array_module(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _softplus(x):
    xp = get_array_module(x)
    return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))


def _value_and_slope(x, act, slope):
    """(act(x), act'(x)) in float64 arithmetic."""
    xp = get_array_module(x)
    x = x.astype(xp.float64)
    if act == "identity":
        return x, xp.ones_like(x)
    if act == "relu":    # NaN kept, as PyTorch's
        return xp.where(x <= 0, 0.0, x), xp.where(x <= 0, 0.0, 1.0)
    if act == "leaky_relu":
        return xp.where(x > 0, x, slope * x), xp.where(x > 0, 1.0, slope)
    if act == "gelu":
        cdf = 0.5 * (1.0 + _erf(xp, x / math.sqrt(2.0)))
        return x * cdf, cdf + x * xp.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    if act == "gelu_tanh":
        t = xp.tanh(_SQRT_2_OVER_PI * (x + _GELU_C * x ** 3))
        du = _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_C * x * x)
        return 0.5 * x * (1.0 + t), 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du
    if act == "sigmoid":
        s = sigmoid(x)
        return s, s * (1.0 - s)
    if act == "silu":
        s = sigmoid(x)
        return x * s, s * (1.0 + x * (1.0 - s))
    if act == "tanh":
        t = xp.tanh(x)
        return t, 1.0 - t * t
    if act == "mish":
        t = xp.tanh(_softplus(x))
        return x * t, t + x * (1.0 - t * t) * sigmoid(x)
    if act == "hardswish":
        return x * xp.clip(x + 3.0, 0.0, 6.0) / 6.0, \
            xp.where(x <= -3.0, 0.0, xp.where(x >= 3.0, 1.0, x / 3.0 + 0.5))
    raise ValueError(f"no reference for activation {act!r}")


def forward(x, act, slope=0.0):
    return _value_and_slope(x, act, slope)[0].astype(x.dtype)


def backward(x, gy, act, slope=0.0):
    """gy * act'(x); where ReLU's or Hardswish's slope is 0 the result is 0 even for a NaN gy
    (PyTorch's backward selects there)."""
    xp = get_array_module(x)
    g = gy * _value_and_slope(x, act, slope)[1]
    flat = {"relu": 0.0, "hardswish": -3.0}   # where the slope is 0: x <= this
    if act in flat:
        g = xp.where(x <= flat[act], 0.0, g)
    return g.astype(x.dtype)


def bias_act_fwd(x, b, act, dim, slope=0.0):
    shape = [1] * x.ndim
    shape[dim] = -1
    return forward(x + b.reshape(shape), act, slope)


def bias_act_bwd(x, b, gy, act, dim, slope=0.0):
    shape = [1] * x.ndim
    shape[dim] = -1
    gx = backward(x + b.reshape(shape), gy, act, slope)
    axes = tuple(i for i in range(x.ndim) if i != dim)
    return gx, gx.astype("float64").sum(axis=axes).astype(x.dtype)
