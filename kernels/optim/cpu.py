"""The optimizer family on the CPU: Numba kernels, one fused parallel pass over flat 1-D buffers,
and the step functions that call them (the signatures of kernels/optim/__init__.py).

Each kernel reads p, g and the state buffers once and writes p and the state once per element
(PyTorch's foreach path makes one pass per arithmetic op). The gradients are not copied into a
flat buffer first: `grads` is a typed List of 1-D arrays, piece k holding the gradient of
p[offs[k]:offs[k] + len(grads[k])]; the work is split into chunks, chunk c covering the flat
indices [cs[c], ce[c]) of piece cp[c] (`chunk_table`), and the chunks run in
parallel. The per-element formulas follow
PyTorch's `_single_tensor_*` functions in the same order of operations; scalars that depend on
the step count are computed by the caller. Flags are bools. The float scalars come in the
buffers' dtype (`_scalars` casts them, and passes 1 - x where the formula needs it), so
float32 buffers are updated in float32 arithmetic, as PyTorch does; a float64 scalar would
promote every element to float64 and halve the speed.
"""
import math

import numpy as np
from numba import from_dtype, njit, prange, typed, types

from .._numba import run

_OPTS = dict(parallel=True, cache=True, nogil=True, fastmath=False)


CHUNK = 1 << 14  # elements per parallel work item

_list_types = {}  # dtype -> the Numba type of the typed list's items (built once per dtype)
_tables = {}  # offsets -> the Numba arguments (cp, cs, ce, offs): the same every step
_TABLES_KEPT = 256


def chunk_table(offsets, chunk=CHUNK):
    """(cp, cs, ce): chunk c covers flat indices [cs[c], ce[c]) of piece cp[c]."""
    offs = np.asarray(offsets, dtype=np.int64)
    sizes = np.diff(offs)
    nch = (sizes + chunk - 1) // chunk
    cp = np.repeat(np.arange(sizes.size, dtype=np.int64), nch)
    first = np.cumsum(nch) - nch
    cs = offs[cp] + (np.arange(cp.size, dtype=np.int64) - first[cp]) * chunk
    ce = np.minimum(cs + chunk, offs[cp + 1])
    return cp, cs, ce


def _chunk_args(offsets):
    """chunk_table(offsets) and offsets as int64, kept per offsets: an optimizer asks for the
    same few every step, and building them costs about as much as a small model's update. The
    kernels only read them."""
    key = tuple(int(o) for o in offsets)
    args = _tables.get(key)
    if args is None:
        if len(_tables) >= _TABLES_KEPT:
            _tables.clear()
        args = _tables[key] = (*chunk_table(key), np.asarray(key, dtype=np.int64))
    return args


_PACK = 8  # arrays per call of _pack_list / _extend_list: one compilation per dtype, any count


@njit(cache=True)
def _pack_list(pack, n):
    """A typed List of pack[:n] (a tuple of _PACK arrays), built inside Numba: from Python,
    List.empty_list and each append cross into Numba once (25 us for 10 arrays, 4 us here)."""
    lst = typed.List()
    for i in range(n):
        lst.append(pack[i])
    return lst


@njit(cache=True)
def _extend_list(lst, pack, n):
    for i in range(n):
        lst.append(pack[i])


def _typed_list(arrays):
    """typed.List(arrays) of 1-D C-contiguous arrays of one dtype (at least one array)."""
    pad = (arrays[0],) * (_PACK - 1)   # unused slots: any array of the type
    lst = None
    for i in range(0, len(arrays), _PACK):
        part = arrays[i:i + _PACK]
        pack = tuple(part) + pad[:_PACK - len(part)]
        if lst is None:
            lst = _pack_list(pack, len(part))
        else:
            _extend_list(lst, pack, len(part))
    return lst


def _typed_grads(p, g):
    """The Numba arguments (grads, cp, cs, ce, offs) for gradient g (an array or Pieces) of
    buffer p: a typed list of 1-D arrays (views where possible, no copy) and the chunk table."""
    arrays, offsets = (g.arrays, g.offsets) if hasattr(g, "offsets") else ([g], [0, g.size])
    flat = []
    uniform = True   # all of one Numba type (writeable, aligned), as a tuple for _pack_list
    for a in arrays:
        a = np.asarray(a).reshape(-1)
        if a.dtype != p.dtype or not a.flags.c_contiguous:  # usually a view: no copy
            a = np.ascontiguousarray(a, dtype=p.dtype)
        uniform = uniform and a.flags.writeable and a.flags.aligned
        flat.append(a)
    if flat and uniform:
        lst = _typed_list(flat)
    else:
        item = _list_types.get(p.dtype)
        if item is None:
            item = _list_types[p.dtype] = types.Array(from_dtype(p.dtype), 1, "C")
        lst = typed.List.empty_list(item)
        for a in flat:
            lst.append(a)
    return (lst, *_chunk_args(offsets))


