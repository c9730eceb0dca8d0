"""Normalization ops: batch, layer, instance and group norm (PyTorch's semantics).

Two fused Functions cover the four norms, each with its fused backward as a Function of its own:
  RowNorm / RowNormGrad    x viewed as (N, G, S, I), statistics per (n, g) over (S, I), affine
               per (g, s): layer norm (G=1, S=prod(normalized_shape), I=1 or S=1, I=K without
               affine), instance norm (G=C, S=1, I=H*W), group norm (G groups, S=C/G, I=H*W).
  BatchNormTrain / BatchNormGrad   x viewed as (N, C, I), statistics per channel over (N, I).
Forward and backward run the norm kernel family (minicnn.kernels.norm: one reduction pass and
one apply pass in backward). The two gradient Functions share their own backward
(`_NormGrad.backward`): the second derivative written with differentiable Tensor ops, so
derivatives of any order exist. The eval-mode path (running statistics) is BatchNormEval, an
affine map with constant statistics.
"""
import math
import numbers

from ..autograd import Function
from ..autograd.version import bump as bump_version
from ..devices import get_array_module
from ..dtypes import HALF_FLOATS
from ..dtypes import kind as dtype_kind
from ..kernels import norm as K
from ..tensor import Tensor
from . import autocast
from .reduce import mean as _mean
from .reduce import sum as _sum
from .shape import broadcast_to, reshape
from .util import check_kernel_float, composite_in_float32, shape_str


class _Layout:
    """x seen as shape4, normalised over the axes `red`; the affine weight broadcast as wshape4
    and its gradient summed over `waxes`."""
    __slots__ = ("shape4", "red", "wshape4", "waxes")

    def __init__(self, shape4, red, wshape4, waxes):
        self.shape4, self.red, self.wshape4, self.waxes = shape4, red, wshape4, waxes


class _NormGrad(Function):
    """(gx, [gw], [gb]) of y = xhat * w + b, xhat = (x - mean) * r normalised over `red`; inputs
    (x, w or None, gy). Outputs: gx, then gw if there is a weight, then gb if there is a bias.

    Its backward, with P(v) = r (v - mean(v) - xhat mean(v xhat)) (the norm's own input
    gradient, self-adjoint), g = gy * w, and the incoming (ggx, ggw, ggb):
      d/dgy = w P(ggx) + ggw xhat + ggb
      d/dw  = sum_waxes gy P(ggx)
      d/dx  = r^2 ((3AB - C) xhat - B (ggx - mean(ggx)) - A (g - mean(g))) + P(gy ggw)
    with A = mean(ggx xhat), B = mean(g xhat), C = mean(ggx g) - mean(ggx) mean(g), all means
    over `red` (from differentiating gx = P(g) through r and xhat, and gw = sum gy xhat)."""
    saves = (0, 1, 2)

    def __init__(self, layout, eps, has_w, b_shape):
        self.layout, self.eps, self.has_w, self.b_shape = layout, float(eps), has_w, b_shape
        self.has_b = b_shape is not None

    def backward(self, ggx, *rest):
        x, w, gy = self.inputs
        rest = list(rest)
        ggw = rest.pop(0) if self.has_w else None
        ggb = rest.pop(0) if self.has_b else None
        L = self.layout
        red = L.red
        x4, gy4 = reshape(x, L.shape4), reshape(gy, L.shape4)
        w4 = reshape(w, L.wshape4) if w is not None else None
        xc = x4 - _mean(x4, red, True)
        r = (_mean(xc * xc, red, True) + self.eps) ** -0.5
        xh = xc * r

        def P(v):
            return r * (v - _mean(v, red, True) - xh * _mean(v * xh, red, True))
        gx = gw = ggy = None
        ggx4 = reshape(ggx, L.shape4) if ggx is not None else None
        ggw4 = reshape(ggw, L.wshape4) if ggw is not None else None
        if ggx4 is not None:
            pg = P(ggx4)
            g = gy4 * w4 if w4 is not None else gy4
            A, B = _mean(ggx4 * xh, red, True), _mean(g * xh, red, True)
            C = _mean(ggx4 * g, red, True) - _mean(ggx4, red, True) * _mean(g, red, True)
            gx = r * r * ((3.0 * A * B - C) * xh - B * (ggx4 - _mean(ggx4, red, True))
                          - A * (g - _mean(g, red, True)))
            ggy = pg * w4 if w4 is not None else pg
            if w is not None and w.requires_grad:
                gw = reshape(_sum(gy4 * pg, L.waxes), w.shape)
        if ggw4 is not None:
            px = P(gy4 * ggw4)
            gx = px if gx is None else gx + px
            t = ggw4 * xh
            ggy = t if ggy is None else ggy + t
        if ggb is not None:
            t = broadcast_to(reshape(ggb, L.wshape4), L.shape4)
            ggy = t if ggy is None else ggy + t
        return (reshape(gx, x.shape) if gx is not None and x.requires_grad else None, gw,
                reshape(ggy, gy.shape) if ggy is not None and gy.requires_grad else None)


