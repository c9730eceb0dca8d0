"""The resampling family on the CPU: a Numba kernel, one prange iteration per (b, o) output row
(the signature of kernels/resample/__init__.py's resample2d, with the Taps as arrays)."""
import numpy as np
from numba import njit, prange

from .._numba import run


def resample2d(x, rptr, ridx, rw, cptr, cidx, cw):
    x = np.ascontiguousarray(x)
    y = np.empty((x.shape[0], len(rptr) - 1, len(cptr) - 1), x.dtype)
    work = y.size * max(1, len(ridx) // max(1, len(rptr) - 1)) * \
        max(1, len(cidx) // max(1, len(cptr) - 1))
    run(resample_kernel, work, x, rptr, ridx, rw, cptr, cidx, cw, y)
    return y


@njit(parallel=True, cache=True)
def resample_kernel(x, rptr, ridx, rw, cptr, cidx, cw, y):
    B, OH, OW = y.shape
    zero = x.dtype.type(0)
    for bo in prange(B * OH):
        b = bo // OH
        o = bo - b * OH
        for p in range(OW):
            acc = zero
            for a in range(rptr[o], rptr[o + 1]):
                row = x[b, ridx[a]]
                s = zero
                for c in range(cptr[p], cptr[p + 1]):
                    s += cw[c] * row[cidx[c]]
                acc += rw[a] * s
            y[b, o, p] = acc
