"""Plain array references of the norm/activation/loss kernels (xp-generic: NumPy or CuPy).

They are small and obviously right; the tests compare the Numba kernels in kernels/cpu/norm.py
with them, and on CUDA they are the implementation (CuPy runs them as they are).

Layouts:
  row norms (layer, instance, group): x4 (N, G, S, I); statistics per (n, g) over (S, I);
      the affine weight/bias w2, b2 are (G, S) (one value per channel of a group).
  channel norm (batch): x3 (N, C, I); statistics per c over (N, I).
  cross-entropy: x (M, C) logits, t (M,) int64 class indices, w (C,) class weights.
"""
import math

from minicnn.devices import get_array_module

# --- row norms (layer / instance / group) -----------------------------------------------------


def row_norm_fwd(x4, w2, b2, eps):
    """y4 = (x - mean) * rstd * w + b; returns y4, mean (N, G), rstd (N, G) (float64 stats)."""
    xp = get_array_module(x4)
    xd = x4.astype(xp.float64)
    mean = xd.mean(axis=(2, 3))                                     # (N, G)
    var = ((xd - mean[:, :, None, None]) ** 2).mean(axis=(2, 3))     # biased
    rstd = 1.0 / xp.sqrt(var + eps)
    y = (xd - mean[:, :, None, None]) * rstd[:, :, None, None]
    if w2 is not None:
        y = y * w2[None, :, :, None]
    if b2 is not None:
        y = y + b2[None, :, :, None]
    return y.astype(x4.dtype), mean, rstd


def row_norm_bwd(gy4, x4, mean, rstd, w2):
    """gx4 and the per-(n, g, s) partial sums of gy * xhat and gy (summed over n by the caller)."""
    xp = get_array_module(x4)
    gy = gy4.astype(xp.float64)
    xhat = (x4.astype(xp.float64) - mean[:, :, None, None]) * rstd[:, :, None, None]
    gxhat = gy * w2[None, :, :, None] if w2 is not None else gy
    m = x4.shape[2] * x4.shape[3]
    s1 = gxhat.sum(axis=(2, 3), keepdims=True) / m
    s2 = (gxhat * xhat).sum(axis=(2, 3), keepdims=True) / m
    gx = rstd[:, :, None, None] * (gxhat - s1 - xhat * s2)
    return gx.astype(x4.dtype), (gy * xhat).sum(axis=3), gy.sum(axis=3)


# --- channel norm (batch) ---------------------------------------------------------------------

def chan_stats(x3):
    """Per-channel mean and biased variance (float64) of x3 (N, C, I)."""
    xp = get_array_module(x3)
    xd = x3.astype(xp.float64)
    mean = xd.mean(axis=(0, 2))
    var = ((xd - mean[None, :, None]) ** 2).mean(axis=(0, 2))
    return mean, var


def chan_affine(x3, scale, shift):
    """y3 = x3 * scale[c] + shift[c] (scale, shift float64 of shape (C,))."""
    xp = get_array_module(x3)
    y = x3.astype(xp.float64) * scale[None, :, None] + shift[None, :, None]
    return y.astype(x3.dtype)


def chan_bwd_sums(gy3, x3, mean):
    """Per channel: sum(gy) and sum(gy * (x - mean)) over (N, I), float64."""
    xp = get_array_module(x3)
    gy = gy3.astype(xp.float64)
    xmu = x3.astype(xp.float64) - mean[None, :, None]
    return gy.sum(axis=(0, 2)), (gy * xmu).sum(axis=(0, 2))


def chan_bwd_apply(gy3, x3, mean, rstd, w, sum_gy, sum_gyxmu):
    """gx = w * rstd * (gy - sum_gy / M - (x - mean) * rstd^2 * sum_gyxmu / M), M = N * I."""
    xp = get_array_module(x3)
    m = x3.shape[0] * x3.shape[2]
    k = (w * rstd if w is not None else rstd)[None, :, None]
    xmu = x3.astype(xp.float64) - mean[None, :, None]
    gx = k * (gy3.astype(xp.float64) - (sum_gy / m)[None, :, None]
              - xmu * (rstd * rstd * sum_gyxmu / m)[None, :, None])
    return gx.astype(x3.dtype)


