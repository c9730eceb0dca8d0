"""Function: the base class of every differentiable op, and Variable, what the engine sees of a
Tensor.

A Function is one op. Its `forward` works on raw arrays (NumPy or CuPy) and may stash what the
backward pass needs on `self`; its `backward` receives the output gradients as Tensors and returns
one gradient per input (None where there is none), written with differentiable Tensor operations.
Under `create_graph=False` the backward runs with recording off, so each of those operations is
a thin wrapper around an array call; with `create_graph=True` the backward is itself recorded,
which is what gives gradients of gradients. A backward that runs a fused kernel is itself a
Function with its own backward (conv's Conv2dGradInput, norm's RowNormGrad, ...).

Calling a Function on inputs that require grad (while grad mode is on) stores the inputs on it
and makes it the `creator` of its outputs: the graph is defined by running it.

What the backward reads is declared, so that an in-place write between forward and backward is
caught (version.py): `saves` names the inputs whose values the backward reads, `saves_outputs`
the outputs it reads (`retained_output`), and `save_array` records any other array it keeps
that a user can write to (an index or target tensor's array). A recorded Function notes the
write clock; before its backward the engine checks that none of those was written since.
Reading only an input's shape or dtype is no read.
"""
import weakref

from ..devices import device_of
from . import version as _version
from .mode import _GradMode

# Post-accumulate-grad hooks of leaves, {id(leaf): (weak reference, [hook, ...])}. Empty unless
# someone registered one (DistributedDataParallel does), and empty is all the engine tests for.
_POST_ACCUMULATE = {}


class Variable:
    """What the engine sees of a Tensor (minicnn.tensor.Tensor subclasses it): its array, its
    gradient, whether it requires one, and the Function that made it (`creator`, with the
    output's index). The engine makes new Tensors through `_wrap` / `_from_op` of a Tensor it
    holds, so it never imports the Tensor class."""
    __slots__ = ("array", "grad", "_requires_grad", "creator", "output_index", "_hooks")

    @staticmethod
    def _wrap(array):
        """A constant Tensor around an array (no graph)."""
        raise NotImplementedError

    @staticmethod
    def _from_op(array, fn, index):
        """Output `index` of Function `fn` as a graph node (a constant for non-float arrays)."""
        raise NotImplementedError

    @property
    def requires_grad(self):
        return self._requires_grad

    def register_post_accumulate_grad_hook(self, hook):
        """hook(tensor) runs as soon as backward() has accumulated this leaf's gradient into
        .grad, that is when the last use of the leaf in the graph has sent its share, while the
        backward pass goes on through the rest of the graph (PyTorch's method of that name).
        Not called by autograd.grad, which leaves .grad alone. Returns a handle with remove()."""
        if self.creator is not None:
            raise RuntimeError("register_post_accumulate_grad_hook: only leaf tensors accumulate "
                               f"a .grad; this one was made by {self.creator.name}")
        if not self._requires_grad:
            raise RuntimeError("register_post_accumulate_grad_hook: cannot register a hook on a "
                               "tensor that doesn't require gradient")
        key = id(self)
        entry = _POST_ACCUMULATE.get(key)
        if entry is None:
            def forget(ref, registry=_POST_ACCUMULATE):   # bound now: still there at exit
                if registry.get(key, (None,))[0] is ref:
                    del registry[key]
            entry = _POST_ACCUMULATE[key] = (weakref.ref(self, forget), [])
        entry[1].append(hook)
        return _PostAccumulateHandle(key, entry, hook)


class _PostAccumulateHandle:
    def __init__(self, key, entry, hook):
        self.key, self.entry, self.hook = key, entry, hook

    def remove(self):
        hooks = self.entry[1]
        if self.hook in hooks:
            hooks.remove(self.hook)
        if not hooks and _POST_ACCUMULATE.get(self.key) is self.entry:
            del _POST_ACCUMULATE[self.key]


