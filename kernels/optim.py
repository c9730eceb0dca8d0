"""Dispatchers of the optimizer update kernels.

NumPy buffers go to the fused Numba kernels (kernels/cpu/optim.py); CuPy buffers to the fused
CUDA kernels (kernels/cuda/optim.py: one launch per step over the flat buffers); anything else
(NumPy buffers the Numba kernels do not take) to the xp-generic reference
(kernels/reference/optim.py). Parameters and state are 1-D C-contiguous buffers of one dtype;
absent state buffers (no momentum, no amsgrad) are passed as None. The gradient `g` is a 1-D
array, or `Pieces`: the per-parameter gradients of consecutive slices of the buffer, which the
Numba kernels read in place (no gather copy) and the reference and the CUDA path concatenate.
"""
import numpy as np

from minicnn.devices import get_array_module, on_cuda_kernels

from .reference import optim as _ref

CHUNK = 1 << 14  # elements per parallel work item of the Numba kernels

_cpu = None
_list_types = {}


class Pieces:
    """A 1-D gradient given as pieces: arrays[k] (any shape, flattened) is the gradient of the
    buffer slice [offsets[k], offsets[k + 1])."""
    __slots__ = ("arrays", "offsets")

    def __init__(self, arrays, offsets):
        self.arrays, self.offsets = list(arrays), list(offsets)
        if len(self.offsets) != len(self.arrays) + 1:
            raise ValueError("Pieces: need one more offset than arrays")

    def concatenate(self):
        xp = get_array_module(*self.arrays)
        return xp.concatenate([a.reshape(-1) for a in self.arrays])


def _numba():
    global _cpu
    if _cpu is None:
        from .cpu import optim  # noqa: PLC0415 -- Numba compiles lazily, on first use
        _cpu = optim
    return _cpu


def _cuda():
    from .cuda import optim  # noqa: PLC0415 -- only with CuPy buffers
    return optim


def _on_gpu(p):
    return on_cuda_kernels(p)


def _use_numba(*arrays):
    return all(type(a) is np.ndarray and a.flags.c_contiguous and a.ndim == 1
               and not on_cuda_kernels(a) for a in arrays)


def _grads_on_cpu(g):
    arrays = g.arrays if isinstance(g, Pieces) else [g]
    return all(type(a) is np.ndarray for a in arrays)


def _or_empty(a, like):
    return a if a is not None else np.empty(0, like.dtype)


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


def _typed_grads(p, g):
    """The Numba arguments (grads, cp, cs, ce, offs) for gradient g of buffer p."""
    from numba import from_dtype, typed, types  # noqa: PLC0415
    if isinstance(g, Pieces):
        arrays, offsets = g.arrays, g.offsets
    else:
        arrays, offsets = [g], [0, g.size]
    item = _list_types.get(p.dtype)
    if item is None:
        item = _list_types[p.dtype] = types.Array(from_dtype(p.dtype), 1, "C")
    lst = typed.List.empty_list(item)
    for a in arrays:
        a = a.reshape(-1)
        if a.dtype != p.dtype or not a.flags.c_contiguous:  # usually a view: no copy
            a = np.ascontiguousarray(a, dtype=p.dtype)
        lst.append(a)
    cp, cs, ce = chunk_table(offsets)
    return lst, cp, cs, ce, np.asarray(offsets, dtype=np.int64)


def _flat(g):
    return g.concatenate() if isinstance(g, Pieces) else g


def _scalars(p, *values):
    """Float scalars in the buffer's dtype (float32 math for float32 buffers)."""
    t = p.dtype.type
    return [t(v) for v in values]


def sgd_step(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, maximize, first):
    if _grads_on_cpu(g) and _use_numba(p) and (buf is None or _use_numba(buf)):
        _numba().sgd_kernel(p, *_typed_grads(p, g), _or_empty(buf, p),
                            *_scalars(p, lr, momentum, 1 - dampening, weight_decay),
                            bool(nesterov), bool(maximize), bool(first))
    elif _on_gpu(p):
        _cuda().sgd_step(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, maximize,
                         first)
    else:
        _ref.sgd_step(p, _flat(g), buf, lr, momentum, dampening, weight_decay, nesterov, maximize,
                      first)


