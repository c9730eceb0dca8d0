"""Numba kernels of the optimizer updates: one fused parallel pass over flat 1-D buffers.

Each kernel reads p, g and the state buffers once and writes p and the state once per element
(PyTorch's foreach path makes one pass per arithmetic op). The per-element formulas follow
PyTorch's `_single_tensor_*` functions in the same order of operations; scalars that depend on
the step count are computed by the caller. Flags are passed as ints (0/1). Arithmetic happens in
the buffers' dtype's promotion with the float64 scalars, as the NumPy reference does.
"""
import math

from numba import njit, prange

_OPTS = dict(parallel=True, cache=True, nogil=True, fastmath=False)


@njit(cache=True, inline="always")
def _lerp(a, b, w):
    # PyTorch's lerp: exact at both ends
    if w < 0.5:
        return a + w * (b - a)
    return b - (b - a) * (1.0 - w)


@njit(**_OPTS)
def sgd_kernel(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, maximize, first):
    n = p.shape[0]
    for i in prange(n):
        gi = -g[i] if maximize else g[i]
        if weight_decay != 0.0:
            gi = gi + weight_decay * p[i]
        if momentum != 0.0:
            if first:
                b = gi
            else:
                b = buf[i] * momentum + (1.0 - dampening) * gi
            buf[i] = b
            if nesterov:
                gi = gi + momentum * b
            else:
                gi = b
        p[i] = p[i] - lr * gi


@njit(**_OPTS)
def adam_kernel(p, g, m, v, vmax, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad,
                maximize, step_size, bc2_sqrt):
    n = p.shape[0]
    decay = 1.0 - lr * weight_decay
    for i in prange(n):
        gi = -g[i] if maximize else g[i]
        pi = p[i]
        if weight_decay != 0.0:
            if decoupled:
                pi = pi * decay
            else:
                gi = gi + weight_decay * pi
        mi = _lerp(m[i], gi, 1.0 - beta1)
        vi = v[i] * beta2 + (1.0 - beta2) * gi * gi
        m[i] = mi
        v[i] = vi
        if amsgrad:
            vi = max(vmax[i], vi)
            vmax[i] = vi
        denom = math.sqrt(vi) / bc2_sqrt + eps
        p[i] = pi + (-step_size) * mi / denom


@njit(**_OPTS)
def rmsprop_kernel(p, g, sq, gavg, buf, lr, alpha, eps, weight_decay, momentum, centered,
                   maximize):
    n = p.shape[0]
    for i in prange(n):
        gi = -g[i] if maximize else g[i]
        if weight_decay != 0.0:
            gi = gi + weight_decay * p[i]
        s = sq[i] * alpha + (1.0 - alpha) * gi * gi
        sq[i] = s
        if centered:
            ga = _lerp(gavg[i], gi, 1.0 - alpha)
            gavg[i] = ga
            avg = math.sqrt(s - ga * ga)
        else:
            avg = math.sqrt(s)
        avg = avg + eps
        if momentum > 0.0:
            b = buf[i] * momentum + gi / avg
            buf[i] = b
            p[i] = p[i] - lr * b
        else:
            p[i] = p[i] + (-lr) * gi / avg


@njit(**_OPTS)
def adagrad_kernel(p, g, acc, clr, eps, weight_decay, maximize):
    n = p.shape[0]
    for i in prange(n):
        gi = -g[i] if maximize else g[i]
        if weight_decay != 0.0:
            gi = gi + weight_decay * p[i]
        a = acc[i] + gi * gi
        acc[i] = a
        p[i] = p[i] + (-clr) * gi / (math.sqrt(a) + eps)


@njit(**_OPTS)
def adadelta_kernel(p, g, sq, acc_delta, lr, rho, eps, weight_decay, maximize):
    n = p.shape[0]
    for i in prange(n):
        gi = -g[i] if maximize else g[i]
        if weight_decay != 0.0:
            gi = gi + weight_decay * p[i]
        s = sq[i] * rho + (1.0 - rho) * gi * gi
        sq[i] = s
        std = math.sqrt(s + eps)
        delta = math.sqrt(acc_delta[i] + eps) / std * gi
        acc_delta[i] = acc_delta[i] * rho + (1.0 - rho) * delta * delta
        p[i] = p[i] - lr * delta


@njit(**_OPTS)
def adamax_kernel(p, g, m, u, beta1, beta2, eps, weight_decay, maximize, clr):
    n = p.shape[0]
    for i in prange(n):
        gi = -g[i] if maximize else g[i]
        if weight_decay != 0.0:
            gi = gi + weight_decay * p[i]
        mi = _lerp(m[i], gi, 1.0 - beta1)
        m[i] = mi
        ui = max(u[i] * beta2, abs(gi) + eps)
        u[i] = ui
        p[i] = p[i] + (-clr) * mi / ui


@njit(**_OPTS)
def nadam_kernel(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, maximize, bc2,
                 c_grad, c_avg):
    n = p.shape[0]
    decay = 1.0 - lr * weight_decay
    for i in prange(n):
        gi = -g[i] if maximize else g[i]
        pi = p[i]
        if weight_decay != 0.0:
            if decoupled:
                pi = pi * decay
            else:
                gi = gi + weight_decay * pi
        mi = _lerp(m[i], gi, 1.0 - beta1)
        vi = v[i] * beta2 + (1.0 - beta2) * gi * gi
        m[i] = mi
        v[i] = vi
        denom = math.sqrt(vi / bc2) + eps
        pi = pi + c_grad * gi / denom
        p[i] = pi + c_avg * mi / denom
