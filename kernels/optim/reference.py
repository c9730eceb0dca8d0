"""Plain-array reference of the optimizer update kernels (NumPy, and CuPy as it is).

Each function updates 1-D contiguous buffers in place: p (parameters), g (gradients, read only)
and the optimizer's state buffers, following PyTorch's single-tensor formulas operation by
operation (torch/optim/<name>.py, `_single_tensor_*`). Scalars that depend on the step count
(bias corrections, step sizes) are computed by the caller and passed in.
"""
import numpy as np

from minicnn.devices import get_array_module as _xp


def _lerp(xp, a, b, w):
    """a.lerp_(b, w) in place, with PyTorch's two formulas (exact at both ends)."""
    if w < 0.5:
        a += w * (b - a)
    else:
        a[...] = b - (b - a) * (1 - w)


def _grad(p, g, maximize, weight_decay):
    g = -g if maximize else g
    if weight_decay != 0:
        g = g + weight_decay * p
    return g


def _decayed_grad(p, g, lr, weight_decay, decoupled, maximize):
    """Adam-like rules: decoupled decay (AdamW) scales p in place; otherwise L2 decay in g."""
    if weight_decay != 0 and decoupled:
        p *= 1 - lr * weight_decay
        return -g if maximize else g
    return _grad(p, g, maximize, weight_decay)


def _adam_moments(xp, m, v, g, beta1, beta2):
    """Adam's moment updates in place: m lerps toward g, v toward g * g."""
    _lerp(xp, m, g, 1 - beta1)
    v *= beta2
    v += (1 - beta2) * g * g


def sgd_step(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, maximize, first):
    """buf: the momentum buffer (ignored when momentum == 0); first: buf is initialized to g."""
    g = _grad(p, g, maximize, weight_decay)
    if momentum != 0:
        if first:
            buf[...] = g
        else:
            buf *= momentum
            buf += (1 - dampening) * g
        g = g + momentum * buf if nesterov else buf
    p -= lr * g


def adam_step(p, g, m, v, vmax, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad,
              maximize, step_size, bc2_sqrt):
    """Adam / AdamW. step_size = lr / (1 - beta1^t); bc2_sqrt = sqrt(1 - beta2^t)."""
    xp = _xp(p)
    g = _decayed_grad(p, g, lr, weight_decay, decoupled, maximize)
    _adam_moments(xp, m, v, g, beta1, beta2)
    if amsgrad:
        xp.maximum(vmax, v, out=vmax)
        denom = xp.sqrt(vmax) / bc2_sqrt + eps
    else:
        denom = xp.sqrt(v) / bc2_sqrt + eps
    p += -step_size * m / denom


def rmsprop_step(p, g, sq, gavg, buf, lr, alpha, eps, weight_decay, momentum, centered,
                 maximize):
    xp = _xp(p)
    g = _grad(p, g, maximize, weight_decay)
    sq *= alpha
    sq += (1 - alpha) * g * g
    if centered:
        _lerp(xp, gavg, g, 1 - alpha)
        avg = xp.sqrt(sq - gavg * gavg)
    else:
        avg = xp.sqrt(sq)
    avg += eps
    if momentum > 0:
        buf *= momentum
        buf += g / avg
        p -= lr * buf
    else:
        p += -lr * g / avg


def adagrad_step(p, g, acc, clr, eps, weight_decay, maximize):
    """clr = lr / (1 + (t - 1) * lr_decay)."""
    xp = _xp(p)
    g = _grad(p, g, maximize, weight_decay)
    acc += g * g
    p += -clr * g / (xp.sqrt(acc) + eps)


def adadelta_step(p, g, sq, acc_delta, lr, rho, eps, weight_decay, maximize):
    xp = _xp(p)
    g = _grad(p, g, maximize, weight_decay)
    sq *= rho
    sq += (1 - rho) * g * g
    std = xp.sqrt(sq + eps)
    delta = xp.sqrt(acc_delta + eps) / std * g
    acc_delta *= rho
    acc_delta += (1 - rho) * delta * delta
    p -= lr * delta


def adamax_step(p, g, m, u, beta1, beta2, eps, weight_decay, maximize, clr):
    """clr = lr / (1 - beta1^t)."""
    xp = _xp(p)
    g = _grad(p, g, maximize, weight_decay)
    _lerp(xp, m, g, 1 - beta1)
    u *= beta2
    xp.maximum(u, xp.abs(g) + eps, out=u)
    p += -clr * m / u


def nadam_step(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, maximize, bc2, c_grad,
               c_avg):
    """c_grad = -lr (1 - mu_t) / (1 - prod mu_1..t); c_avg = -lr mu_{t+1} / (1 - prod mu_1..t+1);
    bc2 = 1 - beta2^t."""
    xp = _xp(p)
    g = _decayed_grad(p, g, lr, weight_decay, decoupled, maximize)
    _adam_moments(xp, m, v, g, beta1, beta2)
    denom = xp.sqrt(v / bc2) + eps
    p += c_grad * g / denom
    p += c_avg * m / denom


def unscale_(arrays, inv_scale):
    """GradScaler's unscale: each array times the float32 inv_scale in its own dtype (in float32
    for half arrays), in place; True where an element was inf or NaN."""
    found = False
    for a in arrays:
        wide = a.astype(np.float64)
        found = found or not np.isfinite(wide).all()
        work = np.dtype(np.float32) if a.dtype.itemsize < 4 else a.dtype
        a[...] = (a.astype(work) * work.type(np.float32(inv_scale))).astype(a.dtype)
    return found
