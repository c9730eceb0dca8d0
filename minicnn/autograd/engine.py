"""The backward pass: backward() and grad() over the graph that Functions recorded.

Backward walks the graph in an iterative topological order (no recursion, so chains of any length
work) and, unless `retain_graph=True`, drops every Function's saved state as it goes so memory
stays flat over many steps. Leaves' gradients are accumulated into `.grad` (backward) or returned
(grad, which leaves `.grad` alone).

A leaf with post-accumulate-grad hooks gets its `.grad` as soon as its gradient is final, that is
once every Function that used it has run: the engine counts those uses before the pass and fires
the hooks when the last one lands (DistributedDataParallel sends gradients then, while the rest of
the backward runs). Without such hooks nothing is counted.
"""
from ..devices import get_array_module
from .function import _POST_ACCUMULATE, Observers, Variable
from . import version as _version
from .mode import _GradMode


# ---------------------------------------------------------------------------------------------
# The backward pass
# ---------------------------------------------------------------------------------------------

def _topological_order(root_fns):
    """Functions reachable from root_fns, each after every Function that consumes its outputs."""
    post = []
    visited = set()
    stack = [(fn, False) for fn in root_fns]
    while stack:
        fn, expanded = stack.pop()
        if expanded:
            post.append(fn)
            continue
        if id(fn) in visited:
            continue
        visited.add(id(fn))
        if fn.released:
            raise RuntimeError(
                f"Trying to backward through the graph a second time (through {fn.name}), or to "
                "use tensors after their graph was freed. Pass retain_graph=True to the first "
                "backward() or autograd.grad() call if you need to backward twice.")
        stack.append((fn, True))
        for t in fn.inputs:
            if t is not None and t.creator is not None and id(t.creator) not in visited:
                stack.append((t.creator, False))
    post.reverse()
    return post


def _add_grads(a, b):
    return b if a is None else a + b


def _run_hooks(hooks, grad):
    for hook in hooks:
        out = hook(grad)
        if out is not None:
            grad = out
    return grad


def _engine(roots, root_grads, retain_graph, create_graph, capture=None, owned=None):
    """Propagate root_grads back through the graph.

    capture: None to accumulate into the `.grad` of leaves (Tensor.backward); otherwise a list of
    tensors whose total gradients are returned instead (autograd.grad), leaving `.grad` alone.
    Returns the list of captured gradients (None where not reached) when capture is given.
    owned: ids of arrays a leaf may not keep without copying (gradients the caller passed in).
    """
    fn_grads = {}     # id(fn) -> [grad per output]
    leaf_grads = {}   # id(leaf) -> [leaf, grad]
    captured = {}     # id(tensor) -> grad, for capture
    capture_nonleaf = {}
    if capture is not None:
        for i, t in enumerate(capture):
            if t.creator is not None:
                capture_nonleaf.setdefault((id(t.creator), t.output_index), []).append(i)

    def send(t, g):
        if t.creator is not None:
            slots = fn_grads.get(id(t.creator))
            if slots is None:
                slots = fn_grads[id(t.creator)] = [None] * _n_outputs(t.creator)
            slots[t.output_index] = _add_grads(slots[t.output_index], g)
        elif t.requires_grad:
            entry = leaf_grads.get(id(t))
            if entry is None:
                leaf_grads[id(t)] = [t, g]
            else:
                entry[1] = entry[1] + g

    prev_mode = _GradMode.enabled
    _GradMode.enabled = create_graph
    try:
        for t, g in zip(roots, root_grads):
            send(t, g)
        order = _topological_order([t.creator for t in roots if t.creator is not None])
        owned = set(owned or ())
        pending = _pending_uses(order) if _POST_ACCUMULATE and capture is None else None
        for fn in order:
            gys = fn_grads.pop(id(fn), None)
            if gys is None:
                if pending:
                    _uses_landed(fn, pending, leaf_grads, create_graph, owned)
                continue
            if fn.out_hooks:
                for i, hooks in fn.out_hooks.items():
                    if gys[i] is not None:
                        gys[i] = _run_hooks(hooks, gys[i])
            if capture_nonleaf:
                for i, g in enumerate(gys):
                    for j in capture_nonleaf.get((id(fn), i), ()):
                        captured[j] = g
            if len(gys) > 1:
                gys = _zero_fill(fn, gys)
            if fn._clock != _version.clock:   # something was written since its forward
                fn.check_saved()
            gxs = fn.backward(*gys) if Observers.backward is None else \
                Observers.backward(fn, gys)           # mc.profiler
            if type(gxs) is not tuple:
                gxs = (gxs,)
            for t, gx in zip(fn.inputs, gxs):
                if gx is not None and t is not None and t.requires_grad:
                    send(t, gx)
            if pending:
                _uses_landed(fn, pending, leaf_grads, create_graph, owned)
            if not retain_graph:
                fn.release()
    finally:
        _GradMode.enabled = prev_mode

    if capture is not None:
        for j, t in enumerate(capture):
            if t.creator is None and id(t) in leaf_grads:
                captured[j] = leaf_grads[id(t)][1]
        return [captured.get(j) for j in range(len(capture))]

    for leaf, g in leaf_grads.values():
        _accumulate(leaf, g, create_graph, owned)
    return None


