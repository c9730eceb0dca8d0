"""Activation functions (PyTorch's definitions and gradients at the kinks).

ReLU, GELU and SiLU run fused Numba kernels (minicnn.kernels.norm) forward and backward; their
backward is itself a Function (ReLUGrad, GELUGrad, SiLUGrad) with its own backward, so second
derivatives work. The others compute the forward with array code and write the backward with
differentiable Tensor ops (from the saved output where that is cheaper: sigmoid, tanh, ELU...).
"""
import math

from ..autograd import Function, is_grad_enabled
from ..devices import get_array_module, on_cuda_kernels
from ..kernels import norm as K
from ..kernels import softmax as KS
from ..tensor import Tensor
from .arith import where
from .elementwise import abs as _abs
from .elementwise import exp as _exp
from .reduce import sum as _sum
from .shape import broadcast_to, reshape, sum_to
from .util import normalize_axis, shape_str


def _c(array, dtype):
    """A constant Tensor (no graph) of the given dtype."""
    return Tensor._wrap(array.astype(dtype, copy=False))


def _float_check(x, op):
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating point tensor, got dtype {x.dtype}")


# --- kernel-backed: ReLU, GELU, SiLU --------------------------------------------------------------

class ReLU(Function):
    def forward(self, x):
        self.y = K.relu_fwd(x)
        return self.y

    def backward(self, gy):
        return ReLUGrad(self.y)(gy)


class ReLUGrad(Function):
    """gx = gy where y > 0; linear in gy (its own backward is the same mask)."""

    def __init__(self, y):
        self.y = y

    def forward(self, gy):
        return K.relu_bwd(self.y, gy)

    def backward(self, ggx):
        return ReLUGrad(self.y)(ggx)


_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_C = 0.044715


class GELU(Function):
    def __init__(self, approximate="none"):
        self.tanh = approximate == "tanh"

    def forward(self, x):
        self.aux = K.gelu_aux(x, self.tanh)  # exp(-x^2/2) on the CPU float32 path, reused
        return K.gelu_fwd(x, self.tanh, self.aux)

    def backward(self, gy):
        return GELUGrad(self.tanh, self.aux)(self.inputs[0], gy)


class GELUGrad(Function):
    """gx = gy * GELU'(x); backward: (ggx * gy * GELU''(x), ggx * GELU'(x))."""

    def __init__(self, tanh, aux=None):
        self.tanh, self.aux = tanh, aux

    def forward(self, x, gy):
        return K.gelu_bwd(x, gy, self.tanh, self.aux)

    def backward(self, ggx):
        x, gy = self.inputs
        if self.tanh:
            u = (x + _GELU_C * x * x * x) * _SQRT_2_OVER_PI
            t = tanh(u)
            du = (1.0 + 3.0 * _GELU_C * x * x) * _SQRT_2_OVER_PI
            d2u = x * (6.0 * _GELU_C * _SQRT_2_OVER_PI)
            sech2 = 1.0 - t * t
            d2 = sech2 * du - x * t * sech2 * du * du + 0.5 * x * sech2 * d2u
        else:
            d2 = (2.0 - x * x) * _exp(x * x * -0.5) * _INV_SQRT_2PI
        gx = ggx * gy * d2 if x.requires_grad else None
        ggy = GELUGrad(self.tanh)(x, ggx) if gy.requires_grad else None
        return gx, ggy


class SiLU(Function):
    def forward(self, x):
        # float32 CPU (fused kernels with a vectorised exp) and CUDA: recomputing s is cheaper
        if x.dtype == "float32" or on_cuda_kernels(x):
            self.s = None
            return K.silu_fwd(x)
        self.s = K.sigmoid(x)  # saved: the backward then needs no exp
        return K.silu_fwd(x, self.s)

    def backward(self, gy):
        return SiLUGrad(self.s)(self.inputs[0], gy)


