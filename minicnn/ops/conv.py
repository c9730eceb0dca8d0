"""Convolution: conv2d, conv1d, conv_transpose2d/1d, and the Functions behind them.

Three Functions share one set of hyperparameters (stride, padding, dilation, groups) and are each
other's gradients, so derivatives of any order exist (Chainer's Convolution2D /
Convolution2DGradW / Deconvolution2D):

    Conv2d(x, w, b)              y  = conv(x, w) + b
    Conv2dGradInput(w, gy)       gx = conv^T(gy, w)      (= conv_transpose2d)
    Conv2dGradWeight(x, gy)      gw = corr(x, gy)

All three are bilinear: <conv(x, w), gy> = <x, GradInput(w, gy)> = <w, GradWeight(x, gy)>, which
gives each one's backward in terms of the other two. How each pass is computed (direct grouped
kernels, a GEMM on the input, im2col + GEMM, an implicit GEMM on the GPU) is the conv kernel
family's choice (minicnn.kernels.conv); this module holds the graph and the argument checks.
"""
import numbers

from ..autograd import Function, is_grad_enabled
from ..dtypes import kind as dtype_kind
from ..kernels import conv as kconv
from ..kernels.conv import ConvParams
from . import autocast
from .shape import pad as _pad
from .util import check_kernel_float, check_tensor, shape_str


# --- Functions -----------------------------------------------------------------------------------

class Conv2d(Function):
    """keep_columns: the forward keeps its im2col columns (where it builds any) for the weight
    gradient, which reads the same ones (minicnn.kernels.conv.kept)."""
    saves = {0: (1,), 1: (0,)}  # gx reads w, gw reads x

    def __init__(self, params, out_hw=None, keep_columns=False):
        self.p, self.out_hw, self.keep_columns = params, out_hw, keep_columns

    def forward(self, x, w, b=None):
        if not self.keep_columns:
            return kconv.conv2d(x, w, self.p, b, self.out_hw)
        y, self.columns = kconv.conv2d(x, w, self.p, b, self.out_hw, keep_columns=True)
        return y

    def take_columns(self):
        """The kept columns (or None), handed over once: the holder frees them when done."""
        return self.__dict__.pop("columns", None)

    def backward(self, gy):
        x, w, b = self.inputs
        gx = Conv2dGradInput(self.p, x.shape)(w, gy) if x.requires_grad else None
        gw = Conv2dGradWeight(self.p, w.shape, self.take_columns())(x, gy) \
            if w.requires_grad else None
        gb = gy.sum(dim=(0, 2, 3)) if b is not None and b.requires_grad else None
        return gx, gw, gb


class Conv2dGradInput(Function):
    """gx = conv^T(gy, w): the input-gradient of conv2d, and conv_transpose2d's forward."""
    saves = {0: (1,), 1: (0,)}

    def __init__(self, params, x_shape):
        self.p, self.x_shape = params, tuple(x_shape)

    def forward(self, w, gy):
        return kconv.conv2d_grad_input(w, gy, self.x_shape, self.p)

    def backward(self, ggx):
        w, gy = self.inputs
        # both read the columns of ggx: ggy's conv keeps them for gw
        conv = Conv2d(self.p, gy.shape[2:], keep_columns=w.requires_grad)
        ggy = conv(ggx, w, None) if gy.requires_grad else None
        gw = Conv2dGradWeight(self.p, w.shape, conv.take_columns())(ggx, gy) \
            if w.requires_grad else None
        return gw, ggy


class Conv2dGradWeight(Function):
    """gw = sum over the batch and output positions of gy * shifted x; `columns`: x's, kept by
    the forward (used once, then dropped)."""
    saves = {0: (1,), 1: (0,)}

    def __init__(self, params, w_shape, columns=None):
        self.p, self.w_shape, self.columns = params, tuple(w_shape), columns

    def forward(self, x, gy):
        columns, self.columns = self.columns, None
        return kconv.conv2d_grad_weight(x, gy, self.w_shape, self.p, columns)

    def backward(self, ggw):
        x, gy = self.inputs
        gx = Conv2dGradInput(self.p, x.shape)(ggw, gy) if x.requires_grad else None
        ggy = Conv2d(self.p, gy.shape[2:])(x, ggw, None) if gy.requires_grad else None
        return gx, ggy


# --- argument checking ---------------------------------------------------------------------------

def _pair(v, n, name, op):
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        return (int(v),) * n
    if isinstance(v, (tuple, list)) and len(v) == n and all(
            isinstance(e, numbers.Integral) and not isinstance(e, bool) for e in v):
        return tuple(int(e) for e in v)
    raise TypeError(f"{op}: {name} must be an int or a tuple of {n} ints, got {v!r}")


