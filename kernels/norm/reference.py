"""Plain array references of the norm kernels: the tests' oracle (xp-generic: NumPy or CuPy),
small and obviously right. Layouts as in the family's API (kernels/norm/__init__.py): row norms
x4 (N, G, S, I) with the affine w2, b2 (G, S); batch norm x3 (N, C, I).
"""
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
