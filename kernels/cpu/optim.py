"""Numba kernels of the optimizer updates: one fused parallel pass over flat 1-D buffers.

Each kernel reads p, g and the state buffers once and writes p and the state once per element
(PyTorch's foreach path makes one pass per arithmetic op). The gradients are not copied into a
flat buffer first: `grads` is a typed List of 1-D arrays, piece k holding the gradient of
p[offs[k]:offs[k] + len(grads[k])]; the work is split into chunks, chunk c covering the flat
indices [cs[c], ce[c]) of piece cp[c] (kernels/optim.py builds the table), and the chunks run in
parallel. The per-element formulas follow
PyTorch's `_single_tensor_*` functions in the same order of operations; scalars that depend on
the step count are computed by the caller. Flags are bools. The float scalars come in the
buffers' dtype (kernels/optim.py casts them, and passes 1 - x where the formula needs it), so
float32 buffers are updated in float32 arithmetic, as PyTorch does; a float64 scalar would
promote every element to float64 and halve the speed.
"""
import math

from numba import njit, prange

_OPTS = dict(parallel=True, cache=True, nogil=True, fastmath=False)


@njit(cache=True, inline="always")
def _lerp(a, b, w, one_minus_w):
    # PyTorch's lerp: exact at both ends (1 - w passed in, so float32 math stays float32)
    if w < 0.5:
        return a + w * (b - a)
    return b - (b - a) * one_minus_w


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
                vi = max(vmax_[j], vi)
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
            ui = max(u_[j] * beta2, abs(gi) + eps)
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