def _or_empty(a, like):
    return a if a is not None else np.empty(0, like.dtype)


def _scalars(p, *values):
    """Float scalars in the buffer's dtype (float32 math for float32 buffers)."""
    t = p.dtype.type
    return [t(v) for v in values]


def sgd_step(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, maximize, first):
    run(sgd_kernel, p.size, p, *_typed_grads(p, g), _or_empty(buf, p),
        *_scalars(p, lr, momentum, 1 - dampening, weight_decay),
        bool(nesterov), bool(maximize), bool(first))


def adam_step(p, g, m, v, vmax, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad,
              maximize, step_size, bc2_sqrt):
    run(adam_kernel, p.size, p, *_typed_grads(p, g), m, v, _or_empty(vmax, p),
        *_scalars(p, 1 - lr * weight_decay, beta1, 1 - beta1, beta2, 1 - beta2, eps,
                  weight_decay),
        bool(decoupled), bool(amsgrad), bool(maximize),
        *_scalars(p, step_size, bc2_sqrt))


def rmsprop_step(p, g, sq, gavg, buf, lr, alpha, eps, weight_decay, momentum, centered,
                 maximize):
    run(rmsprop_kernel, p.size, p, *_typed_grads(p, g), sq, _or_empty(gavg, p), _or_empty(buf, p),
        *_scalars(p, lr, alpha, 1 - alpha, eps, weight_decay, momentum),
        bool(centered), bool(maximize))


def adagrad_step(p, g, acc, clr, eps, weight_decay, maximize):
    run(adagrad_kernel, p.size, p, *_typed_grads(p, g), acc, *_scalars(p, clr, eps, weight_decay),
        bool(maximize))


def adadelta_step(p, g, sq, acc_delta, lr, rho, eps, weight_decay, maximize):
    run(adadelta_kernel, p.size, p, *_typed_grads(p, g), sq, acc_delta,
        *_scalars(p, lr, rho, 1 - rho, eps, weight_decay), bool(maximize))


def adamax_step(p, g, m, u, beta1, beta2, eps, weight_decay, maximize, clr):
    run(adamax_kernel, p.size, p, *_typed_grads(p, g), m, u,
        *_scalars(p, beta1, 1 - beta1, beta2, eps, weight_decay),
        bool(maximize), *_scalars(p, clr))


def nadam_step(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, maximize, bc2, c_grad,
               c_avg):
    run(nadam_kernel, p.size, p, *_typed_grads(p, g), m, v,
        *_scalars(p, 1 - lr * weight_decay, beta1, 1 - beta1, beta2, 1 - beta2, eps,
                  weight_decay),
        bool(decoupled), bool(maximize), *_scalars(p, bc2, c_grad, c_avg))


# --- kernels ----------------------------------------------------------------------------------

@njit(cache=True, inline="always")
def _lerp(a, b, w, one_minus_w):
    # PyTorch's lerp: exact at both ends (1 - w passed in, so float32 math stays float32)
    if w < 0.5:
        return a + w * (b - a)
    return b - (b - a) * one_minus_w


@njit(cache=True, inline="always")
def _max_nan(a, b):
    """max(a, b) that propagates a NaN from either side, as torch.maximum (Python's max drops a
    NaN in the second place)."""
    return a if a > b or a != a else b


@njit(cache=True, inline="always")
def _chunk(grads, cp, cs, ce, offs, c):
    """Chunk c's flat range [c0, c1) and its slice of gradient piece cp[c]. The kernels slice p
    and the state to [c0, c1) too: unit-stride loops over distinct arrays, which LLVM
    vectorizes."""
    c0, c1 = cs[c], ce[c]
    o = offs[cp[c]]
    return c0, c1, grads[cp[c]][c0 - o:c1 - o]


@njit(cache=True, inline="always")
def _grad(gj, pj, maximize, weight_decay):
    """The gradient with maximize and L2 weight decay applied (PyTorch's order)."""
    gi = -gj if maximize else gj
    if weight_decay != 0.0:
        gi = gi + weight_decay * pj
    return gi


