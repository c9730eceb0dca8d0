"""Activation functions (PyTorch's definitions and gradients at the kinks).

The kernel-backed ones (ReLU, GELU, SiLU, Mish, Hardswish; sigmoid's forward) run the activation kernel
family by name, forward and backward (minicnn.kernels.activation); the backward is itself a
Function, ActivationGrad, whose own backward uses the second derivative below, so derivatives of
any order exist. The others compute the forward with array code and write the backward with
differentiable Tensor ops (from the saved output where that is cheaper: sigmoid, tanh, ELU...).
Softmax and log-softmax run the softmax family, with SoftmaxGrad as their backward.
"""
import math

from ..autograd import Function
from ..devices import get_array_module
from ..dtypes import kind as dtype_kind
from ..kernels import activation as K
from ..kernels import softmax as KS
from ..tensor import Tensor
from . import autocast
from .arith import where
from .elementwise import abs as _abs
from .elementwise import exp as _exp
from .elementwise import sign as _sign
from .reduce import sum as _sum
from .shape import broadcast_to, reshape, sum_to
from .util import check_kernel_float, composite_in_float32, normalize_axis, shape_str


def _c(array, dtype):
    """A constant Tensor (no graph) of the given dtype."""
    return Tensor._wrap(array.astype(dtype, copy=False))


def _float_check(x, op):
    if dtype_kind(x.dtype) != "f":
        raise TypeError(f"{op}: expected a floating point tensor, got dtype {x.dtype}")


# --- kernel-backed: the activation family, by name ------------------------------------------

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_C = 0.044715


def _second_derivative(z, act):
    """act''(z) as a Tensor expression; None where it is 0 (the piecewise-linear ones)."""
    if act == "sigmoid":
        s = sigmoid(z)
        return s * (1.0 - s) * (1.0 - 2.0 * s)
    if act == "tanh":
        t = tanh(z)
        return (t * t - 1.0) * t * 2.0
    if act == "silu":
        s = sigmoid(z)
        return s * (1.0 - s) * (2.0 + z * (1.0 - 2.0 * s))
    if act == "gelu":
        return (2.0 - z * z) * _exp(z * z * -0.5) * _INV_SQRT_2PI
    if act == "gelu_tanh":
        t = tanh((z + _GELU_C * z * z * z) * _SQRT_2_OVER_PI)
        du = (1.0 + 3.0 * _GELU_C * z * z) * _SQRT_2_OVER_PI
        sech2 = 1.0 - t * t
        return sech2 * du - z * t * sech2 * du * du + 0.5 * z * sech2 * (
            z * (6.0 * _GELU_C * _SQRT_2_OVER_PI))
    if act == "hardswish":   # 1/3 on (-3, 3), 0 elsewhere: a constant of z
        return _c(((z.array > -3) & (z.array < 3)) / 3.0, z.dtype)
    if act == "mish":   # f = z t, t = tanh(softplus z): f'' = (1 - t^2) s (2 + z (1 - s - 2 t s))
        s = sigmoid(z)
        t = tanh(Softplus()(z))
        return (1.0 - t * t) * s * (2.0 + z * (1.0 - s - 2.0 * t * s))
    return None


class Activation(Function):
    """y = act(x) by the activation kernels (act: a name the family knows, e.g. 'relu')."""
    saves = (0,)

    def __init__(self, act, slope=0.0):
        self.act, self.slope = act, slope

    def forward(self, x):
        return K.forward(x, self.act, self.slope)

    def backward(self, gy):
        return ActivationGrad(self.act, self.slope)(self.inputs[0], gy)


class ActivationGrad(Function):
    """gx = gy * act'(x); linear in gy, so its backward is (ggx * gy * act''(x), this op on
    ggx)."""
    saves = {0: (0, 1), 1: (0,)}

    def __init__(self, act, slope=0.0):
        self.act, self.slope = act, slope

    def forward(self, x, gy):
        return K.backward(x, gy, self.act, self.slope)

    def backward(self, ggx):
        x, gy = self.inputs
        gx = None
        if x.requires_grad:
            d2 = _second_derivative(x, self.act)
            gx = None if d2 is None else ggx * gy * d2
        ggy = ActivationGrad(self.act, self.slope)(x, ggx) if gy.requires_grad else None
        return gx, ggy


# --- from the saved output ------------------------------------------------------------------------

class Sigmoid(Function):
    saves = ()
    saves_outputs = (0,)

    def forward(self, x):
        self.y = K.forward(x, "sigmoid")  # float32 CPU: a Numba kernel with a vectorised exp
        return self.y

    def backward(self, gy):
        y = self.retained_output(self.y)
        return gy * y * (1.0 - y)


