"""F.scaled_dot_product_attention, composed from matmul and softmax (the attention block of CNN
hybrids; gradients of every order come from its parts). Half inputs (and a half attn_mask) are
computed in float32, forward and backward, and rounded once (ops.util.composite_in_float32).

    softmax(q @ k^T * scale + bias) @ v

with bias -inf where a bool attn_mask is False (or above the diagonal with is_causal) and 0
elsewhere, a float attn_mask as it is. A row whose every score is -inf attends to nothing and gives 0, as
PyTorch's safe softmax does, not NaN (and its gradient is 0); a row of NaN scores gives NaN, as
PyTorch's math backend (its fused CPU kernel gives 0 there, with NaN gradients).
"""
import math

from ..devices import get_array_module
from ..dtypes import is_floating
from ..tensor import Tensor
from .activation import softmax
from .arith import where
from .dropout import dropout
from .linalg import matmul
from .rearrange import repeat_interleave
from .util import broadcast_shapes, composite_in_float32, shape_str


_OP = "scaled_dot_product_attention"


def _check_tensors(q, k, v):
    """The checks whose messages name dtypes, before half inputs are widened."""
    for name, t in (("query", q), ("key", k), ("value", v)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{_OP}: {name} must be a Tensor, got {type(t).__name__}")
        if t.ndim < 2 or not is_floating(t.array.dtype):
            raise ValueError(f"{_OP}: {name} must be a floating point tensor (..., L, E), got "
                             f"{t.dtype} of shape {shape_str(t.shape)}")
    if not q.dtype == k.dtype == v.dtype:
        raise TypeError(f"{_OP}: query, key and value must have the same dtype, got {q.dtype}, "
                        f"{k.dtype} and {v.dtype}")


def _check(q, k, v, attn_mask, enable_gqa):
    op = _OP
    shapes = f"query {shape_str(q.shape)}, key {shape_str(k.shape)}, value {shape_str(v.shape)}"
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"{op}: expected query and key of the same embedding size and key and "
                         f"value of the same length, got {shapes}")
    if enable_gqa and q.ndim >= 3 and k.ndim >= 3:
        if q.shape[-3] % k.shape[-3] or q.shape[-3] % v.shape[-3]:
            raise ValueError(f"{op}: with enable_gqa the number of query heads must be a "
                             f"multiple of the key and value heads, got {shapes}")
        k = repeat_interleave(k, q.shape[-3] // k.shape[-3], dim=-3)
        v = repeat_interleave(v, q.shape[-3] // v.shape[-3], dim=-3)
    try:
        broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
        if attn_mask is not None:
            broadcast_shapes(attn_mask.shape, q.shape[:-1] + k.shape[-2:-1])
    except ValueError:
        mask = f", attn_mask {shape_str(attn_mask.shape)}" if attn_mask is not None else ""
        raise ValueError(f"{op}: the batch dimensions do not broadcast: {shapes}{mask}") from None
    return k, v


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
                                 is_causal=False, scale=None, enable_gqa=False):
    """query (..., L, E), key (..., S, E), value (..., S, Ev) -> (..., L, Ev)."""
    _check_tensors(query, key, value)
    return _attention(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)


@composite_in_float32
def _attention(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa):
    key, value = _check(query, key, value, attn_mask, enable_gqa)
    L, S = query.shape[-2], key.shape[-2]
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = matmul(query, key.transpose(-2, -1)) * scale            # (..., L, S)
    xp = get_array_module(query.array)
    if is_causal:
        if attn_mask is not None:
            raise ValueError("scaled_dot_product_attention: explicit attn_mask should not be set "
                             "when is_causal=True")
        attn_mask = Tensor._wrap(xp.tril(xp.ones((L, S), bool)))
    if attn_mask is not None:
        if attn_mask.array.dtype.kind == "b":     # added as 0 / -inf, as PyTorch's math backend
            bias = xp.where(attn_mask.array, 0.0, -math.inf).astype(scores.array.dtype)
            attn_mask = Tensor._wrap(bias)      # (so a NaN score stays NaN where masked)
        scores = scores + attn_mask
    dead = (scores.array == -math.inf).all(axis=-1, keepdims=True)   # rows with no key left
    if dead.any():
        scores = where(dead, 0.0, scores)
    attn = softmax(scores, dim=-1)
    if dead.any():
        attn = where(dead, 0.0, attn)
    if dropout_p > 0.0:
        attn = dropout(attn, dropout_p, training=True)
    return matmul(attn, value)
