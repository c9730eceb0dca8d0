"""Differentiable ops, one Function per op with forward and backward side by side."""
from .arith import (Add, Cast, Div, Maximum, Minimum, Mul, Pow, Sub, Where, add, cast, div,
                    maximum, minimum, mul, pow, sub, where)
from .elementwise import (Abs, Clamp, Exp, Log, Neg, Sqrt, abs, clamp, compare, exp, log, neg,
                          sign, sqrt)
from .linalg import MatMul, matmul
from .misc import Clone, ToDevice, logical_not
from .reduce import (AMax, AMin, Mean, Sum, Var, amax, amin, argmax, argmin, max, mean, min, std,
                     sum, var)
from .reduce import all_ as all  # noqa: A004
from .reduce import any_ as any  # noqa: A004
from .reduce import logsumexp, prod, std_mean, var_mean
from .scan import cummax, cummin, cumprod, cumsum, logcumsumexp
from .sort import argsort, kthvalue, median, msort, sort, topk
from .indexing import (GetItem, argwhere, gather, getitem, index_add, index_select,
                       masked_fill, masked_select, nonzero, scatter, scatter_add, scatter_reduce,
                       take_along_dim)
from .rearrange import (diagonal, flip, fliplr, flipud, meshgrid, repeat, repeat_interleave,
                        roll, tril, triu, unfold)
from .shape import (BroadcastTo, Concatenate, Permute, Reshape, Split, SumTo, broadcast_to,
                    chunk, concatenate, expand, flatten, pad, permute, reshape, split, squeeze,
                    stack, sum_to, transpose, unsqueeze, view)
from .shape import movedim, narrow, t, unflatten
from .shape import movedim as moveaxis
from .shape import transpose as swapaxes
from .shape import transpose as swapdims
from .util import reduce_args

# Tensor methods that call the op of the same name with the tensor first (tensor.py binds them)
TENSOR_METHODS = (
    "all", "any", "argsort", "cummax", "cummin", "cumprod", "cumsum", "kthvalue",
    "logcumsumexp", "logsumexp", "median", "msort", "prod", "sort", "topk",
    "argwhere", "diagonal", "flip", "fliplr", "flipud", "index_add", "masked_fill",
    "masked_select", "movedim", "moveaxis", "narrow", "nonzero", "repeat", "repeat_interleave",
    "roll", "scatter", "scatter_add", "scatter_reduce", "swapaxes", "swapdims", "t",
    "take_along_dim", "tril", "triu", "unflatten", "unfold",
)
