"""Dispatchers of the norm family: NumPy arrays go to the Numba kernels (kernels/cpu/norm.py),
other arrays (CuPy) to the xp-generic code of kernels/reference/norm.py.

Every function takes and returns arrays; statistics and partial sums are float64.
"""
import numpy as np

from minicnn.devices import on_cuda_kernels


def _is_cpu(*arrays):
    """The arrays take the Numba kernels (not the CUDA ones: CuPy arrays, or emulate_cuda())."""
    return not any(on_cuda_kernels(a) for a in arrays)


def _c(a):
    return np.ascontiguousarray(a)


_LN_BLOCK = 4096  # k per block in the layer-norm backward (its arrays stay in cache)
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


def _cuda():
    from .cuda import norm  # noqa: PLC0415 -- lazy: only with CUDA arrays
    return norm


def row_norm_fwd(x4, w2, b2, eps):
    """x4 (N, G, S, I) -> y4, mean (N, G), rstd (N, G)."""
    if not _is_cpu(x4):
        return _cuda().row_norm_fwd(x4, w2, b2, eps)
    from .cpu import norm as cpu  # noqa: PLC0415
    N, G, S, I = x4.shape  # noqa: E741
    x4 = _c(x4)
    if G == 1 and I == 1 and S > 1:  # layer norm with a per-element affine
        # w, b in their own dtype (no float64 copies of K-sized vectors; the kernel's arithmetic
        # is float64 either way)
        w, b = _ln_affine(w2, b2, S, x4.dtype)
        y = np.empty_like(x4)
        mean, rstd = np.empty((N, 1)), np.empty((N, 1))
        _run(cpu.ln_fwd, x4.size, x4.reshape(N, S), w, b, float(eps),
             y.reshape(N, S), mean.reshape(N), rstd.reshape(N))
        return y, mean, rstd
    w, b = _affine_arrays(w2, b2, (G, S))
    y = np.empty_like(x4)
    mean = np.empty((N, G))
    rstd = np.empty((N, G))
    _run(cpu.row_norm_fwd, x4.size, x4, w, b, float(eps), y, mean, rstd)
    return y, mean, rstd


def _ln_affine(w2, b2, S, dtype):
    w = np.ones(S, dtype) if w2 is None else _c(w2).reshape(S)
    b = np.zeros(S, dtype) if b2 is None else _c(b2).reshape(S)
    return w, b


def row_norm_bwd(gy4, x4, mean, rstd, w2, out_shape=None):
    """-> gx4, gw_part (N, G, S), gb_part (N, G, S) (partial sums over n; for the layer-norm
    layout G = I = 1 already summed, shape (1, 1, S)); the caller sums over axis 0.
    out_shape: the shape gx is allocated with (an owned array, not a reshaped view, so autograd
    need not copy it for a leaf's .grad); x4's shape by default."""
    if not _is_cpu(x4):
        return _cuda().row_norm_bwd(gy4, x4, mean, rstd, w2, out_shape)
    from .cpu import norm as cpu  # noqa: PLC0415
    N, G, S, I = x4.shape  # noqa: E741
    x4, gy4 = _c(x4), _c(gy4.astype(x4.dtype, copy=False))
    gx_out = np.empty(x4.shape if out_shape is None else out_shape, x4.dtype)
    gx = gx_out.reshape(x4.shape)
    if G == 1 and I == 1 and S > 1:  # layer norm with a per-element affine: sums over n done
        x2, gy2 = x4.reshape(N, S), gy4.reshape(N, S)
        m1, r1 = _c(mean).reshape(N), _c(rstd).reshape(N)
        w1, _ = _ln_affine(w2, None, S, x4.dtype)
        gw, gb = np.empty(S), np.empty(S)
        nb = (S + _LN_BLOCK - 1) // _LN_BLOCK
        s1p, s2p = np.empty((nb, N)), np.empty((nb, N))
        # pass 1 (parallel over blocks of k): row sums and the weight/bias grads; pass 2: gx
        _run(cpu.ln_bwd_sums, x4.size, gy2, x2, m1, r1, w1, s1p, s2p, gw, gb, _LN_BLOCK)
        s1 = s1p.sum(0) / S
        s2 = s2p.sum(0) * (r1 * r1) / S
        _run(cpu.ln_bwd_apply, x4.size, gy2, x2, m1, r1, w1, s1, s2, gx.reshape(N, S))
        return gx_out, gw.reshape(1, 1, S), gb.reshape(1, 1, S)
    w, _ = _affine_arrays(w2, None, (G, S))
    gw = np.empty((N, G, S))
    gb = np.empty((N, G, S))
    _run(cpu.row_norm_bwd, x4.size, gy4, x4, mean, rstd, w, gx, gw, gb)
    return gx_out, gw, gb


