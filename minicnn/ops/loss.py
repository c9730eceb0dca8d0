"""Loss functions with PyTorch's semantics (reductions, weights, ignore_index, smoothing).

cross_entropy with class indices is one fused, stable log-sum-exp Function (CrossEntropy) whose
analytic backward is a Function too (CrossEntropyGrad; both run the softmax kernel family);
nll_loss is one Function. The element-wise
losses are written with differentiable ops over stable pieces (Softplus, LogSoftmax), so their
gradients of gradients work as well.
"""
import warnings

from ..autograd import Function, is_grad_enabled
from ..devices import get_array_module, syncs_on_read
from ..dtypes import kind as dtype_kind
from ..kernels import softmax as K
from ..tensor import Tensor
from . import autocast
from .activation import LogSoftmax, Softmax, Softplus, sigmoid
from .arith import maximum, where
from .elementwise import abs as _abs
from .elementwise import exp as _exp
from .elementwise import log as _log
from .reduce import mean as _mean
from .reduce import sum as _sum
from .shape import permute, reshape
from .util import broadcast_shapes, composite_in_float32, shape_str

_REDUCTIONS = ("none", "mean", "sum")


def _check_reduction(reduction, op, extra=()):
    if reduction not in _REDUCTIONS + tuple(extra):
        raise ValueError(f"{op}: {reduction!r} is not a valid value for reduction (expected one "
                         f"of {', '.join(_REDUCTIONS + tuple(extra))})")


def _reduce(loss, reduction):
    if reduction == "mean":
        return _mean(loss)
    if reduction == "sum":
        return _sum(loss)
    return loss


def _as_target(target, like):
    if isinstance(target, Tensor):
        return target
    xp = get_array_module(like.array)
    return Tensor._wrap(xp.asarray(target))


# --- cross-entropy and NLL (class indices) ----------------------------------------------------

def _dense_q(xp, t, w, ignore_index, smooth, M, C, dtype):
    """Per-row target weights q (M, C): (1 - smooth) w[t] onehot(t) + smooth / C * w."""
    keep = t != ignore_index
    tc = xp.where(keep, t, 0)
    wv = xp.ones(C) if w is None else w.astype(xp.float64)
    q = xp.zeros((M, C)) + (smooth / C) * wv[None, :]
    q[xp.arange(M), tc] += (1.0 - smooth) * wv[tc]
    return (q * keep[:, None]).astype(dtype)


class CrossEntropy(Function):
    """Per-row loss (M,) of logits x (M, C) against class indices t (M,)."""
    saves = (0,)  # and the target and weight (save_array)

    def __init__(self, t, w, ignore_index, smooth):
        self.t, self.w = self.save_array(t), w if w is None else self.save_array(w)
        self.ignore_index, self.smooth = int(ignore_index), float(smooth)

    def forward(self, x):
        loss, self.lse = K.ce_fwd(x, self.t, self.w, self.ignore_index, self.smooth)
        return loss.astype(x.dtype)

    def backward(self, gl):
        return CrossEntropyGrad(self.t, self.w, self.ignore_index, self.smooth, self.lse)(
            self.inputs[0], gl)


class CrossEntropyGrad(Function):
    """gx = g_i (p_i * sum_c q_ic - q_i) for row gradients g (M,), p = softmax(x), q the per-row
    target weights (dense: _dense_q). Backward, with ggx: d/dg = sum_c ggx (p qsum - q), and
    d/dx = g qsum p (ggx - sum_c ggx p) (the softmax Jacobian)."""
    saves = {0: (0, 1), 1: (0,)}  # and the target and weight (save_array)

    def __init__(self, t, w, ignore_index, smooth, lse):
        self.t, self.w = self.save_array(t), w if w is None else self.save_array(w)
        self.ignore_index, self.smooth, self.lse = ignore_index, smooth, lse

    def forward(self, x, gl):
        return K.ce_bwd(x, self.t, self.w, self.ignore_index, self.smooth, self.lse,
                        gl.astype("float64"))

    def backward(self, ggx):
        x, gl = self.inputs
        M, C = x.shape
        xp = get_array_module(x.array)
        q = Tensor._wrap(_dense_q(xp, self.t, self.w, self.ignore_index, self.smooth, M, C,
                                  x.dtype))
        qsum = _sum(q, 1, True)
        p = Softmax(1)(x)
        gx = ggl = None
        if x.requires_grad:
            pg = p * ggx
            gx = reshape(gl, (M, 1)) * qsum * (pg - p * _sum(pg, 1, True))
        if gl.requires_grad:
            ggl = _sum(ggx * (p * qsum - q), 1)
        return gx, ggl


