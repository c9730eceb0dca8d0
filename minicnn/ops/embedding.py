"""Lookups by class index under PyTorch's names: F.one_hot and F.embedding.

embedding is weight's rows gathered by index (IndexSelect, whose backward adds the gradients
into the rows they came from). padding_idx and scale_grad_by_freq change only the gradient:
a ScaleGrad after the gather multiplies each looked-up row's gradient by 0 (the padding row) or
1 / (how often its index occurs in the batch), as PyTorch's embedding_backward does. max_norm
renormalises the rows looked up, in place and outside the graph, before the lookup.
"""
import numbers

from ..autograd import Function, no_grad
from ..devices import get_array_module
from ..tensor import Tensor
from .distance import norm
from .indexing import IndexSelect
from .util import shape_str


def _index_array(op, input, name="input"):
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: {name} must be a Tensor, got {type(input).__name__}")
    if input.array.dtype.kind not in "iu":
        raise TypeError(f"{op}: expected an integer (index) tensor for {name}, got "
                        f"{input.dtype} of shape {shape_str(input.shape)}")
    return input.array


def one_hot(tensor, num_classes=-1):
    """F.one_hot: (*) class indices -> (*, num_classes) int64, 1 at each index (no gradient);
    num_classes=-1 takes the largest index + 1."""
    op = "one_hot"
    idx = _index_array(op, tensor, "tensor")
    xp = get_array_module(idx)
    if not isinstance(num_classes, numbers.Integral) or isinstance(num_classes, bool):
        raise TypeError(f"{op}: num_classes must be an int, got {num_classes!r}")
    if num_classes == -1 and idx.size == 0:
        raise ValueError(f"{op}: can not infer the total number of classes from an empty tensor "
                         f"(shape {shape_str(idx.shape)}); give num_classes")
    if idx.size and int(idx.min()) < 0:
        raise ValueError(f"{op}: class values must be non-negative, got {int(idx.min())}")
    if num_classes == -1:
        num_classes = int(idx.max()) + 1
    elif num_classes < 0:
        raise ValueError(f"{op}: num_classes must be non-negative or -1, got {num_classes}")
    if idx.size and int(idx.max()) >= num_classes:
        raise ValueError(f"{op}: class values must be smaller than num_classes ({num_classes}), "
                         f"got {int(idx.max())}")
    return Tensor._wrap((idx[..., None] == xp.arange(num_classes)).astype(xp.int64))


class ScaleGrad(Function):
    """y = x; the gradient is multiplied by a fixed array (broadcast against x)."""
    saves = ()

    def __init__(self, factor):
        self.factor = factor

    def forward(self, x):
        return x.copy()

    def backward(self, gy):
        return gy * Tensor._wrap(self.factor.astype(gy.dtype, copy=False))


def _renorm_rows(weight, rows, max_norm, norm_type):
    """PyTorch's embedding_renorm_: each looked-up row of norm > max_norm scaled to max_norm
    (by max_norm / (norm + 1e-7)), in place, outside the graph."""
    xp = get_array_module(weight.array)
    rows = xp.unique(rows)
    sub = weight.array[rows]
    with no_grad():
        norms = norm(Tensor._wrap(sub), norm_type, dim=1, keepdim=True).array
        scale = xp.where(norms > max_norm, max_norm / (norms + 1e-7), 1.0).astype(sub.dtype)
        weight.data[Tensor._wrap(rows)] = Tensor._wrap(sub * scale)


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0,
              scale_grad_by_freq=False, sparse=False):
    """F.embedding: input (*) indices into weight (num_embeddings, embedding_dim) -> (*,
    embedding_dim). sparse is accepted (gradients are dense)."""
    op = "embedding"
    idx = _index_array(op, input)
    if not isinstance(weight, Tensor) or weight.ndim != 2:
        raise ValueError(f"{op}: weight must be a 2-D Tensor (num_embeddings, embedding_dim), "
                         f"got {shape_str(weight.shape) if isinstance(weight, Tensor) else weight}")
    V = weight.shape[0]
    if padding_idx is not None:
        if not -V <= padding_idx < V:
            raise ValueError(f"{op}: padding_idx must be within num_embeddings ({V}), got "
                             f"{padding_idx}")
        padding_idx %= V
    flat = idx.reshape(-1)
    if flat.size and (int(flat.min()) < 0 or int(flat.max()) >= V):
        bad = int(flat.min()) if int(flat.min()) < 0 else int(flat.max())
        raise IndexError(f"{op}: index {bad} is out of range for weight of size "
                         f"{shape_str(weight.shape)} (input {shape_str(idx.shape)})")
    if max_norm is not None:
        _renorm_rows(weight, flat, max_norm, norm_type)
    y = IndexSelect(flat, 0)(weight)                     # (L, D)
    if padding_idx is not None or scale_grad_by_freq:
        xp = get_array_module(flat)
        factor = xp.ones(flat.shape, weight.array.dtype)
        if scale_grad_by_freq:
            factor = factor / xp.bincount(flat, minlength=V)[flat]
        if padding_idx is not None:
            factor = xp.where(flat == padding_idx, 0, factor)
        y = ScaleGrad(factor[:, None])(y)
    return y.reshape(idx.shape + (weight.shape[1],))
