"""The activation family on the CPU: Numba kernels over flat contiguous arrays, and for each
activation `<act>_forward(x, slope)` / `<act>_backward(x, gy, slope)`, which the family's API
finds by name. float32 uses kernels with the vectorised exp of kernels/_numba.py; float64 uses
NumPy's SIMD exp where that beats Numba's per-element libm call (15 ms vs 67 ms measured for SiLU
on (8, 64, 56, 56)).
"""
import math

import numpy as np
from numba import njit, prange

from .._numba import F32, exp_f32, exp_f32_neg_clamped, run


def _flat(kernel, *arrays, extra=()):
    """kernel(*flat arrays, *extra, out) over C-contiguous flat views; the result owns its
    memory (not a reshaped view), so autograd need not copy it for a leaf's .grad."""
    flat = [np.ascontiguousarray(a).reshape(-1) for a in arrays]
    out = np.empty(arrays[0].shape, dtype=arrays[0].dtype)
    run(kernel, out.size, *flat, *extra, out.reshape(-1))
    return out


def _as(gy, x):
    return gy.astype(x.dtype, copy=False)


def identity_forward(x, slope):  # noqa: ARG001 -- every forward takes the slope
    return x.copy()


def identity_backward(x, gy, slope):  # noqa: ARG001
    return _as(gy, x).copy()


def relu_forward(x, slope):  # noqa: ARG001
    return _flat(relu_fwd_kernel, x)


def relu_backward(x, gy, slope):  # noqa: ARG001
    return _flat(relu_bwd_kernel, x, _as(gy, x))


def leaky_relu_forward(x, slope):
    return _flat(leaky_relu_fwd_kernel, x, extra=(x.dtype.type(slope),))


def leaky_relu_backward(x, gy, slope):
    return _flat(leaky_relu_bwd_kernel, x, _as(gy, x), extra=(x.dtype.type(slope),))


def gelu_forward(x, slope):  # noqa: ARG001
    if x.dtype == np.float32:
        return _flat(gelu_fwd_f32, x)
    return _flat(gelu_fwd_kernel, x, extra=(False,))


def gelu_backward(x, gy, slope):  # noqa: ARG001
    if x.dtype == np.float32:
        return _flat(gelu_bwd_f32, x, _as(gy, x))
    return _flat(gelu_bwd_kernel, x, _as(gy, x), extra=(False,))


def gelu_tanh_forward(x, slope):  # noqa: ARG001
    if x.dtype == np.float32:
        return _flat(gelu_tanh_fwd_f32, x)
    return _flat(gelu_fwd_kernel, x, extra=(True,))


def gelu_tanh_backward(x, gy, slope):  # noqa: ARG001
    if x.dtype == np.float32:
        return _flat(gelu_tanh_bwd_f32, x, _as(gy, x))
    return _flat(gelu_bwd_kernel, x, _as(gy, x), extra=(True,))


def _sigmoid_np(x):
    with np.errstate(over="ignore"):  # exp(-x) = inf gives the right limit 0
        s = np.exp(-x.reshape(-1))    # 1-d, so 0-d inputs stay arrays for the in-place ops
    s += 1.0
    return np.reciprocal(s, out=s).reshape(x.shape)


def sigmoid_forward(x, slope):  # noqa: ARG001
    return _flat(sigmoid_f32, x) if x.dtype == np.float32 else _sigmoid_np(x)


def sigmoid_backward(x, gy, slope):  # noqa: ARG001
    s = sigmoid_forward(x, 0.0)
    return (gy * s * (1 - s)).astype(x.dtype, copy=False)


def silu_forward(x, slope):  # noqa: ARG001
    if x.dtype == np.float32:
        return _flat(silu_fwd_f32, x)
    return np.multiply(x, _sigmoid_np(x), dtype=x.dtype)


def silu_backward(x, gy, slope):  # noqa: ARG001
    if x.dtype == np.float32:
        return _flat(silu_bwd_f32, x, _as(gy, x))
    return _flat(silu_bwd_s, x, _sigmoid_np(x), _as(gy, x))


def tanh_forward(x, slope):  # noqa: ARG001
    return np.tanh(x)


def tanh_backward(x, gy, slope):  # noqa: ARG001
    t = np.tanh(x)
    return (gy * (1 - t * t)).astype(x.dtype, copy=False)


def mish_forward(x, slope):  # noqa: ARG001
    return _flat(mish_fwd_kernel, x)


def mish_backward(x, gy, slope):  # noqa: ARG001
    return _flat(mish_bwd_kernel, x, _as(gy, x))


