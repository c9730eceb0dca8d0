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
"""
from ..devices import device_of
from .mode import _GradMode


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


class Function:
    """Base class of every differentiable op (see the module docstring for the contract).

    Attributes a subclass may rely on inside `backward`:
      self.inputs   the input Tensors (None entries for absent optional inputs)
    Outputs of integer or bool dtype (argmax indices, masks) never require grad.
    """

    inputs = None
    released = False
    out_meta = None  # (shape, dtype) per output, kept for multi-output ops to zero-fill grads
    out_hooks = None  # {output index: [hook, ...]} from Tensor.register_hook on non-leaf outputs

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
        self._make = first
        if type(outputs) is not tuple:
            return first._from_op(outputs, self, 0) if record else first._wrap(outputs)
        if record:
            self.out_meta = [(y.shape, y.dtype) for y in outputs]
            return tuple(first._from_op(y, self, i) for i, y in enumerate(outputs))
        return tuple(first._wrap(y) for y in outputs)

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


def _raise_mixed_devices(fn, inputs):
    desc = ", ".join(f"{device_of(t.array)} {tuple(t.array.shape)}" for t in inputs if t is not None)
    raise RuntimeError(
        f"{type(fn).__name__}: expected all tensors to be on the same device, but found "
        f"tensors on different devices: {desc}")
