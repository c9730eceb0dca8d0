"""Launch layer of the optimizer kernels (kernels/cuda/optim.cu): one launch per call.

Same functions and signatures as the dispatchers in kernels/optim.py. `p` and the state buffers
are 1-D C-contiguous arrays of one float dtype, updated in place; absent state buffers (no
momentum, no amsgrad, not centered) are None. `g` is a 1-D array or kernels.optim.Pieces (the
per-parameter gradients; gathered here with one concatenate -- the optimizer's GPU path hands over
an already gathered flat buffer). Float scalars are cast to the buffers' dtype on the host, as
for the Numba kernels, so float32 buffers are updated in float32 arithmetic; nothing here reads a
device value (no host-device synchronization).

Vector loads: when every array starts at the same address modulo 16 bytes (always so for slices
of the optimizer's flat buffers, whose offsets agree), the kernel moves 16 bytes per load after a
scalar head; otherwise it runs element by element (nvec = 0).
"""
from minicnn.devices import get_array_module, is_cuda_array

from . import launch, module

BLOCK = 256
WAVES = 8          # blocks per SM in the grid (a grid-stride loop covers the rest)
EMU_BLOCKS = 2     # under the emulator: a small grid, so the grid-stride loops are exercised


def blocks(n, like):
    """The grid of a grid-stride loop over n items: WAVES blocks per SM of like's GPU, or
    EMU_BLOCKS under the emulator (NumPy arrays)."""
    return launch.blocks(n, BLOCK, WAVES, like, cap=None if is_cuda_array(like) else EMU_BLOCKS)


