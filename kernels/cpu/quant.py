"""Numba int8 quantization kernels (CPU). Same conventions as kernels/reference/quant.py.

  quantize_per_tensor_kernel   one prange iteration per element block: q = clip(rint(x/s) + zp)
  quantize_per_channel_kernel  x viewed as (P, C, Q): one prange iteration per (p, c) row
  dequantize_kernel            x = (q - zp) * s over a flat array
  qgemm_nt_kernel              (M, K) int8 x (N, K) int8 -> (M, N) int32, one prange iteration
                               per row of a; the inner k loop (a contiguous dot product) widens
                               int8 to int32 and vectorizes. (A 4-row register-blocked version
                               and an outer-product version measured slower here.)
  im2col_int8_kernel           gather: one prange iteration per (n, oh) output row; writes are
                               contiguous, padding reads pad_value.
"""
import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def quantize_per_tensor_kernel(x, scale, zp, qmin, qmax, out):
    n = x.size
    for i in prange(n):
        q = np.rint(x[i] / scale) + zp
        if q < qmin:
            q = qmin
        elif q > qmax:
            q = qmax
        out[i] = np.int8(q)


@njit(parallel=True, cache=True)
def quantize_per_channel_kernel(x, scale, zp, qmin, qmax, out):
    P, C, Q = x.shape
    for pc in prange(P * C):
        p = pc // C
        c = pc % C
        s = scale[c]
        z = zp[c]
        for j in range(Q):
            q = np.rint(x[p, c, j] / s) + z
            if q < qmin:
                q = qmin
            elif q > qmax:
                q = qmax
            out[p, c, j] = np.int8(q)


@njit(parallel=True, cache=True)
def dequantize_kernel(q, scale, zp, out):
    n = q.size
    for i in prange(n):
        out[i] = (np.float32(q[i]) - zp) * scale


@njit(parallel=True, cache=True)
def qgemm_nt_kernel(a, b, a_zp, out):
    M, K = a.shape
    N = b.shape[0]
    # sum_k (a[m,k] - zp) * b[n,k] = sum_k a[m,k] * b[n,k] - zp * sum_k b[n,k]
    bsum = np.zeros(N, np.int32)
    for n in range(N):
        s = np.int32(0)
        for k in range(K):
            s += np.int32(b[n, k])
        bsum[n] = s * np.int32(a_zp)
    for m in prange(M):
        for n in range(N):
            acc = np.int32(0)
            for k in range(K):
                acc += np.int32(a[m, k]) * np.int32(b[n, k])
            out[m, n] = acc - bsum[n]


@njit(parallel=True, cache=True)
def im2col_int8_kernel(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW, pad_value, out):
    N, C, H, W = x.shape
    for row in prange(N * OH):
        n = row // OH
        oh = row % OH
        for ow in range(OW):
            r = (n * OH + oh) * OW + ow
            col = 0
            for c in range(C):
                for i in range(KH):
                    h = oh * SH - PH + i * DH
                    for j in range(KW):
                        w = ow * SW - PW + j * DW
                        if 0 <= h < H and 0 <= w < W:
                            out[r, col] = x[n, c, h, w]
                        else:
                            out[r, col] = pad_value
                        col += 1
