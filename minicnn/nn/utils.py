"""nn.utils: gradient clipping, parameter <-> vector, and regularization penalties.

Clipping works in place on `.grad` outside the graph, as PyTorch's. The penalties are
differentiable terms to add to a loss:

    loss = criterion(model(x), y) + mc.nn.utils.l1_penalty(model.parameters(), 1e-4)

`l2_penalty(params, c)` is c * sum(p ** 2); SGD's `weight_decay=wd` corresponds to
`l2_penalty(params, wd / 2)`.
"""
import math

from .. import devices, ops
from ..autograd import no_grad
from ..autograd.version import bump as bump_version
from ..tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_", "get_total_norm", "clip_grads_with_norm_",
           "parameters_to_vector", "vector_to_parameters", "l1_penalty", "l2_penalty",
           "norm_penalty", "parameters_norm"]


def _as_list(parameters):
    if isinstance(parameters, Tensor):
        return [parameters]
    return list(parameters)


def _norm_of(xp, a, norm_type):
    a = a.ravel()
    if norm_type == math.inf:
        return xp.abs(a).max() if a.size else xp.zeros((), a.dtype)
    if norm_type == -math.inf:
        return xp.abs(a).min() if a.size else xp.zeros((), a.dtype)
    if norm_type == 2:
        return xp.sqrt(xp.vdot(a, a).real) if a.dtype.kind != "c" else xp.linalg.norm(a)
    if norm_type == 1:
        return xp.abs(a).sum()
    if norm_type == 0:
        return (a != 0).sum().astype(a.dtype)
    return (xp.abs(a) ** norm_type).sum() ** (1.0 / norm_type)


def get_total_norm(tensors, norm_type=2.0, error_if_nonfinite=False):
    """The norm of all tensors together (the norm of their per-tensor norms), as a 0-d Tensor."""
    arrays = [t.array if isinstance(t, Tensor) else t for t in _as_list(tensors)]
    arrays = [a for a in arrays if a is not None]
    norm_type = float(norm_type)
    if not arrays:
        return Tensor(devices.xp_for("cpu").zeros((), "float32"))
    xp = devices.get_array_module(*arrays)
    norms = xp.stack([_norm_of(xp, a, norm_type) for a in arrays]).astype(arrays[0].dtype)
    total = _norm_of(xp, norms, norm_type)
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` "
                           "is non-finite, so it cannot be clipped. To disable this error and "
                           "scale the gradients by the non-finite norm anyway, set "
                           "`error_if_nonfinite=False`")
    return Tensor(total)


def clip_grads_with_norm_(parameters, max_norm, total_norm):
    """Scale grads by min(1, max_norm / (total_norm + 1e-6)) in place."""
    params = [p for p in _as_list(parameters) if p.grad is not None]
    if not params:
        return
    total = total_norm.array if isinstance(total_norm, Tensor) else total_norm
    xp = devices.get_array_module(params[0].grad.array)
    coef = xp.minimum(float(max_norm) / (total + 1e-6), 1.0)
    for p in params:
        g = p.grad.array
        g *= coef.astype(g.dtype)


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Rescale the gradients so that their total norm is at most max_norm; returns the total
    norm (before clipping) as a Tensor. Parameters without a grad are skipped."""
    params = _as_list(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    total = get_total_norm(grads, norm_type, error_if_nonfinite)
    clip_grads_with_norm_(params, max_norm, total)
    return total


def clip_grad_value_(parameters, clip_value, foreach=None):
    """Clamp every gradient element to [-clip_value, clip_value] in place."""
    clip_value = float(clip_value)
    for p in _as_list(parameters):
        if p.grad is not None:
            g = p.grad.array
            devices.get_array_module(g).clip(g, -clip_value, clip_value, out=g)


def parameters_to_vector(parameters):
    """All parameters flattened and concatenated into one 1-D Tensor (a copy; differentiable)."""
    params = _as_list(parameters)
    return ops.concatenate([ops.reshape(p, (-1,)) for p in params], 0)


def vector_to_parameters(vec, parameters):
    """Copy consecutive slices of the 1-D vec into the parameters, in place."""
    if not isinstance(vec, Tensor) or vec.ndim != 1:
        raise TypeError(f"vector_to_parameters: expected a 1-D Tensor, got "
                        f"{type(vec).__name__}{list(getattr(vec, 'shape', []))}")
    params = _as_list(parameters)
    total = sum(p.numel() for p in params)
    if total != vec.numel():
        raise ValueError(f"vector_to_parameters: the vector has {vec.numel()} elements but the "
                         f"parameters have {total}")
    offset = 0
    with no_grad():
        for p in params:
            n = p.numel()
            p.array[...] = vec.array[offset:offset + n].reshape(p.shape)
            bump_version(p.array)
            offset += n


def _check_params(params, what):
    if not params:
        raise ValueError(f"{what}: got no parameters")
    for p in params:
        if not isinstance(p, Tensor):
            raise TypeError(f"{what}: expected Tensors, got {type(p).__name__}")


def l1_penalty(parameters, weight=1.0):
    """weight * sum_i |p_i| over all elements of the parameters: a differentiable loss term
    (subgradient 0 at 0, as sign())."""
    params = _as_list(parameters)
    _check_params(params, "l1_penalty")
    total = None
    for p in params:
        term = ops.sum(ops.abs(p))
        total = term if total is None else total + term
    return total * weight if weight != 1 else total


def l2_penalty(parameters, weight=1.0):
    """weight * sum_i p_i^2 over all elements (the squared L2 norm): a differentiable loss term.
    SGD's weight_decay=wd equals l2_penalty(params, wd / 2)."""
    params = _as_list(parameters)
    _check_params(params, "l2_penalty")
    total = None
    for p in params:
        term = ops.sum(p * p)
        total = term if total is None else total + term
    return total * weight if weight != 1 else total


def parameters_norm(parameters, norm_type=2.0):
    """The p-norm of all the parameters' elements together, differentiable
    ((sum |p|^q)^(1/q); inf: max |p|)."""
    params = _as_list(parameters)
    _check_params(params, "parameters_norm")
    norm_type = float(norm_type)
    if norm_type == math.inf:
        return ops.amax(ops.stack([ops.amax(ops.abs(p)) for p in params]))
    if norm_type <= 0:
        raise ValueError(f"parameters_norm: norm_type must be positive or inf, got {norm_type}")
    total = None
    for p in params:
        term = ops.sum(ops.abs(p) ** norm_type) if norm_type != 2 else ops.sum(p * p)
        total = term if total is None else total + term
    return total ** (1.0 / norm_type)


def norm_penalty(parameters, weight=1.0, norm_type=2.0):
    """weight * parameters_norm(parameters, norm_type) (a norm, not squared)."""
    n = parameters_norm(parameters, norm_type)
    return n * weight if weight != 1 else n
