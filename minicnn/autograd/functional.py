"""Higher-level derivatives built on `autograd.grad`: vjp, jvp, jacobian, hessian, vhp, hvp.

The names, signatures and return structures follow `torch.autograd.functional`, and all of them
are also reachable as `mc.autograd.<name>` and `mc.autograd.functional.<name>`:

    out, v_J = vjp(f, x, v)        v^T J              one backward pass
    out, J_v = jvp(f, x, v)        J v                the double-vjp trick: two backward passes
    out, H_v = hvp(f, x, v)        H v  (f scalar)    a backward pass through the gradient
    out, v_H = vhp(f, x, v)        v^T H (f scalar)
    J = jacobian(f, x)             one backward pass per output element
    H = hessian(f, x)              one backward pass per input element (for small inputs)

`inputs` is a Tensor or a tuple of Tensors, and the results mirror that structure. The inputs
are taken as new leaves (their values only), unless `create_graph=True` and they require grad,
in which case the results stay differentiable w.r.t. the original inputs too (so an hvp can be
part of a loss). With `strict=False` an input that the outputs do not depend on gets zeros; with
`strict=True` that raises, as in PyTorch.

The double-vjp trick: for y = f(x), the VJP g(u) = J^T u is linear in u, and its own VJP w.r.t.
u along v is (J^T)^T v = J v. So forward-mode products need no forward-mode machinery, only
backward passes that are differentiable w.r.t. their output gradient -- which every op's
backward is, by the op contract.
"""
from ..devices import get_array_module
from ..ops.shape import Reshape, reshape, stack
from ..tensor import Tensor
from .engine import grad as _autograd_grad
from .mode import enable_grad, set_grad_enabled

def _as_tuple(x, arg_name, fn_name):
    if isinstance(x, Tensor):
        return False, (x,)
    if not isinstance(x, (tuple, list)):
        raise TypeError(f"{fn_name}: the {arg_name} must be a Tensor or a tuple of Tensors, got "
                        f"{type(x).__name__}")
    for i, t in enumerate(x):
        if not isinstance(t, Tensor):
            raise TypeError(f"{fn_name}: element {i} of the {arg_name} must be a Tensor, got "
                            f"{type(t).__name__}")
    return True, tuple(x)


def _untuple(is_tuple, values):
    return tuple(values) if is_tuple else values[0]


def _prepare_inputs(inputs, create_graph, fn_name):
    """New graph roots for the inputs: leaves holding their values, or, with create_graph and an
    input that requires grad, an identity view of it so the results stay differentiable w.r.t.
    the original input."""
    out = []
    for i, x in enumerate(inputs):
        if x.array.dtype.kind != "f":
            raise TypeError(f"{fn_name}: input {i} has dtype {x.array.dtype}; derivatives need "
                            "floating point inputs")
        if create_graph and x.requires_grad:
            with enable_grad():
                out.append(Reshape(tuple(x.shape))(x))
        else:
            out.append(Tensor(x.array, requires_grad=True))
    return tuple(out)


def _check_v(v, refs, fn_name, what):
    if len(v) != len(refs):
        raise ValueError(f"{fn_name}: v has {len(v)} Tensors but the {what} has {len(refs)}")
    for i, (a, r) in enumerate(zip(v, refs)):
        if not isinstance(a, Tensor):
            raise TypeError(f"{fn_name}: v[{i}] must be a Tensor, got {type(a).__name__}")
        if tuple(a.shape) != tuple(r.shape):
            raise ValueError(f"{fn_name}: v[{i}] has shape {list(a.shape)} but the {what} "
                             f"{i} has shape {list(r.shape)}")


def _default_v(refs, fn_name, what):
    if len(refs) != 1 or refs[0].array.size != 1:
        raise RuntimeError(f"{fn_name}: v can be omitted only when the {what} is a single "
                           "Tensor with one element")
    xp = get_array_module(refs[0].array)
    return (Tensor(xp.ones(refs[0].shape, refs[0].array.dtype)),)


def _call(func, inputs, fn_name):
    with enable_grad():
        result = func(*inputs)
    if isinstance(result, (tuple, list)):
        is_tuple, outs = _as_tuple(result, "outputs of the user function", fn_name)
    else:
        is_tuple, outs = False, (result,)
    if not outs or not isinstance(outs[0], Tensor):
        raise TypeError(f"{fn_name}: the user function must return a Tensor or a tuple of "
                        f"Tensors, got {type(result).__name__}")
    return is_tuple, outs