class Tanh(Function):
    saves = ()
    saves_outputs = (0,)

    def forward(self, x):
        self.y = get_array_module(x).tanh(x)
        return self.y

    def backward(self, gy):
        y = self.retained_output(self.y)
        return gy * (1.0 - y * y)


class ELU(Function):
    """alpha (exp(x) - 1) for x <= 0 (scaled by `scale`, `input_scale` as in torch's elu)."""
    saves = ()  # the output, and a mask made in the forward
    saves_outputs = (0,)

    def __init__(self, alpha=1.0, scale=1.0, input_scale=1.0):
        self.alpha, self.scale, self.input_scale = float(alpha), float(scale), float(input_scale)

    def forward(self, x):
        xp = get_array_module(x)
        self.pos = x > 0
        neg = self.alpha * xp.expm1(xp.minimum(x, 0) * self.input_scale)
        self.y = (self.scale * xp.where(self.pos, x, neg)).astype(x.dtype, copy=False)
        return self.y

    def backward(self, gy):
        y = self.retained_output(self.y)
        # x <= 0: d/dx scale * alpha * (exp(s x) - 1) = s * (y + scale * alpha)
        d = where(self.pos, self.scale, (y + self.scale * self.alpha) * self.input_scale)
        return gy * d


class Softplus(Function):
    """log(1 + exp(beta x)) / beta, and x itself where beta x > threshold."""
    saves = (0,)

    def __init__(self, beta=1.0, threshold=20.0):
        self.beta, self.threshold = float(beta), float(threshold)

    def forward(self, x):
        xp = get_array_module(x)
        bx = x * self.beta
        self.lin = bx > self.threshold
        sp = (xp.maximum(bx, 0) + xp.log1p(xp.exp(-xp.abs(bx)))) / self.beta
        return xp.where(self.lin, x, sp).astype(x.dtype, copy=False)

    def backward(self, gy):
        x = self.inputs[0]
        return gy * where(self.lin, 1.0, sigmoid(x * self.beta))


# --- piecewise linear (constant masks) ----------------------------------------------------------

class _Masked(Function):
    """y = f(x) with f' piecewise constant: backward multiplies by a saved constant."""
    saves = ()

    def backward(self, gy):
        return gy * _c(self.d, gy.dtype)


class Hardtanh(_Masked):
    def __init__(self, lo=-1.0, hi=1.0):
        self.lo, self.hi = lo, hi

    def forward(self, x):
        xp = get_array_module(x)
        self.d = (x > self.lo) & (x < self.hi)
        return xp.clip(x, self.lo, self.hi).astype(x.dtype, copy=False)


class Hardsigmoid(_Masked):
    def forward(self, x):
        xp = get_array_module(x)
        self.d = ((x > -3) & (x < 3)) / 6.0
        return xp.clip(x / 6.0 + 0.5, 0, 1).astype(x.dtype, copy=False)


# --- composed backward ----------------------------------------------------------------------------

class Softsign(Function):
    saves = (0,)

    def forward(self, x):
        return x / (1 + get_array_module(x).abs(x))

    def backward(self, gy):
        """PyTorch's (a composite there): the quotient rule through |x|, which gives NaN at
        x = +-inf (inf / inf), where the simplified gy / (1 + |x|)^2 would give 0."""
        x = self.inputs[0]
        a = 1.0 + _abs(x)
        return gy / a - gy * x / (a * a) * _sign(x)


class PReLU(Function):
    """y = x for x > 0, w[c] x otherwise; w has 1 element or one per channel (dim 1)."""
    saves = {0: (1,), 1: (0,)}  # gx reads w, gw reads x

    def forward(self, x, w):
        self.bshape = (1, w.size) + (1,) * (x.ndim - 2) if w.size > 1 else (1,) * max(x.ndim, 1)
        self.pos = x > 0
        wb = w.reshape(self.bshape)
        return get_array_module(x).where(self.pos, x, wb * x).astype(x.dtype, copy=False)

    def backward(self, gy):
        x, w = self.inputs
        wb = reshape(w, self.bshape)
        gx = gy * where(self.pos, 1.0, wb) if x.requires_grad else None
        gw = None
        if w.requires_grad:
            gw = reshape(sum_to(where(self.pos, 0.0, gy * x), self.bshape), w.shape)
        return gx, gw


