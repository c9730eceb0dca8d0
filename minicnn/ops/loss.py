"""Loss functions with PyTorch's semantics (reductions, weights, ignore_index, smoothing).

cross_entropy with class indices is one fused, stable log-sum-exp Function (CrossEntropy) whose
analytic backward is a Function too (CrossEntropyGrad; both run the softmax kernel family);
nll_loss is one Function. The element-wise
losses are written with differentiable ops over stable pieces (Softplus, LogSoftmax), so their
gradients of gradients work as well.
"""
import warnings

from ..autograd import Function
from ..devices import get_array_module, syncs_on_read
from ..kernels import softmax as K
from ..tensor import Tensor
from .activation import LogSoftmax, Softmax, Softplus
from .arith import maximum, where
from .elementwise import abs as _abs
from .elementwise import exp as _exp
from .elementwise import log as _log
from .reduce import mean as _mean
from .reduce import sum as _sum
from .shape import permute, reshape
from .util import shape_str

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
        return -(x[xp.arange(M), tc] * self.q[xp.arange(M), tc])

    def backward(self, gl):
        return reshape(gl, (gl.shape[0], 1)) * Tensor._wrap(-self.q)


def _class_rows(x, target, weight, ignore_index, op):
    """Checks; returns (x2 (M, C) Tensor, t (M,) array, w array or None, out_shape, bad).

    An out-of-range target raises IndexError on the CPU. On the GPU that check would cost a
    host-device synchronization per call, so there `bad` is the device mask of such rows: their
    target becomes ignore_index (no out-of-bounds read) and `_reduce_rows` makes their loss NaN,
    which the Trainer reports (PyTorch raises a device-side assert there). `bad` is None on the
    CPU."""
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating point input, got dtype {x.dtype}")
    if x.ndim == 0:
        raise ValueError(f"{op}: input must have at least 1 dim (C,) or (N, C, ...), got a scalar")
    t = target.array
    if t.dtype.kind not in "iu":
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
    _check_reduction(reduction, "nll_loss")
    target = _as_target(target, input)
    x2, t, w, out_shape, bad = _class_rows(input, target, weight, ignore_index, "nll_loss")
    loss = NLL(t, w, ignore_index)(x2)
    return _reduce_rows(loss, t, w, ignore_index, reduction, out_shape, bad)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",  # noqa: A002
                  label_smoothing=0.0):
    """F.cross_entropy: class indices (int target) or class probabilities (float target of the
    input's shape); weight per class, ignore_index, label_smoothing and reduction as PyTorch."""
    _check_reduction(reduction, "cross_entropy")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be between 0.0 and 1.0, got "
                         f"{label_smoothing}")
    target = _as_target(target, input)
    if target.dtype.kind == "f":
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


def _cross_entropy_probs(x, target, weight, ignore_index, reduction, smooth):
    if tuple(target.shape) != tuple(x.shape):
        raise ValueError(f"cross_entropy: class-probability target of shape "
                         f"{shape_str(target.shape)} must match the input's shape "
                         f"{shape_str(x.shape)}")
    if ignore_index >= 0:
        raise ValueError("cross_entropy: ignore_index is not supported for class-probability "
                         "targets")
    if x.dtype.kind != "f":
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
    if input.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating point input, got dtype {input.dtype}")
    if tuple(input.shape) != tuple(target.shape):
        if strict:
            raise ValueError(f"{op}: using a target size ({shape_str(target.shape)}) that is "
                             f"different to the input size ({shape_str(input.shape)}); please "
                             "ensure they have the same size")
        warnings.warn(f"{op}: using a target size ({shape_str(target.shape)}) that is different "
                      f"to the input size ({shape_str(input.shape)}); this will likely lead to "
                      "incorrect results due to broadcasting", stacklevel=3)
    if target.dtype != input.dtype:
        target = target.to(input.dtype)
    return input, target


def mse_loss(input, target, reduction="mean"):  # noqa: A002
    _check_reduction(reduction, "mse_loss")
    x, t = _pair(input, target, "mse_loss")
    d = x - t
    return _reduce(d * d, reduction)


def l1_loss(input, target, reduction="mean"):  # noqa: A002
    _check_reduction(reduction, "l1_loss")
    x, t = _pair(input, target, "l1_loss")
    return _reduce(_abs(x - t), reduction)


def smooth_l1_loss(input, target, reduction="mean", beta=1.0):  # noqa: A002
    _check_reduction(reduction, "smooth_l1_loss")
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be non-negative, got {beta}")
    x, t = _pair(input, target, "smooth_l1_loss")
    d = x - t
    ad = _abs(d)
    if beta == 0:
        return _reduce(ad, reduction)
    small = ad.array < beta
    return _reduce(where(small, d * d * (0.5 / beta), ad - 0.5 * beta), reduction)


def huber_loss(input, target, reduction="mean", delta=1.0):  # noqa: A002
    _check_reduction(reduction, "huber_loss")
    if delta <= 0:
        raise ValueError(f"huber_loss: delta must be positive, got {delta}")
    x, t = _pair(input, target, "huber_loss")
    d = x - t
    ad = _abs(d)
    small = ad.array < delta
    return _reduce(where(small, d * d * 0.5, (ad - 0.5 * delta) * delta), reduction)


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
    _check_reduction(reduction, "binary_cross_entropy")
    x, t = _pair(input, target, "binary_cross_entropy", strict=True)
    # the range check reads two values from the device: CPU only (on the GPU an input outside
    # [0, 1] gives NaN through the logs, which the Trainer reports; PyTorch device-asserts there)
    if x.array.size and not syncs_on_read(x.array) and \
            (float(x.array.min()) < 0 or float(x.array.max()) > 1):
        raise ValueError("binary_cross_entropy: all elements of input should be between 0 and 1")
    return _reduce(BCE()(x, t, weight), reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean",  # noqa: A002
                                     pos_weight=None):
    """(1 - y) x + (1 + (pw - 1) y) softplus(-x): stable for logits of any size."""
    _check_reduction(reduction, "binary_cross_entropy_with_logits")
    x, t = _pair(input, target, "binary_cross_entropy_with_logits", strict=True)
    sp = Softplus()(-x)
    if pos_weight is not None:
        loss = (1.0 - t) * x + (1.0 + (pos_weight - 1.0) * t) * sp
    else:
        loss = (1.0 - t) * x + sp
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


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
