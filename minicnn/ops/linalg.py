"""Matrix products: matmul (batched, broadcasting, with NumPy's 1-D rules) and linear (F.linear:
one GEMM each way)."""
import math

from ..autograd import Function
from ..autograd.mode import _GradMode
from ..kernels import in_float32
from ..kernels._blas import gemm
from . import autocast
from .arith import grad_to
from .reduce import Sum
from .reduce import sum as _sum
from .shape import permute, reshape, transpose
from .util import as_tensor


@in_float32
def _gemm(a, b):
    """a @ b; float16 / bfloat16 operands multiply in float32 (NumPy's float16 GEMM is two
    orders of magnitude slower than sgemm, ml_dtypes' bfloat16 one returns float32), one
    rounding at the end. Small products on one BLAS thread (kernels/_blas.py)."""
    return gemm(a, b)


@in_float32
def _affine(x, w, b=None):
    y = gemm(x, w.T)  # (N, in) @ (in, out) -> (N, out)
    if b is not None:
        y += b
    return y


class MatMul(Function):
    """Both inputs at least 2-D; batch dims broadcast."""
    saves = {0: (1,), 1: (0,)}

    def forward(self, a, b):
        return _gemm(a, b)

    def backward(self, gy):
        a, b = self.inputs
        ga = gb = None
        if a.requires_grad:
            ga = _folded_grad(gy, b, a, left=True)
            if ga is None:
                ga = grad_to(matmul(gy, transpose(b, -1, -2)), a)
        if b.requires_grad:
            gb = _folded_grad(gy, a, b, left=False)
            if gb is None:
                gb = grad_to(matmul(transpose(a, -1, -2), gy), b)
        return ga, gb


def _folded_grad(gy, other, t, left):
    """The gradient of a 2-D operand t that gy's batch dims broadcast over (other has them all),
    as one GEMM with the batch folded into its sum, as PyTorch folds it: one accumulation (in
    float32 for half storage) and one rounding, where per-batch products each rounded and then
    summed lose the precision of a sum that cancels (a half gradient 5% off was seen), and one
    GEMM instead of B. None when the shapes are not that case."""
    if t.ndim != 2 or gy.ndim <= 2 or other.shape[:-2] != gy.shape[:-2]:
        return None
    m, n = gy.shape[-2:]
    B = gy.array.size // max(m * n, 1)
    if left:   # ga (m, k) = sum_i gy_i (m, n) @ b_i^T (n, k) = [gy_1 .. gy_B] @ [b_1^T; ..; b_B^T]
        k = other.shape[-2]
        g2 = reshape(permute(reshape(gy, (B, m, n)), (1, 0, 2)), (m, B * n))
        o2 = reshape(permute(reshape(other, (B, k, n)), (0, 2, 1)), (B * n, k))
        return grad_to(matmul(g2, o2), t)
    k = other.shape[-1]   # gb (k, n) = sum_i a_i^T (k, m) @ gy_i (m, n)
    return grad_to(matmul(transpose(reshape(other, (B * m, k)), 0, 1),
                          reshape(gy, (B * m, n))), t)


def _dims(t):
    return "x".join(str(s) for s in t.shape)


def matmul(a, b):
    a, b = autocast.args("matmul", as_tensor(a), as_tensor(b))
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both arguments need at least 1 dimension, got shapes "
                         f"({_dims(a)}) and ({_dims(b)})")
    if a.array.dtype != b.array.dtype:
        raise TypeError(f"matmul: expected both operands to have the same dtype, but got "
                        f"{a.array.dtype} and {b.array.dtype}")
    if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise ValueError(f"matmul: mat1 and mat2 shapes cannot be multiplied "
                         f"({_dims(a)} and {_dims(b)})")
    squeeze_a, squeeze_b = a.ndim == 1, b.ndim == 1
    a2 = reshape(a, (1,) + a.shape) if squeeze_a else a
    b2 = reshape(b, b.shape + (1,)) if squeeze_b else b
    try:
        y = MatMul()(a2, b2)
    except ValueError:
        raise ValueError(f"matmul: batch dimensions of ({_dims(a)}) and ({_dims(b)}) cannot be "
                         "broadcast together") from None
    if squeeze_a or squeeze_b:
        shape = y.shape
        if squeeze_b:
            shape = shape[:-1]
        if squeeze_a:
            shape = shape[:-2] + shape[-1:] if not squeeze_b else shape[:-1]
        y = reshape(y, shape)
    return y