class NLL(Function):
    """Per-row loss -w[t] x[i, t] of log-probabilities x (M, C); linear in x."""
    saves = ()  # q, made in the forward

    def __init__(self, t, w, ignore_index):
        self.t, self.w, self.ignore_index = t, w, int(ignore_index)

    def forward(self, x):
        xp = get_array_module(x)
        M, C = x.shape
        self.q = _dense_q(xp, self.t, self.w, self.ignore_index, 0.0, M, C, x.dtype)
        keep = self.t != self.ignore_index
        tc = xp.where(keep, self.t, 0)
        rows = xp.arange(M)   # an ignored row is 0, as PyTorch's, also for a NaN logit
        return xp.where(keep, -(x[rows, tc] * self.q[rows, tc]), 0).astype(x.dtype, copy=False)

    def backward(self, gl):
        return reshape(gl, (gl.shape[0], 1)) * Tensor._wrap(-self.q)


def _class_rows(x, target, weight, ignore_index, op):
    """Checks; returns (x2 (M, C) Tensor, t (M,) array, w array or None, out_shape, bad).

    An out-of-range target raises IndexError on the CPU. On the GPU that check would cost a
    host-device synchronization per call, so there `bad` is the device mask of such rows: their
    target becomes ignore_index (no out-of-bounds read) and `_reduce_rows` makes their loss NaN,
    which the Trainer reports (PyTorch raises a device-side assert there). `bad` is None on the
    CPU."""
    if dtype_kind(x.dtype) != "f":
        raise TypeError(f"{op}: expected a floating point input, got dtype {x.dtype}")
    if x.ndim == 0:
        raise ValueError(f"{op}: input must have at least 1 dim (C,) or (N, C, ...), got a scalar")
    t = target.array
    if dtype_kind(t.dtype) not in "iu":
        raise TypeError(f"{op}: expected class indices of an integer dtype, got dtype {t.dtype}")
    if x.ndim == 1:
        C = x.shape[0]
        if t.ndim != 0:
            raise ValueError(f"{op}: for an unbatched input of shape {shape_str(x.shape)} the "
                             f"target must be a scalar, got shape {shape_str(t.shape)}")
        x2, out_shape = reshape(x, (1, C)), ()
    else:
        N, C = x.shape[:2]
        expected = (N,) + tuple(x.shape[2:])
        if x.ndim == 2 and t.ndim > 1:
            raise ValueError(f"{op}: expected a 0-D or 1-D target of class indices, got target "
                             f"{shape_str(t.shape)} for input {shape_str(x.shape)} (multi-target "
                             "is not supported" + (f"; target.squeeze({t.ndim - 1})" if
                                                   t.shape[-1] == 1 else "") + ")")
        if x.ndim == 2 and (t.ndim != 1 or t.shape[0] != N):
            raise ValueError(f"{op}: expected input batch_size ({N}) to match target batch_size "
                             f"({t.shape[0] if t.ndim else 'a scalar'}); input "
                             f"{shape_str(x.shape)}, target {shape_str(t.shape)}")
        if tuple(t.shape) != expected:
            raise ValueError(f"{op}: expected target size {shape_str(expected)}, got "
                             f"{shape_str(t.shape)} (input {shape_str(x.shape)})")
        if x.ndim > 2:  # (N, C, d1, ...) -> (N, d1, ..., C) -> (M, C)
            x = permute(x, (0,) + tuple(range(2, x.ndim)) + (1,))
        x2, out_shape = reshape(x, (-1, C)), expected
    xp = get_array_module(x.array)
    t = xp.asarray(t).reshape(-1).astype(xp.int64, copy=False)
    bad = (t != ignore_index) & ((t < 0) | (t >= C))
    if syncs_on_read(t):
        t = xp.where(bad, ignore_index, t)
    else:
        if t.size and bool(bad.any()):
            v = int(t[xp.argmax(bad)])
            raise IndexError(f"{op}: target {v} is out of bounds for {C} classes")
        bad = None
    w = None
    if weight is not None:
        if weight.ndim != 1 or weight.shape[0] != C:
            raise ValueError(f"{op}: weight should be a 1D tensor of {C} elements (one per "
                             f"class), got shape {shape_str(weight.shape)}")
        w = weight.array
    return x2, t, w, out_shape, bad