def _zeros_like(t):
    return Tensor(get_array_module(t.array).zeros(t.shape, t.array.dtype))


def _grad(outputs, inputs, grad_outputs, create_graph, retain_graph=None):
    """autograd.grad over the outputs that are part of the graph; None for every input when
    none is (an output that does not depend on anything)."""
    pairs = [(o, g) for o, g in zip(outputs, grad_outputs)
             if o is not None and o.requires_grad]
    if not pairs:
        return [None] * len(inputs)
    return list(_autograd_grad([o for o, _ in pairs], list(inputs), [g for _, g in pairs],
                              retain_graph=retain_graph, create_graph=create_graph,
                              allow_unused=True))


def _finish(grads, refs, create_graph, strict, fn_name, what):
    """Zeros (or an error with strict=True) where there is no gradient; detach unless
    create_graph."""
    out = []
    for i, (g, r) in enumerate(zip(grads, refs)):
        if g is None:
            if strict:
                raise RuntimeError(f"{fn_name}: the output of the user function is independent "
                                   f"of {what} {i}, which strict=True does not allow")
            g = _zeros_like(r)
        elif not create_graph:
            g = g.detach()
        out.append(g)
    return out


def _outputs_for_return(outs, create_graph):
    return [o if create_graph else o.detach() for o in outs]


def vjp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), v^T J): the vector-Jacobian product, one backward pass."""
    in_tuple, inputs = _as_tuple(inputs, "inputs", "vjp")
    xs = _prepare_inputs(inputs, create_graph, "vjp")
    out_tuple, outs = _call(func, xs, "vjp")
    if v is None:
        v = _default_v(outs, "vjp", "output")
    else:
        v = _as_tuple(v, "v", "vjp")[1]
        _check_v(v, outs, "vjp", "output")
    grads = _grad(outs, xs, v, create_graph)
    res = _finish(grads, xs, create_graph, strict, "vjp", "input")
    return _untuple(out_tuple, _outputs_for_return(outs, create_graph)), _untuple(in_tuple, res)


def jvp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), J v): the Jacobian-vector product by the double-vjp trick (two backward
    passes; see the module docstring)."""
    in_tuple, inputs = _as_tuple(inputs, "inputs", "jvp")
    xs = _prepare_inputs(inputs, create_graph, "jvp")
    if v is None:
        v = _default_v(xs, "jvp", "input")
    else:
        v = _as_tuple(v, "v", "jvp")[1]
        _check_v(v, xs, "jvp", "input")
    out_tuple, outs = _call(func, xs, "jvp")
    # u: dummy output gradients; J^T u is linear in u and recorded, so d<J^T u, v>/du = J v.
    us = [Tensor(get_array_module(o.array).zeros(o.shape, o.array.dtype), requires_grad=True)
          for o in outs]
    with enable_grad():
        first = _grad(outs, xs, us, create_graph=True)
    pairs = [(g, vi) for g, vi in zip(first, v) if g is not None and g.requires_grad]
    if pairs:
        grads = list(_autograd_grad([g for g, _ in pairs], us, [vi for _, vi in pairs],
                                   create_graph=create_graph, allow_unused=True))
    else:
        grads = [None] * len(us)
    res = _finish(grads, outs, create_graph, strict, "jvp", "output")
    return _untuple(out_tuple, _outputs_for_return(outs, create_graph)), _untuple(out_tuple, res)


def _scalar_output(func, xs, fn_name):
    out_tuple, outs = _call(func, xs, fn_name)
    if out_tuple or outs[0].array.size != 1:
        raise RuntimeError(f"{fn_name}: the user function must return a single Tensor with one "
                           f"element, got shape {list(outs[0].shape)}")
    return outs[0]


def vhp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), v^T H) for a scalar-valued func: a backward pass through its gradient."""
    return _hessian_product(func, inputs, v, create_graph, strict, "vhp")


def hvp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), H v) for a scalar-valued func.

    The Hessian of a twice continuously differentiable function is symmetric, so H v = (v^T H)^T
    and this is computed like vhp: one backward pass through the recorded gradient (PyTorch
    computes hvp with one more backward pass to avoid assuming symmetry).
    """
    return _hessian_product(func, inputs, v, create_graph, strict, "hvp")