class Softmax(Function):
    """softmax (log=False) or log-softmax (log=True) along `axis`; backward: SoftmaxGrad."""
    saves = ()
    saves_outputs = (0,)

    def __init__(self, axis, log=False):
        self.axis, self.log = axis, log

    def forward(self, x):
        self.y = KS.softmax_fwd(x, self.axis, self.log)
        return self.y

    def backward(self, gy):
        return SoftmaxGrad(self.axis, self.log)(self.retained_output(self.y), gy)


class SoftmaxGrad(Function):
    """gx from the forward's output y: y (gy - S(gy y)) for softmax, gy - e^y S(gy) for
    log-softmax, S the sum along the axis. Linear in gy; its backward, with ggx:
    softmax     d/dgy = this op on ggx, d/dy = ggx (gy - S(gy y)) - gy S(ggx y)
    log-softmax d/dgy = ggx - S(ggx e^y),   d/dy = -ggx e^y S(gy)."""
    saves = {0: (0, 1), 1: (0,)}

    def __init__(self, axis, log):
        self.axis, self.log = axis, log

    def forward(self, y, gy):
        return KS.softmax_bwd(y, gy, self.axis, self.log)

    def backward(self, ggx):
        y, gy = self.inputs
        ax = self.axis
        if self.log:
            e = _exp(y)
            gyy = -ggx * e * _sum(gy, ax, True) if y.requires_grad else None
            ggy = ggx - _sum(ggx * e, ax, True) if gy.requires_grad else None
            return gyy, ggy
        gyy = ggx * (gy - _sum(gy * y, ax, True)) - gy * _sum(ggx * y, ax, True) \
            if y.requires_grad else None
        ggy = SoftmaxGrad(ax, False)(y, ggx) if gy.requires_grad else None
        return gyy, ggy


class LogSoftmax(Softmax):
    def __init__(self, axis):
        super().__init__(axis, log=True)


# --- functional forms -------------------------------------------------------------------------

def relu(x):
    _float_check(x, "relu")
    check_kernel_float(x, "relu")
    return Activation("relu")(x)


def relu6(x):
    _float_check(x, "relu6")
    return Hardtanh(0.0, 6.0)(x)


def leaky_relu(x, negative_slope=0.01):
    _float_check(x, "leaky_relu")
    return Activation("leaky_relu", float(negative_slope))(x)


def prelu(x, weight):
    x, weight = autocast.args("prelu", x, weight)
    _float_check(x, "prelu")
    C = x.shape[1] if x.ndim >= 2 else 1
    if weight.ndim > 1 or weight.array.size not in (1, C):
        raise ValueError(f"prelu: weight of shape {shape_str(weight.shape)} must have 1 element "
                         f"or one per channel ({C}) of the input of shape {shape_str(x.shape)}")
    return PReLU()(x, weight)


@composite_in_float32   # as selu
def elu(x, alpha=1.0):
    _float_check(x, "elu")
    return ELU(alpha)(x)


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


@composite_in_float32   # ELU's backward adds scale * alpha to the output: float32 for half
def selu(x):
    _float_check(x, "selu")
    return ELU(_SELU_ALPHA, _SELU_SCALE)(x)


@composite_in_float32   # as selu
def celu(x, alpha=1.0):
    _float_check(x, "celu")
    if alpha == 0:
        raise ValueError("celu: alpha must not be 0")
    return ELU(alpha, 1.0, 1.0 / alpha)(x)


def gelu(x, approximate="none"):
    _float_check(x, "gelu")
    check_kernel_float(x, "gelu")
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return Activation("gelu_tanh" if approximate == "tanh" else "gelu")(x)


def sigmoid(x):
    _float_check(x, "sigmoid")
    return Sigmoid()(x)


@composite_in_float32   # the backward gy (1 - y^2) is three ops: float32 for half, one rounding
def tanh(x):
    _float_check(x, "tanh")
    return Tanh()(x)


def hardtanh(x, min_val=-1.0, max_val=1.0):
    _float_check(x, "hardtanh")
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val {min_val} cannot be greater than max_val {max_val}")
    return Hardtanh(min_val, max_val)(x)


def hardsigmoid(x):
    _float_check(x, "hardsigmoid")
    return Hardsigmoid()(x)


def hardswish(x):
    _float_check(x, "hardswish")
    check_kernel_float(x, "hardswish")
    return Activation("hardswish")(x)


def silu(x):
    _float_check(x, "silu")
    return Activation("silu")(x)


def mish(x):
    _float_check(x, "mish")
    check_kernel_float(x, "mish")
    return Activation("mish")(x)


def softplus(x, beta=1.0, threshold=20.0):
    x = autocast.args("softplus", x)
    _float_check(x, "softplus")
    if beta == 0:
        raise ValueError("softplus: beta must not be 0")
    return Softplus(beta, threshold)(x)