def chan_stats(x3):
    """x3 (N, C, I) -> mean (C,), biased var (C,)."""
    if not _is_cpu(x3):
        return _cuda().chan_stats(x3)
    from .cpu import norm as cpu  # noqa: PLC0415
    C = x3.shape[1]
    mean, var = np.empty(C), np.empty(C)
    _run(cpu.chan_stats, x3.size, _c(x3), mean, var)
    return mean, var


def chan_affine(x3, scale, shift):
    if not _is_cpu(x3):
        return _cuda().chan_affine(x3, scale, shift)
    from .cpu import norm as cpu  # noqa: PLC0415
    x3 = _c(x3)
    y = np.empty_like(x3)
    _run(cpu.chan_affine, x3.size, x3, _c(scale.astype(np.float64)),
         _c(shift.astype(np.float64)), y)
    return y


def chan_bwd_sums(gy3, x3, mean):
    if not _is_cpu(x3):
        return _cuda().chan_bwd_sums(gy3, x3, mean)
    from .cpu import norm as cpu  # noqa: PLC0415
    C = x3.shape[1]
    s1, s2 = np.empty(C), np.empty(C)
    _run(cpu.chan_bwd_sums, x3.size, _c(gy3.astype(x3.dtype, copy=False)), _c(x3), mean, s1, s2)
    return s1, s2


def chan_bwd_apply(gy3, x3, mean, rstd, w, sum_gy, sum_gyxmu):
    if not _is_cpu(x3):
        return _cuda().chan_bwd_apply(gy3, x3, mean, rstd, w, sum_gy, sum_gyxmu)
    from .cpu import norm as cpu  # noqa: PLC0415
    x3 = _c(x3)
    gx = np.empty_like(x3)
    wv = np.ones(x3.shape[1]) if w is None else _c(w.astype(np.float64))
    _run(cpu.chan_bwd_apply, x3.size, _c(gy3.astype(x3.dtype, copy=False)), x3, mean, rstd, wv,
         sum_gy,
                       sum_gyxmu, gx)
    return gx


def running_update(rm, rv, mean, var, m, var_scale=None):
    """rm = (1 - m) rm + m mean, rv = (1 - m) rv + m var (* var_scale), in place; on the GPU one
    fused kernel instead of a chain of small array ops."""
    if not _is_cpu(rm) and rm.dtype == rv.dtype and rm.flags.c_contiguous \
            and rv.flags.c_contiguous:
        _cuda().running_update(rm, rv, mean, var, m, 1.0 if var_scale is None else var_scale)
        return
    var_unbiased = var if var_scale is None else var * var_scale
    rm[...] = (1.0 - m) * rm + m * mean
    rv[...] = (1.0 - m) * rv + m * var_unbiased


def _flat_kernel(name, *arrays, **kw):
    from .cpu import norm as cpu  # noqa: PLC0415
    flat = [_c(a).reshape(-1) for a in arrays]
    # the result owns its memory (not a reshaped view), so autograd need not copy it when it
    # becomes a leaf's .grad
    out = np.empty(arrays[0].shape, dtype=flat[-1].dtype)
    _run(getattr(cpu, name), out.size, *flat, *kw.values(), out.reshape(-1))
    return out


def _cuda_ew():
    from .cuda import elementwise  # noqa: PLC0415 -- lazy: only with CUDA arrays
    return elementwise


def relu_fwd(x):
    return _flat_kernel("relu_fwd", x) if _is_cpu(x) else _cuda_ew().relu_fwd(x)


def relu_bwd(y, gy):
    return _flat_kernel("relu_bwd", y, gy) if _is_cpu(y) else _cuda_ew().relu_bwd(y, gy)


def _f32(x):
    return _is_cpu(x) and x.dtype == np.float32


def gelu_aux(x, tanh_approx=False):
    """Kept for callers: the float32 CPU kernels now compute exp(-x^2 / 2) themselves with a
    vectorised exp, which is cheaper than storing it between forward and backward."""
    return None


def gelu_fwd(x, tanh_approx=False, aux=None):
    if not _is_cpu(x):
        return _cuda_ew().gelu_fwd(x, tanh_approx)
    if x.dtype == np.float32 and not tanh_approx:
        return _flat_kernel("gelu_fwd_f32", x)
    if x.dtype == np.float32:
        return _flat_kernel("gelu_tanh_fwd_f32", x)
    return _flat_kernel("gelu_fwd", x, tanh_approx=bool(tanh_approx))


