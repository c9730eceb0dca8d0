"""gradgradcheck: second derivatives against finite differences of the first, in float64.

This is torch.autograd.gradgradcheck's construction: the first derivatives of fn, computed with
`create_graph=True`, form a new function

    G(inputs, grad_outputs) = d<fn(inputs), grad_outputs>/d inputs     (one vector-Jacobian product)

and G is handed to `gradcheck`. gradcheck then compares G's analytic gradients (the backward of
the backward: second derivatives of fn, and the derivative of the VJP w.r.t. grad_outputs) with
central differences of G. The same machinery, the same element-wise or directional modes and the
same failure report as gradcheck are used; the report names which of G's arguments failed (an
input of fn or one of the grad_outputs).
"""
import re

import numpy

from .. import autograd
from ..devices import get_array_module
from ..tensor import Tensor
from .gradcheck import GradcheckError, _outputs, gradcheck, noncontiguous


def _differentiable_outputs(result):
    return [o for o in _outputs(result) if o.requires_grad]


def _make_grad_outputs(fn, inputs, seed, non_contiguous):
    """Random grad_outputs (requiring grad, in each output's dtype) for each differentiable
    output of fn; strided views when non_contiguous (a backward must not assume contiguity)."""
    with autograd.enable_grad():
        outs = _differentiable_outputs(fn(*inputs))
    if not outs:
        raise ValueError("gradgradcheck: fn returned no floating point Tensor that requires grad")
    rng = numpy.random.default_rng(seed + 1)
    xp = get_array_module(outs[0].array)
    grads = []
    for o in outs:
        g = xp.asarray(rng.standard_normal(o.shape)).astype(o.array.dtype)
        grads.append(Tensor(noncontiguous(g) if non_contiguous else g, requires_grad=True))
    return grads


def _first_derivatives(fn, inputs, n_inputs, wrt):
    """G(*inputs, *grad_outputs): fn's input gradients, recorded so that they can be
    differentiated again (the function whose gradients gradcheck checks)."""

    def grads_fn(*args):
        xs, gys = args[:n_inputs], args[n_inputs:]
        # gradcheck evaluates G under no_grad for its finite differences: then only G's values
        # are needed, so fn's backward need not be recorded (fn's forward still must be, for its
        # backward to run). Otherwise G is recorded, for gradcheck's backward pass through it.
        record = autograd.is_grad_enabled()
        with autograd.enable_grad():
            outs = _differentiable_outputs(fn(*xs))
            if len(outs) != len(gys):
                raise ValueError(f"gradgradcheck: fn has {len(outs)} differentiable outputs but "
                                 f"{len(gys)} grad_outputs were given")
            targets = [xs[i] for i in wrt]
            grads = autograd.grad(outs, targets, list(gys), create_graph=record,
                                  allow_unused=True)
        return tuple(g for g in grads if g is not None)

    return grads_fn


def _relabel(message, n_inputs, grad_output_args):
    """gradcheck numbers G's arguments; say which are fn's inputs and which grad_outputs."""
    def name(match):
        k = int(match.group(2))
        if k < n_inputs:
            return f"{match.group(1)} input {k}"
        return f"{match.group(1)} grad_output {grad_output_args.index(k)}"
    return re.sub(r"(for|of) input (\d+)", name, message, count=1)


def gradgradcheck(fn, inputs, grad_outputs=None, eps=1e-6, atol=1e-5, rtol=1e-3,
                  gen_non_contig_grad_outputs=False, raise_exception=True, fast_mode=False,
                  directional=None, n_directions=3, max_elements=2000, seed=0):
    """Check fn's second derivatives against finite differences of its first derivatives.

    fn(*inputs) returns a Tensor or a tuple of them; inputs that require grad must be float64.
    grad_outputs: one Tensor per differentiable output of fn (float64; those that require grad
    are checked too, as in PyTorch: the VJP is linear in them), or None for random ones
    (non-contiguous views with gen_non_contig_grad_outputs=True, as in PyTorch).
    fast_mode=True checks along random directions only (directional=True). The remaining
    arguments are gradcheck's (directional, n_directions, max_elements apply to each of the
    checked tensors). Returns True, or raises GradcheckError (False when
    raise_exception=False).
    """
    if fast_mode and directional is None:
        directional = True
    inputs = tuple(inputs)
    wrt = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not wrt:
        raise ValueError("gradgradcheck: no input requires grad")
    for i in wrt:
        if inputs[i].array.dtype != numpy.float64:
            raise TypeError(f"gradgradcheck: input {i} has dtype {inputs[i].array.dtype}; "
                            "gradient checks need float64 inputs")
    if grad_outputs is None:
        grad_outputs = _make_grad_outputs(fn, inputs, seed, gen_non_contig_grad_outputs)
    else:
        grad_outputs = [grad_outputs] if isinstance(grad_outputs, Tensor) else list(grad_outputs)
        for k, g in enumerate(grad_outputs):
            if not isinstance(g, Tensor):
                raise TypeError(f"gradgradcheck: grad_outputs[{k}] must be a Tensor, got "
                                f"{type(g).__name__}")
            if g.requires_grad and g.array.dtype != numpy.float64:
                raise TypeError(f"gradgradcheck: grad_outputs[{k}] has dtype {g.array.dtype}; "
                                "gradient checks need float64")
    n = len(inputs)
    grads_fn = _first_derivatives(fn, inputs, n, wrt)
    with autograd.enable_grad():
        first = grads_fn(*inputs, *grad_outputs)
    if not first:
        raise ValueError("gradgradcheck: no input of fn is reached by the backward pass, so "
                         "there are no first derivatives to check")
    grad_output_args = list(range(n, n + len(grad_outputs)))
    try:
        return gradcheck(grads_fn, inputs + tuple(grad_outputs), eps=eps, atol=atol, rtol=rtol,
                         raise_exception=True, directional=directional,
                         n_directions=n_directions, max_elements=max_elements, seed=seed)
    except GradcheckError as e:
        message = _relabel(str(e), n, grad_output_args)
        err = GradcheckError(
            "gradgradcheck (second derivatives: the backward of fn's backward against central "
            "differences of fn's first derivatives): "
            + message.replace("gradcheck failed", "check failed", 1))
        if raise_exception:
            raise err from None
        return False
