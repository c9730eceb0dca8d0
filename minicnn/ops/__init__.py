"""Differentiable ops, one Function per op with forward and backward side by side."""
from .arith import (Add, Cast, Div, Maximum, Minimum, Mul, Pow, Sub, Where, add, cast, div,
                    maximum, minimum, mul, pow, sub, where)
from .elementwise import (Abs, Clamp, Exp, Log, Neg, Sqrt, abs, clamp, compare, exp, log, neg,
                          sign, sqrt)
from .linalg import MatMul, matmul
from .misc import Clone, ToDevice, logical_not
from .reduce import (AMax, AMin, Mean, Sum, Var, amax, amin, argmax, argmin, max, mean, min, std,
                     sum, var)
from .indexing import GetItem, gather, getitem, index_select
from .shape import (BroadcastTo, Concatenate, Permute, Reshape, Split, SumTo, broadcast_to,
                    chunk, concatenate, expand, flatten, pad, permute, reshape, split, squeeze,
                    stack, sum_to, transpose, unsqueeze, view)
from .util import reduce_args