@njit(cache=True, inline="always")
def _grad_and_param(gj, pj, maximize, weight_decay, decoupled, decay):
    """(gradient, parameter) for Adam-like rules: decoupled decay (AdamW) scales the parameter
    by decay = 1 - lr * weight_decay; otherwise it is L2 decay folded into the gradient."""
    if weight_decay != 0.0 and decoupled:
        return (-gj if maximize else gj), pj * decay
    return _grad(gj, pj, maximize, weight_decay), pj


@njit(cache=True, inline="always")
def _adam_moments(m_, v_, j, gi, beta1, one_minus_beta1, beta2, one_minus_beta2):
    """Adam's moment updates at j (m lerps toward g, v toward g * g), stored and returned."""
    mi = _lerp(m_[j], gi, one_minus_beta1, beta1)
    vi = v_[j] * beta2 + one_minus_beta2 * gi * gi
    m_[j] = mi
    v_[j] = vi
    return mi, vi


@njit(**_OPTS)
def sgd_kernel(p, grads, cp, cs, ce, offs, buf, lr, momentum, one_minus_dampening, weight_decay,
               nesterov, maximize, first):
    for c in prange(cp.shape[0]):
        c0, c1, g = _chunk(grads, cp, cs, ce, offs, c)
        p_ = p[c0:c1]
        buf_ = buf[c0:c1]
        for j in range(c1 - c0):
            gi = _grad(g[j], p_[j], maximize, weight_decay)
            if momentum != 0.0:
                if first:
                    b = gi
                else:
                    b = buf_[j] * momentum + one_minus_dampening * gi
                buf_[j] = b
                if nesterov:
                    gi = gi + momentum * b
                else:
                    gi = b
            p_[j] = p_[j] - lr * gi


@njit(**_OPTS)
def adam_kernel(p, grads, cp, cs, ce, offs, m, v, vmax, decay, beta1, one_minus_beta1, beta2,
                one_minus_beta2, eps, weight_decay, decoupled, amsgrad, maximize, step_size,
                bc2_sqrt):
    for c in prange(cp.shape[0]):
        c0, c1, g = _chunk(grads, cp, cs, ce, offs, c)
        p_ = p[c0:c1]
        m_ = m[c0:c1]
        v_ = v[c0:c1]
        vmax_ = vmax[c0:c1]
        for j in range(c1 - c0):
            gi, pi = _grad_and_param(g[j], p_[j], maximize, weight_decay, decoupled, decay)
            mi, vi = _adam_moments(m_, v_, j, gi, beta1, one_minus_beta1, beta2, one_minus_beta2)
            if amsgrad:
                vi = _max_nan(vmax_[j], vi)
                vmax_[j] = vi
            denom = math.sqrt(vi) / bc2_sqrt + eps
            p_[j] = pi + (-step_size) * mi / denom


@njit(**_OPTS)
def rmsprop_kernel(p, grads, cp, cs, ce, offs, sq, gavg, buf, lr, alpha, one_minus_alpha, eps,
                   weight_decay, momentum, centered, maximize):
    for c in prange(cp.shape[0]):
        c0, c1, g = _chunk(grads, cp, cs, ce, offs, c)
        p_ = p[c0:c1]
        sq_ = sq[c0:c1]
        gavg_ = gavg[c0:c1]
        buf_ = buf[c0:c1]
        for j in range(c1 - c0):
            gi = _grad(g[j], p_[j], maximize, weight_decay)
            s = sq_[j] * alpha + one_minus_alpha * gi * gi
            sq_[j] = s
            if centered:
                ga = _lerp(gavg_[j], gi, one_minus_alpha, alpha)
                gavg_[j] = ga
                avg = math.sqrt(s - ga * ga)
            else:
                avg = math.sqrt(s)
            avg = avg + eps
            if momentum > 0.0:
                b = buf_[j] * momentum + gi / avg
                buf_[j] = b
                p_[j] = p_[j] - lr * b
            else:
                p_[j] = p_[j] + (-lr) * gi / avg


@njit(**_OPTS)
def adagrad_kernel(p, grads, cp, cs, ce, offs, acc, clr, eps, weight_decay, maximize):
    for c in prange(cp.shape[0]):
        c0, c1, g = _chunk(grads, cp, cs, ce, offs, c)
        p_ = p[c0:c1]
        acc_ = acc[c0:c1]
        for j in range(c1 - c0):
            gi = _grad(g[j], p_[j], maximize, weight_decay)
            a = acc_[j] + gi * gi
            acc_[j] = a
            p_[j] = p_[j] + (-clr) * gi / (math.sqrt(a) + eps)


