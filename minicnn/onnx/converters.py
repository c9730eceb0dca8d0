"""One converter per op (Function class name): the ONNX nodes that compute it.

A converter is `convert(g, fn, ins, out)`: `g` is the graph being built (export.Graph), `fn` the
recorded Function (its hyperparameters are its attributes), `ins` the ONNX names of its inputs
(None for an absent optional input), `out` the name (or, for a Function with several outputs, the
list of names) to give its outputs. It adds nodes with g.node(...) and constants with g.const(...),
and raises g.unsupported(fn, why) for a case ONNX cannot express.

Shapes are those of the traced call. Only the batch dimension may change at run time
(dynamic_batch): a converter that bakes a shape in (Reshape, Expand) writes 0 (copy the input's
dimension) or 1 (broadcast) in place of the batch size, and refuses when that cannot keep it free.
"""
import math

import numpy

from ..kernels import pool as kpool

CONVERTERS = {}


def converter(*names):
    def register(f):
        for n in names:
            CONVERTERS[n] = f
        return f
    return register


def _ints(v):
    return [int(a) for a in v]


# --- convolution ---------------------------------------------------------------------------------

@converter("Conv2d")
def _conv(g, fn, ins, out):
    x, w, b = (list(ins) + [None])[:3]
    p = fn.p
    kshape = g.shape_of(fn.inputs[1])[2:]
    g.node("Conv", [x, w] + ([b] if b is not None else []), [out], kernel_shape=_ints(kshape),
           strides=[p.SH, p.SW], pads=[p.PH, p.PW, p.PH, p.PW], dilations=[p.DH, p.DW],
           group=p.G)


@converter("Conv2dGradInput")
def _conv_transpose(g, fn, ins, out):
    """conv_transpose2d's forward: Conv2dGradInput(w, x) with the output shape it was made for."""
    w, x = ins
    p = fn.p
    w_shape, x_shape = g.shape_of(fn.inputs[0]), g.shape_of(fn.inputs[1])
    KH, KW = w_shape[2:]
    out_pad = []
    for i, (k, s, q, d) in enumerate(((KH, p.SH, p.PH, p.DH), (KW, p.SW, p.PW, p.DW))):
        natural = (x_shape[2 + i] - 1) * s - 2 * q + d * (k - 1) + 1
        out_pad.append(int(fn.x_shape[2 + i] - natural))
    g.node("ConvTranspose", [x, w], [out], kernel_shape=[KH, KW], strides=[p.SH, p.SW],
           pads=[p.PH, p.PW, p.PH, p.PW], dilations=[p.DH, p.DW], group=p.G,
           output_padding=out_pad)


# --- linear algebra ------------------------------------------------------------------------------

@converter("LinearOp")
def _linear(g, fn, ins, out):
    x, w, b = (list(ins) + [None])[:3]
    g.node("Gemm", [x, w] + ([b] if b is not None else []), [out], transB=1)


@converter("MatMul")
def _matmul(g, fn, ins, out):
    g.node("MatMul", list(ins), [out])


# --- element-wise --------------------------------------------------------------------------------

for _name, _op in (("Add", "Add"), ("Sub", "Sub"), ("Mul", "Mul"), ("Div", "Div"), ("Pow", "Pow"),
                   ("Maximum", "Max"), ("Minimum", "Min")):
    converter(_name)(lambda g, fn, ins, out, _op=_op: g.node(_op, list(ins), [out]))

for _name, _op in (("Neg", "Neg"), ("Exp", "Exp"), ("Log", "Log"), ("Sqrt", "Sqrt"),
                   ("Abs", "Abs"), ("Sigmoid", "Sigmoid"), ("Tanh", "Tanh"),
                   ("Softsign", "Softsign"), ("Clone", "Identity")):
    converter(_name)(lambda g, fn, ins, out, _op=_op: g.node(_op, [ins[0]], [out]))


@converter("Cast")
def _cast(g, fn, ins, out):
    g.node("Cast", [ins[0]], [out], to=g.onnx_dtype(fn.dtype))


def _clip(g, x, out, lo, hi, dtype):
    args = [x, g.const(numpy.asarray(lo, dtype), "min") if lo is not None else "",
            g.const(numpy.asarray(hi, dtype), "max") if hi is not None else ""]
    while args[-1] == "":
        args.pop()
    g.node("Clip", args, [out])


@converter("Clamp")
def _clamp(g, fn, ins, out):
    _clip(g, ins[0], out, fn.lo, fn.hi, g.dtype_of(fn.inputs[0]))