class SiLUGrad(Function):
    """gx = gy * s (1 + x (1 - s)), s = sigmoid(x); SiLU'' = s (1 - s) (2 + x (1 - 2 s))."""

    def __init__(self, s=None):
        self.s = s

    def forward(self, x, gy):
        return K.silu_bwd(x, gy, self.s)

    def backward(self, ggx):
        x, gy = self.inputs
        gx = None
        if x.requires_grad:
            s = sigmoid(x)
            gx = ggx * gy * (s * (1.0 - s) * (2.0 + x * (1.0 - 2.0 * s)))
        ggy = SiLUGrad()(x, ggx) if gy.requires_grad else None
        return gx, ggy


# --- from the saved output ------------------------------------------------------------------------

class Sigmoid(Function):
    def forward(self, x):
        self.y = K.sigmoid(x)  # float32 CPU: a Numba kernel with a vectorised exp
        return self.y

    def backward(self, gy):
        y = self.retained_output(self.y)
        return gy * y * (1.0 - y)


class Tanh(Function):
    def forward(self, x):
        self.y = get_array_module(x).tanh(x)
        return self.y

    def backward(self, gy):
        y = self.retained_output(self.y)
        return gy * (1.0 - y * y)


class ELU(Function):
    """alpha (exp(x) - 1) for x <= 0 (scaled by `scale`, `input_scale` as in torch's elu)."""

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

    def backward(self, gy):
        return gy * _c(self.d, gy.dtype)


class Hardtanh(_Masked):
    def __init__(self, lo=-1.0, hi=1.0):
        self.lo, self.hi = lo, hi

    def forward(self, x):
        xp = get_array_module(x)
        self.d = (x > self.lo) & (x < self.hi)
        return xp.clip(x, self.lo, self.hi).astype(x.dtype, copy=False)


class LeakyReLU(_Masked):
    def __init__(self, slope=0.01):
        self.slope = float(slope)

    def forward(self, x):
        xp = get_array_module(x)
        pos = x > 0
        self.d = xp.where(pos, 1.0, self.slope)
        return xp.where(pos, x, x * self.slope).astype(x.dtype, copy=False)


class Hardsigmoid(_Masked):
    def forward(self, x):
        xp = get_array_module(x)
        self.d = ((x > -3) & (x < 3)) / 6.0
        return xp.clip(x / 6.0 + 0.5, 0, 1).astype(x.dtype, copy=False)


class Hardswish(Function):
    def forward(self, x):
        xp = get_array_module(x)
        self.mid = (x >= -3) & (x <= 3)
        self.hi = x > 3
        return (x * xp.clip(x + 3, 0, 6) / 6.0).astype(x.dtype, copy=False)

    def backward(self, gy):
        x = self.inputs[0]
        return gy * where(self.mid, x * (1.0 / 3.0) + 0.5, _c(self.hi, x.dtype))


# --- composed backward ----------------------------------------------------------------------------

class Mish(Function):
    def forward(self, x):
        xp = get_array_module(x)
        sp = xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))
        return (x * xp.tanh(sp)).astype(x.dtype, copy=False)

    def backward(self, gy):
        x = self.inputs[0]
        t = tanh(Softplus()(x))
        return gy * (t + x * (1.0 - t * t) * sigmoid(x))


class Softsign(Function):
    def forward(self, x):
        return x / (1 + get_array_module(x).abs(x))

    def backward(self, gy):
        a = 1.0 + _abs(self.inputs[0])
        return gy / (a * a)


class PReLU(Function):
    """y = x for x > 0, w[c] x otherwise; w has 1 element or one per channel (dim 1)."""

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
    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        self.y = KS.softmax_fwd(x, self.axis)  # the CUDA kernel on the GPU
        return self.y

    def backward(self, gy):
        if not is_grad_enabled() and on_cuda_kernels(self.y):  # fused CUDA kernel
            return Tensor._wrap(KS.softmax_bwd(self.y, gy.data, self.axis))
        y = self.retained_output(self.y)
        gyy = gy * y
        return gyy - y * _sum(gyy, self.axis, True)


