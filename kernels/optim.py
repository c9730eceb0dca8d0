"""Dispatchers of the optimizer update kernels.

NumPy buffers go to the fused Numba kernels (kernels/cpu/optim.py); CuPy buffers (and anything
else) to the xp-generic reference (kernels/reference/optim.py), which runs on CuPy as it is: a
handful of whole-buffer array operations per step. Every buffer is a 1-D C-contiguous array of
one dtype; absent state buffers (no momentum, no amsgrad) are passed as None.
"""
import numpy as np

from .reference import optim as _ref

_cpu = None


def _numba():
    global _cpu
    if _cpu is None:
        from .cpu import optim  # noqa: PLC0415 -- Numba compiles lazily, on first use
        _cpu = optim
    return _cpu


def _use_numba(*arrays):
    return all(type(a) is np.ndarray and a.flags.c_contiguous and a.ndim == 1 for a in arrays)


def _or_empty(a, like):
    return a if a is not None else np.empty(0, like.dtype)


def _same_dtype(p, g):
    return g if g.dtype == p.dtype else g.astype(p.dtype)


def sgd_step(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, maximize, first):
    if _use_numba(p, g) and (buf is None or _use_numba(buf)):
        _numba().sgd_kernel(p, _same_dtype(p, g), _or_empty(buf, p), float(lr), float(momentum),
                            float(dampening), float(weight_decay), bool(nesterov),
                            bool(maximize), bool(first))
    else:
        _ref.sgd_step(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, maximize, first)


def adam_step(p, g, m, v, vmax, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad,
              maximize, step_size, bc2_sqrt):
    if _use_numba(p, g, m, v) and (vmax is None or _use_numba(vmax)):
        _numba().adam_kernel(p, _same_dtype(p, g), m, v, _or_empty(vmax, p), float(lr),
                             float(beta1), float(beta2), float(eps), float(weight_decay),
                             bool(decoupled), bool(amsgrad), bool(maximize), float(step_size),
                             float(bc2_sqrt))
    else:
        _ref.adam_step(p, g, m, v, vmax, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad,
                       maximize, step_size, bc2_sqrt)


def rmsprop_step(p, g, sq, gavg, buf, lr, alpha, eps, weight_decay, momentum, centered,
                 maximize):
    if _use_numba(p, g, sq) and all(a is None or _use_numba(a) for a in (gavg, buf)):
        _numba().rmsprop_kernel(p, _same_dtype(p, g), sq, _or_empty(gavg, p), _or_empty(buf, p),
                                float(lr), float(alpha), float(eps), float(weight_decay),
                                float(momentum), bool(centered), bool(maximize))
    else:
        _ref.rmsprop_step(p, g, sq, gavg, buf, lr, alpha, eps, weight_decay, momentum, centered,
                          maximize)


def adagrad_step(p, g, acc, clr, eps, weight_decay, maximize):
    if _use_numba(p, g, acc):
        _numba().adagrad_kernel(p, _same_dtype(p, g), acc, float(clr), float(eps),
                                float(weight_decay), bool(maximize))
    else:
        _ref.adagrad_step(p, g, acc, clr, eps, weight_decay, maximize)


def adadelta_step(p, g, sq, acc_delta, lr, rho, eps, weight_decay, maximize):
    if _use_numba(p, g, sq, acc_delta):
        _numba().adadelta_kernel(p, _same_dtype(p, g), sq, acc_delta, float(lr), float(rho),
                                 float(eps), float(weight_decay), bool(maximize))
    else:
        _ref.adadelta_step(p, g, sq, acc_delta, lr, rho, eps, weight_decay, maximize)


def adamax_step(p, g, m, u, beta1, beta2, eps, weight_decay, maximize, clr):
    if _use_numba(p, g, m, u):
        _numba().adamax_kernel(p, _same_dtype(p, g), m, u, float(beta1), float(beta2),
                               float(eps), float(weight_decay), bool(maximize), float(clr))
    else:
        _ref.adamax_step(p, g, m, u, beta1, beta2, eps, weight_decay, maximize, clr)


def nadam_step(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, maximize, bc2, c_grad,
               c_avg):
    if _use_numba(p, g, m, v):
        _numba().nadam_kernel(p, _same_dtype(p, g), m, v, float(lr), float(beta1), float(beta2),
                              float(eps), float(weight_decay), bool(decoupled), bool(maximize),
                              float(bc2), float(c_grad), float(c_avg))
    else:
        _ref.nadam_step(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, maximize, bc2,
                        c_grad, c_avg)