def softsign(x):
    _float_check(x, "softsign")
    return Softsign()(x)


def _softmax_axis(x, dim, op):
    if dim is None:  # PyTorch's legacy implicit choice
        dim = 0 if x.ndim in (0, 1, 3) else 1
    return normalize_axis(dim, x.ndim, op)


def softmax(x, dim=None, dtype=None):
    x = x.to(dtype) if dtype is not None else autocast.args("softmax", x)
    _float_check(x, "softmax")
    return Softmax(_softmax_axis(x, dim, "softmax"))(x)


def log_softmax(x, dim=None, dtype=None):
    x = x.to(dtype) if dtype is not None else autocast.args("log_softmax", x)
    _float_check(x, "log_softmax")
    return LogSoftmax(_softmax_axis(x, dim, "log_softmax"))(x)


# --- fused bias + activation ------------------------------------------------------------------



class BiasAct(Function):
    """y = act(x + b[c]), c the index along `dim`: one fused CUDA kernel on the GPU; on the CPU
    the add, then the activation's kernel. Nothing is saved beyond the inputs."""
    saves = (0, 1)

    def __init__(self, act, dim, slope=0.01):
        self.act, self.dim, self.slope = act, dim, slope

    def forward(self, x, b):
        return K.bias_act_fwd(x, b, self.act, self.dim, self.slope)

    def backward(self, gy):
        x, b = self.inputs
        gx, gb = BiasActGrad(self.act, self.dim, self.slope)(x, b, gy)
        return (gx if x.requires_grad else None), (gb if b.requires_grad else None)


class BiasActGrad(Function):
    """(gx, gb) = (gy * act'(z), sum of gy * act'(z) over all axes but dim), z = x + b[c].

    Backward, with h = ggx + ggb[c]: d/dgy = h * act'(z) (this op again), d/dz = h * gy *
    act''(z) (Tensor ops), summed over the other axes for b."""
    saves = {0: (0, 1, 2), 1: (0, 1, 2), 2: (0, 1)}

    def __init__(self, act, dim, slope=0.01):
        self.act, self.dim, self.slope = act, dim, slope

    def forward(self, x, b, gy):
        return K.bias_act_bwd(x, b, gy, self.act, self.dim, self.slope)

    def backward(self, ggx, ggb):
        x, b, gy = self.inputs
        bshape = K.bias_shape(x.ndim, self.dim, b.shape[0])
        if ggb is not None:
            gb_full = broadcast_to(reshape(ggb, bshape), x.shape)
            ggx = gb_full if ggx is None else ggx + gb_full
        if ggx is None:
            return None, None, None
        ggy = (BiasActGrad(self.act, self.dim, self.slope)(x, b, ggx)[0]
               if gy.requires_grad else None)
        gx2 = gb2 = None
        if x.requires_grad or b.requires_grad:
            d2 = _second_derivative(x + reshape(b, bshape), self.act)
            if d2 is not None:
                g2 = ggx * gy * d2
                gx2 = g2 if x.requires_grad else None
                gb2 = reshape(sum_to(g2, bshape), b.shape) if b.requires_grad else None
        return gx2, gb2, ggy


def bias_act(x, bias, activation="relu", dim=1, negative_slope=0.01):
    """act(x + bias) with bias (x.shape[dim],) broadcast along `dim`, fused in one pass (one
    CUDA kernel each way on the GPU). activation: any of the activation kernels' names
    (minicnn.kernels.activation.names(): 'identity', 'relu', 'leaky_relu' with negative_slope,
    'gelu', 'gelu_tanh', 'sigmoid', 'silu', 'tanh', 'mish', 'hardswish')."""
    _float_check(x, "bias_act")
    check_kernel_float(x, "bias_act")
    if activation not in K.names():
        raise ValueError(f"bias_act: unknown activation {activation!r}; expected one of "
                         f"{', '.join(K.names())}")
    if x.ndim == 0:
        raise ValueError("bias_act: expected an input with at least 1 dim, got shape []")
    d = normalize_axis(dim, x.ndim, "bias_act")
    if bias.ndim != 1 or bias.shape[0] != x.shape[d]:
        raise ValueError(f"bias_act: bias of shape {shape_str(bias.shape)} must be 1-D with "
                         f"{x.shape[d]} elements (the size of dim {dim} of the input of shape "
                         f"{shape_str(x.shape)})")
    if bias.dtype != x.dtype:
        raise TypeError(f"bias_act: bias dtype {bias.dtype} differs from the input's {x.dtype}")
    return BiasAct(activation, d, float(negative_slope))(x, bias)