def adam_step(p, g, m, v, vmax, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad,
              maximize, step_size, bc2_sqrt):
    if _grads_on_cpu(g) and _use_numba(p, m, v) and (vmax is None or _use_numba(vmax)):
        _numba().adam_kernel(p, *_typed_grads(p, g), m, v, _or_empty(vmax, p),
                             *_scalars(p, 1 - lr * weight_decay, beta1, 1 - beta1, beta2,
                                       1 - beta2, eps, weight_decay),
                             bool(decoupled), bool(amsgrad), bool(maximize),
                             *_scalars(p, step_size, bc2_sqrt))
    elif _on_gpu(p):
        _cuda().adam_step(p, g, m, v, vmax, lr, beta1, beta2, eps, weight_decay, decoupled,
                          amsgrad, maximize, step_size, bc2_sqrt)
    else:
        _ref.adam_step(p, _flat(g), m, v, vmax, lr, beta1, beta2, eps, weight_decay, decoupled,
                       amsgrad, maximize, step_size, bc2_sqrt)


def rmsprop_step(p, g, sq, gavg, buf, lr, alpha, eps, weight_decay, momentum, centered,
                 maximize):
    if _grads_on_cpu(g) and _use_numba(p, sq) and \
            all(a is None or _use_numba(a) for a in (gavg, buf)):
        _numba().rmsprop_kernel(p, *_typed_grads(p, g), sq, _or_empty(gavg, p), _or_empty(buf, p),
                                *_scalars(p, lr, alpha, 1 - alpha, eps, weight_decay, momentum),
                                bool(centered), bool(maximize))
    elif _on_gpu(p):
        _cuda().rmsprop_step(p, g, sq, gavg, buf, lr, alpha, eps, weight_decay, momentum,
                             centered, maximize)
    else:
        _ref.rmsprop_step(p, _flat(g), sq, gavg, buf, lr, alpha, eps, weight_decay, momentum,
                          centered, maximize)


def adagrad_step(p, g, acc, clr, eps, weight_decay, maximize):
    if _grads_on_cpu(g) and _use_numba(p, acc):
        _numba().adagrad_kernel(p, *_typed_grads(p, g), acc, *_scalars(p, clr, eps, weight_decay),
                                bool(maximize))
    elif _on_gpu(p):
        _cuda().adagrad_step(p, g, acc, clr, eps, weight_decay, maximize)
    else:
        _ref.adagrad_step(p, _flat(g), acc, clr, eps, weight_decay, maximize)


def adadelta_step(p, g, sq, acc_delta, lr, rho, eps, weight_decay, maximize):
    if _grads_on_cpu(g) and _use_numba(p, sq, acc_delta):
        _numba().adadelta_kernel(p, *_typed_grads(p, g), sq, acc_delta,
                                 *_scalars(p, lr, rho, 1 - rho, eps, weight_decay),
                                 bool(maximize))
    elif _on_gpu(p):
        _cuda().adadelta_step(p, g, sq, acc_delta, lr, rho, eps, weight_decay, maximize)
    else:
        _ref.adadelta_step(p, _flat(g), sq, acc_delta, lr, rho, eps, weight_decay, maximize)


def adamax_step(p, g, m, u, beta1, beta2, eps, weight_decay, maximize, clr):
    if _grads_on_cpu(g) and _use_numba(p, m, u):
        _numba().adamax_kernel(p, *_typed_grads(p, g), m, u,
                               *_scalars(p, beta1, 1 - beta1, beta2, eps, weight_decay),
                               bool(maximize), *_scalars(p, clr))
    elif _on_gpu(p):
        _cuda().adamax_step(p, g, m, u, beta1, beta2, eps, weight_decay, maximize, clr)
    else:
        _ref.adamax_step(p, _flat(g), m, u, beta1, beta2, eps, weight_decay, maximize, clr)


def nadam_step(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, maximize, bc2, c_grad,
               c_avg):
    if _grads_on_cpu(g) and _use_numba(p, m, v):
        _numba().nadam_kernel(p, *_typed_grads(p, g), m, v,
                              *_scalars(p, 1 - lr * weight_decay, beta1, 1 - beta1, beta2,
                                        1 - beta2, eps, weight_decay),
                              bool(decoupled), bool(maximize), *_scalars(p, bc2, c_grad, c_avg))
    elif _on_gpu(p):
        _cuda().nadam_step(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, maximize,
                           bc2, c_grad, c_avg)
    else:
        _ref.nadam_step(p, _flat(g), m, v, lr, beta1, beta2, eps, weight_decay, decoupled, maximize,
                        bc2, c_grad, c_avg)