def _grads_out(x, w, b, outs):
    """The (gx, gw, gb) of a norm's backward from its gradient Function's outputs."""
    outs = list(outs) if isinstance(outs, tuple) else [outs]
    gx = outs.pop(0)
    gw = outs.pop(0) if w is not None else None
    gb = outs.pop(0) if b is not None else None
    return (gx if x.requires_grad else None, gw if w is not None and w.requires_grad else None,
            gb if b is not None and b.requires_grad else None)


class RowNorm(Function):
    saves = (0, 1)

    def __init__(self, shape4, eps):
        self.shape4, self.eps = tuple(shape4), float(eps)

    def forward(self, x, w, b):
        N, G, S, _ = self.shape4
        w2 = None if w is None else w.reshape(G, S)
        b2 = None if b is None else b.reshape(G, S)
        y4, self.mean, self.rstd = K.row_norm_fwd(x.reshape(self.shape4), w2, b2, self.eps)
        return y4.reshape(x.shape)

    def backward(self, gy):
        x, w, b = self.inputs
        grad = RowNormGrad(self.shape4, self.eps, self.mean, self.rstd, w is not None,
                           None if b is None else b.shape)
        return _grads_out(x, w, b, grad(x, w, gy))


class RowNormGrad(_NormGrad):
    def __init__(self, shape4, eps, mean, rstd, has_w, b_shape):
        _, G, S, _ = shape4
        super().__init__(_Layout(shape4, (2, 3), (1, G, S, 1), (0, 3)), eps, has_w, b_shape)
        self.mean, self.rstd = mean, rstd

    def forward(self, x, w, gy):
        shape4 = self.layout.shape4
        w2 = None if w is None else w.reshape(shape4[1:3])
        gx, gw, gb = K.row_norm_bwd(gy.reshape(shape4), x.reshape(shape4), self.mean, self.rstd,
                                    w2, out_shape=x.shape)
        outs = [gx]                                  # owned, x's shape
        if self.has_w:
            outs.append(_sum0(gw).reshape(w.shape).astype(w.dtype))
        if self.has_b:
            outs.append(_sum0(gb).reshape(self.b_shape).astype(x.dtype))
        return tuple(outs) if len(outs) > 1 else outs[0]


def _sum0(a):
    """a.sum(0), without a reduction pass when axis 0 has length 1 (the layer-norm layout)."""
    return a[0] if a.shape[0] == 1 else a.sum(0)