@converter("Hardtanh")
def _hardtanh(g, fn, ins, out):
    _clip(g, ins[0], out, fn.lo, fn.hi, g.dtype_of(fn.inputs[0]))


@converter("Hardsigmoid")
def _hardsigmoid(g, fn, ins, out):
    g.node("HardSigmoid", [ins[0]], [out], alpha=1.0 / 6.0, beta=0.5)


@converter("ELU")
def _elu(g, fn, ins, out):
    from ..ops.activation import _SELU_ALPHA, _SELU_SCALE  # noqa: PLC0415
    if fn.scale == 1.0 and fn.input_scale == 1.0:
        g.node("Elu", [ins[0]], [out], alpha=fn.alpha)
    elif fn.input_scale == 1.0 and math.isclose(fn.alpha, _SELU_ALPHA) and \
            math.isclose(fn.scale, _SELU_SCALE):
        g.node("Selu", [ins[0]], [out], alpha=fn.alpha, gamma=fn.scale)
    elif fn.scale == 1.0 and math.isclose(fn.input_scale * fn.alpha, 1.0):
        g.node("Celu", [ins[0]], [out], alpha=fn.alpha)
    else:
        raise g.unsupported(fn, f"an ELU with scale {fn.scale} and input scale "
                                f"{fn.input_scale} is none of ONNX's Elu, Selu, Celu")


@converter("Softplus")
def _softplus(g, fn, ins, out):
    # ONNX's Softplus has no threshold: above it PyTorch returns x, which log(1 + e^x) equals
    # to float32 precision there (threshold 20 and up)
    if fn.threshold < 15:
        raise g.unsupported(fn, f"a softplus threshold of {fn.threshold} (below 15) changes the "
                                "result, and ONNX's Softplus has none")
    if fn.beta == 1.0:
        g.node("Softplus", [ins[0]], [out])
        return
    dtype = g.dtype_of(fn.inputs[0])
    beta = g.const(numpy.asarray(fn.beta, dtype), "beta")
    scaled, soft = g.tmp(out, "scaled"), g.tmp(out, "softplus")
    g.node("Mul", [ins[0], beta], [scaled])
    g.node("Softplus", [scaled], [soft])
    g.node("Div", [soft, beta], [out])


@converter("PReLU")
def _prelu(g, fn, ins, out):
    x, w = ins
    xs, ws = g.shape_of(fn.inputs[0]), g.shape_of(fn.inputs[1])
    slope = w
    if math.prod(ws) > 1:      # one slope per channel (dim 1): shape (C, 1, ..., 1) for ONNX
        slope = g.tmp(out, "slope")
        g.node("Reshape", [w, g.const(numpy.asarray([ws[0]] + [1] * (len(xs) - 2), numpy.int64),
                                      "shape")], [slope])
    g.node("PRelu", [x, slope], [out])


def _activation(g, fn, act, x, out, slope=0.0):
    dtype = g.dtype_of(fn.inputs[0])
    if act == "identity":
        g.node("Identity", [x], [out])
    elif act == "relu":
        g.node("Relu", [x], [out])
    elif act == "leaky_relu":
        g.node("LeakyRelu", [x], [out], alpha=float(slope))
    elif act == "sigmoid":
        g.node("Sigmoid", [x], [out])
    elif act == "tanh":
        g.node("Tanh", [x], [out])
    elif act == "silu":
        s = g.tmp(out, "sigmoid")
        g.node("Sigmoid", [x], [s])
        g.node("Mul", [x, s], [out])
    elif act == "mish":
        sp, t = g.tmp(out, "softplus"), g.tmp(out, "tanh")
        g.node("Softplus", [x], [sp])
        g.node("Tanh", [sp], [t])
        g.node("Mul", [x, t], [out])
    elif act == "hardswish":
        if g.opset >= 14:
            g.node("HardSwish", [x], [out])
        else:
            hs = g.tmp(out, "hardsigmoid")
            g.node("HardSigmoid", [x], [hs], alpha=1.0 / 6.0, beta=0.5)
            g.node("Mul", [x, hs], [out])
    elif act in ("gelu", "gelu_tanh"):
        if g.opset >= 20:
            g.node("Gelu", [x], [out], approximate="tanh" if act == "gelu_tanh" else "none")
            return
        def c(v, name):
            return g.const(numpy.asarray(v, dtype), name)
        half, one_plus = g.tmp(out, "half"), g.tmp(out, "one_plus")
        if act == "gelu":     # x/2 (1 + erf(x / sqrt 2))
            scaled, erf = g.tmp(out, "scaled"), g.tmp(out, "erf")
            g.node("Mul", [x, c(1.0 / math.sqrt(2.0), "inv_sqrt2")], [scaled])
            g.node("Erf", [scaled], [erf])
            g.node("Add", [erf, c(1.0, "one")], [one_plus])
        else:                 # x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
            cube, cube_c, inner, scaled, th = (g.tmp(out, n) for n in
                                               ("cube", "cube_c", "inner", "scaled", "tanh"))
            g.node("Pow", [x, c(3.0, "three")], [cube])
            g.node("Mul", [cube, c(0.044715, "gelu_c")], [cube_c])
            g.node("Add", [x, cube_c], [inner])
            g.node("Mul", [inner, c(math.sqrt(2.0 / math.pi), "sqrt_2_over_pi")], [scaled])
            g.node("Tanh", [scaled], [th])
            g.node("Add", [th, c(1.0, "one")], [one_plus])
        g.node("Mul", [x, c(0.5, "half")], [half])
        g.node("Mul", [half, one_plus], [out])
    else:
        raise g.unsupported(fn, f"no ONNX form of the activation {act!r}")


