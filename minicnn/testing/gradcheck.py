"""gradcheck: analytic gradients against central differences, in float64.

The outputs are reduced to a scalar L = sum_k <w_k, out_k> with fixed random weights w_k, so one
backward pass gives dL/dx for every input (a random vector-Jacobian product, which catches any
wrong Jacobian entry with probability 1). Each input's gradient is then compared either element
by element (dL/dx_i by central differences) or, for large inputs, along a few random directions
u (<dL/dx, u> against (L(x + eps u) - L(x - eps u)) / 2 eps), as Chainer's check_backward does.
"""
import numpy

from .. import autograd
from ..devices import get_array_module, to_numpy
from ..tensor import Tensor


class GradcheckError(AssertionError):
    """Analytic and numerical gradients disagree; the message says where and by how much."""


def noncontiguous(array):
    """The same values in a non-contiguous (strided) view, to test ops on such inputs."""
    xp = get_array_module(array)
    if array.ndim == 0:
        return array
    wide = xp.empty(array.shape[:-1] + (2 * array.shape[-1],), array.dtype)
    wide[..., ::2] = array
    return wide[..., ::2]


def _outputs(result):
    outs = result if isinstance(result, (tuple, list)) else (result,)
    return [o for o in outs if isinstance(o, Tensor) and o.array.dtype.kind == "f"]


def _scalar(fn, inputs, weights):
    with autograd.no_grad():
        outs = _outputs(fn(*inputs))
    return sum(float((o.array * w).sum()) for o, w in zip(outs, weights))


def _report(i, x, analytic, numeric, atol, rtol, what):
    err = numpy.abs(analytic - numeric) - (atol + rtol * numpy.abs(numeric))
    worst = numpy.unravel_index(int(numpy.argmax(err)), err.shape) if err.ndim else ()
    bad = int((err > 0).sum())
    return (f"gradcheck failed for input {i} (shape {tuple(x.shape)}, {x.array.dtype}) {what}: "
            f"{bad} of {err.size} values out of tolerance; worst at index {tuple(map(int, worst))}: "
            f"analytic {analytic[worst]!r}, numeric {numeric[worst]!r} "
            f"(|diff| {abs(analytic[worst] - numeric[worst]):.3g} > "
            f"atol {atol:g} + rtol {rtol:g} * |numeric|)")


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True,
              directional=None, n_directions=3, max_elements=2000, seed=0):
    """Check fn's gradients w.r.t. every input Tensor that requires grad.

    fn(*inputs) returns a Tensor or a tuple of them. Inputs that require grad must be float64.
    directional: True/False forces the mode; None checks element by element for inputs of up to
    `max_elements` elements and along `n_directions` random directions above that.
    Returns True, or raises GradcheckError (returns False when raise_exception=False).
    """
    inputs = tuple(inputs)
    checked = [(i, x) for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad")
    for i, x in checked:
        if x.array.dtype != numpy.float64:
            raise TypeError(f"gradcheck: input {i} has dtype {x.array.dtype}; gradient checks need "
                            "float64 inputs")
    rng = numpy.random.default_rng(seed)
    outs = _outputs(fn(*inputs))
    if not outs:
        raise ValueError("gradcheck: fn returned no floating point Tensor")
    xp = get_array_module(outs[0].array)
    weights = [xp.asarray(rng.standard_normal(o.shape)) for o in outs]
    live = [o for o in outs if o.requires_grad]
    grads = autograd.grad(live, [x for _, x in checked],
                          [Tensor(w) for o, w in zip(outs, weights) if o.requires_grad],
                          allow_unused=True) if live else [None] * len(checked)

    try:
        for (i, x), g in zip(checked, grads):
            analytic = numpy.zeros(x.shape) if g is None else to_numpy(g.array).astype(numpy.float64)
            if g is not None and tuple(g.shape) != tuple(x.shape):
                raise GradcheckError(f"gradcheck: gradient of input {i} has shape "
                                     f"{tuple(g.shape)}, expected {tuple(x.shape)}")
            use_dirs = directional if directional is not None else x.array.size > max_elements
            original = x.array
            if use_dirs:
                _check_directions(fn, inputs, weights, i, x, original, analytic, eps, atol, rtol,
                                  n_directions, rng)
            else:
                _check_elements(fn, inputs, weights, i, x, original, analytic, eps, atol, rtol)
    except GradcheckError:
        if raise_exception:
            raise
        return False
    return True


def _check_elements(fn, inputs, weights, i, x, original, analytic, eps, atol, rtol):
    xp = get_array_module(original)
    work = original.copy()
    numeric = numpy.zeros(x.shape)
    try:
        x.array = work
        flat = work.reshape(-1)
        for k in range(flat.size):
            v = flat[k].item()
            flat[k] = v + eps
            f_plus = _scalar(fn, inputs, weights)
            flat[k] = v - eps
            f_minus = _scalar(fn, inputs, weights)
            flat[k] = v
            numeric.reshape(-1)[k] = (f_plus - f_minus) / (2 * eps)
    finally:
        x.array = original
    del xp
    if not numpy.allclose(analytic, numeric, atol=atol, rtol=rtol, equal_nan=False):
        raise GradcheckError(_report(i, x, analytic, numeric, atol, rtol, "element-wise"))


def _check_directions(fn, inputs, weights, i, x, original, analytic, eps, atol, rtol,
                      n_directions, rng):
    xp = get_array_module(original)
    a_dirs, n_dirs = [], []
    try:
        for _ in range(n_directions):
            u = rng.standard_normal(x.shape)
            u_dev = xp.asarray(u)
            x.array = original + eps * u_dev
            f_plus = _scalar(fn, inputs, weights)
            x.array = original - eps * u_dev
            f_minus = _scalar(fn, inputs, weights)
            n_dirs.append((f_plus - f_minus) / (2 * eps))
            a_dirs.append(float((analytic * u).sum()))
    finally:
        x.array = original
    a_dirs, n_dirs = numpy.array(a_dirs), numpy.array(n_dirs)
    if not numpy.allclose(a_dirs, n_dirs, atol=atol, rtol=rtol):
        raise GradcheckError(_report(i, x, a_dirs, n_dirs, atol, rtol,
                                     f"along {n_directions} random directions"))