def _reduce_rows(loss, t, w, ignore_index, reduction, out_shape, bad=None):
    xp = get_array_module(t)
    if bad is not None:             # GPU: out-of-range targets give NaN rows (see _class_rows)
        loss = loss + Tensor._wrap(xp.where(bad, xp.nan, 0.0).astype(loss.dtype))
    if reduction == "none":
        return reshape(loss, out_shape)
    total = _sum(loss)
    if reduction == "sum":
        return total
    keep = t != ignore_index
    if w is None:
        denom = keep.sum(dtype=xp.float64)
    else:
        denom = (w.astype(xp.float64)[xp.where(keep, t, 0)] * keep).sum()
    if syncs_on_read(t):            # stays on the device: no synchronization for the divisor
        inv = xp.where(denom != 0, 1.0 / xp.where(denom != 0, denom, 1.0), xp.nan)
        return total * Tensor._wrap(inv.astype(total.dtype))
    denom = float(denom)
    return total * (1.0 / denom) if denom != 0 else total * float("nan")


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):  # noqa: A002
    input, target, weight = autocast.args("nll_loss", input, target, weight)
    _check_reduction(reduction, "nll_loss")
    target = _as_target(target, input)
    x2, t, w, out_shape, bad = _class_rows(input, target, weight, ignore_index, "nll_loss")
    loss = NLL(t, w, ignore_index)(x2)
    return _reduce_rows(loss, t, w, ignore_index, reduction, out_shape, bad)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",  # noqa: A002
                  label_smoothing=0.0):
    """F.cross_entropy: class indices (int target) or class probabilities (float target of the
    input's shape); weight per class, ignore_index, label_smoothing and reduction as PyTorch."""
    input, target, weight = autocast.args("cross_entropy", input, target, weight)
    _check_reduction(reduction, "cross_entropy")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be between 0.0 and 1.0, got "
                         f"{label_smoothing}")
    target = _as_target(target, input)
    if dtype_kind(target.dtype) == "f":
        return _cross_entropy_probs(input, target, weight, ignore_index, reduction,
                                    label_smoothing)
    x2, t, w, out_shape, bad = _class_rows(input, target, weight, ignore_index,
                                           "cross_entropy")
    loss = CrossEntropy(t, w, ignore_index, label_smoothing)(x2)
    return _reduce_rows(loss, t, w, ignore_index, reduction, out_shape, bad)


class CrossEntropyProbs(Function):
    """Per-row loss sum_c q_c (lse - x_c) of logits x (M, C) against target weights q (M, C)
    (class probabilities with label smoothing and class weights folded in): one stable
    log-sum-exp forward; backward g (p sum_c q_c - q) for x and -g log p for q."""
    saves = {0: (0, 1), 1: (0,)}

    def forward(self, x, q):
        xp = get_array_module(x)
        m = x.max(axis=1, keepdims=True)
        self.lse = m + xp.log(xp.exp(x - m).sum(axis=1, keepdims=True))    # (M, 1)
        return ((q * (self.lse - x)).sum(axis=1)).astype(x.dtype, copy=False)

    def backward(self, gl):
        x, q = self.inputs
        g = reshape(gl, (gl.shape[0], 1))
        gx = g * (Softmax(1)(x) * _sum(q, 1, True) - q) if x.requires_grad else None
        gq = -g * LogSoftmax(1)(x) if q.requires_grad else None
        return gx, gq


def _to_rows(t, C):
    """(N, C, d1, ...) -> (N * d1 * ..., C); (C,) -> (1, C)."""
    if t.ndim == 1:
        return reshape(t, (1, C))
    if t.ndim > 2:
        t = permute(t, (0,) + tuple(range(2, t.ndim)) + (1,))
    return reshape(t, (-1, C))


@composite_in_float32   # the smoothed target and the backward are several ops: float32 for half
def _cross_entropy_probs(x, target, weight, ignore_index, reduction, smooth):
    if tuple(target.shape) != tuple(x.shape):
        raise ValueError(f"cross_entropy: class-probability target of shape "
                         f"{shape_str(target.shape)} must match the input's shape "
                         f"{shape_str(x.shape)}")
    if ignore_index >= 0:
        raise ValueError("cross_entropy: ignore_index is not supported for class-probability "
                         "targets")
    if dtype_kind(x.dtype) != "f":
        raise TypeError(f"cross_entropy: expected a floating point input, got dtype {x.dtype}")
    C = x.shape[0 if x.ndim == 1 else 1]
    q = _to_rows(target, C)
    if smooth:
        q = q * (1.0 - smooth) + smooth / C
    if weight is not None:
        if weight.ndim != 1 or weight.shape[0] != C:
            raise ValueError(f"cross_entropy: weight should be a 1D tensor of {C} elements, got "
                             f"shape {shape_str(weight.shape)}")
        q = q * reshape(weight, (1, C))
    loss = CrossEntropyProbs()(_to_rows(x, C), q)
    if reduction == "none":
        return reshape(loss, () if x.ndim == 1 else (x.shape[0],) + tuple(x.shape[2:]))
    total = _sum(loss)
    if reduction == "sum":
        return total
    return total * (1.0 / loss.shape[0])


