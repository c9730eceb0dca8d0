"""Plain NumPy references of the pooling kernels: the tests' oracle (xp-generic, so the GPU tests
use them on CuPy arrays too).

x (N, C, H, W); outputs (N, C, OH, OW); max-pool indices are flat h * W + w in the (H, W) plane;
`inv` (OH, OW) is 1 / divisor of each average-pool window (see `avg_pool_inv`).
"""
import numpy

from minicnn.devices import get_array_module, scatter_add


def _padded(x, PH, PW, KH, KW, SH, SW, DH, DW, OH, OW, value):
    xp = get_array_module(x)
    N, C, H, W = x.shape
    HP = max(H + PH, (OH - 1) * SH + (KH - 1) * DH + 1 - PH)
    WP = max(W + PW, (OW - 1) * SW + (KW - 1) * DW + 1 - PW)
    return xp.pad(x, ((0, 0), (0, 0), (PH, HP - H), (PW, WP - W)), constant_values=value)


def _window(a, kh, kw, SH, SW, DH, DW, OH, OW):
    h0, w0 = kh * DH, kw * DW
    return a[:, :, h0:h0 + SH * (OH - 1) + 1:SH, w0:w0 + SW * (OW - 1) + 1:SW]


def max_pool_fwd(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW):
    xp = get_array_module(x)
    N, C, H, W = x.shape
    img = _padded(x, PH, PW, KH, KW, SH, SW, DH, DW, OH, OW, -xp.inf)
    win = xp.stack([_window(img, kh, kw, SH, SW, DH, DW, OH, OW)
                    for kh in range(KH) for kw in range(KW)])        # (KH*KW, N, C, OH, OW)
    k = xp.argmax(win, axis=0)                                       # first max (first NaN)
    y = xp.take_along_axis(win, k[None], axis=0)[0]
    h = xp.arange(OH)[:, None] * SH - PH + (k // KW) * DH
    w = xp.arange(OW)[None, :] * SW - PW + (k % KW) * DW
    return y, (h * W + w).astype(xp.int64)


def avg_pool_fwd(x, KH, KW, SH, SW, PH, PW, OH, OW, inv):
    img = _padded(x, PH, PW, KH, KW, SH, SW, 1, 1, OH, OW, 0)
    s = sum(_window(img, kh, kw, SH, SW, 1, 1, OH, OW) for kh in range(KH) for kw in range(KW))
    return s * inv


def avg_pool_bwd(gy, H, W, KH, KW, SH, SW, PH, PW, inv):
    xp = get_array_module(gy)
    N, C, OH, OW = gy.shape
    g = gy * inv
    img = xp.zeros_like(_padded(xp.zeros((N, C, H, W), gy.dtype), PH, PW, KH, KW, SH, SW, 1, 1,
                                OH, OW, 0))
    for kh in range(KH):
        for kw in range(KW):
            _window(img, kh, kw, SH, SW, 1, 1, OH, OW)[...] += g
    return img[:, :, PH:PH + H, PW:PW + W]


def plane_scatter(g, idx, H, W):
    """out[n, c].flat[idx[n, c, o]] += g[n, c, o]."""
    xp = get_array_module(g)
    N, C = g.shape[:2]
    out = xp.zeros((N * C, H * W), g.dtype)
    rows = xp.repeat(xp.arange(N * C), g.shape[2] * g.shape[3])
    scatter_add(xp, out, (rows, idx.reshape(-1)), g.reshape(-1))
    return out.reshape(N, C, H, W)


def plane_assign(x, idx, H, W):
    """out[n, c].flat[idx[n, c, o]] = x[n, c, o], zeros elsewhere. A repeated index is written,
    not summed (max_unpool2d after overlapping max-pool windows repeats the index of one input
    with its one value); with different values NumPy keeps the last, CuPy any one."""
    xp = get_array_module(x)
    N, C = x.shape[:2]
    out = xp.zeros((N * C, H * W), x.dtype)
    out[xp.arange(N * C)[:, None], idx.reshape(N * C, -1)] = x.reshape(N * C, -1)
    return out.reshape(N, C, H, W)


def plane_gather(x, idx):
    """x[n, c].flat[idx[n, c, o]]."""
    xp = get_array_module(x)
    N, C, H, W = x.shape
    out = xp.take_along_axis(x.reshape(N, C, H * W), idx.reshape(N, C, -1), axis=2)
    return out.reshape(idx.shape)


def adaptive_bounds(I, O):
    """Window [start, end) of each of O outputs over I inputs (PyTorch's adaptive rule)."""
    o = numpy.arange(O)
    return (o * I) // O, -((-(o + 1) * I) // O)


def adaptive_max_fwd(x, OH, OW):
    xp = get_array_module(x)
    N, C, H, W = x.shape
    hs, he = adaptive_bounds(H, OH)
    ws, we = adaptive_bounds(W, OW)
    y = xp.empty((N, C, OH, OW), x.dtype)
    idx = xp.empty((N, C, OH, OW), xp.int64)
    for i in range(OH):
        for j in range(OW):
            win = x[:, :, hs[i]:he[i], ws[j]:we[j]]
            ww = int(we[j] - ws[j])
            flat = win.reshape(N, C, -1)
            k = xp.argmax(flat, axis=2)             # the first maximum; with a NaN the last NaN,
            nan = xp.isnan(flat)                    # as PyTorch's (val > max || isnan(val))
            last_nan = flat.shape[2] - 1 - xp.argmax(nan[..., ::-1], axis=2)
            k = xp.where(nan.any(axis=2), last_nan, k)
            y[:, :, i, j] = xp.take_along_axis(flat, k[..., None], axis=2)[..., 0]
            idx[:, :, i, j] = (hs[i] + k // ww) * W + ws[j] + k % ww
    return y, idx
