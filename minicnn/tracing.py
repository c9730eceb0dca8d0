"""Run a model once and keep what it did: the graph autograd recorded, the module that called each
op, and which arrays were computed from the input (mc.onnx and mc.viz read models this way).

    rec = record(model, [x])        # eval mode; x is made to require grad, so the graph records
    for fn in rec.functions():      # the ops between the inputs and the outputs, producers first
        print(rec.module_of[id(fn)], fn.name, [t.shape for t in fn.inputs if t is not None])
"""
import numpy

from .autograd import enable_grad
from .autograd.function import observe_calls
from .tensor import Tensor


def as_input(x):
    """A fresh Tensor around x's array; a floating one requires grad, so ops on it record."""
    a = x.array if isinstance(x, Tensor) else x
    if not hasattr(a, "dtype"):
        a = numpy.asarray(a)
    return Tensor(a, requires_grad=a.dtype.kind == "f")


class Recording:
    """inputs, outputs (lists of Tensors); module_of: id(Function) -> dotted path of the innermost
    module that called it ('' for the model's own forward); derived: ids of the arrays computed
    from the inputs by ops; outside: id(array) -> (op name, module path) for those an op returned
    outside the graph (integer results, values computed under no_grad)."""

    def __init__(self, inputs):
        self.inputs, self.outputs = inputs, []
        self.module_of, self.outside = {}, {}
        self.derived = {id(x.array) for x in inputs}
        self.keep = []      # every op and output seen, so that no id is reused while recording

    def functions(self):
        """The recorded Functions between the inputs and the outputs, each after the Functions
        that made its inputs."""
        order, seen = [], set()
        stack = [(t.creator, False) for t in reversed(self.outputs) if t.creator is not None]
        while stack:
            fn, done = stack.pop()
            if done:
                order.append(fn)
                continue
            if id(fn) in seen:
                continue
            seen.add(id(fn))
            stack.append((fn, True))
            for t in reversed(fn.inputs or ()):
                if t is not None and t.creator is not None and id(t.creator) not in seen:
                    stack.append((t.creator, False))
        return order


def record(model, inputs):
    """Run model(*inputs) once in eval mode with grad recording on (its training mode is put
    back after) and return the Recording. The model must return a Tensor or a tuple / list of
    Tensors."""
    inputs = [as_input(x) for x in inputs]
    rec = Recording(inputs)
    paths = {id(m): name for name, m in model.named_modules()}
    stack = [""]

    def on_op(fn, args, run):
        outs = run(fn, *args)
        rec.module_of[id(fn)] = stack[-1]
        rec.keep.append((fn, outs))
        if any(t is not None and id(t.array) in rec.derived for t in args):
            for o in outs if isinstance(outs, tuple) else (outs,):
                rec.derived.add(id(o.array))
                if o.creator is None:
                    rec.outside[id(o.array)] = (fn.name, stack[-1])
        return outs

    def enter(mod, args):
        stack.append(paths.get(id(mod), type(mod).__name__))

    def leave(mod, args, out):
        stack.pop()

    handles = []
    for _, m in model.named_modules():
        handles += [m.register_forward_pre_hook(enter), m.register_forward_hook(leave)]
    was_training = model.training
    model.eval()
    remove = observe_calls(on_op)
    try:
        with enable_grad():
            out = model(*inputs)
    finally:
        remove()
        for h in handles:
            h.remove()
        model.train(was_training)
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    if not outs or not all(isinstance(o, Tensor) for o in outs):
        raise TypeError(f"the model must return a Tensor or a tuple / list of Tensors to be "
                        f"traced, got {type(out).__name__}")
    rec.outputs = outs
    return rec