# --- element-wise losses ------------------------------------------------------------------------

def _pair(input, target, op, strict=False):  # noqa: A002
    target = _as_target(target, input)
    if dtype_kind(input.dtype) != "f":
        raise TypeError(f"{op}: expected a floating point input, got dtype {input.dtype}")
    if tuple(input.shape) != tuple(target.shape):
        if strict:
            raise ValueError(f"{op}: using a target size ({shape_str(target.shape)}) that is "
                             f"different to the input size ({shape_str(input.shape)}); please "
                             "ensure they have the same size")
        try:
            broadcast_shapes(tuple(input.shape), tuple(target.shape))
        except ValueError:
            raise ValueError(f"{op}: the input of size {shape_str(input.shape)} and the target "
                             f"of size {shape_str(target.shape)} cannot be broadcast together "
                             "(they should have the same size)") from None
        warnings.warn(f"{op}: using a target size ({shape_str(target.shape)}) that is different "
                      f"to the input size ({shape_str(input.shape)}); this will likely lead to "
                      "incorrect results due to broadcasting", stacklevel=3)
    if target.dtype != input.dtype:
        target = target.to(input.dtype)
    return input, target


def mse_loss(input, target, reduction="mean"):  # noqa: A002
    input, target = autocast.args("mse_loss", input, target)
    _check_reduction(reduction, "mse_loss")
    x, t = _pair(input, target, "mse_loss")
    d = x - t
    return _reduce(d * d, reduction)


def l1_loss(input, target, reduction="mean"):  # noqa: A002
    input, target = autocast.args("l1_loss", input, target)
    _check_reduction(reduction, "l1_loss")
    x, t = _pair(input, target, "l1_loss")
    return _reduce(_abs(x - t), reduction)


def smooth_l1_loss(input, target, reduction="mean", beta=1.0):  # noqa: A002
    input, target = autocast.args("smooth_l1_loss", input, target)
    _check_reduction(reduction, "smooth_l1_loss")
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be non-negative, got {beta}")
    x, t = _pair(input, target, "smooth_l1_loss")
    d = x - t
    ad = _abs(d)
    if beta == 0:
        return _reduce(ad, reduction)
    return _reduce(_quadratic_near_zero(d, ad, beta, lambda q: q * q * (0.5 / beta),
                                        lambda a: a - 0.5 * beta), reduction)


def huber_loss(input, target, reduction="mean", delta=1.0):  # noqa: A002
    input, target = autocast.args("huber_loss", input, target)
    _check_reduction(reduction, "huber_loss")
    if delta <= 0:
        raise ValueError(f"huber_loss: delta must be positive, got {delta}")
    x, t = _pair(input, target, "huber_loss")
    d = x - t
    return _reduce(_quadratic_near_zero(d, _abs(d), delta, lambda q: q * q * 0.5,
                                        lambda a: (a - 0.5 * delta) * delta), reduction)


def _quadratic_near_zero(d, ad, limit, quadratic, linear):
    """quadratic(d) where |d| <= limit, else linear(|d|), as PyTorch's smooth L1 and Huber
    losses: a NaN d takes the quadratic piece (its gradient is NaN), and the quadratic piece is
    fed 0 where it is not taken, so an infinite d gets the linear piece's gradient, not 0 * inf."""
    small = ~(ad.array > limit)
    return where(small, quadratic(where(small, d, 0.0)), linear(ad))


class BCE(Function):
    """-w (y log p + (1 - y) log(1 - p)) with each log clamped at -100, as PyTorch does."""
    saves = {0: (0, 1, 2), 1: (0, 2)}

    def forward(self, p, y, w):
        xp = get_array_module(p)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lp = xp.maximum(xp.log(p), -100.0)
            l1p = xp.maximum(xp.log1p(-p), -100.0)
        loss = -(y * lp + (1 - y) * l1p)
        return loss if w is None else loss * w

    def backward(self, gy):
        p, y, w = self.inputs
        g = gy if w is None else gy * w
        gp = g * (p - y) / maximum((1.0 - p) * p, 1e-12) if p.requires_grad else None
        gt = None
        if y.requires_grad:
            gt = g * (maximum(_log(1.0 - p), -100.0) - maximum(_log(p), -100.0))
        return gp, gt, None