def _accumulate(leaf, g, create_graph, owned):
    """Add a leaf's total gradient to its .grad (after its hooks), then run its post-accumulate
    hooks."""
    if leaf._hooks:
        g = _run_hooks(leaf._hooks, g)
    if not create_graph:
        g = _owned_detached(g, owned)
    leaf.grad = g if leaf.grad is None else leaf.grad + g
    if _POST_ACCUMULATE:
        entry = _POST_ACCUMULATE.get(id(leaf))
        if entry is not None:
            for hook in tuple(entry[1]):
                hook(leaf)


def _pending_uses(order):
    """{id(leaf): uses} for the leaves with post-accumulate hooks among the inputs of order."""
    pending = {}
    for fn in order:
        for t in fn.inputs:
            if t is not None and t.creator is None and id(t) in _POST_ACCUMULATE:
                pending[id(t)] = pending.get(id(t), 0) + 1
    return pending


def _uses_landed(fn, pending, leaf_grads, create_graph, owned):
    """fn has sent its gradients: a hooked leaf whose last use it was gets its .grad now."""
    for t in fn.inputs:
        if t is not None and id(t) in pending:
            left = pending[id(t)] - 1
            pending[id(t)] = left
            if left == 0:
                entry = leaf_grads.pop(id(t), None)
                if entry is not None:
                    _accumulate(entry[0], entry[1], create_graph, owned)


def _n_outputs(fn):
    return 1 if fn.out_meta is None else len(fn.out_meta)


def _zero_fill(fn, gys):
    """Multi-output ops get zeros for outputs no gradient reached."""
    if all(g is not None for g in gys):
        return gys
    some = next(g for g in gys if g is not None)
    xp = get_array_module(some.array)
    return [g if g is not None else some._wrap(xp.zeros(shape, dtype))
            for g, (shape, dtype) in zip(gys, fn.out_meta)]


def _owned_detached(g, owned):
    """A leaf's .grad must own its array: in-place updates (clipping, zero_) may not leak into
    another leaf's gradient, or into a user's tensor that was passed through."""
    a = g.array
    if a.base is not None or id(a) in owned:
        a = a.copy()
    owned.add(id(a))
    return g._wrap(a)


def _root_grads(tensors, grad_tensors, what):
    grads = []
    for i, (t, g) in enumerate(zip(tensors, grad_tensors)):
        if not t.requires_grad:
            raise RuntimeError(
                f"{what}: element {i} of tensors does not require grad and has no grad_fn")
        if g is None:
            if t.array.size != 1:
                raise RuntimeError(
                    f"{what}: grad can be implicitly created only for scalar outputs, but the "
                    f"output has shape {tuple(t.shape)}; pass a gradient of that shape")
            xp = get_array_module(t.array)
            g = t._wrap(xp.ones(t.shape, t.dtype))
        else:
            if not isinstance(g, Variable):
                g = t._wrap(g)
            if tuple(g.shape) != tuple(t.shape):
                raise ValueError(
                    f"{what}: gradient of shape {tuple(g.shape)} does not match the output of "
                    f"shape {tuple(t.shape)}")
        grads.append(g)
    return grads


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False):
    """Accumulate d(tensors)/d(leaf) into every leaf's .grad (torch.autograd.backward)."""
    if isinstance(tensors, Variable):
        tensors = [tensors]
    tensors = list(tensors)
    if grad_tensors is None or isinstance(grad_tensors, Variable):
        grad_tensors = [grad_tensors] * len(tensors) if grad_tensors is None else [grad_tensors]
    grad_tensors = list(grad_tensors)
    if len(grad_tensors) != len(tensors):
        raise ValueError(f"backward: got {len(tensors)} tensors but {len(grad_tensors)} gradients")
    if retain_graph is None:
        retain_graph = create_graph
    grads = _root_grads(tensors, grad_tensors, "backward")
    given = {id(g.array) for g, user in zip(grads, grad_tensors) if user is not None}
    _engine(tensors, grads, retain_graph, create_graph, owned=given)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False):
    """Gradients of outputs with respect to inputs, returned as a tuple (torch.autograd.grad).

    Leaves' .grad are not touched. An input the outputs do not depend on gets None when
    allow_unused=True, and raises otherwise.
    """
    single = isinstance(outputs, Variable)
    outputs = [outputs] if single else list(outputs)
    inputs = [inputs] if isinstance(inputs, Variable) else list(inputs)
    if grad_outputs is None or isinstance(grad_outputs, Variable):
        grad_outputs = [grad_outputs] * len(outputs) if grad_outputs is None else [grad_outputs]
    grad_outputs = list(grad_outputs)
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"grad: got {len(outputs)} outputs but {len(grad_outputs)} grad_outputs")
    for i, t in enumerate(inputs):
        if not isinstance(t, Variable) or not t.requires_grad:
            raise RuntimeError(f"grad: input {i} does not require grad")
    if retain_graph is None:
        retain_graph = create_graph
    roots = _root_grads(outputs, grad_outputs, "grad")
    result = _engine(outputs, roots, retain_graph, create_graph, capture=inputs)
    for i, g in enumerate(result):
        if g is None and not allow_unused:
            raise RuntimeError(
                f"grad: input {i} (shape {tuple(inputs[i].shape)}) was not used in the graph of "
                "the outputs; pass allow_unused=True to get None for it")
        if g is not None and not create_graph and g.requires_grad:
            result[i] = g.detach()
    return tuple(result)