class LinearOp(Function):
    """y = x @ W^T + b over 2-D x (N, in), W (out, in), b (out,) or None; one GEMM each way."""
    saves = {0: (1,), 1: (0,)}  # gx reads w, gw reads x

    def forward(self, x, w, b=None):
        return _affine(x, w, b)

    def backward(self, gy):
        x, w, b = self.inputs
        if _only_arrays(gy, x, w):
            return self._array_backward(gy, x, w, b)
        gx = matmul(gy, w) if x.requires_grad else None                 # (N, out) @ (out, in)
        gw = matmul(transpose(gy, 0, 1), x) if w.requires_grad else None  # (out, N) @ (N, in)
        gb = _sum(gy, 0) if b is not None and b.requires_grad else None
        return gx, gw, gb

    @staticmethod
    def _array_backward(gy, x, w, b):
        """The three lines above without their op wrappers: the same array calls (MatMul's
        _gemm, Permute's transpose view, Sum's forward), wrapped as those ops would wrap them.
        Measured in the CIFAR-10 tutorial's step: 35 -> 15 us per layer (the ops' wrappers were
        most of it)."""
        g = gy.array
        gx = gy._wrap(_gemm(g, w.array)) if x.requires_grad else None
        gw = gy._wrap(_gemm(g.transpose((1, 0)), x.array)) if w.requires_grad else None
        gb = gy._wrap(Sum((0,), False).forward(g)) if b is not None and b.requires_grad else None
        return gx, gw, gb


_PLAIN_CALL = Function.__call__   # observe_calls (mc.profiler, the ONNX tracer) swaps it


def _only_arrays(gy, x, w):
    """Whether LinearOp.backward's ops would only wrap their array calls: no graph to record
    (create_graph off), nobody observing op calls, no autocast region to cast them, and
    operands that matmul accepts as they are (one dtype and array type, gy of shape (N, out))."""
    if _GradMode.enabled or autocast.region.policy is not None \
            or Function.__call__ is not _PLAIN_CALL:
        return False
    g, xa, wa = gy.array, x.array, w.array
    return (type(xa) is type(g) and type(wa) is type(g) and xa.dtype == g.dtype
            and wa.dtype == g.dtype and g.dtype.kind not in "biu"   # sum: ints in int64
            and g.shape == (xa.shape[0], wa.shape[0]))


def linear(input, weight, bias=None):  # noqa: A002 -- PyTorch's name
    """F.linear: input (*, in_features) @ weight.T (in, out) + bias (out,) -> (*, out_features)."""
    x, w = as_tensor(input), as_tensor(weight)
    b = as_tensor(bias) if bias is not None else None
    x, w, b = autocast.args("linear", x, w, b)
    if w.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got shape "
                         f"{list(w.shape)}")
    if x.ndim == 0 or x.shape[-1] != w.shape[1]:
        dims = "x".join(str(s) for s in (x.shape if x.ndim <= 2 else
                                          (math.prod(x.shape[:-1]), x.shape[-1])))
        raise ValueError(f"linear: mat1 and mat2 shapes cannot be multiplied ({dims} and "
                         f"{w.shape[1]}x{w.shape[0]})")
    if b is not None and tuple(b.shape) not in ((w.shape[0],), ()):
        raise ValueError(f"linear: bias of shape {list(b.shape)} does not match "
                         f"out_features={w.shape[0]}")
    if x.dtype != w.dtype or (b is not None and b.dtype != w.dtype):
        raise TypeError(f"linear: expected input, weight and bias to have the same dtype, got "
                        f"{x.dtype}, {w.dtype}" + (f" and {b.dtype}" if b is not None else ""))
    lead = tuple(x.shape[:-1])
    x2 = reshape(x, (-1, x.shape[-1])) if x.ndim != 2 else x  # (*, in) -> (N, in)
    y = LinearOp()(x2, w, b)
    return reshape(y, lead + (w.shape[0],)) if x.ndim != 2 else y  # (N, out) -> (*, out)
