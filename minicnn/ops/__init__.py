"""Differentiable ops, one Function per op with forward and backward side by side."""
from .arith import (Add, Cast, Div, Maximum, Minimum, Mul, Pow, Sub, Where, add, cast, div,
                    maximum, minimum, mul, pow, sub, where)
from .elementwise import (Abs, Clamp, Exp, Log, Neg, Sqrt, abs, clamp, compare, exp, log, neg,
                          sign, sqrt)
from .linalg import MatMul, matmul
from .misc import Clone, ToDevice
from .reduce import (AMax, AMin, Mean, Sum, Var, amax, amin, argmax, argmin, max, mean, min, std,
                     sum, var)
from .reduce import all_ as all  # noqa: A004
from .reduce import any_ as any  # noqa: A004
from .reduce import logsumexp, prod, std_mean, var_mean
from .scan import cummax, cummin, cumprod, cumsum, logcumsumexp
from .unary import (acos, acosh, arccos, arccosh, arcsin, arcsinh, arctan, arctanh, asin,
                    asinh, atan, atanh, ceil, cos, cosh, erf, erfc, exp2, expm1, fix, floor,
                    frac, isfinite, isinf, isnan, isneginf, isposinf, isreal, log1p, log2,
                    log10, nan_to_num, reciprocal, round, rsqrt, signbit, sin, sinh, tan, trunc)
from .binary import (allclose, arctan2, atan2, bitwise_and, bitwise_left_shift, bitwise_not,
                     bitwise_or, bitwise_right_shift, bitwise_xor, copysign, eq, equal,
                     floor_divide, fmod, ge, greater, greater_equal, gt, hypot, isclose, le, lerp,
                     less, less_equal, logaddexp, logaddexp2, logical_and, logical_or,
                     logical_not, logical_xor, lt, ne, not_equal, remainder)
from .arith import div as divide  # noqa: E402
from .arith import div as true_divide  # noqa: E402
from .arith import mul as multiply  # noqa: E402
from .arith import sub as subtract  # noqa: E402
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
from .distance import norm
from .einsum import einsum

# Tensor methods that call the op of the same name with the tensor first (tensor.py binds them)
TENSOR_METHODS = (
    "acos", "acosh", "arccos", "arccosh", "arcsin", "arcsinh", "arctan", "arctanh", "asin",
    "asinh", "atan", "atanh", "ceil", "cos", "cosh", "erf", "erfc", "exp2", "expm1", "fix",
    "floor", "frac", "isfinite", "isinf", "isnan", "isneginf", "isposinf", "isreal", "log1p",
    "log2", "log10", "nan_to_num", "reciprocal", "round", "rsqrt", "signbit", "sin", "sinh",
    "tan", "trunc",
    "allclose", "arctan2", "atan2", "bitwise_and", "bitwise_left_shift", "bitwise_not",
    "bitwise_or", "bitwise_right_shift", "bitwise_xor", "copysign", "eq", "equal",
    "floor_divide", "fmod", "ge", "greater", "greater_equal", "gt", "hypot", "isclose", "le",
    "lerp", "less", "less_equal", "logaddexp", "logaddexp2", "logical_and", "logical_not",
    "logical_or", "logical_xor", "lt", "ne", "not_equal", "remainder", "divide", "true_divide",
    "multiply", "subtract",
    "all", "any", "argsort", "cummax", "cummin", "cumprod", "cumsum", "kthvalue",
    "logcumsumexp", "logsumexp", "median", "msort", "prod", "sort", "topk",
    "argwhere", "diagonal", "flip", "fliplr", "flipud", "index_add", "masked_fill",
    "masked_select", "movedim", "moveaxis", "narrow", "nonzero", "repeat", "repeat_interleave",
    "roll", "scatter", "scatter_add", "scatter_reduce", "swapaxes", "swapdims", "t",
    "take_along_dim", "tril", "triu", "unflatten", "unfold",
    "norm",
)