class BatchNormTrain(Function):
    """Batch statistics; self.mean / self.var (biased, float64) are kept for the running update."""
    saves = (0, 1)

    def __init__(self, eps):
        self.eps = float(eps)

    def forward(self, x, w, b):
        xp = get_array_module(x)
        N, C = x.shape[:2]
        self.shape3 = (N, C, x.size // max(N * C, 1))
        x3 = x.reshape(self.shape3)
        self.mean, self.var = K.chan_stats(x3)
        self.rstd = 1.0 / xp.sqrt(self.var + self.eps)
        scale = self.rstd if w is None else w.astype(xp.float64) * self.rstd
        shift = -self.mean * scale
        if b is not None:
            shift = shift + b
        return K.chan_affine(x3, scale, shift).reshape(x.shape)

    def backward(self, gy):
        x, w, b = self.inputs
        grad = BatchNormGrad(self.shape3, self.eps, self.mean, self.rstd, w is not None,
                             None if b is None else b.shape)
        return _grads_out(x, w, b, grad(x, w, gy))


class BatchNormGrad(_NormGrad):
    def __init__(self, shape3, eps, mean, rstd, has_w, b_shape):
        N, C, I = shape3  # noqa: E741
        super().__init__(_Layout((N, C, I, 1), (0, 2, 3), (1, C, 1, 1), (0, 2, 3)), eps, has_w,
                         b_shape)
        self.shape3, self.mean, self.rstd = shape3, mean, rstd

    def forward(self, x, w, gy):
        x3, gy3 = x.reshape(self.shape3), gy.reshape(self.shape3)
        s1, s2 = K.chan_bwd_sums(gy3, x3, self.mean)
        outs = [K.chan_bwd_apply(gy3, x3, self.mean, self.rstd, w, s1, s2).reshape(x.shape)]
        if self.has_w:
            outs.append((s2 * self.rstd).astype(w.dtype))
        if self.has_b:
            outs.append(s1.astype(x.dtype))
        return tuple(outs) if len(outs) > 1 else outs[0]


class BatchNormEval(Function):
    """y = (x - mean) * rstd * w + b per channel (dim 1) with constant statistics."""
    saves = {0: (1,), 1: (0,)}  # and the running mean (save_array)

    def __init__(self, mean, var, eps):
        self.mean, self.var, self.eps = self.save_array(mean), var, float(eps)

    def forward(self, x, w, b):
        xp = get_array_module(x)
        N, C = x.shape[:2]
        self.rstd = 1.0 / xp.sqrt(self.var.astype(xp.float64) + self.eps)
        scale = self.rstd if w is None else w.astype(xp.float64) * self.rstd
        shift = -self.mean.astype(xp.float64) * scale
        if b is not None:
            shift = shift + b
        return K.chan_affine(x.reshape(N, C, -1), scale, shift).reshape(x.shape)

    def backward(self, gy):
        x, w, b = self.inputs
        C = x.shape[1]
        bshape = (1, C) + (1,) * (x.ndim - 2)
        axes = tuple(i for i in range(x.ndim) if i != 1)
        rstd = Tensor._wrap(self.rstd.astype(x.dtype).reshape(bshape))
        gx = gy * rstd if w is None else gy * (reshape(w, bshape) * rstd)
        gw = gb = None
        if w is not None and w.requires_grad:
            xhat = (x - Tensor._wrap(self.mean.astype(x.dtype).reshape(bshape))) * rstd
            gw = _sum(gy * xhat, axes)
        if b is not None and b.requires_grad:
            gb = _sum(gy, axes)
        return gx if x.requires_grad else None, gw, gb


@composite_in_float32   # the backward's x-hat is three ops: float32 for half, one rounding
def _normalize_eval(x, weight, bias, running_mean, running_var, eps):
    """Batch norm with the given statistics (batch_norm in eval, instance_norm without input
    statistics). The statistics come as arrays, so their dtype does not decide (float32 running
    statistics with a half input and weight are computed in float32 as well)."""
    return BatchNormEval(running_mean, running_var, eps)(x, weight, bias)


# --- argument checks --------------------------------------------------------------------------

def _check_vec(t, name, C, op, x):
    if t is not None and (t.ndim != 1 or t.shape[0] != C):
        raise ValueError(f"{op}: {name} should contain {C} elements (the input's channels), got "
                         f"shape {shape_str(t.shape)} for input of shape {shape_str(x.shape)}")


def _check_float(x, op):
    if dtype_kind(x.dtype) != "f":
        raise TypeError(f"{op}: expected a floating point input, got dtype {x.dtype}")
    check_kernel_float(x, op)


def _check_same_dtype(x, op, **tensors):
    """Weight, bias and running statistics of the input's dtype, as PyTorch requires (a float64
    input through a float32 layer is refused there, not computed in float64)."""
    other = {name: t.dtype for name, t in tensors.items()
             if t is not None and t.dtype != x.dtype and not _half_with_float32(x, t)}
    if other:
        raise TypeError(f"{op}: expected the input's dtype {x.dtype} for "
                        + ", ".join(f"{name} (got {dt})" for name, dt in other.items())
                        + "; convert the input or the module (.to(dtype))")


def _half_with_float32(x, t):
    """A float16 / bfloat16 input through float32 weights and statistics: PyTorch's mixed-type
    norms (what autocast gives a norm layer after a half conv); computed in float32."""
    return x.dtype in HALF_FLOATS and t.dtype == "float32"


def _check_channels_input(x, op, min_dims, **vectors):
    """A floating input (N, C, *) of at least min_dims dims, and per-channel vectors (by name)
    of C elements or None: the checks batch, instance and group norm share."""
    _check_float(x, op)
    if x.ndim < min_dims:
        raise ValueError(f"{op}: expected an input with at least {min_dims} dims (N, C, *), got "
                         f"shape {shape_str(x.shape)}")
    for name, t in vectors.items():
        _check_vec(t, name, x.shape[1], op, x)
    _check_same_dtype(x, op, **vectors)


def _update_running(running_mean, running_var, mean, var, momentum, var_scale=None):
    """rm = (1 - m) rm + m mean, rv = (1 - m) rv + m var (* var_scale), in place (counted as
    writes, so an eval-mode batch norm that saved the running mean notices)."""
    K.running_update(running_mean.array, running_var.array, mean, var, float(momentum),
                     var_scale)
    bump_version(running_mean.array)
    bump_version(running_var.array)


# --- functional API ---------------------------------------------------------------------------

def _check_momentum(op, momentum):
    """The functional forms take a number (as PyTorch's): None, the layers' cumulative-average
    setting, would otherwise silently leave the running statistics unchanged."""
    if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real):
        raise TypeError(f"{op}: momentum must be a float, got {type(momentum).__name__} "
                        f"(the layers' momentum=None cumulative average is BatchNorm's)")


