"""The top-k family on the CPU: a Numba kernel, one prange iteration per row (the signature of
kernels/topk/__init__.py's topk)."""
import numpy as np
from numba import njit, prange

from .._numba import run


def topk(x, k, largest):
    x = np.ascontiguousarray(x)
    values = np.empty((x.shape[0], k), x.dtype)
    idx = np.empty((x.shape[0], k), np.int64)
    run(topk_kernel, x.size * 4, x, k, largest, values, idx)
    return values, idx


@njit(inline="always")
def before(a, b, largest):
    """Whether a goes strictly before b: larger (smaller), NaN counting as the largest."""
    if largest:
        return a > b or (a != a and b == b)
    return a < b or (b != b and a == a)


@njit(parallel=True, cache=True)
def topk_kernel(x, k, largest, values, idx):
    R, L = x.shape
    for r in prange(R):
        n = 0
        for j in range(L):
            v = x[r, j]
            if n == k and not before(v, values[r, k - 1], largest):
                continue
            p = n if n < k else k - 1
            if n < k:
                n += 1
            while p > 0 and before(v, values[r, p - 1], largest):
                values[r, p] = values[r, p - 1]
                idx[r, p] = idx[r, p - 1]
                p -= 1
            values[r, p] = v
            idx[r, p] = j
