"""NumPy Philox4x32-10 and the dropout keep-masks of dropout.cu, bit for bit: the tests' oracle.

`philox4x32_10` and `uniform01` are the functions of kernels/cuda/common.cuh; `keep_mask` is the
mask the dropout kernels compute: element i uses word i & 3 of the draw with counter
(i >> 2, 0, offset_lo, offset_hi) and key (seed_lo, seed_hi), and is kept iff
uniform01(word) >= float32(p). Feature dropout draws one element of that sequence per row.
"""
import numpy as np

M0, M1 = 0xD2511F53, 0xCD9E8D57      # multipliers
W0, W1 = 0x9E3779B9, 0xBB67AE85      # Weyl key increments
_MASK = 0xFFFFFFFF


def split64(v):
    """A Python int as (low 32 bits, high 32 bits) of its two's-complement 64-bit form."""
    v = int(v) & 0xFFFFFFFFFFFFFFFF
    return v & _MASK, v >> 32


def philox4x32_10(ctr, k0, k1):
    """ctr: (..., 4) unsigned 32-bit counters; k0, k1: the key words. Returns (..., 4) uint32."""
    c = np.asarray(ctr, dtype=np.uint64)
    x, y, z, w = (c[..., j] for j in range(4))
    k0, k1 = int(k0) & _MASK, int(k1) & _MASK
    for _ in range(10):
        p0 = x * np.uint64(M0)           # < 2**64: exact in uint64
        p1 = z * np.uint64(M1)
        hi0, lo0 = p0 >> np.uint64(32), p0 & np.uint64(_MASK)
        hi1, lo1 = p1 >> np.uint64(32), p1 & np.uint64(_MASK)
        x, y, z, w = hi1 ^ y ^ np.uint64(k0), lo1, hi0 ^ w ^ np.uint64(k1), lo0
        k0, k1 = (k0 + W0) & _MASK, (k1 + W1) & _MASK
    return np.stack([x, y, z, w], axis=-1).astype(np.uint32)


def uniform01(bits):
    """A float32 in [0, 1) from the top 24 bits of each word (exact: (bits >> 8) * 2**-24)."""
    return (np.asarray(bits, np.uint32) >> np.uint32(8)).astype(np.float32) * np.float32(2.0**-24)


def uniforms(n, seed, offset):
    """The n uniforms the dropout kernels draw for element indices 0..n-1."""
    s0, s1 = split64(seed)
    o0, o1 = split64(offset)
    groups = (n + 3) // 4
    ctr = np.zeros((groups, 4), np.uint64)
    ctr[:, 0] = np.arange(groups, dtype=np.uint64)
    ctr[:, 2], ctr[:, 3] = o0, o1
    return uniform01(philox4x32_10(ctr, s0, s1).reshape(-1)[:n])


def keep_mask(n, seed, offset, p):
    """The bool keep-mask of n elements (of n rows for feature dropout)."""
    return uniforms(n, seed, offset) >= np.float32(p)


def dropout_apply(x, seed, offset, p, ka, kb=0.0, da=0.0, db=0.0, rows=None):
    """What dropout_kernel / feature_dropout_kernel compute: keep ? x*ka + kb : x*da + db, with
    one draw per element, or per row of x.reshape(rows, -1) when rows is given. In x's dtype."""
    x = np.asarray(x)
    t = x.dtype.type
    flat = x.reshape(-1) if rows is None else x.reshape(rows, -1)
    keep = keep_mask(flat.shape[0], seed, offset, p)
    if rows is not None:
        keep = keep[:, None]
    a = np.where(keep, t(ka), t(da))
    b = np.where(keep, t(kb), t(db))
    return (flat * a + b).astype(x.dtype).reshape(x.shape)
