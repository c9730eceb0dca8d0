"""Dispatchers of the norm family: NumPy arrays go to the Numba kernels (kernels/cpu/norm.py),
other arrays (CuPy) to the xp-generic code of kernels/reference/norm.py.

Every function takes and returns arrays; statistics and partial sums are float64.
"""
import numpy as np

from minicnn.backend import get_array_module

from .reference import norm as ref


def _is_cpu(*arrays):
    return get_array_module(*arrays) is np


def _c(a):
    return np.ascontiguousarray(a)


SMALL = 1 << 15  # below this many elements a kernel runs on one thread (no fork/join cost)


def _run(kernel, size, *args):
    """Call a parallel Numba kernel; small inputs run single-threaded, where the thread pool's
    start-up and join (milliseconds on a loaded machine) would dwarf the work."""
    if size >= SMALL:
        return kernel(*args)
    import numba  # noqa: PLC0415
    n = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        return kernel(*args)
    finally:
        numba.set_num_threads(n)


def _affine_arrays(w2, b2, shape):
    w = np.ones(shape) if w2 is None else _c(w2.astype(np.float64, copy=False))
    b = np.zeros(shape) if b2 is None else _c(b2.astype(np.float64, copy=False))
    return w, b


def row_norm_fwd(x4, w2, b2, eps):
    """x4 (N, G, S, I) -> y4, mean (N, G), rstd (N, G)."""
    if not _is_cpu(x4):
        return ref.row_norm_fwd(x4, w2, b2, eps)
    from .cpu import norm as cpu  # noqa: PLC0415
    N, G, S, _ = x4.shape
    x4 = _c(x4)
    w, b = _affine_arrays(w2, b2, (G, S))
    y = np.empty_like(x4)
    mean = np.empty((N, G))
    rstd = np.empty((N, G))
    _run(cpu.row_norm_fwd, x4.size, x4, w, b, float(eps), y, mean, rstd)
    return y, mean, rstd


def row_norm_bwd(gy4, x4, mean, rstd, w2):
    """-> gx4, gw_part (N, G, S), gb_part (N, G, S)."""
    if not _is_cpu(x4):
        return ref.row_norm_bwd(gy4, x4, mean, rstd, w2)
    from .cpu import norm as cpu  # noqa: PLC0415
    N, G, S, _ = x4.shape
    x4, gy4 = _c(x4), _c(gy4.astype(x4.dtype, copy=False))
    w, _ = _affine_arrays(w2, None, (G, S))
    gx = np.empty_like(x4)
    gw = np.empty((N, G, S))
    gb = np.empty((N, G, S))
    _run(cpu.row_norm_bwd, x4.size, gy4, x4, mean, rstd, w, gx, gw, gb)
    return gx, gw, gb


def chan_stats(x3):
    """x3 (N, C, I) -> mean (C,), biased var (C,)."""
    if not _is_cpu(x3):
        return ref.chan_stats(x3)
    from .cpu import norm as cpu  # noqa: PLC0415
    C = x3.shape[1]
    mean, var = np.empty(C), np.empty(C)
    _run(cpu.chan_stats, x3.size, _c(x3), mean, var)
    return mean, var


def chan_affine(x3, scale, shift):
    if not _is_cpu(x3):
        return ref.chan_affine(x3, scale, shift)
    from .cpu import norm as cpu  # noqa: PLC0415
    x3 = _c(x3)
    y = np.empty_like(x3)
    _run(cpu.chan_affine, x3.size, x3, _c(scale.astype(np.float64)), _c(shift.astype(np.float64)), y)
    return y


def chan_bwd_sums(gy3, x3, mean):
    if not _is_cpu(x3):
        return ref.chan_bwd_sums(gy3, x3, mean)
    from .cpu import norm as cpu  # noqa: PLC0415
    C = x3.shape[1]
    s1, s2 = np.empty(C), np.empty(C)
    _run(cpu.chan_bwd_sums, x3.size, _c(gy3.astype(x3.dtype, copy=False)), _c(x3), mean, s1, s2)
    return s1, s2


def chan_bwd_apply(gy3, x3, mean, rstd, w, sum_gy, sum_gyxmu):
    if not _is_cpu(x3):
        return ref.chan_bwd_apply(gy3, x3, mean, rstd, w, sum_gy, sum_gyxmu)
    from .cpu import norm as cpu  # noqa: PLC0415
    x3 = _c(x3)
    gx = np.empty_like(x3)
    wv = np.ones(x3.shape[1]) if w is None else _c(w.astype(np.float64))
    _run(cpu.chan_bwd_apply, x3.size, _c(gy3.astype(x3.dtype, copy=False)), x3, mean, rstd, wv, sum_gy,
                       sum_gyxmu, gx)
    return gx


def _flat_kernel(name, *arrays, **kw):
    from .cpu import norm as cpu  # noqa: PLC0415
    flat = [_c(a).reshape(-1) for a in arrays]
    out = np.empty_like(flat[-1])
    _run(getattr(cpu, name), out.size, *flat, *kw.values(), out)
    return out.reshape(arrays[0].shape)


def relu_fwd(x):
    return _flat_kernel("relu_fwd", x) if _is_cpu(x) else ref.relu_fwd(x)


def relu_bwd(y, gy):
    return _flat_kernel("relu_bwd", y, gy) if _is_cpu(y) else ref.relu_bwd(y, gy)


def gelu_fwd(x, tanh_approx=False):
    if not _is_cpu(x):
        return ref.gelu_fwd(x, tanh_approx)
    return _flat_kernel("gelu_fwd", x, tanh_approx=bool(tanh_approx))


def gelu_bwd(x, gy, tanh_approx=False):
    if not _is_cpu(x):
        return ref.gelu_bwd(x, gy, tanh_approx)
    return _flat_kernel("gelu_bwd", x, gy.astype(x.dtype, copy=False),
                        tanh_approx=bool(tanh_approx))


def silu_fwd(x):
    return _flat_kernel("silu_fwd", x) if _is_cpu(x) else ref.silu_fwd(x)


def silu_bwd(x, gy):
    if not _is_cpu(x):
        return ref.silu_bwd(x, gy)
    return _flat_kernel("silu_bwd", x, gy.astype(x.dtype, copy=False))


def ce_fwd(x, t, w, ignore_index, smooth):
    """x (M, C), t (M,) int64 -> per-row loss (M,) and lse (M,), float64."""
    if not _is_cpu(x):
        return ref.ce_fwd(x, t, w, ignore_index, smooth)
    from .cpu import norm as cpu  # noqa: PLC0415
    M, C = x.shape
    wv = np.ones(C) if w is None else _c(w.astype(np.float64))
    loss, lse = np.empty(M), np.empty(M)
    _run(cpu.ce_fwd, x.size, _c(x), _c(t.astype(np.int64, copy=False)), wv, int(ignore_index), float(smooth),
               loss, lse)
    return loss, lse


def ce_bwd(x, t, w, ignore_index, smooth, lse, g):
    """Gradient of sum_i g_i loss_i with respect to x (g (M,) float64)."""
    if not _is_cpu(x):
        return ref.ce_bwd(x, t, w, ignore_index, smooth, lse, g)
    from .cpu import norm as cpu  # noqa: PLC0415
    M, C = x.shape
    wv = np.ones(C) if w is None else _c(w.astype(np.float64))
    x = _c(x)
    gx = np.empty_like(x)
    _run(cpu.ce_bwd, x.size, x, _c(t.astype(np.int64, copy=False)), wv, int(ignore_index), float(smooth), lse,
               _c(g.astype(np.float64)), gx)
    return gx