class LogSoftmax(Function):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        self.y = KS.softmax_fwd(x, self.axis, log=True)  # the CUDA kernel on the GPU
        return self.y

    def backward(self, gy):
        if not is_grad_enabled() and on_cuda_kernels(self.y):  # fused CUDA kernel
            return Tensor._wrap(KS.softmax_bwd(self.y, gy.data, self.axis, log=True))
        y = self.retained_output(self.y)
        return gy - _exp(y) * _sum(gy, self.axis, True)


# --- functional forms -------------------------------------------------------------------------

def relu(x):
    _float_check(x, "relu")
    return ReLU()(x)


def relu6(x):
    _float_check(x, "relu6")
    return Hardtanh(0.0, 6.0)(x)


def leaky_relu(x, negative_slope=0.01):
    _float_check(x, "leaky_relu")
    return LeakyReLU(negative_slope)(x)


def prelu(x, weight):
    _float_check(x, "prelu")
    C = x.shape[1] if x.ndim >= 2 else 1
    if weight.ndim > 1 or weight.data.size not in (1, C):
        raise ValueError(f"prelu: weight of shape {shape_str(weight.shape)} must have 1 element "
                         f"or one per channel ({C}) of the input of shape {shape_str(x.shape)}")
    return PReLU()(x, weight)


def elu(x, alpha=1.0):
    _float_check(x, "elu")
    return ELU(alpha)(x)


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(x):
    _float_check(x, "selu")
    return ELU(_SELU_ALPHA, _SELU_SCALE)(x)


def celu(x, alpha=1.0):
    _float_check(x, "celu")
    if alpha == 0:
        raise ValueError("celu: alpha must not be 0")
    return ELU(alpha, 1.0, 1.0 / alpha)(x)


def gelu(x, approximate="none"):
    _float_check(x, "gelu")
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return GELU(approximate)(x)


def sigmoid(x):
    _float_check(x, "sigmoid")
    return Sigmoid()(x)


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
    return Hardswish()(x)


def silu(x):
    _float_check(x, "silu")
    return SiLU()(x)


def mish(x):
    _float_check(x, "mish")
    return Mish()(x)


def softplus(x, beta=1.0, threshold=20.0):
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
    if dtype is not None:
        x = x.to(dtype)
    _float_check(x, "softmax")
    return Softmax(_softmax_axis(x, dim, "softmax"))(x)


def log_softmax(x, dim=None, dtype=None):
    if dtype is not None:
        x = x.to(dtype)
    _float_check(x, "log_softmax")
    return LogSoftmax(_softmax_axis(x, dim, "log_softmax"))(x)


# --- fused bias + activation ------------------------------------------------------------------

BIAS_ACTIVATIONS = ("identity", "relu", "leaky_relu", "gelu", "gelu_tanh", "sigmoid", "silu",
                    "tanh")


def _act_d2(z, act):
    """act''(z) as a Tensor expression (None where it is 0: the piecewise-linear ones)."""
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
    return None


class BiasAct(Function):
    """y = act(x + b[c]), c the index along `dim`: one fused CUDA kernel on the GPU; on the CPU
    the add, then the activation's kernel. Nothing is saved beyond the inputs."""

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
            d2 = _act_d2(x + reshape(b, bshape), self.act)
            if d2 is not None:
                g2 = ggx * gy * d2
                gx2 = g2 if x.requires_grad else None
                gb2 = reshape(sum_to(g2, bshape), b.shape) if b.requires_grad else None
        return gx2, gb2, ggy


def bias_act(x, bias, activation="relu", dim=1, negative_slope=0.01):
    """act(x + bias) with bias (x.shape[dim],) broadcast along `dim`, fused in one pass (one
    CUDA kernel each way on the GPU). activation: 'identity', 'relu', 'leaky_relu'
    (negative_slope), 'gelu', 'gelu_tanh', 'sigmoid', 'silu' or 'tanh'."""
    _float_check(x, "bias_act")
    if activation not in BIAS_ACTIVATIONS:
        raise ValueError(f"bias_act: unknown activation {activation!r}; expected one of "
                         f"{', '.join(BIAS_ACTIVATIONS)}")
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