@njit(**_OPTS)
def adadelta_kernel(p, grads, cp, cs, ce, offs, sq, acc_delta, lr, rho, one_minus_rho, eps,
                    weight_decay, maximize):
    for c in prange(cp.shape[0]):
        c0, c1, g = _chunk(grads, cp, cs, ce, offs, c)
        p_ = p[c0:c1]
        sq_ = sq[c0:c1]
        acc_delta_ = acc_delta[c0:c1]
        for j in range(c1 - c0):
            gi = _grad(g[j], p_[j], maximize, weight_decay)
            s = sq_[j] * rho + one_minus_rho * gi * gi
            sq_[j] = s
            std = math.sqrt(s + eps)
            delta = math.sqrt(acc_delta_[j] + eps) / std * gi
            acc_delta_[j] = acc_delta_[j] * rho + one_minus_rho * delta * delta
            p_[j] = p_[j] - lr * delta


@njit(**_OPTS)
def adamax_kernel(p, grads, cp, cs, ce, offs, m, u, beta1, one_minus_beta1, beta2, eps,
                  weight_decay, maximize, clr):
    for c in prange(cp.shape[0]):
        c0, c1, g = _chunk(grads, cp, cs, ce, offs, c)
        p_ = p[c0:c1]
        m_ = m[c0:c1]
        u_ = u[c0:c1]
        for j in range(c1 - c0):
            gi = _grad(g[j], p_[j], maximize, weight_decay)
            mi = _lerp(m_[j], gi, one_minus_beta1, beta1)
            m_[j] = mi
            ui = _max_nan(u_[j] * beta2, abs(gi) + eps)
            u_[j] = ui
            p_[j] = p_[j] + (-clr) * mi / ui


@njit(**_OPTS)
def nadam_kernel(p, grads, cp, cs, ce, offs, m, v, decay, beta1, one_minus_beta1, beta2,
                 one_minus_beta2, eps, weight_decay, decoupled, maximize, bc2, c_grad, c_avg):
    for c in prange(cp.shape[0]):
        c0, c1, g = _chunk(grads, cp, cs, ce, offs, c)
        p_ = p[c0:c1]
        m_ = m[c0:c1]
        v_ = v[c0:c1]
        for j in range(c1 - c0):
            gi, pi = _grad_and_param(g[j], p_[j], maximize, weight_decay, decoupled, decay)
            mi, vi = _adam_moments(m_, v_, j, gi, beta1, one_minus_beta1, beta2, one_minus_beta2)
            denom = math.sqrt(vi / bc2) + eps
            pi = pi + c_grad * gi / denom
            p_[j] = pi + c_avg * mi / denom


def unscale_(arrays, inv_scale):
    """GradScaler's unscale: the float32 / float64 C-contiguous arrays in one parallel kernel
    (in place, chunked like the steps), any other (a half gradient, a strided one) with NumPy.
    Returns whether an element was inf or NaN."""
    found = False
    fused = {}
    for a in arrays:
        if a.dtype in (np.float32, np.float64) and a.flags.c_contiguous:
            fused.setdefault(a.dtype, []).append(a.reshape(-1))
        else:
            found |= not bool(np.isfinite(a).all())
            a[...] = _times(a, inv_scale)
    for dtype, group in fused.items():
        if all(a.flags.writeable and a.flags.aligned for a in group):   # as _typed_grads
            lst = _typed_list(group)
        else:
            lst = typed.List.empty_list(types.Array(from_dtype(dtype), 1, "C"))
            for a in group:
                lst.append(a)
        offsets = np.concatenate([[0], np.cumsum([a.size for a in group])])
        cp, cs, ce, offs = _chunk_args(offsets)
        bad = np.zeros(cp.shape[0], np.bool_)
        run(unscale_kernel, int(offsets[-1]), lst, cp, cs, ce, offs,
            dtype.type(np.float32(inv_scale)), bad)
        found |= bool(bad.any())
    return found


@njit(**_OPTS)
def unscale_kernel(grads, cp, cs, ce, offs, inv_scale, bad):
    for c in prange(cp.shape[0]):
        c0, c1, g = _chunk(grads, cp, cs, ce, offs, c)
        nonfinite = False
        for j in range(c1 - c0):
            x = g[j]
            nonfinite |= not math.isfinite(x)
            g[j] = x * inv_scale
        bad[c] = nonfinite


def _times(a, inv_scale):
    """a * inv_scale as PyTorch's unscale computes it: in float32 for half a (its opmath), in
    a's own dtype otherwise; inv_scale is a float32 value."""
    work = np.dtype(np.float32) if a.dtype.itemsize < 4 else a.dtype
    return (a.astype(work) * work.type(np.float32(inv_scale))).astype(a.dtype)
