"""The optimizer family on the GPU: the launch layer of optim.cu, one launch per call.

The signatures of the family's API (kernels/optim/__init__.py, which checks the arguments). `p`
and the state buffers are 1-D C-contiguous arrays of one float dtype, updated in place; absent
state buffers are None. `g` is a 1-D array or Pieces (gathered here with one concatenate; the
optimizer hands over an already gathered flat buffer). Float scalars are cast to the buffers' dtype on the host, as
for the Numba kernels, so float32 buffers are updated in float32 arithmetic; nothing here reads a
device value (no host-device synchronization).

Vector loads: when every array starts at the same address modulo 16 bytes (always so for slices
of the optimizer's flat buffers, whose offsets agree), the kernel moves 16 bytes per load after a
scalar head; otherwise it runs element by element (nvec = 0).
"""
from minicnn.devices import get_array_module

from ..cuda import launch, module

BLOCK = 256
WAVES = 8          # blocks per SM in the grid (a grid-stride loop covers the rest)


def blocks(n, like):
    return launch.blocks(n, BLOCK, WAVES, like, cap=launch.emulator_cap(like))


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


def _prepare(p, g, states):
    """(g as a contiguous 1-D array of p's dtype, the states with empty placeholders for None);
    the family's API has checked the shapes and dtypes."""
    xp = get_array_module(p)
    if hasattr(g, "concatenate"):  # kernels.optim.Pieces: one gather
        g = g.concatenate()
    g = xp.ascontiguousarray(g.reshape(-1), dtype=p.dtype)
    module.check_size("optimizer step", p.shape)
    return g, [xp.empty(0, p.dtype) if st is None else st for st in states]


def _launch(name, p, g, states, used, scalars):
    """One launch of `name` over p, g and the states (`used`: those the kernel touches)."""
    n = p.shape[0]
    if n == 0:
        return
    head, nvec = _plan(n, p.itemsize, [p, g] + [s for s, u in zip(states, used) if u])
    module.kernel("optim", name, p.dtype)(
        (_grid(p, n, nvec, p.itemsize),), (BLOCK,), (p, g, *states, n, head, nvec, *scalars))


def sgd_step(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, maximize, first):
    g, (b,) = _prepare(p, g, [buf])
    _launch("sgd_kernel", p, g, [b], [momentum != 0],
            (lr, momentum, 1 - dampening, weight_decay, bool(nesterov), bool(maximize),
             bool(first)))


def adam_step(p, g, m, v, vmax, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad,
              maximize, step_size, bc2_sqrt):
    g, states = _prepare(p, g, [m, v, vmax])
    _launch("adam_kernel", p, g, states, [True, True, bool(amsgrad)],
            (1 - lr * weight_decay, beta1, 1 - beta1, beta2, 1 - beta2, eps, weight_decay,
             bool(decoupled), bool(amsgrad), bool(maximize), step_size, bc2_sqrt))


def rmsprop_step(p, g, sq, gavg, buf, lr, alpha, eps, weight_decay, momentum, centered,
                 maximize):
    g, states = _prepare(p, g, [sq, gavg, buf])
    _launch("rmsprop_kernel", p, g, states, [True, bool(centered), momentum > 0],
            (lr, alpha, 1 - alpha, eps, weight_decay, momentum, bool(centered), bool(maximize)))


def adagrad_step(p, g, acc, clr, eps, weight_decay, maximize):
    g, states = _prepare(p, g, [acc])
    _launch("adagrad_kernel", p, g, states, [True], (clr, eps, weight_decay, bool(maximize)))


def adadelta_step(p, g, sq, acc_delta, lr, rho, eps, weight_decay, maximize):
    g, states = _prepare(p, g, [sq, acc_delta])
    _launch("adadelta_kernel", p, g, states, [True, True],
            (lr, rho, 1 - rho, eps, weight_decay, bool(maximize)))


def adamax_step(p, g, m, u, beta1, beta2, eps, weight_decay, maximize, clr):
    g, states = _prepare(p, g, [m, u])
    _launch("adamax_kernel", p, g, states, [True, True],
            (beta1, 1 - beta1, beta2, eps, weight_decay, bool(maximize), clr))


def nadam_step(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, maximize, bc2, c_grad,
               c_avg):
    g, states = _prepare(p, g, [m, v])
    _launch("nadam_kernel", p, g, states, [True, True],
            (1 - lr * weight_decay, beta1, 1 - beta1, beta2, 1 - beta2, eps, weight_decay,
             bool(decoupled), bool(maximize), bc2, c_grad, c_avg))


def unscale_(arrays, inv_scale):
    """One launch per gradient array, all raising one device flag; no synchronization (the flag
    is returned as a 0-d array). Half gradients (no kernel instance) are done by array code."""
    import numpy  # noqa: PLC0415
    xp = get_array_module(arrays[0])
    found = xp.zeros(1, numpy.int32)
    for a in arrays:
        if a.dtype in (numpy.float32, numpy.float64) and a.flags.c_contiguous and a.size:
            module.check_size("unscale_", a.shape)
            flat = a.reshape(-1)
            module.kernel("optim", "unscale_kernel", a.dtype)(
                (blocks(flat.size, flat),), (BLOCK,),
                (flat, flat.size, a.dtype.type(numpy.float32(inv_scale)), found))
        elif a.size:
            found |= ~xp.isfinite(a).all()
            work = numpy.dtype(numpy.float32) if a.dtype.itemsize < 4 else a.dtype
            a[...] = (a.astype(work) * work.type(numpy.float32(inv_scale))).astype(a.dtype)
    return found[0] != 0