@converter("Activation")
def _activation_op(g, fn, ins, out):
    _activation(g, fn, fn.act, ins[0], out, fn.slope)


@converter("BiasAct")
def _bias_act(g, fn, ins, out):
    x, b = ins
    xs = g.shape_of(fn.inputs[0])
    shape = [1] * len(xs)
    shape[fn.dim] = -1
    bb, z = g.tmp(out, "bias"), g.tmp(out, "z")
    g.node("Reshape", [b, g.const(numpy.asarray(shape, numpy.int64), "shape")], [bb])
    g.node("Add", [x, bb], [z])
    _activation(g, fn, fn.act, z, out, fn.slope)


@converter("Softmax", "LogSoftmax")
def _softmax(g, fn, ins, out):
    if g.opset < 13 and fn.axis != len(g.shape_of(fn.inputs[0])) - 1:
        raise g.unsupported(fn, "before opset 13, ONNX's Softmax flattens the dims after the "
                                "axis; export with opset_version >= 13")
    g.node("LogSoftmax" if fn.log else "Softmax", [ins[0]], [out], axis=int(fn.axis))


# --- normalization -------------------------------------------------------------------------------

@converter("BatchNormEval")
def _batch_norm(g, fn, ins, out):
    x, w, b = ins
    C = g.shape_of(fn.inputs[0])[1]
    dtype = g.dtype_of(fn.inputs[0])
    w = w if w is not None else g.const(numpy.ones(C, dtype), "scale")
    b = b if b is not None else g.const(numpy.zeros(C, dtype), "bias")
    mean = g.const(fn.mean.astype(dtype, copy=False), "running_mean", source=fn.mean)
    var = g.const(fn.var.astype(dtype, copy=False), "running_var", source=fn.var)
    g.node("BatchNormalization", [x, w, b, mean, var], [out], epsilon=float(fn.eps))


@converter("BatchNormTrain")
def _batch_norm_train(g, fn, ins, out):
    raise g.unsupported(fn, "batch norm in training mode (batch statistics); export runs the "
                            "model in eval mode, so this is a functional batch_norm called with "
                            "training=True")


@converter("MaskedAffine")
def _dropout_train(g, fn, ins, out):
    raise g.unsupported(fn, "dropout in training mode; export runs the model in eval mode, so "
                            "this is a functional dropout called with training=True")


# --- pooling -------------------------------------------------------------------------------------