def batch_norm(input, running_mean, running_var, weight=None, bias=None,  # noqa: A002
               training=False, momentum=0.1, eps=1e-5):
    """F.batch_norm: statistics over every dim but 1; running stats updated in place when
    training (unbiased variance, as PyTorch keeps it)."""
    x = input
    _check_channels_input(x, "batch_norm", 2, running_mean=running_mean,
                          running_var=running_var, weight=weight, bias=bias)
    _check_momentum("batch_norm", momentum)
    C = x.shape[1]
    if training:
        count = x.array.size // max(C, 1)
        if count <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input "
                             f"size {shape_str(x.shape)}")
        fn = BatchNormTrain(eps)
        y = fn(x, weight, bias)
        if running_mean is not None and running_var is not None:
            _update_running(running_mean, running_var, fn.mean, fn.var, momentum,
                            count / (count - 1))
        return y
    if running_mean is None or running_var is None:
        raise ValueError("batch_norm: running_mean and running_var must be given when "
                         "training=False")
    return _normalize_eval(x, weight, bias, running_mean.array, running_var.array, eps)


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None,  # noqa: A002
                  use_input_stats=True, momentum=0.1, eps=1e-5):
    """F.instance_norm: statistics per (n, c) over the spatial dims."""
    x = input
    _check_channels_input(x, "instance_norm", 3, running_mean=running_mean,
                          running_var=running_var, weight=weight, bias=bias)
    _check_momentum("instance_norm", momentum)
    N, C = x.shape[:2]
    I = x.array.size // max(N * C, 1)  # noqa: E741
    if not use_input_stats:
        if running_mean is None or running_var is None:
            raise ValueError("instance_norm: running_mean and running_var must be given when "
                             "use_input_stats=False")
        return _normalize_eval(x, weight, bias, running_mean.array, running_var.array, eps)
    if I <= 1:
        raise ValueError(f"Expected more than 1 spatial element when training, got input size "
                         f"{shape_str(x.shape)}")
    fn = RowNorm((N, C, 1, I), eps)
    y = fn(x, weight, bias)
    if running_mean is not None and running_var is not None:
        xp = get_array_module(x.array)
        var = 1.0 / (fn.rstd * fn.rstd) - eps  # biased per-(n, c) variance
        var = xp.maximum(var, 0.0) * (I / (I - 1))
        _update_running(running_mean, running_var, fn.mean.mean(0), var.mean(0), momentum)
    return y


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):  # noqa: A002
    """F.group_norm: statistics per (n, group) over the group's channels and the spatial dims."""
    x, weight, bias = autocast.args("group_norm", input, weight, bias)
    _check_channels_input(x, "group_norm", 2)
    N, C = x.shape[:2]
    G = int(num_groups)
    if G <= 0 or C % G:
        raise ValueError(f"group_norm: expected number of channels in input to be divisible by "
                         f"num_groups, but got input of shape {shape_str(x.shape)} and "
                         f"num_groups={num_groups}")
    _check_channels_input(x, "group_norm", 2, weight=weight, bias=bias)  # after G, as PyTorch
    I = x.array.size // max(N * C, 1)  # noqa: E741
    return RowNorm((N, G, C // G, I), eps)(x, weight, bias)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):  # noqa: A002
    """F.layer_norm: statistics over the trailing dims given by normalized_shape."""
    x, weight, bias = autocast.args("layer_norm", input, weight, bias)
    _check_float(x, "layer_norm")
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    ns = tuple(int(s) for s in normalized_shape)
    k = len(ns)
    if k == 0 or k > x.ndim or tuple(x.shape[x.ndim - k:]) != ns:
        raise ValueError(f"layer_norm: given normalized_shape={list(ns)}, expected input with "
                         f"shape [*, {', '.join(map(str, ns))}], but got input of size "
                         f"{shape_str(x.shape)}")
    for t, name in ((weight, "weight"), (bias, "bias")):
        if t is not None and tuple(t.shape) != ns:
            raise ValueError(f"layer_norm: {name} of shape {shape_str(t.shape)} does not match "
                             f"normalized_shape {list(ns)}")
    _check_same_dtype(x, "layer_norm", weight=weight, bias=bias)
    K_ = math.prod(ns)
    N = x.array.size // max(K_, 1)
    shape4 = (N, 1, K_, 1) if weight is not None or bias is not None else (N, 1, 1, K_)
    return RowNorm(shape4, eps)(x, weight, bias)
