"""Plain array references of the softmax family: the tests' oracle (xp-generic: NumPy or CuPy),
small and obviously right, in float64.

Cross-entropy layout: x (M, C) logits, t (M,) int64 class indices, w (C,) class weights or None.
"""
from minicnn.devices import get_array_module


def softmax_fwd(x, axis, log=False):
    xp = get_array_module(x)
    xd = x.astype(xp.float64)
    lse = xp.log(xp.exp(xd - xd.max(axis=axis, keepdims=True)).sum(axis=axis, keepdims=True)) \
        + xd.max(axis=axis, keepdims=True)
    return (xd - lse if log else xp.exp(xd - lse)).astype(x.dtype)


def softmax_bwd(y, gy, axis, log=False):
    """From the forward's output y: gy - p sum(gy) (log-softmax), p (gy - sum(gy p)) (softmax)."""
    xp = get_array_module(y)
    yd, gd = y.astype(xp.float64), gy.astype(xp.float64)
    if log:
        return (gd - xp.exp(yd) * gd.sum(axis=axis, keepdims=True)).astype(y.dtype)
    return (yd * (gd - (gd * yd).sum(axis=axis, keepdims=True))).astype(y.dtype)


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