def binary_cross_entropy(input, target, weight=None, reduction="mean"):  # noqa: A002
    input, target, weight = autocast.args("binary_cross_entropy", input, target, weight)
    _check_reduction(reduction, "binary_cross_entropy")
    x, t = _pair(input, target, "binary_cross_entropy", strict=True)
    # the range check reads two values from the device: CPU only (on the GPU an input outside
    # [0, 1] gives NaN through the logs, which the Trainer reports; PyTorch device-asserts there)
    if x.array.size and not syncs_on_read(x.array) and \
            not (float(x.array.min()) >= 0 and float(x.array.max()) <= 1):   # NaN fails too
        raise ValueError("binary_cross_entropy: all elements of input should be between 0 and 1")
    return _reduce(BCE()(x, t, weight), reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean",  # noqa: A002
                                     pos_weight=None):
    """(1 - y) x - (1 + (pw - 1) y) log_sigmoid(x): stable for logits of any size."""
    input, target, weight, pos_weight = autocast.args("binary_cross_entropy_with_logits",
                                                      input, target, weight, pos_weight)
    _check_reduction(reduction, "binary_cross_entropy_with_logits")
    x, t = _pair(input, target, "binary_cross_entropy_with_logits", strict=True)
    if pos_weight is not None and not isinstance(pos_weight, Tensor):
        pos_weight = Tensor._wrap(get_array_module(x.array).asarray(pos_weight, x.dtype))
    if pos_weight is not None and pos_weight.requires_grad and is_grad_enabled():
        raise RuntimeError("binary_cross_entropy_with_logits is not differentiable with respect "
                           "to argument 'pos_weight' (as in PyTorch); pass pos_weight.detach()")
    loss = BCEWithLogits()(x, t, pos_weight)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def _log_sigmoid(x):
    return -Softplus()(-x)


class BCEWithLogits(Function):
    """Element-wise (1 - y) x - lw log_sigmoid(x), lw = 1 + (pw - 1) y (or 1 without pos_weight
    pw): PyTorch's forward and its explicit gradients, d/dx = (pw y + 1 - y) sigmoid(x) - pw y
    (sigmoid(x) - y), d/dy = log_sigmoid(-x) - pw log_sigmoid(x) (-x), which differ from the
    gradient of the forward's formula where an input is infinite (NaN there, as PyTorch's)."""
    saves = (0, 1, 2)

    def forward(self, x, y, pw):
        xp = get_array_module(x)
        log_sig = xp.minimum(x, 0) - xp.log1p(xp.exp(-xp.abs(x)))
        if pw is not None:
            log_sig = log_sig * ((pw - 1) * y + 1)
        return ((1 - y) * x - log_sig).astype(x.dtype, copy=False)

    def backward(self, gy):
        x, y, pw = self.inputs
        gx = gt = None
        if x.requires_grad:
            s = sigmoid(x)
            gx = gy * (s - y if pw is None else (pw * y + 1.0 - y) * s - pw * y)
        if y.requires_grad:
            gt = gy * (-x if pw is None else _log_sigmoid(-x) - _log_sigmoid(x) * pw)
        return gx, gt, None


def multilabel_soft_margin_loss(input, target, weight=None, reduction="mean"):  # noqa: A002
    _check_reduction(reduction, "multilabel_soft_margin_loss")
    x, t = _pair(input, target, "multilabel_soft_margin_loss", strict=True)
    loss = t * Softplus()(-x) + (1.0 - t) * Softplus()(x)
    if weight is not None:
        loss = loss * weight
    C = x.shape[-1] if x.ndim else 1
    loss = _sum(loss, x.ndim - 1) * (1.0 / C) if x.ndim else loss
    return _reduce(loss, reduction)


def kl_div(input, target, reduction="mean", log_target=False):  # noqa: A002
    """Pointwise target * (log target - input) (or with log-space targets); 'batchmean' divides
    the sum by the batch size, as the KL divergence's definition asks."""
    input, target = autocast.args("kl_div", input, target)
    _check_reduction(reduction, "kl_div", ("batchmean",))
    x, t = _pair(input, target, "kl_div")
    if log_target:
        loss = _exp(t) * (t - x)
    else:
        pos = t.array > 0
        loss = t * _log(where(pos, t, 1.0)) - t * x
    if reduction == "batchmean":
        total = _sum(loss)
        return total * (1.0 / x.shape[0]) if x.ndim else total
    return _reduce(loss, reduction)