class Function:
    """Base class of every differentiable op (see the module docstring for the contract).

    Attributes a subclass may rely on inside `backward`:
      self.inputs   the input Tensors (None entries for absent optional inputs)
    Outputs of integer or bool dtype (argmax indices, masks) never require grad.

    What the backward reads, checked for in-place writes before it runs:
      saves          None: every input (the default, for a Function that does not say);
                     a tuple of input indices: those inputs;
                     a dict {i: (j, ...)}: inputs j, when input i requires grad (the gradient
                     of x * y reads y only when x requires grad)
      saves_outputs  the outputs the backward reads (retained_output): a tuple of output
                     indices, or a dict {input i: output indices} as for saves
    A Function that keeps another array a user can write to (an index tensor's) records it with
    `save_array` in its forward.
    """

    inputs = None
    released = False
    out_meta = None  # (shape, dtype) per output, kept for multi-output ops to zero-fill grads
    out_hooks = None  # {output index: [hook, ...]} from Tensor.register_hook on non-leaf outputs
    saves = None
    saves_outputs = ()
    _clock = None    # the write clock (version.py) when this op was recorded
    _outs = None     # its outputs, kept when saves_outputs names some
    _kept = None     # the arrays given to save_array

    def forward(self, *arrays):
        raise NotImplementedError

    def backward(self, *grad_outputs):
        raise NotImplementedError

    def __call__(self, *inputs):
        arrays = []
        record = False
        first = None
        for t in inputs:
            if t is None:
                arrays.append(None)
                continue
            a = t.array
            if first is None:
                first = t
            elif type(a) is not type(first.array):
                _raise_mixed_devices(self, inputs)
            arrays.append(a)
            if t._requires_grad:
                record = True
        outputs = self.forward(*arrays)
        record = record and _GradMode.enabled
        if record:
            self.inputs = inputs
            self._clock = _version.clock
            if self.saves_outputs:
                self._outs = outputs
        self._make = first
        if type(outputs) is not tuple:
            return first._from_op(outputs, self, 0) if record else first._wrap(outputs)
        if record:
            self.out_meta = [(y.shape, y.dtype) for y in outputs]
            return tuple(first._from_op(y, self, i) for i, y in enumerate(outputs))
        return tuple(first._wrap(y) for y in outputs)

    def save_array(self, array):
        """Record `array`, which the backward reads and which is neither an input nor an output
        (a user's index tensor), for the in-place check; returns it."""
        self._kept = [array] if self._kept is None else self._kept + [array]
        return array

    def _saved_arrays(self):
        """(array, what) for everything the backward reads, as declared."""
        inputs = self.inputs
        for i in _declared(self.saves, inputs):
            if inputs[i] is not None:
                yield inputs[i].array, f"input {i}"
        if self.saves_outputs:
            outs = self._outs if type(self._outs) is tuple else (self._outs,)
            for i in _declared(self.saves_outputs, inputs):
                yield outs[i], f"output {i}"
        for a in self._kept or ():
            yield a, "an array"

    def check_saved(self):
        """Raise PyTorch's error if something the backward reads was written in place since
        this op was recorded (called by the engine before `backward`, once anything was)."""
        for array, what in self._saved_arrays():
            seen = _version.written_since(array, self._clock)
            if seen is not None:
                raise RuntimeError(
                    "one of the variables needed for gradient computation has been modified by "
                    f"an inplace operation: [{_shape_str(array.shape)} {array.dtype}], which is "
                    f"{what} saved by {self.name}, is at version {seen[0]}; expected version "
                    f"{seen[1]} instead. Hint: the write happened between this op's forward and "
                    "the backward (an in-place method, x op= y, a write through .data, an "
                    "optimizer step); clone() the tensor before writing to it, or run the "
                    "forward again")

    def retained_output(self, array, index=0):
        """This op's own output as a graph node, for backward formulas written in terms of y
        (exp, sqrt, sigmoid...). With create_graph it links back to this op, so second
        derivatives flow through it; otherwise it is a plain constant."""
        if _GradMode.enabled and self.inputs is not None:
            return self._make._from_op(array, self, index)
        return self._make._wrap(array)

    def release(self):
        """Drop saved inputs and arrays; a later backward through this op raises."""
        self.__dict__.clear()
        self.released = True

    @property
    def name(self):
        return type(self).__name__


class Observers:
    """How mc.profiler (and mc.onnx's tracer) see the ops: observe_calls(hook) routes every op
    call through hook(fn, inputs, run), run(fn, *inputs) being the call as it was, by swapping
    Function.__call__, so an unobserved op costs nothing more; `backward`, when set, runs each
    step of a backward pass as backward(fn, grads) (one test per step in the engine)."""
    backward = None


def observe_calls(hook):
    """Install hook (see Observers); returns the function that removes it (in reverse order)."""
    run = Function.__call__

    def observed(fn, *inputs):
        return hook(fn, inputs, run)

    def remove():
        if Function.__call__ is not observed:
            raise RuntimeError("op observers must be removed in the reverse order of installing")
        Function.__call__ = run
    Function.__call__ = observed
    return remove


def _declared(saves, inputs):
    """The indices a `saves` / `saves_outputs` declaration names for these inputs: None every
    input; a tuple as it is; a dict {i: indices} the indices of every input i that requires
    grad."""
    if saves is None:
        return range(len(inputs))
    if saves.__class__ is not dict:
        return saves
    indices = ()
    for i, js in saves.items():
        t = inputs[i]
        if t is not None and t._requires_grad:
            indices += js
    return indices


def _shape_str(shape):
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"


def _raise_mixed_devices(fn, inputs):
    desc = ", ".join(f"{device_of(t.array)} {tuple(t.array.shape)}" for t in inputs if t is not None)
    raise RuntimeError(
        f"{type(fn).__name__}: expected all tensors to be on the same device, but found "
        f"tensors on different devices: {desc}")