def _check_tensor_dims(op, x, w, nd):
    check_tensor(x, "input", op)
    check_tensor(w, "weight", op)
    if x.ndim != nd + 2:
        raise ValueError(
            f"{op}: expected a {nd + 2}-D input (batch, channels, {'H, W' if nd == 2 else 'L'}), "
            f"but got input of size {shape_str(x.shape)}"
            + (" (add a batch dimension with unsqueeze(0))" if x.ndim == nd + 1 else ""))
    if w.ndim != nd + 2:
        raise ValueError(f"{op}: expected a {nd + 2}-D weight, but got weight of size "
                         f"{shape_str(w.shape)}")
    if x.dtype != w.dtype:
        raise TypeError(f"{op}: input ({x.dtype}) and weight ({w.dtype}) must have the same dtype")
    if dtype_kind(x.array.dtype) != "f":
        raise TypeError(f"{op}: expected a floating point input, got {x.dtype}")
    check_kernel_float(x, op)
    if any(k <= 0 for k in w.shape[2:]):
        sides = " ".join(f"kernel_{n}: {k}" for n, k in zip(("height", "width")[2 - nd:],
                                                               w.shape[2:]))
        raise ValueError(f"{op}: kernel size should be greater than zero, but got {sides} "
                         f"(weight of size {shape_str(w.shape)})")


def _check_hyper(op, stride, dilation, padding, groups):
    if any(s <= 0 for s in stride):
        raise ValueError(f"{op}: non-positive stride is not supported, got stride={stride}")
    if any(d <= 0 for d in dilation):
        raise ValueError(f"{op}: dilation should be greater than zero, got dilation={dilation}")
    if any(q < 0 for q in padding):
        raise ValueError(f"{op}: negative padding is not supported, got padding={padding}")
    if not isinstance(groups, numbers.Integral) or isinstance(groups, bool) or groups <= 0:
        raise ValueError(f"{op}: non-positive groups is not supported, got groups={groups!r}")


def _check_bias(op, b, n, dtype):
    if b is None:
        return
    check_tensor(b, "bias", op)
    if tuple(b.shape) != (n,):
        raise ValueError(f"{op}: expected bias of size [{n}], but got bias of size "
                         f"{shape_str(b.shape)}")
    if b.dtype != dtype:
        raise TypeError(f"{op}: bias ({b.dtype}) must have the input's dtype ({dtype})")


def _same_padding(op, K, stride, dilation):
    """padding='same': (left, extra right) per spatial dim; the odd one goes on the right."""
    if any(s != 1 for s in stride):
        raise ValueError(f"{op}: padding='same' is not supported for strided convolutions "
                         f"(stride={stride})")
    total = [d * (k - 1) for d, k in zip(dilation, K)]
    return tuple(t // 2 for t in total), tuple(t - t // 2 - t // 2 for t in total)


def _conv_args(op, nd, input, weight, bias, stride, padding, dilation, groups):
    """A convolution's arguments as nd-tuples, checked as PyTorch checks them against the input,
    weight and bias: (stride, padding, dilation, extra), extra the one more pixel on the right of
    each spatial dim that 'same' padding with an even total needs."""
    stride = _pair(stride, nd, "stride", op)
    dilation = _pair(dilation, nd, "dilation", op)
    ksize = tuple(weight.shape[2:])
    extra = (0,) * nd
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0,) * nd
        elif padding == "same":
            _check_hyper(op, stride, dilation, (0,) * nd, groups)
            padding, extra = _same_padding(op, ksize, stride, dilation)
        else:
            raise ValueError(f"{op}: invalid padding string {padding!r}, expected 'valid' or "
                             "'same'")
    else:
        padding = _pair(padding, nd, "padding", op)
    _check_hyper(op, stride, dilation, padding, groups)
    C = input.shape[1]
    K = weight.shape[0]
    if K % groups:
        raise ValueError(f"{op}: Given groups={groups}, expected weight to be divisible by "
                         f"{groups} at dimension 0, but got weight of size "
                         f"{shape_str(weight.shape)} instead")
    if C != weight.shape[1] * groups:
        raise ValueError(f"{op}: Given groups={groups}, weight of size {shape_str(weight.shape)}, "
                         f"expected input{shape_str(input.shape)} to have "
                         f"{weight.shape[1] * groups} channels, but got {C} channels instead")
    _check_bias(op, bias, K, input.dtype)
    spatial = input.shape[2:]
    padded = tuple(s + 2 * q + e for s, q, e in zip(spatial, padding, extra))
    eff = tuple(d * (k - 1) + 1 for d, k in zip(dilation, ksize))
    if any(e > s for e, s in zip(eff, padded)):
        raise ValueError(
            f"{op}: Calculated padded input size per channel: ({' x '.join(map(str, padded))}). "
            f"Kernel size: ({' x '.join(map(str, eff))}). Kernel size can't be greater than "
            f"actual input size (input {shape_str(input.shape)}, weight "
            f"{shape_str(weight.shape)})")
    return stride, padding, dilation, extra


