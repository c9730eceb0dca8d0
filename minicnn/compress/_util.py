"""Shared helpers of mc.compress: layer detection, module replacement, tracing, sizes."""
import copy

from .. import nn
from ..autograd import enable_grad
from ..tensor import Tensor


def is_conv2d(m):
    return isinstance(m, nn.Conv2d)


def is_linear(m):
    return isinstance(m, nn.Linear)


def is_bn2d(m):
    return isinstance(m, nn.BatchNorm2d)


def is_flatten(m):
    return isinstance(m, nn.Flatten)


def is_passthrough(m):
    """A layer that keeps channels apart and maps a zero channel to zero (Module's
    `preserves_channels`), so channels pruned before it are pruned after it."""
    return getattr(m, "preserves_channels", False)


def pair(v):
    if isinstance(v, (tuple, list)):
        return tuple(int(a) for a in v) if len(v) == 2 else (int(v[0]),) * 2
    return (int(v), int(v))


def get_module(root, name):
    m = root
    for part in name.split(".") if name else []:
        m = m._modules[part]
    return m


def set_module(root, name, new):
    """Replace the submodule at dotted `name`, keeping its place in the parent's order (which
    is the execution order of a Sequential)."""
    parent_name, _, last = name.rpartition(".")
    parent = get_module(root, parent_name)
    if last in parent._modules:
        parent._modules[last] = new
    else:
        setattr(parent, last, new)


def set_param(module, name, param):
    """Replace (or add) a Parameter, keeping the order of the module's parameters."""
    if name in module._parameters:
        module.__dict__.pop(name, None)
        module._parameters[name] = param
    else:
        setattr(module, name, param)


def copy_model(model):
    return copy.deepcopy(model)


def model_size_bytes(model):
    """Bytes of the parameters and persistent buffers (what a checkpoint holds)."""
    return int(sum(t.array.nbytes for t in model.state_dict().values()))


def as_numpy_batch(batch):
    if isinstance(batch, (tuple, list)):
        batch = batch[0]
    return getattr(batch, "data", batch)


def iterate_inputs(data, num_batches=None, batch_size=64):
    """Input arrays from a Dataset, a DataLoader / iterable of batches, or one array."""
    if isinstance(data, Tensor) or hasattr(data, "shape") and hasattr(data, "dtype"):
        yield as_numpy_batch(data)          # one array (NumPy or CuPy) or Tensor: one batch
        return
    if hasattr(data, "__getitem__") and hasattr(data, "__len__") and not isinstance(
            data, (list, tuple)) and not hasattr(data, "batch_size"):
        from ..tune.ensemble import iterate_batches  # noqa: PLC0415
        it = (xb for xb, _ in iterate_batches(data, batch_size))
    else:
        it = (as_numpy_batch(b) for b in data)
    for i, xb in enumerate(it):
        if num_batches is not None and i >= num_batches:
            break
        yield xb


def _fn_closure(out, stop_ids):
    """ids of the Functions between `out` and the tensors in stop_ids (one module call's ops).
    A module that returns its input (Identity, Dropout in eval mode) ran none: the walk starts
    only from an output that is not one of the inputs, or it would claim the whole graph above."""
    owned = set()
    stack = [out.creator] if isinstance(out, Tensor) and out.creator is not None and \
        id(out) not in stop_ids else []
    while stack:
        fn = stack.pop()
        if id(fn) in owned:
            continue
        owned.add(id(fn))
        for t in fn.inputs or ():
            if t is not None and id(t) not in stop_ids and t.creator is not None:
                stack.append(t.creator)
    return owned


def trace(model, example_input):
    """Run the model once (eval mode) and record every leaf-module call in order as
    (name, module, [ids of input tensors], id of the output tensor).

    The forward pass is recorded by autograd (the input requires grad), so the trace also knows
    every op that consumed a module's output; `Trace.hidden_uses(tensor id, call index)` counts
    the ops outside module call `call index` that read the tensor (a residual add, a concat...).
    Returns a Trace (a list of calls)."""
    calls = Trace()
    handles = []
    keep = []   # hold every traced tensor so that no id is reused during the run
    for name, m in model.named_modules():
        if not m._modules:           # leaves only
            def hook(mod, args, out, _name=name):
                ins = [id(a) for a in args if isinstance(a, Tensor)]
                keep.append((args, out))
                calls.owned.append(_fn_closure(out, set(ins)))
                calls.append((_name, mod, ins, id(out) if isinstance(out, Tensor) else None))
            handles.append(m.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        x = example_input.array if isinstance(example_input, Tensor) else example_input
        x = Tensor(x, requires_grad=getattr(x, "dtype", None) is not None and x.dtype.kind == "f")
        with enable_grad():
            out = model(x)
        keep.append(out)
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        stack = [o.creator for o in outs if isinstance(o, Tensor) and o.creator is not None]
        calls.output_ids = {id(o) for o in outs if isinstance(o, Tensor)}
        for o in outs:
            if isinstance(o, Tensor):
                calls.tensors[id(o)] = o
        for args, o in keep[:-1]:
            for t in list(args) + [o]:
                if isinstance(t, Tensor):
                    calls.tensors[id(t)] = t
        seen = set()
        while stack:                 # every op of the graph: who reads which tensor
            fn = stack.pop()
            if id(fn) in seen:
                continue
            seen.add(id(fn))
            calls.functions[id(fn)] = fn
            for t in fn.inputs or ():
                if t is None:
                    continue
                calls.tensors[id(t)] = t
                calls.readers.setdefault(id(t), set()).add(id(fn))
                if t.creator is not None:
                    stack.append(t.creator)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    calls.keep = keep
    return calls


class Trace(list):
    def __init__(self):
        super().__init__()
        self.owned = []      # per call: ids of the Functions that call ran
        self.readers = {}    # tensor id -> ids of the Functions that read it
        self.functions = {}  # Function id -> Function (every op of the recorded graph)
        self.tensors = {}    # tensor id -> Tensor (every tensor seen)
        self.output_ids = set()

    def outputs_of(self, fn_id):
        """The tensors a Function produced (among the tensors of the trace)."""
        if not hasattr(self, "_outs"):
            self._outs = {}
            for t in self.tensors.values():
                if t.creator is not None:
                    self._outs.setdefault(id(t.creator), []).append(t)
        return self._outs.get(fn_id, [])

    def hidden_uses(self, tensor_id, call_index):
        return len(self.readers.get(tensor_id, set()) - self.owned[call_index])


def consumers(calls):
    """{tensor id: [call indices that take it as input]}."""
    out = {}
    for i, (_, _, ins, _) in enumerate(calls):
        for t in ins:
            out.setdefault(t, []).append(i)
    return out


def sole_consumer(calls, cons, tensor_id):
    """The index of the one module call that reads the tensor, if no other module call and no
    op outside that call reads it; else None."""
    users = cons.get(tensor_id, [])
    if len(users) != 1 or calls.hidden_uses(tensor_id, users[0]):
        return None
    return users[0]