# --- activations ------------------------------------------------------------------------------

def relu_fwd(x):
    xp = get_array_module(x)
    return xp.where(x > 0, x, xp.zeros((), x.dtype))


def relu_bwd(y, gy):
    """Gradient through ReLU from its output: gy where y > 0."""
    xp = get_array_module(y)
    return xp.where(y > 0, gy, xp.zeros((), gy.dtype))


def _erf(xp, a):
    if xp.__name__ == "numpy":
        import numpy  # noqa: PLC0415
        return numpy.vectorize(math.erf, otypes=[a.dtype])(a)
    from cupyx.scipy.special import erf  # noqa: PLC0415
    return erf(a)


_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_C = 0.044715


def gelu_fwd(x, tanh_approx=False):
    xp = get_array_module(x)
    if tanh_approx:
        return (0.5 * x * (1.0 + xp.tanh(_SQRT_2_OVER_PI * (x + _GELU_C * x ** 3)))).astype(x.dtype)
    return (0.5 * x * (1.0 + _erf(xp, x * _SQRT_HALF))).astype(x.dtype)


def gelu_bwd(x, gy, tanh_approx=False):
    """gy * GELU'(x)."""
    xp = get_array_module(x)
    if tanh_approx:
        t = xp.tanh(_SQRT_2_OVER_PI * (x + _GELU_C * x ** 3))
        du = _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_C * x * x)
        d = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du
    else:
        d = 0.5 * (1.0 + _erf(xp, x * _SQRT_HALF)) + x * _INV_SQRT_2PI * xp.exp(-0.5 * x * x)
    return (gy * d).astype(x.dtype)


def sigmoid(x):
    """Stable logistic function (no overflow for any x)."""
    xp = get_array_module(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype)


def silu_fwd(x):
    return (x * sigmoid(x)).astype(x.dtype)


def silu_bwd(x, gy):
    s = sigmoid(x)
    return (gy * s * (1.0 + x * (1.0 - s))).astype(x.dtype)


# --- cross-entropy (class indices) ------------------------------------------------------------

def ce_fwd(x, t, w, ignore_index, smooth):
    """Per-row loss and log-sum-exp of x (M, C) for class targets t (M,).

    Row loss = (1 - smooth) * w[t] * (lse - x[t]) + smooth / C * sum_c w_c (lse - x_c),
    zero for rows whose target is ignore_index. w may be None (all ones).
    """
    xp = get_array_module(x)
    M, C = x.shape
    xd = x.astype(xp.float64)
    mx = xd.max(axis=1, keepdims=True)
    lse = (mx + xp.log(xp.exp(xd - mx).sum(axis=1, keepdims=True)))[:, 0]
    keep = t != ignore_index
    tc = xp.where(keep, t, 0)
    wv = xp.ones(C) if w is None else w.astype(xp.float64)
    wt = wv[tc]
    loss = (1.0 - smooth) * wt * (lse - xd[xp.arange(M), tc])
    if smooth:
        loss = loss + smooth / C * ((lse[:, None] - xd) * wv[None, :]).sum(axis=1)
    return xp.where(keep, loss, 0.0), lse


def ce_bwd(x, t, w, ignore_index, smooth, lse, g):
    """Gradient of sum_i g_i * loss_i with respect to x (g per row, float64)."""
    xp = get_array_module(x)
    M, C = x.shape
    keep = t != ignore_index
    tc = xp.where(keep, t, 0)
    wv = xp.ones(C) if w is None else w.astype(xp.float64)
    q = (smooth / C) * xp.broadcast_to(wv[None, :], (M, C)).copy()
    q[xp.arange(M), tc] += (1.0 - smooth) * wv[tc]
    q = q * keep[:, None]
    p = xp.exp(x.astype(xp.float64) - lse[:, None])
    gx = g[:, None] * (p * q.sum(axis=1, keepdims=True) - q)
    return gx.astype(x.dtype)
