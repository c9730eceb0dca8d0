"""The int8 family on the CPU: Numba kernels and the functions that call them (the signatures of
kernels/quant/__init__.py, whose docstring gives the conventions).

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

from .. import conv_out_size
from .._numba import run
from . import channel_params


def quantize_per_tensor(x, scale, zero_point=0, qmin=-128, qmax=127):
    xc = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty(xc.shape, np.int8)
    run(quantize_per_tensor_kernel, xc.size, xc.reshape(-1), np.float32(scale),
        np.float32(zero_point), np.float32(qmin), np.float32(qmax), out.reshape(-1))
    return out


def quantize_per_channel(x, scale, zero_point=None, axis=0, qmin=-127, qmax=127):
    scale, zp, C, Q = channel_params(np, "quantize_per_channel", x.shape, axis, scale,
                                     zero_point)
    xc = np.ascontiguousarray(x, dtype=np.float32)
    P = xc.size // max(C * Q, 1)
    out = np.empty(xc.shape, np.int8)
    run(quantize_per_channel_kernel, xc.size, xc.reshape(P, C, Q), scale, zp,
        np.float32(qmin), np.float32(qmax), out.reshape(P, C, Q))
    return out


def dequantize(q, scale, zero_point=0, axis=None):
    if axis is not None or q.dtype != np.int8:  # per channel, or not int8: the plain formula
        if axis is None:
            return (q.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)
        scale, zp, C, _ = channel_params(np, "dequantize", q.shape, axis, scale, zero_point)
        shape = [1] * q.ndim
        shape[axis] = C
        return (q.astype(np.float32) - zp.reshape(shape)) * scale.reshape(shape)
    qc = np.ascontiguousarray(q)
    out = np.empty(qc.shape, np.float32)
    run(dequantize_kernel, qc.size, qc.reshape(-1), np.float32(scale), np.float32(zero_point),
        out.reshape(-1))
    return out


def qgemm_nt(a, b, a_zp=0):
    out = np.empty((a.shape[0], b.shape[0]), np.int32)
    run(qgemm_nt_kernel, a.size * b.shape[0], np.ascontiguousarray(a), np.ascontiguousarray(b),
        np.int32(a_zp), out)
    return out


def im2col_int8(x, KH, KW, SH=1, SW=1, PH=0, PW=0, DH=1, DW=1, pad_value=0):
    N, C, H, W = x.shape
    OH, OW = conv_out_size(H, KH, SH, PH, DH), conv_out_size(W, KW, SW, PW, DW)
    out = np.empty((N * OH * OW, C * KH * KW), np.int8)
    run(im2col_int8_kernel, out.size, np.ascontiguousarray(x, dtype=np.int8), KH, KW, SH, SW,
        PH, PW, DH, DW, OH, OW, np.int8(pad_value), out)
    return out, OH, OW


# --- kernels ----------------------------------------------------------------------------------


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