def _consts(x, *values):
    """Constants in x's dtype, so a float32 kernel computes in float32 as PyTorch's does."""
    return tuple(x.dtype.type(v) for v in values)


def hardswish_forward(x, slope):  # noqa: ARG001
    return _flat(hardswish_fwd_kernel, x, extra=_consts(x, 0, 3, 6))


def hardswish_backward(x, gy, slope):  # noqa: ARG001
    return _flat(hardswish_bwd_kernel, x, _as(gy, x), extra=_consts(x, 0, 0.5, 1, 3))


# --- kernels ----------------------------------------------------------------------------------

@njit(parallel=True, cache=True)
def relu_fwd_kernel(x, y):
    """max(x, 0) keeping NaN (PyTorch's relu: a diverged network must not look healthy)."""
    for i in prange(x.size):
        v = x[i]
        y[i] = 0 if v <= 0 else v


@njit(parallel=True, cache=True)
def relu_bwd_kernel(x, gy, gx):
    """gy where x > 0 (or NaN), else 0 even for a NaN gy: PyTorch's threshold_backward."""
    for i in prange(x.size):
        gx[i] = 0 if x[i] <= 0 else gy[i]


_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_C = 0.044715


@njit(parallel=True, cache=True)
def leaky_relu_fwd_kernel(x, slope, y):
    """One pass (NumPy's where over x * slope took three, 13 ms at DCGAN's (64, 64, 32, 32)). A
    NaN fails v > 0 and stays NaN through v * slope."""
    for i in prange(x.size):
        v = x[i]
        y[i] = v if v > 0 else v * slope


@njit(parallel=True, cache=True)
def leaky_relu_bwd_kernel(x, gy, slope, gx):
    for i in prange(x.size):
        gx[i] = gy[i] if x[i] > 0 else gy[i] * slope


@njit(parallel=True, cache=True)
def gelu_fwd_kernel(x, tanh_approx, y):
    if tanh_approx:
        for i in prange(x.size):
            v = x[i]
            y[i] = 0.5 * v * (1.0 + math.tanh(_SQRT_2_OVER_PI * (v + _GELU_C * v * v * v)))
    else:
        for i in prange(x.size):
            v = x[i]
            y[i] = 0.5 * v * (1.0 + math.erf(v * _SQRT_HALF))


@njit(parallel=True, cache=True)
def gelu_bwd_kernel(x, gy, tanh_approx, gx):
    if tanh_approx:
        for i in prange(x.size):
            v = x[i]
            t = math.tanh(_SQRT_2_OVER_PI * (v + _GELU_C * v * v * v))
            vc = v if abs(v) < 1e4 else 1e4   # u' without overflow: (1 - t^2) is 0 out there
            du = _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_C * vc * vc)
            gx[i] = gy[i] * (0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * du)
    else:
        for i in prange(x.size):
            v = x[i]
            gx[i] = gy[i] * (0.5 * (1.0 + math.erf(v * _SQRT_HALF))
                             + v * _INV_SQRT_2PI * math.exp(-0.5 * v * v))


# float32 exact GELU: erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7, the approximation
# PyTorch's vectorised CPU erf uses), with g = exp(-x^2 / 2) from exp_f32_neg_clamped
# (NaN inputs stay NaN through the factor v).


@njit(inline="always")
def _erf_f32(v, g):
    """erf(v / sqrt 2) given g = exp(-v^2 / 2)."""
    z = abs(v) * F32(0.7071067811865476)
    t = F32(1.0) / (F32(1.0) + F32(0.3275911) * z)
    poly = t * (F32(0.254829592) + t * (F32(-0.284496736) + t * (
        F32(1.421413741) + t * (F32(-1.453152027) + t * F32(1.061405429)))))
    e = F32(1.0) - poly * g
    return e if v >= 0 else -e


@njit(parallel=True, cache=True, fastmath={"contract"})
def gelu_fwd_f32(x, y):
    for i in prange(x.size):
        v = x[i]
        g = exp_f32_neg_clamped(F32(-0.5) * v * v)
        y[i] = F32(0.5) * v * (F32(1.0) + _erf_f32(v, g))


@njit(parallel=True, cache=True, fastmath={"contract"})
def gelu_bwd_f32(x, gy, gx):
    for i in prange(x.size):
        v = x[i]
        g = exp_f32_neg_clamped(F32(-0.5) * v * v)
        gx[i] = gy[i] * (F32(0.5) * (F32(1.0) + _erf_f32(v, g))
                         + v * F32(0.3989422804014327) * g)


