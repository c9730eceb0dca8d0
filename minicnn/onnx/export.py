"""mc.onnx.export: a minicnn model as an ONNX file (onnx + onnxruntime: the `[onnx]` extra).

The model runs once in eval mode on the example input, recorded by autograd (the input requires
grad), while an op observer notes which module called each op and which arrays were computed
from the input (minicnn/tracing.py). The recorded graph, from the outputs back to the input and
the parameters, is then written op by op (converters.py): parameters and buffers become
initializers under their state-dict names ('layer1.0.conv1.weight', 'bn1.running_mean'), other
constants (an adaptive pool's averaging matrix, a scalar) initializers of their own, and each
node is named by the module that ran it ('layer1.0.conv1/Conv').

Only the batch dimension can be left free (dynamic_batch); every other shape is the example's,
so give an example of the image size the model will see, and a batch of 2 or more (a reshape
that merges the batch into another dimension is told apart by it).

What is not in the recorded graph cannot be exported: an array computed from the input outside it
(an integer result such as argmax indices, or a value computed under no_grad) would become a
constant that no longer follows the input, so it is refused with the op that computed it, as is
any op without a converter or a case ONNX cannot express.
"""
import numpy

from .. import __version__, devices
from ..fileio import write_atomic
from ..tracing import as_input, record
from .converters import CONVERTERS

MIN_OPSET = 13


class ExportError(RuntimeError):
    """A model (or one of its ops) that cannot be exported to ONNX; the message says which op,
    in which module, and why."""


def _require_onnx():
    try:
        import onnx  # noqa: PLC0415
    except ImportError:
        raise ImportError("mc.onnx needs the onnx package: pip install 'minicnn[onnx]' (or pip "
                          "install onnx onnxruntime)") from None
    return onnx


def export(model, example_input, path=None, opset_version=17, dynamic_batch=True,
           input_names=None, output_names=None, fold_batchnorm=False, check=True):
    """Export `model` (run in eval mode on `example_input`, a Tensor or array, or a tuple of
    them for several inputs) to the ONNX file `path` (written atomically; None: not written).

    opset_version: the ONNX opset (13 or later; 17 by default). dynamic_batch: the first
    dimension of the inputs and outputs is a free 'batch' dimension (otherwise every shape is
    the example's). input_names / output_names: the graph's names ('input', 'output' by default;
    'input_0', ... for several). fold_batchnorm: fold each Conv2d -> BatchNorm2d pair into the
    convolution first (mc.compress.fold_batchnorm, on a copy). check: run onnx.checker (with
    shape inference) on the result. Returns the onnx.ModelProto.
    """
    onnx = _require_onnx()
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= int(opset_version) <= newest:
        raise ValueError(f"mc.onnx.export: opset_version must be between {MIN_OPSET} and "
                         f"{newest} (the newest this onnx package knows), got {opset_version}")
    inputs = list(example_input) if isinstance(example_input, (tuple, list)) else [example_input]
    if fold_batchnorm:
        from ..compress.fold import fold_batchnorm as fold  # noqa: PLC0415
        model = fold(model, example_input=as_input(inputs[0]) if len(inputs) == 1 else None)
    try:
        trace = record(model, inputs)
    except TypeError as e:
        raise ExportError(f"mc.onnx.export: {e}") from None
    graph = Graph(onnx, int(opset_version), bool(dynamic_batch), trace, model)
    proto = graph.build(_names(input_names, len(inputs), "input"),
                        _names(output_names, len(trace.outputs), "output"))
    if check:
        onnx.checker.check_model(proto, full_check=True)
    if path is not None:
        write_atomic(path, proto.SerializeToString())
    return proto


def _names(given, n, default):
    if given is None:
        return [default] if n == 1 else [f"{default}_{i}" for i in range(n)]
    given = [given] if isinstance(given, str) else list(given)
    if len(given) != n or len(set(given)) != n:
        raise ValueError(f"mc.onnx.export: {n} distinct {default} name(s) expected, got {given}")
    return given