def _conv_nd(op, nd, input, weight, bias, stride, padding, dilation, groups):
    input, weight, bias = autocast.args(op, input, weight, bias)
    _check_tensor_dims(op, input, weight, nd)
    stride, padding, dilation, extra = _conv_args(op, nd, input, weight, bias, stride, padding,
                                                  dilation, groups)
    if any(extra):
        pads = []
        for e in reversed(extra):
            pads += [0, e]
        input = _pad(input, tuple(pads))
    keep = weight.requires_grad and is_grad_enabled()    # the backward will read the columns
    if nd == 1:
        y = Conv2d(ConvParams((1,) + stride, (0,) + padding, (1,) + dilation, groups),
                   keep_columns=keep)(input.unsqueeze(2), weight.unsqueeze(2), bias)
        return y.squeeze(2)
    return Conv2d(ConvParams(stride, padding, dilation, groups), keep_columns=keep)(
        input, weight, bias)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """F.conv2d: input (N, C, H, W), weight (K, C/groups, KH, KW), bias (K,) or None.
    padding: int, pair, 'valid' or 'same' (stride 1; an odd total pads one more on the right)."""
    return _conv_nd("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """F.conv1d: input (N, C, L), weight (K, C/groups, KL)."""
    return _conv_nd("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


def _transposed_geometry(op, nd, input, weight, bias, stride, padding, output_padding, groups,
                         dilation):
    """A transposed convolution's arguments as nd-tuples, checked as PyTorch checks them, with
    its output channels K and output size: (stride, padding, dilation, output_padding, K, out)."""
    stride = _pair(stride, nd, "stride", op)
    padding = _pair(padding, nd, "padding", op)
    dilation = _pair(dilation, nd, "dilation", op)
    output_padding = _pair(output_padding, nd, "output_padding", op)
    _check_hyper(op, stride, dilation, padding, groups)
    C = input.shape[1]
    if weight.shape[0] != C:
        raise ValueError(f"{op}: Given transposed=1, weight of size {shape_str(weight.shape)}, "
                         f"expected input{shape_str(input.shape)} to have {weight.shape[0]} "
                         f"channels, but got {C} channels instead")
    if C % groups:
        raise ValueError(f"{op}: groups={groups} must divide the input channels ({C}); "
                         f"input {shape_str(input.shape)}")
    for o, s, d in zip(output_padding, stride, dilation):
        if o < 0 or o >= max(s, d):
            raise ValueError(f"{op}: output padding must be smaller than either stride or "
                             f"dilation, but got output_padding={output_padding}, "
                             f"stride={stride}, dilation={dilation}")
    K = weight.shape[1] * groups
    _check_bias(op, bias, K, input.dtype)
    ksize = tuple(weight.shape[2:])
    out = tuple((i - 1) * s - 2 * q + d * (k - 1) + o + 1 for i, s, q, d, k, o in zip(
        input.shape[2:], stride, padding, dilation, ksize, output_padding))
    if any(o <= 0 for o in out):
        raise ValueError(f"{op}: the output size {out} is too small (input "
                         f"{shape_str(input.shape)}, weight {shape_str(weight.shape)}, "
                         f"stride={stride}, padding={padding})")
    return stride, padding, dilation, output_padding, K, out


def _conv_transpose_nd(op, nd, input, weight, bias, stride, padding, output_padding, groups,
                       dilation):
    input, weight, bias = autocast.args(op, input, weight, bias)
    _check_tensor_dims(op, input, weight, nd)
    stride, padding, dilation, output_padding, K, out = _transposed_geometry(
        op, nd, input, weight, bias, stride, padding, output_padding, groups, dilation)
    if nd == 1:
        params = ConvParams((1,) + stride, (0,) + padding, (1,) + dilation, groups)
        y = Conv2dGradInput(params, (input.shape[0], K, 1) + out)(
            weight.unsqueeze(2), input.unsqueeze(2)).squeeze(2)
    else:
        params = ConvParams(stride, padding, dilation, groups)
        y = Conv2dGradInput(params, (input.shape[0], K) + out)(weight, input)
    if bias is not None:
        y = y + bias.reshape((1, K) + (1,) * nd)
    return y


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """F.conv_transpose2d: input (N, Cin, H, W), weight (Cin, Cout/groups, KH, KW); the gradient
    of conv2d with respect to its input (they share kernels)."""
    return _conv_transpose_nd("conv_transpose2d", 2, input, weight, bias, stride, padding,
                              output_padding, groups, dilation)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    return _conv_transpose_nd("conv_transpose1d", 1, input, weight, bias, stride, padding,
                              output_padding, groups, dilation)
