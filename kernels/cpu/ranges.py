"""Index arithmetic shared by the sliding-window kernels (conv, pooling)."""
from numba import njit


@njit(inline="always")
def valid_range(off, S, size, O):
    """[lo, hi) of output positions o with 0 <= o*S + off < size: the outputs whose window tap at
    offset `off` lands inside the input, so inner loops need no bounds test."""
    lo = 0
    if off < 0:
        lo = (-off + S - 1) // S
    last = size - 1 - off
    if last < 0:
        return 0, 0
    hi = last // S + 1
    if hi > O:
        hi = O
    if lo > hi:
        lo = hi
    return lo, hi
