"""The optimizer family: one fused update of flat parameter and state buffers per step.

    sgd_step, adam_step, rmsprop_step, adagrad_step, adadelta_step, adamax_step, nadam_step
    unscale_(g, inv_scale)     g *= inv_scale in place; whether g held an inf or NaN (GradScaler)
    Pieces(arrays, offsets)    a gradient given as per-parameter arrays
    reads_pieces(p)            whether the kernels for buffer p read Pieces in place

`p` and the state buffers are 1-D C-contiguous arrays of one float dtype, updated in place;
absent state buffers (no momentum, no amsgrad, not centered) are None. The gradient `g` is a 1-D
array or `Pieces`: the gradients of consecutive slices of the buffer, which the CPU kernels read
in place (no gather copy) and the CUDA path gathers with one concatenate. Scalars that depend on
the step count are computed by the caller (minicnn/optim/algorithms.py). The argument checks
live here, so both devices refuse the same inputs with the same messages.
"""
from minicnn.devices import get_array_module, on_cuda_kernels
from minicnn.dtypes import kind as dtype_kind

from .. import lazy

_cpu = lazy(__name__ + ".cpu")
_cuda = lazy(__name__ + ".cuda")


class Pieces:
    """A 1-D gradient given as pieces: arrays[k] (any shape, flattened) is the gradient of the
    buffer slice [offsets[k], offsets[k + 1])."""
    __slots__ = ("arrays", "offsets")

    def __init__(self, arrays, offsets):
        self.arrays, self.offsets = list(arrays), list(offsets)
        if len(self.offsets) != len(self.arrays) + 1:
            raise ValueError("Pieces: need one more offset than arrays")

    @property
    def size(self):
        return self.offsets[-1] - self.offsets[0]

    def concatenate(self):
        xp = get_array_module(*self.arrays)
        return xp.concatenate([a.reshape(-1) for a in self.arrays])


def reads_pieces(p):
    """True where the update kernels read per-parameter gradients in place (the CPU's); the
    optimizer gathers them into one flat buffer otherwise."""
    return not on_cuda_kernels(p)


def _impl(p):
    return _cuda if on_cuda_kernels(p) else _cpu


def _check(op, p, g, states, required):
    """p a 1-D contiguous float buffer, g of its length, each state (name, buffer or None) like
    p; `required`: the names whose buffer the chosen options need."""
    if p.ndim != 1:
        raise ValueError(f"{op}: the parameters must be a 1-D buffer, got shape {list(p.shape)}")
    if p.dtype.kind != "f" or p.dtype.itemsize not in (4, 8):
        raise TypeError(f"{op}: parameters of dtype {p.dtype}; expected float32 or float64")
    if not p.flags.c_contiguous:
        raise ValueError(f"{op}: the parameter buffer must be C-contiguous (updated in place)")
    n = g.size if isinstance(g, Pieces) else g.reshape(-1).shape[0]
    if n != p.shape[0]:
        raise ValueError(f"{op}: the gradient has {n} elements, the parameters {p.shape[0]}")
    for name, s in states:
        if s is None:
            if name in required:
                raise ValueError(f"{op}: missing state buffer {name} (the options need it)")
            continue
        if s.ndim != 1 or s.shape[0] != p.shape[0]:
            raise ValueError(f"{op}: {name} has shape {list(s.shape)}, expected [{p.shape[0]}] "
                             f"(a 1-D buffer like the parameters)")
        if s.dtype != p.dtype:
            raise TypeError(f"{op}: {name} is {s.dtype}, the parameters are {p.dtype}")
        if not s.flags.c_contiguous:
            raise ValueError(f"{op}: {name} must be C-contiguous (it is updated in place)")


def sgd_step(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, maximize, first):
    _check("sgd_step", p, g, [("momentum_buffer", buf)],
           ("momentum_buffer",) if momentum != 0 else ())
    _impl(p).sgd_step(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, maximize,
                      first)


def adam_step(p, g, m, v, vmax, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad,
              maximize, step_size, bc2_sqrt):
    _check("adam_step", p, g, [("exp_avg", m), ("exp_avg_sq", v), ("max_exp_avg_sq", vmax)],
           ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if amsgrad else ()))
    _impl(p).adam_step(p, g, m, v, vmax, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad,
                       maximize, step_size, bc2_sqrt)


def rmsprop_step(p, g, sq, gavg, buf, lr, alpha, eps, weight_decay, momentum, centered,
                 maximize):
    _check("rmsprop_step", p, g,
           [("square_avg", sq), ("grad_avg", gavg), ("momentum_buffer", buf)],
           ("square_avg",) + (("grad_avg",) if centered else ())
           + (("momentum_buffer",) if momentum > 0 else ()))
    _impl(p).rmsprop_step(p, g, sq, gavg, buf, lr, alpha, eps, weight_decay, momentum, centered,
                          maximize)


def adagrad_step(p, g, acc, clr, eps, weight_decay, maximize):
    _check("adagrad_step", p, g, [("sum", acc)], ("sum",))
    _impl(p).adagrad_step(p, g, acc, clr, eps, weight_decay, maximize)


def adadelta_step(p, g, sq, acc_delta, lr, rho, eps, weight_decay, maximize):
    _check("adadelta_step", p, g, [("square_avg", sq), ("acc_delta", acc_delta)],
           ("square_avg", "acc_delta"))
    _impl(p).adadelta_step(p, g, sq, acc_delta, lr, rho, eps, weight_decay, maximize)


def adamax_step(p, g, m, u, beta1, beta2, eps, weight_decay, maximize, clr):
    _check("adamax_step", p, g, [("exp_avg", m), ("exp_inf", u)], ("exp_avg", "exp_inf"))
    _impl(p).adamax_step(p, g, m, u, beta1, beta2, eps, weight_decay, maximize, clr)


def nadam_step(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, maximize, bc2, c_grad,
               c_avg):
    _check("nadam_step", p, g, [("exp_avg", m), ("exp_avg_sq", v)], ("exp_avg", "exp_avg_sq"))
    _impl(p).nadam_step(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, maximize,
                        bc2, c_grad, c_avg)


def unscale_(g, inv_scale):
    """GradScaler's unscale and finite check in one pass: every element of g (a 1-D array or
    Pieces, each piece updated in place) times inv_scale, in g's dtype as PyTorch's
    _amp_foreach_non_finite_check_and_unscale_ does. Returns whether any element was inf or
    NaN: a Python bool on the CPU, a 0-d device array on the GPU (read it when the step needs
    it, not before: reading is a synchronization)."""
    arrays = g.arrays if isinstance(g, Pieces) else [g]
    for a in arrays:
        if dtype_kind(a.dtype) != "f":
            raise TypeError(f"unscale_: gradients must be floating point, got {a.dtype}")
    if not arrays:
        return False
    return _impl(arrays[0]).unscale_(arrays, inv_scale)