def _grad_with_graph(out, xs, strict, fn_name):
    """d out / d xs with their graph, for a second derivative; strict: no x may be unused."""
    with enable_grad():
        jac = _grad([out], xs, [None], create_graph=True)
    if strict and any(g is None for g in jac):
        i = next(i for i, g in enumerate(jac) if g is None)
        raise RuntimeError(f"{fn_name}: the output of the user function is independent of "
                           f"input {i}, which strict=True does not allow")
    return jac


def _hessian_product(func, inputs, v, create_graph, strict, fn_name):
    in_tuple, inputs = _as_tuple(inputs, "inputs", fn_name)
    xs = _prepare_inputs(inputs, create_graph, fn_name)
    if v is None:
        v = _default_v(xs, fn_name, "input")
    else:
        v = _as_tuple(v, "v", fn_name)[1]
        _check_v(v, xs, fn_name, "input")
    out = _scalar_output(func, xs, fn_name)
    jac = _grad_with_graph(out, xs, strict, fn_name)
    grads = _grad(jac, xs, v, create_graph)
    res = _finish(grads, xs, create_graph, strict, fn_name, "input")
    return (out if create_graph else out.detach()), _untuple(in_tuple, res)


def _ones_at(t, k):
    xp = get_array_module(t.array)
    e = xp.zeros(t.array.size, t.array.dtype)
    e[k] = 1
    return Tensor(e.reshape(t.shape))


def _stack_rows(rows, out_shape, in_shape, create_graph):
    """rows[k] (shape in_shape) for each element k of the output -> out_shape + in_shape."""
    with set_grad_enabled(create_graph):
        return reshape(stack(rows, 0), tuple(out_shape) + tuple(in_shape))


def _jacobian_rows(outs, xs, create_graph, strict, fn_name, what):
    """J[i][j] (output i, input j) by one backward pass per output element."""
    jac = []
    for i, o in enumerate(outs):
        per_input = [[] for _ in xs]
        for k in range(o.array.size):
            grads = _grad([o], xs, [_ones_at(o, k)], create_graph, retain_graph=True)
            if strict and any(g is None for g in grads):
                j = next(j for j, g in enumerate(grads) if g is None)
                raise RuntimeError(f"{fn_name}: output {i} of the user function is independent "
                                   f"of {what} {j}, which strict=True does not allow")
            for j, g in enumerate(_finish(grads, xs, create_graph, False, fn_name, what)):
                per_input[j].append(g)
        jac.append([_stack_rows(rows, o.shape, x.shape, create_graph)
                    if rows else _zeros_like_shape(o, x)
                    for rows, x in zip(per_input, xs)])
    return jac


def _zeros_like_shape(o, x):
    xp = get_array_module(x.array)
    return Tensor(xp.zeros(tuple(o.shape) + tuple(x.shape), x.array.dtype))


def jacobian(func, inputs, create_graph=False, strict=False):
    """The Jacobian: for one output and one input a Tensor of shape output.shape + input.shape;
    tuples (of tuples) when func returns a tuple or inputs is one, as in PyTorch."""
    in_tuple, inputs = _as_tuple(inputs, "inputs", "jacobian")
    xs = _prepare_inputs(inputs, create_graph, "jacobian")
    out_tuple, outs = _call(func, xs, "jacobian")
    jac = _jacobian_rows(outs, xs, create_graph, strict, "jacobian", "input")
    rows = [_untuple(in_tuple, row) for row in jac]
    return _untuple(out_tuple, rows)


def hessian(func, inputs, create_graph=False, strict=False):
    """The Hessian of a scalar func: for one input a Tensor of shape input.shape * 2; for a tuple
    of inputs, H[i][j] of shape inputs[i].shape + inputs[j].shape. One backward pass per input
    element, so meant for small inputs."""
    in_tuple, inputs = _as_tuple(inputs, "inputs", "hessian")
    xs = _prepare_inputs(inputs, create_graph, "hessian")
    out = _scalar_output(func, xs, "hessian")
    jac = _grad_with_graph(out, xs, strict, "hessian")
    hess = []
    for i, (g, x) in enumerate(zip(jac, xs)):
        if g is None or not g.requires_grad:
            hess.append([_zeros_like_shape(x, y) for y in xs])
            continue
        hess.append(_jacobian_rows([g], xs, create_graph, strict, "hessian", "input")[0])
    return _untuple(in_tuple, [_untuple(in_tuple, row) for row in hess])
