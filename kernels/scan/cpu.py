"""The scan family on the CPU: Numba kernels over (outer, L, inner) views, one prange iteration
per line (the signatures of kernels/scan/__init__.py, with op as its index in OPS / ARG_OPS)."""
import math

import numpy as np
from numba import njit, prange

from .._numba import run
from .. import split_axis


def _view(x, axis):
    x = np.ascontiguousarray(x)
    return x.reshape(split_axis(x.shape, axis) if x.ndim else (1, 1, 1))


def scan(x, axis, op):
    x3 = _view(x, axis)
    y = np.empty(x3.shape, x.dtype)
    run(scan_kernel, x3.size, x3, op, y)
    return y.reshape(x.shape)


def scan_arg(x, axis, op):
    x3 = _view(x, axis)
    y = np.empty(x3.shape, x.dtype)
    idx = np.empty(x3.shape, np.int64)
    run(scan_arg_kernel, x3.size, x3, op, y, idx)
    return y.reshape(x.shape), idx.reshape(x.shape)


@njit(inline="always")
def log_add_exp(x, y):
    """PyTorch's _log_add_exp_helper(x, y) (y the running value)."""
    if math.isnan(y):
        lo = hi = y
    else:
        lo, hi = min(x, y), max(x, y)
        if math.isnan(x):       # std::min / std::max keep their first argument, x
            lo = hi = x
    if lo != hi or math.isfinite(lo):
        return math.log1p(math.exp(lo - hi)) + hi
    return x


@njit(parallel=True, cache=True)
def scan_kernel(x, op, y):
    O, L, I = x.shape
    for line in prange(O * I):
        o = line // I
        i = line - o * I
        acc = 0.0 if op == 0 else (1.0 if op == 1 else -math.inf)   # float64, PyTorch's acc_type
        for k in range(L):
            v = np.float64(x[o, k, i])
            if op == 0:
                acc += v
            elif op == 1:
                acc *= v
            else:
                acc = log_add_exp(v, acc)
            y[o, k, i] = acc


@njit(parallel=True, cache=True)
def scan_arg_kernel(x, op, y, idx):
    O, L, I = x.shape
    for line in prange(O * I):
        o = line // I
        i = line - o * I
        if L == 0:
            continue
        best = x[o, 0, i]
        at = 0
        for k in range(L):
            v = x[o, k, i]
            if v != v or (best == best and (v >= best if op == 0 else v <= best)):
                best = v
                at = k
            y[o, k, i] = best
            idx[o, k, i] = at