class Graph:
    """The ONNX graph being built from a trace (the `g` of the converters)."""

    def __init__(self, onnx, opset, dynamic, trace, model):
        self.onnx, self.opset, self.dyn, self.trace = onnx, opset, dynamic, trace
        self.nodes, self.initializers = [], {}
        self.const_names = {}           # id(array) -> initializer name
        self.used, self.node_names = set(), set()     # value names, node names
        self.keep = []                  # the arrays const_names are keyed by, kept alive
        self.state_names = {}           # id(array) -> state-dict name
        if hasattr(model, "state_dict"):
            for name, t in model.state_dict(keep_vars=True).items():
                self.state_names.setdefault(id(t.array), name)
        self.path = ""                  # the module of the op being converted ('layer1.0')
        self.prefix = ""                # and the name of its output ('layer1.0/Add')

    # --- what converters call --------------------------------------------------------------

    @staticmethod
    def shape_of(t):
        return tuple(int(s) for s in t.shape)

    @staticmethod
    def dtype_of(t):
        return t.array.dtype

    @staticmethod
    def host(array):
        return devices.to_numpy(array)

    def onnx_dtype(self, dtype):
        return self.onnx.helper.np_dtype_to_tensor_dtype(numpy.dtype(dtype))

    def dynamic_batch(self, t):
        """Whether t's first dimension is the free batch dimension."""
        return self.dyn and id(t.array) in self.trace.derived

    def unique(self, name, used=None):
        """name, or name_1, name_2... if it is taken (among the values, or the `used` set)."""
        used = self.used if used is None else used
        base, i = name, 0
        while name in used:
            i += 1
            name = f"{base}_{i}"
        used.add(name)
        return name

    def tmp(self, out, what):
        return self.unique(f"{out}/{what}")

    def const(self, array, hint, source=None):
        """The initializer name of a constant array (a parameter or buffer keeps its state-dict
        name; `source` is the array it was made from, for a cast copy)."""
        key = id(source if source is not None else array)
        name = self.const_names.get(key)
        if name is None:
            state = self.state_names.get(key)
            name = self.unique(state if state is not None else
                               f"{self.prefix}.{hint}" if self.prefix else hint)
            self.const_names[key] = name
            self.keep.append(source if source is not None else array)   # no id reused
            a = self.host(array)     # (ascontiguousarray would make a 0-d array 1-d)
            self.initializers[name] = a if a.flags.c_contiguous else numpy.array(a, order="C")
        return name

    def node(self, op_type, inputs, outputs, **attrs):
        self.nodes.append(self.onnx.helper.make_node(
            op_type, list(inputs), list(outputs),
            name=self.unique(f"{self.path}/{op_type}" if self.path else op_type,
                             self.node_names), **attrs))

    def unsupported(self, fn, why):
        return ExportError(f"mc.onnx.export: cannot export {fn.name} "
                           f"({self._where(fn)}): {why}")

    def _where(self, fn):
        path = self.trace.module_of.get(id(fn))
        return f"called in module '{path}'" if path else "called by the model's own forward"

    # --- building ---------------------------------------------------------------------------

    def build(self, input_names, output_names):
        helper, trace = self.onnx.helper, self.trace
        names = {}                  # ('t', id(tensor)) or ('f', id(fn), index) -> value name
        for x, name in zip(trace.inputs, input_names):
            names[("t", id(x))] = name
            self.used.add(name)
        self.used.update(output_names)
        order = trace.functions()
        out_of = {}                 # the output names given to the outputs, when free
        for t, name in zip(trace.outputs, output_names):
            if t.creator is not None and ("f", id(t.creator), t.output_index) not in out_of:
                out_of[("f", id(t.creator), t.output_index)] = name
        for fn in order:
            self.path = trace.module_of.get(id(fn), "")
            self.prefix = f"{self.path}/{fn.name}" if self.path else fn.name
            ins = [None if t is None else self._input_name(t, fn, names) for t in fn.inputs]
            n_out = 1 if fn.out_meta is None else len(fn.out_meta)
            outs = [out_of.get(("f", id(fn), i)) or self.unique(
                self.prefix if n_out == 1 else f"{self.prefix}:{i}") for i in range(n_out)]
            for i, o in enumerate(outs):
                names[("f", id(fn), i)] = o
            convert = CONVERTERS.get(type(fn).__name__)
            if convert is None:
                raise ExportError(
                    f"mc.onnx.export: cannot export {fn.name} ({self._where(fn)}): no ONNX "
                    f"converter for this op (minicnn/onnx/converters.py lists those there are)")
            convert(self, fn, ins, outs[0] if n_out == 1 else outs)
        graph_outputs = []
        for t, name in zip(trace.outputs, output_names):
            inner = names.get(("f", id(t.creator), t.output_index)) if t.creator is not None \
                else None
            if inner != name:      # an input, a constant, or the same tensor returned twice
                self.path = self.prefix = "output"
                src = inner or self._input_name(t, None, names)
                self.node("Identity", [src], [name])
            graph_outputs.append(self._value_info(name, t))
        graph = helper.make_graph(
            self.nodes, "minicnn", [self._value_info(n, x) for x, n in
                                    zip(trace.inputs, input_names)], graph_outputs,
            initializer=[self.onnx.numpy_helper.from_array(a, n)
                         for n, a in self.initializers.items()])
        opsets = [helper.make_opsetid("", self.opset)]
        proto = helper.make_model(graph, opset_imports=opsets, producer_name="minicnn",
                                  producer_version=__version__)
        proto.ir_version = helper.find_min_ir_version_for(opsets)
        return proto

    def _input_name(self, t, consumer, names):
        if t.creator is not None:
            return names[("f", id(t.creator), t.output_index)]
        name = names.get(("t", id(t)))
        if name is not None:
            return name
        made = self.trace.outside.get(id(t.array))
        if made is not None:
            op, path = made
            where = f"in module '{path}'" if path else "in the model's own forward"
            user = f"{consumer.name} ({self._where(consumer)})" if consumer is not None else \
                "the model's output"
            raise ExportError(
                f"mc.onnx.export: {op} ({where}) computed a {t.array.dtype} array of shape "
                f"{list(t.shape)} from the input that reaches {user} outside the recorded graph "
                "(an integer result such as indices, or a value computed under no_grad): it "
                "would be exported as a constant that no longer follows the input")
        return self.const(t.array, "const")

    def _value_info(self, name, t):
        shape = list(self.shape_of(t))
        if shape and self.dynamic_batch(t):
            shape[0] = "batch"
        return self.onnx.helper.make_tensor_value_info(name, self.onnx_dtype(t.array.dtype),
                                                       shape)