def gelu_bwd(x, gy, tanh_approx=False, aux=None):
    if not _is_cpu(x):
        return _cuda_ew().gelu_bwd(x, gy, tanh_approx)
    if x.dtype == np.float32 and not tanh_approx:
        return _flat_kernel("gelu_bwd_f32", x, gy.astype(x.dtype, copy=False))
    if x.dtype == np.float32:
        return _flat_kernel("gelu_tanh_bwd_f32", x, gy.astype(x.dtype, copy=False))
    return _flat_kernel("gelu_bwd", x, gy.astype(x.dtype, copy=False),
                        tanh_approx=bool(tanh_approx))


# SiLU is exp-bound. float32 on the CPU: fused Numba kernels with the vectorised exp_f32 of
# kernels/cpu/norm.py (one pass each way, nothing saved between them). float64: NumPy array
# code, whose SIMD exp beats Numba's per-element libm call (15 ms vs 67 ms measured for SiLU on
# (8, 64, 56, 56); 33 ms vs 93 ms for the cross-entropy forward on 4096 x 1000).

def _sigmoid_np(x):
    with np.errstate(over="ignore"):  # exp(-x) = inf gives the right limit 0
        s = np.exp(-x.reshape(-1))    # 1-d, so 0-d inputs stay arrays for the in-place ops
    s += 1.0
    return np.reciprocal(s, out=s).reshape(x.shape)


def sigmoid(x):
    """The logistic function."""
    if _f32(x):
        return _flat_kernel("sigmoid_f32", x)
    return _sigmoid_np(x) if _is_cpu(x) else _cuda_ew().sigmoid(x)


def silu_fwd(x, s=None):
    """x * sigmoid(x); s: sigmoid(x) when the caller already has it."""
    if not _is_cpu(x):
        return _cuda_ew().silu_fwd(x)
    if s is None and x.dtype == np.float32:
        return _flat_kernel("silu_fwd_f32", x)
    s = _sigmoid_np(x) if s is None else s
    return np.multiply(x, s, dtype=x.dtype)


def silu_bwd(x, gy, s=None):
    """gy * s * (1 + x * (1 - s)), s = sigmoid(x): one fused Numba pass."""
    if not _is_cpu(x):
        return _cuda_ew().silu_bwd(x, gy)
    if s is None and x.dtype == np.float32:
        return _flat_kernel("silu_bwd_f32", x, gy.astype(x.dtype, copy=False))
    s = _sigmoid_np(x) if s is None else s
    return _flat_kernel("silu_bwd_s", x, s, gy.astype(x.dtype, copy=False))


# --- fused bias + activation (F.bias_act): one CUDA kernel each way on the GPU -----------------

def bias_shape(ndim, dim, C):
    """The shape that broadcasts a (C,) bias along axis `dim` of an ndim-D array."""
    return (1,) * dim + (C,) + (1,) * (ndim - dim - 1)


def _act_array(z, act, slope):
    """act(z) on NumPy arrays (the CPU kernels above where there is one)."""
    xp = np
    if act == "relu":
        return relu_fwd(z)
    if act == "leaky_relu":
        return xp.where(z > 0, z, z * slope).astype(z.dtype, copy=False)
    if act in ("gelu", "gelu_tanh"):
        return gelu_fwd(z, act == "gelu_tanh")
    if act == "sigmoid":
        return sigmoid(z)
    if act == "silu":
        return silu_fwd(z)
    if act == "tanh":
        return xp.tanh(z)
    return z


def _act_grad_array(z, gy, act, slope):
    """gy * act'(z) on NumPy arrays."""
    xp = np
    gy = gy.astype(z.dtype, copy=False)
    if act == "relu":
        return relu_bwd(z, gy)
    if act == "leaky_relu":
        return (gy * xp.where(z > 0, 1.0, slope)).astype(z.dtype, copy=False)
    if act in ("gelu", "gelu_tanh"):
        return gelu_bwd(z, gy, act == "gelu_tanh")
    if act == "sigmoid":
        s = sigmoid(z)
        return gy * s * (1 - s)
    if act == "silu":
        return silu_bwd(z, gy)
    if act == "tanh":
        t = xp.tanh(z)
        return gy * (1 - t * t)
    return gy.copy()


def bias_act_fwd(x, b, act, dim, slope):
    """y = act(x + b[c]), c the index along `dim`."""
    if not _is_cpu(x):
        return _cuda_ew().bias_act_fwd(x, b, act, dim, slope)
    return _act_array(x + b.reshape(bias_shape(x.ndim, dim, b.shape[0])), act, slope)