def _plan(n, itemsize, arrays):
    """(head, nvec): the scalar head and the number of 16-byte vectors after it."""
    width = 16 // itemsize
    mis = {launch.data_ptr(a) % 16 for a in arrays}
    if len(mis) != 1 or next(iter(mis)) % itemsize:
        return n, 0
    head = min(n, ((16 - next(iter(mis))) % 16) // itemsize)
    return head, (n - head) // width


def _grid(p, n, nvec, itemsize):
    scalar = n - nvec * (16 // itemsize)
    return blocks(max(nvec, scalar, 1), p)


def _check_buffer(op, name, a, p):
    if a.ndim != 1 or a.shape[0] != p.shape[0]:
        raise ValueError(f"{op}: {name} has shape {list(a.shape)}, expected [{p.shape[0]}] "
                         f"(a 1-D buffer like the parameters)")
    if a.dtype != p.dtype:
        raise TypeError(f"{op}: {name} is {a.dtype}, the parameters are {p.dtype}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{op}: {name} must be C-contiguous (it is updated in place)")


def _prepare(op, p, g, states):
    """Checks p and the state buffers; returns (xp, g as a contiguous 1-D array of p's dtype,
    [state or an empty placeholder])."""
    if p.ndim != 1:
        raise ValueError(f"{op}: the parameters must be a 1-D buffer, got shape {list(p.shape)}")
    if not launch.is_float(p):
        raise TypeError(f"{op}: parameters of dtype {p.dtype}; expected float32 or float64")
    if not p.flags.c_contiguous:
        raise ValueError(f"{op}: the parameter buffer must be C-contiguous (updated in place)")
    xp = get_array_module(p)
    if hasattr(g, "concatenate") and hasattr(g, "offsets"):  # kernels.optim.Pieces
        g = g.concatenate()
    g = xp.ascontiguousarray(g.reshape(-1), dtype=p.dtype)
    if g.shape[0] != p.shape[0]:
        raise ValueError(f"{op}: the gradient has {g.shape[0]} elements, the parameters "
                         f"{p.shape[0]}")
    module.check_size(op, p.shape)
    out = []
    for name, s in states:
        if s is None:
            out.append(xp.empty(0, p.dtype))
        else:
            _check_buffer(op, name, s, p)
            out.append(s)
    return xp, g, out


def _launch(name, p, g, states, used, scalars):
    """One launch of `name` over p, g and the states (`used`: those the kernel touches)."""
    n = p.shape[0]
    if n == 0:
        return
    head, nvec = _plan(n, p.itemsize, [p, g] + [s for s, u in zip(states, used) if u])
    module.kernel("optim", name, p.dtype)(
        (_grid(p, n, nvec, p.itemsize),), (BLOCK,), (p, g, *states, n, head, nvec, *scalars))


def sgd_step(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, maximize, first):
    xp, g, (b,) = _prepare("sgd_step", p, g, [("momentum_buffer", buf)])
    if momentum != 0 and buf is None:
        raise ValueError("sgd_step: momentum needs a momentum buffer")
    _launch("sgd_kernel", p, g, [b], [momentum != 0],
            (lr, momentum, 1 - dampening, weight_decay, bool(nesterov), bool(maximize),
             bool(first)))


def adam_step(p, g, m, v, vmax, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad,
              maximize, step_size, bc2_sqrt):
    xp, g, states = _prepare("adam_step", p, g,
                             [("exp_avg", m), ("exp_avg_sq", v), ("max_exp_avg_sq", vmax)])
    if m is None or v is None or (amsgrad and vmax is None):
        raise ValueError("adam_step: missing state buffer (exp_avg, exp_avg_sq, and "
                         "max_exp_avg_sq with amsgrad)")
    _launch("adam_kernel", p, g, states, [True, True, bool(amsgrad)],
            (1 - lr * weight_decay, beta1, 1 - beta1, beta2, 1 - beta2, eps, weight_decay,
             bool(decoupled), bool(amsgrad), bool(maximize), step_size, bc2_sqrt))


def rmsprop_step(p, g, sq, gavg, buf, lr, alpha, eps, weight_decay, momentum, centered,
                 maximize):
    xp, g, states = _prepare("rmsprop_step", p, g,
                             [("square_avg", sq), ("grad_avg", gavg), ("momentum_buffer", buf)])
    if sq is None or (centered and gavg is None) or (momentum > 0 and buf is None):
        raise ValueError("rmsprop_step: missing state buffer (square_avg, grad_avg when "
                         "centered, momentum_buffer with momentum)")
    _launch("rmsprop_kernel", p, g, states, [True, bool(centered), momentum > 0],
            (lr, alpha, 1 - alpha, eps, weight_decay, momentum, bool(centered), bool(maximize)))


def adagrad_step(p, g, acc, clr, eps, weight_decay, maximize):
    xp, g, states = _prepare("adagrad_step", p, g, [("sum", acc)])
    if acc is None:
        raise ValueError("adagrad_step: missing state buffer (sum)")
    _launch("adagrad_kernel", p, g, states, [True], (clr, eps, weight_decay, bool(maximize)))


def adadelta_step(p, g, sq, acc_delta, lr, rho, eps, weight_decay, maximize):
    xp, g, states = _prepare("adadelta_step", p, g,
                             [("square_avg", sq), ("acc_delta", acc_delta)])
    if sq is None or acc_delta is None:
        raise ValueError("adadelta_step: missing state buffer (square_avg, acc_delta)")
    _launch("adadelta_kernel", p, g, states, [True, True],
            (lr, rho, 1 - rho, eps, weight_decay, bool(maximize)))


def adamax_step(p, g, m, u, beta1, beta2, eps, weight_decay, maximize, clr):
    xp, g, states = _prepare("adamax_step", p, g, [("exp_avg", m), ("exp_inf", u)])
    if m is None or u is None:
        raise ValueError("adamax_step: missing state buffer (exp_avg, exp_inf)")
    _launch("adamax_kernel", p, g, states, [True, True],
            (beta1, 1 - beta1, beta2, eps, weight_decay, bool(maximize), clr))


def nadam_step(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, maximize, bc2, c_grad,
               c_avg):
    xp, g, states = _prepare("nadam_step", p, g, [("exp_avg", m), ("exp_avg_sq", v)])
    if m is None or v is None:
        raise ValueError("nadam_step: missing state buffer (exp_avg, exp_avg_sq)")
    _launch("nadam_kernel", p, g, states, [True, True],
            (1 - lr * weight_decay, beta1, 1 - beta1, beta2, 1 - beta2, eps, weight_decay,
             bool(decoupled), bool(maximize), bc2, c_grad, c_avg))