def _ceil_mode(g, fn, in_hw, k, s, p, d, out_hw):
    """ceil_mode for ONNX from the output size PyTorch's rule gave."""
    floor = [(i + 2 * q - dd * (kk - 1) - 1) // ss + 1 for i, kk, ss, q, dd in
             zip(in_hw, k, s, p, d)]
    if list(out_hw) == floor:
        return 0
    ceil = [-(-(i + 2 * q - dd * (kk - 1) - 1) // ss) + 1 for i, kk, ss, q, dd in
            zip(in_hw, k, s, p, d)]
    if list(out_hw) != ceil:
        raise g.unsupported(fn, f"with ceil_mode the last window of this input ({in_hw}) would "
                                f"start in the padding, which PyTorch drops (output {out_hw}) "
                                f"and ONNX keeps (output {ceil})")
    return 1


@converter("MaxPool2d")
def _max_pool(g, fn, ins, out):
    y = out[0]      # the indices (output 1) are an integer result: export refuses their use
    in_hw = g.shape_of(fn.inputs[0])[2:]
    ceil = _ceil_mode(g, fn, in_hw, fn.k, fn.s, fn.p, fn.d, fn.out)
    attrs = dict(kernel_shape=_ints(fn.k), strides=_ints(fn.s), pads=_ints(fn.p) * 2,
                 ceil_mode=ceil)
    if tuple(fn.d) != (1, 1):
        attrs["dilations"] = _ints(fn.d)
    g.node("MaxPool", [ins[0]], [y], **attrs)


@converter("AdaptiveMaxPool2d")
def _adaptive_max_pool(g, fn, ins, out):
    y = out[0]
    H, W = g.shape_of(fn.inputs[0])[2:]
    OH, OW = fn.out
    if (OH, OW) == (1, 1):
        g.node("GlobalMaxPool", [ins[0]], [y])
    elif H % OH == 0 and W % OW == 0:
        g.node("MaxPool", [ins[0]], [y], kernel_shape=[H // OH, W // OW],
               strides=[H // OH, W // OW])
    else:
        raise g.unsupported(fn, f"adaptive max pooling from {H}x{W} to {OH}x{OW} has windows of "
                                "different sizes, which no ONNX pooling op expresses (it is "
                                "exportable when the output size divides the input size)")


@converter("AvgPool2d")
def _avg_pool(g, fn, ins, out):
    in_hw = g.shape_of(fn.inputs[0])[2:]
    k, s, p, (OH, OW) = fn.k, fn.s, fn.p, fn.out
    ceil = _ceil_mode(g, fn, in_hw, k, s, p, (1, 1), fn.out)
    geometry = (*in_hw, *k, *s, *p, OH, OW)
    exclude = kpool.avg_pool_inv(*geometry, False, None, numpy.float64)
    include = kpool.avg_pool_inv(*geometry, True, None, numpy.float64)
    inv = g.host(fn.inv).astype(numpy.float64)
    attrs = dict(kernel_shape=_ints(k), strides=_ints(s), pads=_ints(p) * 2, ceil_mode=ceil)
    if numpy.allclose(inv, exclude, rtol=1e-6, atol=0):
        g.node("AveragePool", [ins[0]], [out], count_include_pad=0, **attrs)
    elif not ceil and numpy.allclose(inv, 1.0 / (k[0] * k[1]), rtol=1e-6, atol=0) and \
            numpy.allclose(include, 1.0 / (k[0] * k[1])):
        g.node("AveragePool", [ins[0]], [out], count_include_pad=1, **attrs)
    else:   # another divisor (count_include_pad at the border, divisor_override): rescale
        dtype = g.dtype_of(fn.inputs[0])
        mean = g.tmp(out, "mean")
        g.node("AveragePool", [ins[0]], [mean], count_include_pad=0, **attrs)
        g.node("Mul", [mean, g.const((inv / exclude).astype(dtype), "divisor")], [out])


# --- reductions ----------------------------------------------------------------------------------

def _reduce(g, fn, ins, out, op, axes_input_from):
    ndim = len(g.shape_of(fn.inputs[0]))
    axes = list(range(ndim)) if fn.axes is None else \
        sorted(int(a) % ndim for a in (fn.axes if isinstance(fn.axes, (tuple, list))
                                       else (fn.axes,)))
    keep = int(bool(fn.keepdims))
    if not axes:            # over no axis: the input itself (ONNX's empty axes mean all)
        g.node("Identity", [ins[0]], [out])
    elif g.opset >= axes_input_from:
        g.node(op, [ins[0], g.const(numpy.asarray(axes, numpy.int64), "axes")], [out],
               keepdims=keep)
    else:
        g.node(op, [ins[0]], [out], axes=axes, keepdims=keep)


@converter("Mean")
def _mean(g, fn, ins, out):
    _reduce(g, fn, ins, out, "ReduceMean", 18)


@converter("Sum")
def _sum(g, fn, ins, out):
    _reduce(g, fn, ins, out, "ReduceSum", 13)


@converter("AMax")
def _amax(g, fn, ins, out):
    _reduce(g, fn, ins, out, "ReduceMax", 18)


@converter("AMin")
def _amin(g, fn, ins, out):
    _reduce(g, fn, ins, out, "ReduceMin", 18)


# --- shapes --------------------------------------------------------------------------------------

@converter("Reshape")
def _reshape(g, fn, ins, out):
    in_shape = g.shape_of(fn.inputs[0])
    shape = [int(s) for s in fn.shape]
    if g.dynamic_batch(fn.inputs[0]):
        n, m = (in_shape[0], shape[0]) if in_shape and shape else (0, 0)
        if n and m == n and math.prod(shape[1:]) == math.prod(in_shape[1:]):
            shape[0] = 0    # ONNX: copy the input's (batch) dimension
        elif n and (m > n and m % n == 0 or n > m > 1 and n % m == 0):
            shape[0] = -1   # the batch merged into (N*L, ...) or split out of it (N, L, ...)
        else:
            raise g.unsupported(fn, f"the reshape from {list(in_shape)} to {shape} moves the "
                                    "batch dimension, which dynamic_batch=True keeps free; "
                                    "export with dynamic_batch=False")
    g.node("Reshape", [ins[0], g.const(numpy.asarray(shape, numpy.int64), "shape")], [out])


@converter("Permute")
def _permute(g, fn, ins, out):
    perm = _ints(fn.perm)
    if g.dynamic_batch(fn.inputs[0]) and perm[0] != 0:
        raise g.unsupported(fn, f"the permutation {perm} moves the batch dimension; export "
                                "with dynamic_batch=False")
    g.node("Transpose", [ins[0]], [out], perm=perm)


@converter("BroadcastTo")
def _broadcast_to(g, fn, ins, out):
    in_shape = list(g.shape_of(fn.inputs[0]))
    shape = [int(s) for s in fn.shape]
    if g.dynamic_batch(fn.inputs[0]) and shape:
        lead = len(shape) - len(in_shape)
        if lead != 0 or in_shape[0] != shape[0]:
            raise g.unsupported(fn, f"broadcasting {in_shape} to {shape} sets the batch "
                                    "dimension; export with dynamic_batch=False")
        shape[0] = 1        # Expand broadcasts both ways: 1 keeps the input's batch
    g.node("Expand", [ins[0], g.const(numpy.asarray(shape, numpy.int64), "shape")], [out])


@converter("Concatenate")
def _concat(g, fn, ins, out):
    g.node("Concat", list(ins), [out], axis=int(fn.axis))


@converter("Split")
def _split(g, fn, ins, out):
    if g.opset < 13:
        g.node("Split", [ins[0]], list(out), axis=int(fn.axis), split=_ints(fn.sizes))
    else:
        g.node("Split", [ins[0], g.const(numpy.asarray(fn.sizes, numpy.int64), "split")],
               list(out), axis=int(fn.axis))


@converter("PadConstant")
def _pad(g, fn, ins, out):
    widths = [(int(lo), int(hi)) for lo, hi in fn.widths]
    pads = [lo for lo, _ in widths] + [hi for _, hi in widths]
    dtype = g.dtype_of(fn.inputs[0])
    g.node("Pad", [ins[0], g.const(numpy.asarray(pads, numpy.int64), "pads"),
                   g.const(numpy.asarray(fn.value, dtype), "value")], [out], mode="constant")


@converter("GetItem")
def _getitem(g, fn, ins, out):
    """Basic slicing (slices with a positive step, the adaptive pools' uneven windows): one
    Slice over the axes a slice narrows."""
    key = fn.key if isinstance(fn.key, tuple) else (fn.key,)
    shape = g.shape_of(fn.inputs[0])
    if not all(isinstance(k, slice) for k in key) or len(key) > len(shape):
        raise g.unsupported(fn, "only indexing by slices has a converter")
    starts, ends, axes, steps = [], [], [], []
    for axis, k in enumerate(key):
        start, stop, step = k.indices(shape[axis])
        if step <= 0:
            raise g.unsupported(fn, "a slice with a negative step")
        if (start, stop, step) == (0, shape[axis], 1):
            continue
        if axis == 0 and g.dynamic_batch(fn.inputs[0]):
            raise g.unsupported(fn, "slicing the batch dimension; export with "
                                    "dynamic_batch=False")
        starts.append(start), ends.append(stop), axes.append(axis), steps.append(step)
    if not axes:
        g.node("Identity", [ins[0]], [out])
        return
    g.node("Slice", [ins[0]] + [g.const(numpy.asarray(v, numpy.int64), name) for v, name in
                                ((starts, "starts"), (ends, "ends"), (axes, "axes"),
                                 (steps, "steps"))], [out])


@converter("IndexSelect")
def _index_select(g, fn, ins, out):
    axis = int(fn.axis)
    if g.dynamic_batch(fn.inputs[0]) and axis == 0:
        raise g.unsupported(fn, "selecting along the batch dimension; export with "
                                "dynamic_batch=False")
    index = g.host(fn.index).astype(numpy.int64)
    g.node("Gather", [ins[0], g.const(index, "index")], [out], axis=axis)