def bias_act_bwd(x, b, gy, act, dim, slope):
    """(gx, gb) = (gy * act'(z), the sum of that over every axis but `dim`), z = x + b[c]."""
    if not _is_cpu(x):
        return _cuda_ew().bias_act_bwd(x, b, gy, act, dim, slope)
    z = x + b.reshape(bias_shape(x.ndim, dim, b.shape[0]))
    gz = _act_grad_array(z, gy, act, slope)
    axes = tuple(i for i in range(x.ndim) if i != dim)
    return gz, gz.sum(axis=axes, dtype=np.float64).astype(x.dtype)


_CE_BLOCK = 1 << 16  # elements per block of rows: the block's temporaries stay in L2


def _row_blocks(M, C):
    step = max(1, _CE_BLOCK // max(C, 1))
    return [(i, min(M, i + step)) for i in range(0, M, step)]


def _cuda_softmax():
    from .cuda import softmax  # noqa: PLC0415 -- lazy: only with CUDA arrays
    return softmax


def ce_fwd(x, t, w, ignore_index, smooth):
    """x (M, C), t (M,) int -> per-row loss (M,) and lse (M,), float64 (formula in the
    reference). Row blocks keep the exp temporaries in cache: x is read about once."""
    if not _is_cpu(x):
        return _cuda_softmax().ce_fwd(x, t, w, ignore_index, smooth)
    M, C = x.shape
    rows = np.arange(M)
    keep = t != ignore_index
    tc = np.where(keep, t, 0)
    lse = np.empty(M)
    if x.dtype == np.float32 and M and C:  # Numba with the vectorised exp_f32: one pass
        from .cpu import norm as cpu  # noqa: PLC0415
        xc = _c(x)
        _run(cpu.row_lse_f32, xc.size, xc, xc.max(axis=1), lse)
        blocks = []
    else:
        blocks = _row_blocks(M, C)
    buf = np.empty((blocks[0][1] - blocks[0][0], C), x.dtype) if blocks else None
    for a, b in blocks:
        xb, e = x[a:b], buf[:b - a]
        mx = xb.max(axis=1)                                 # (rows,)
        np.subtract(xb, mx[:, None], out=e)
        np.exp(e, out=e)                                    # in (0, 1]: a float32 sum is fine
        lse[a:b] = mx + np.log(e.sum(axis=1).astype(np.float64))
    wv = None if w is None else w.astype(np.float64)
    wt = 1.0 if wv is None else wv[tc]
    loss = (1.0 - smooth) * wt * (lse - x[rows, tc])
    if smooth:
        wsum = C if wv is None else wv.sum()
        wx = x.sum(axis=1, dtype=np.float64) if wv is None else x.astype(np.float64) @ wv
        loss = loss + smooth / C * (wsum * lse - wx)
    return np.where(keep, loss, 0.0), lse


def ce_bwd(x, t, w, ignore_index, smooth, lse, g):
    """Gradient of sum_i g_i loss_i with respect to x: g_i (p_i * sum_c q_ic - q_i)."""
    if not _is_cpu(x):
        return _cuda_softmax().ce_bwd(x, t, w, ignore_index, smooth, lse, g)
    M, C = x.shape
    rows = np.arange(M)
    keep = t != ignore_index
    tc = np.where(keep, t, 0)
    g = np.where(keep, g, 0.0)
    wv = None if w is None else w.astype(np.float64)
    wt = (1.0 - smooth) * (1.0 if wv is None else wv[tc])
    qsum = wt + smooth / C * (C if wv is None else wv.sum())
    shift = lse.astype(x.dtype)                             # lse in x's precision ...
    rest = (lse - shift).astype(x.dtype)[:, None]           # ... and what rounding dropped
    scale = (g * qsum).astype(x.dtype)[:, None]
    gx = np.empty(x.shape, x.dtype)
    fused = x.dtype == np.float32 and M and C
    if fused:  # Numba with the vectorised exp_f32: one pass
        from .cpu import norm as cpu  # noqa: PLC0415
        _run(cpu.ce_softmax_scale_f32, x.size, _c(x), _c(shift), _c(rest.reshape(-1)),
             _c(scale.reshape(-1)), gx)
    for a, b in ([] if fused else _row_blocks(M, C)):
        gb = gx[a:b]
        np.subtract(x[a:b], shift[a:b, None], out=gb)       # exact where it matters (x ~ lse)
        gb -= rest[a:b]
        np.exp(gb, out=gb)                                  # softmax p
        gb *= scale[a:b]
    if smooth:
        gx -= (g * (smooth / C)).astype(x.dtype)[:, None] * (
            np.ones((1, C), x.dtype) if wv is None else wv.astype(x.dtype)[None, :])
    gx[rows, tc] -= (g * wt).astype(x.dtype)
    return gx