# float32 tanh-approximate GELU: 0.5 v (1 + tanh(u)) = v * sigmoid(2u), u = sqrt(2/pi) (v + c v^3),
# an identity that needs only exp (and no cancellation); GELU' = s + 2 v s (1 - s) u'.
@njit(parallel=True, cache=True, fastmath={"contract"})
def gelu_tanh_fwd_f32(x, y):
    for i in prange(x.size):
        v = x[i]
        u2 = F32(2.0 * _SQRT_2_OVER_PI) * (v + F32(_GELU_C) * v * v * v)
        y[i] = v / (F32(1.0) + exp_f32(-u2))


@njit(parallel=True, cache=True, fastmath={"contract"})
def gelu_tanh_bwd_f32(x, gy, gx):
    for i in prange(x.size):
        v = x[i]
        u2 = F32(2.0 * _SQRT_2_OVER_PI) * (v + F32(_GELU_C) * v * v * v)
        s = F32(1.0) / (F32(1.0) + exp_f32(-u2))
        vc = v if abs(v) < F32(1e4) else F32(1e4)   # u' without overflow: s (1 - s) is 0 there
        du2 = F32(2.0 * _SQRT_2_OVER_PI) * (F32(1.0) + F32(3.0 * _GELU_C) * vc * vc)
        gx[i] = gy[i] * (s + v * s * (F32(1.0) - s) * du2)


@njit(parallel=True, cache=True, fastmath={"contract"})
def sigmoid_f32(x, y):
    for i in prange(x.size):
        y[i] = F32(1.0) / (F32(1.0) + exp_f32(-x[i]))


@njit(parallel=True, cache=True, fastmath={"contract"})
def silu_fwd_f32(x, y):
    """x / (1 + e^-x), as PyTorch computes it."""
    for i in prange(x.size):
        v = x[i]
        y[i] = v / (F32(1.0) + exp_f32(-v))


@njit(parallel=True, cache=True, fastmath={"contract"})
def silu_bwd_f32(x, gy, gx):
    """gx = gy * s (1 + x (1 - s)), s = 1 / (1 + e^-x) recomputed (cheaper than storing it)."""
    for i in prange(x.size):
        v = x[i]
        s = F32(1.0) / (F32(1.0) + exp_f32(-v))
        gx[i] = gy[i] * s * (F32(1.0) + v * (F32(1.0) - s))


@njit(parallel=True, cache=True, fastmath=True)
def silu_bwd_s(x, s, gy, gx):
    """gx = gy * s (1 + x (1 - s)) from the saved sigmoid s (no exp here)."""
    for i in prange(x.size):
        si = s[i]
        gx[i] = gy[i] * si * (1.0 + x[i] * (1.0 - si))


# Mish: x tanh(softplus(x)), softplus(x) = x above 20 as PyTorch's (then tanh is 1 in float64);
# Mish' = t + x s (1 - t^2), t = tanh(softplus(x)), s = sigmoid(x). NaN stays NaN.

@njit(inline="always")
def _tanh_softplus(v):
    return math.tanh(v if v > 20.0 else math.log1p(math.exp(v)))


@njit(parallel=True, cache=True)
def mish_fwd_kernel(x, y):
    for i in prange(x.size):
        v = x[i]
        y[i] = v * _tanh_softplus(v)


@njit(parallel=True, cache=True)
def mish_bwd_kernel(x, gy, gx):
    for i in prange(x.size):
        v = x[i]
        t = _tanh_softplus(v)
        s = 1.0 / (1.0 + math.exp(-v))
        gx[i] = gy[i] * (t + v * s * (1.0 - t * t))


# Hardswish: x min(max(x + 3, 0), 6) / 6; its slope is 0 on (-inf, -3], 1 on [3, inf) and
# x / 3 + 1/2 elsewhere, so NaN for a NaN x (PyTorch's pieces, and its vectorized kernel's NaN;
# its scalar tail gives gy there), applied by selects as PyTorch's. NaN stays NaN in the forward.

@njit(parallel=True, cache=True)
def hardswish_fwd_kernel(x, zero, three, six, y):
    for i in prange(x.size):
        v = x[i]
        r = v + three
        y[i] = v * (zero if r < zero else (six if r > six else r)) / six


@njit(parallel=True, cache=True)
def hardswish_bwd_kernel(x, gy, zero, half, one, three, gx):
    for i in prange(x.size):
        v = x[i]
        g = gy[i]   # selects, as PyTorch's: 0 below -3 even for a NaN gy
        gx[i] = zero if v <= -three else (g if v >= three else g * (v / three + half))
