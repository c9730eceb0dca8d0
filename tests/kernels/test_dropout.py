"""The dropout family (minicnn.kernels.dropout): forward(x, p, mask_shape, ka, kb, da, db) and
backward(gy, mask) on cpu (masks drawn from minicnn.random's NumPy generator), emu and cuda
(Philox4x32-10 keyed by the seed, drawn again in the backward, never stored), each against the
mask it must draw. The NumPy Philox reference against Random123's known answers and against
common.cuh; the CUDA launch layer against it bit for bit (layouts, feature rows, small grids,
alignments, alpha constants, checks); F.dropout / dropout2d / alpha_dropout on every device."""
from pathlib import Path

import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from minicnn.kernels import dropout as K
from minicnn.kernels.cuda import module
from minicnn.kernels.cuda.launch import data_ptr
from minicnn.kernels.dropout import cuda as C
from minicnn.kernels.dropout import reference as P
from cuda_util import KERNEL_DEVICES, dev, host, noncontiguous, ran_on

from . import half_util as Hf

SELFTEST = Path(__file__).parent.parent / "cuda_src" / "emu_selftest.cu"
DTYPES = [np.float32, np.float64]

# Known-answer vectors of Philox4x32-10 published with Random123 (kat_vectors), as in
# tests/test_cuda_emulator.py.
KAT = [((0, 0, 0, 0), (0, 0), (0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8)),
       ((0xffffffff,) * 4, (0xffffffff,) * 2, (0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd)),
       ((0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344), (0xa4093822, 0x299f31d0),
        (0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1))]

SEEDS = [(0, 0), (1234, 7), (2**40 + 3, 2**33 + 1), (-5, 2**64 - 1)]




def drawn_keep(device, seed, mask_shape, p, dtype, call=0):
    """The keep mask the family draws on `device` in its `call`-th draw (from 0) after
    mc.manual_seed(seed): on the CPU from minicnn.random's NumPy generator (u >= p, u float64
    for float64 data, else float32); on the GPU by Philox keyed by the seed at offset `call`, one
    draw per element of mask_shape (per (n, c) row for feature dropout)."""
    if device == "cpu":
        rng = mc.random.Generator(seed).cpu
        for _ in range(call + 1):
            u = rng.random(mask_shape, dtype=np.float64 if np.dtype(dtype).itemsize == 8 else
                           np.float32)
        return u >= p
    return P.keep_mask(int(np.prod(mask_shape)), seed, call, p).reshape(mask_shape)


# --- the API: the mask each device must draw -----------------------------------------------------

API_CASES = [((1,), (1,)), ((7,), (7,)), ((1001,), (1001,)), ((3, 5, 4, 6), (3, 5, 4, 6)),
             ((4, 6, 3, 5), (4, 6, 1, 1)), ((3, 5, 33), (3, 5, 1)), ((5, 7), (5, 7))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.0, 0.3, 0.8, 1.0])
@pytest.mark.parametrize("alpha", [False, True], ids=["inverted", "alpha"])
def test_forward_backward(kernel_device, launched, dtype, p, alpha):
    """y = keep ? x ka + kb : x da + db with the mask the device draws after mc.manual_seed
    (element-wise, or per (n, c) broadcast over the rest); the backward gy (keep ? ka : da)
    with the same mask, given only what forward returned."""
    d = kernel_device
    t = np.dtype(dtype).type
    ka, kb, da, db = (1.7, 0.2, 0.0, -1.1) if alpha else (1.0 / (1.0 - p) if p < 1 else 0.0,
                                                          0.0, 0.0, 0.0)
    rng = np.random.default_rng(int(p * 10))
    kept = dropped = 0
    for shape, mask_shape in API_CASES:
        x = rng.standard_normal(shape).astype(dtype)
        gy = rng.standard_normal(shape).astype(dtype)
        mc.manual_seed(77)
        y, mask = K.forward(dev(x, d), p, mask_shape, ka, kb, da, db)
        keep = np.broadcast_to(drawn_keep(d, 77, mask_shape, p, dtype), shape)
        kept, dropped = kept + keep.sum(), dropped + (~keep).sum()
        want = x * np.where(keep, t(ka), t(da)) + np.where(keep, t(kb), t(db))
        y = host(y)
        assert y.dtype == dtype and y.shape == shape
        if alpha:   # x * a + b: one rounding less where the GPU contracts to an FMA
            eps = np.finfo(dtype).eps
            np.testing.assert_allclose(y, want, rtol=4 * eps, atol=4 * eps)
        else:
            np.testing.assert_array_equal(y, want)
        gx = host(K.backward(dev(gy, d), mask))
        assert gx.dtype == dtype
        np.testing.assert_array_equal(gx, gy * np.where(keep, t(ka), t(da)))
    assert (kept > 0) == (p < 1) and (dropped > 0) == (p > 0)   # both branches where possible
    ran_on(kernel_device, launched)


def test_empty_and_0d(kernel_device):
    d = kernel_device
    for x in (np.zeros((0, 2), np.float32), np.array(3.0)):
        mc.manual_seed(1)
        y, mask = K.forward(dev(x, d), 0.5, x.shape, 2.0)
        assert y.shape == x.shape and y.dtype == x.dtype
        assert K.backward(dev(np.ones_like(x), d), mask).shape == x.shape
        if x.ndim == 0:
            assert float(host(y)) in (0.0, 6.0)


# --- the NumPy Philox reference ------------------------------------------------------------------

def test_reference_known_answers():
    for ctr, key, want in KAT:
        got = P.philox4x32_10(np.array(ctr, np.uint32), *key)
        assert tuple(int(v) for v in got) == want
    batch = P.philox4x32_10(np.array([k[0] for k in KAT], np.uint32), 0, 0)  # vectorised rows
    assert tuple(int(v) for v in batch[0]) == KAT[0][2]


def test_reference_uniform01():
    bits = np.array([0, 255, 256, 0xffffffff, 0x80000000], np.uint32)
    u = P.uniform01(bits)
    assert u.dtype == np.float32
    np.testing.assert_array_equal(u, [0.0, 0.0, 2.0**-24, 1.0 - 2.0**-24, 0.5])


@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_reference_matches_common_cuh(device):
    """philox4x32_10 of common.cuh (through the emulator self-test kernel) on random counters
    and keys, bit for bit."""
    rng = np.random.default_rng(0)
    k = module.kernel(SELFTEST, "philox_kernel")
    for _ in range(8):
        ctr = rng.integers(0, 2**32, 4, dtype=np.uint64).astype(np.uint32)
        key = [int(v) for v in rng.integers(0, 2**32, 2, dtype=np.uint64)]
        out = module.empty(np, (4,), np.uint32) if device == "emu" else dev(
            np.zeros(4, np.uint32), device)
        k((1,), (1,), (out, dev(ctr, device), *key))
        np.testing.assert_array_equal(host(out), P.philox4x32_10(ctr, *key))


# --- the CUDA launch layer against the reference, bit for bit ------------------------------------

@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_kernel_bit_exact(device, dtype):
    rng = np.random.default_rng(1)
    for n in (1, 3, 4, 7, 33, 1001):
        x = rng.standard_normal(n).astype(dtype)
        for (seed, offset), p in zip(SEEDS, (0.5, 0.1, 0.9, 0.3)):
            got = host(C.dropout(dev(x, device), seed, offset, p, 1.0 / (1.0 - p)))
            want = P.dropout_apply(x, seed, offset, p, 1.0 / (1.0 - p))
            assert got.dtype == dtype
            np.testing.assert_array_equal(got, want)
            keep = P.keep_mask(n, seed, offset, p)
            np.testing.assert_array_equal(got != 0, keep & (x != 0))


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_kernel_layouts(device, dtype):
    """Non-contiguous and unaligned inputs (the scalar path) draw the same mask."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 11)).astype(dtype)
    want = P.dropout_apply(x, 9, 4, 0.4, 2.5)
    np.testing.assert_array_equal(host(C.dropout(noncontiguous(x, device), 9, 4, 0.4, 2.5)), want)
    buf = rng.standard_normal(67).astype(dtype)
    xu = dev(buf, device)[1:]
    np.testing.assert_array_equal(host(C.dropout(xu, 9, 4, 0.4, 2.5)),
                                  P.dropout_apply(buf[1:], 9, 4, 0.4, 2.5))
    y = C.dropout(dev(np.array(3.0, dtype), device), 1, 1, 0.5, 2.0)
    assert y.shape == ()
    assert C.dropout(dev(np.zeros((0, 2), dtype), device), 1, 1, 0.5, 2.0).shape == (0, 2)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_feature_dropout_kernel(device, dtype):
    rng = np.random.default_rng(3)
    for shape in [(2, 3, 5), (4, 7, 1), (3, 5, 300), (1, 1, 33), (5, 6, 2, 3)]:
        x = rng.standard_normal(shape).astype(dtype)
        rows = shape[0] * shape[1]
        got = host(C.dropout(dev(x, device), 77, 5, 0.5, 2.0, rows=rows))
        np.testing.assert_array_equal(got, P.dropout_apply(x, 77, 5, 0.5, 2.0, rows=rows))
        flat = got.reshape(rows, -1)
        keep = P.keep_mask(rows, 77, 5, 0.5)
        assert (flat[~keep] == 0).all()
        # a feature row uses the draw element-wise dropout makes for the row's index
        np.testing.assert_array_equal(keep, P.keep_mask(rows * 4, 77, 5, 0.5)[:rows])


@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_dropout_kernel_grid_stride(device, monkeypatch):
    monkeypatch.setattr(C, "MAX_BLOCKS", 2)
    x = np.random.default_rng(4).standard_normal(2 * 256 * 4 * 3 + 6).astype(np.float32)
    np.testing.assert_array_equal(host(C.dropout(dev(x, device), 3, 8, 0.2, 1.25)),
                                  P.dropout_apply(x, 3, 8, 0.2, 1.25))
    xf = x[:3 * 7 * 40].reshape(3, 7, 40)
    np.testing.assert_array_equal(host(C.dropout(dev(xf, device), 3, 8, 0.2, 1.25, rows=21)),
                                  P.dropout_apply(xf, 3, 8, 0.2, 1.25, rows=21))


def at_offset(a, off, device):
    """A contiguous device copy of `a` whose first element lies `off` elements past a 64-byte
    boundary."""
    a = np.asarray(a)
    buf = dev(np.zeros(a.size + off + 64 // a.itemsize, a.dtype), device)
    start = (-data_ptr(buf) % 64) // a.itemsize + off
    v = buf[start:start + a.size].reshape(a.shape)
    v[...] = dev(a, device)
    return v


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_kernel_alignments(device, dtype):
    """x and y at every element offset from a 64-byte boundary: the 4-element vector path needs
    4 * sizeof(T) bytes (32 for float64: 16-byte aligned is not enough), the mask never changes."""
    x = np.random.default_rng(9).standard_normal(41).astype(dtype)
    want = P.dropout_apply(x, 5, 6, 0.3, 2.0)
    for off in range(5):
        np.testing.assert_array_equal(host(C.dropout(at_offset(x, off, device), 5, 6, 0.3, 2.0)),
                                      want)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_alpha_constants(device):
    x = np.random.default_rng(5).standard_normal(301)
    args = (11, 2, 0.3, 1.7, 0.2, 0.0, -1.1)
    np.testing.assert_allclose(host(C.dropout(dev(x, device), *args)),
                               P.dropout_apply(x, *args), rtol=1e-15, atol=1e-15)


def test_launch_bad_input():
    with pytest.raises(ValueError, match="between 0 and 1"):
        C.dropout(np.ones(3, np.float32), 0, 0, 1.5, 1.0)
    with pytest.raises(TypeError, match="float16 or bfloat16, got int32"):
        C.dropout(np.ones(3, np.int32), 0, 0, 0.5, 2.0)
    with pytest.raises(ValueError, match="do not split into 4 rows"):
        C.dropout(np.ones(6, np.float32), 0, 0, 0.5, 2.0, rows=4)


# --- the ops on every device ---------------------------------------------------------------------

def _t(a, device, grad=True):
    return mc.Tensor(dev(a, device), requires_grad=grad)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_keep_rate_scale_and_backward_mask(kernel_device, dtype, p):
    n = 20000
    x = _t(np.ones(n, dtype), kernel_device)
    y = F.dropout(x, p, training=True)
    out = host(y.array)
    assert out.dtype == dtype
    se = np.sqrt(p * (1 - p) / n)
    assert abs(np.mean(out == 0) - p) < 5 * se
    np.testing.assert_allclose(out[out != 0], 1.0 / (1.0 - p), rtol=1e-6)
    y.backward(mc.Tensor(dev(np.full(n, 2.0, dtype), kernel_device)))
    np.testing.assert_array_equal(host(x.grad.array), 2.0 * out)  # the same mask (drawn again)


def test_seeding(kernel_device):
    """mc.manual_seed and get/set_rng_state make the masks repeatable; each call draws a fresh
    one, the one the device must draw (the generator's on the CPU: no Philox there)."""
    x = _t(np.ones((8, 125), np.float32), kernel_device, grad=False)
    mc.manual_seed(3)
    a, b = host(F.dropout(x, 0.5).array), host(F.dropout(x, 0.5).array)
    assert not np.array_equal(a, b)                     # each call: a fresh mask
    mc.manual_seed(3)
    np.testing.assert_array_equal(host(F.dropout(x, 0.5).array), a)
    state = mc.get_rng_state()
    c = host(F.dropout(x, 0.5).array)
    np.testing.assert_array_equal(c, np.float32(2.0) * drawn_keep(kernel_device, 3, (8, 125), 0.5,
                                                                  np.float32, call=1))
    mc.set_rng_state(state)
    np.testing.assert_array_equal(host(F.dropout(x, 0.5).array), c)
    mc.manual_seed(4)
    assert not np.array_equal(host(F.dropout(x, 0.5).array), a)


def test_generator_philox_state():
    g = mc.random.Generator(5)
    assert g.next_philox() == (5, 0) and g.next_philox() == (5, 1)
    s = g.get_state()
    assert s["philox_offset"] == 2
    g.manual_seed(6)
    assert g.next_philox() == (6, 0)
    g.set_state(s)
    assert g.next_philox() == (5, 2)


def test_dropout2d_channels(kernel_device):
    d = kernel_device
    a = np.random.default_rng(6).uniform(1.0, 2.0, (4, 6, 3, 5))
    x = _t(a, d)
    mc.manual_seed(0)
    y = F.dropout2d(x, 0.5)
    out = host(y.array)
    zero = (out == 0).all(axis=(2, 3))
    kept = (out != 0).all(axis=(2, 3))
    assert (zero | kept).all() and zero.any() and kept.any()
    np.testing.assert_allclose(out[kept], 2.0 * a[kept])
    y.backward(mc.Tensor(dev(np.ones_like(a), d)))
    np.testing.assert_array_equal(host(x.grad.array),
                                  np.where(kept[:, :, None, None], 2.0, 0.0) * np.ones_like(a))
    y1 = host(F.dropout1d(_t(a[:, :, 0], d), 0.5).array)
    assert ((y1 == 0).all(axis=2) | (y1 != 0).all(axis=2)).all()


def test_alpha_dropout(kernel_device):
    d = kernel_device
    a = np.random.default_rng(7).standard_normal(40000)
    x = _t(a, d)
    y = F.alpha_dropout(x, 0.2, training=True)
    out = host(y.array)
    assert abs(out.mean()) < 0.03 and abs(out.std() - 1.0) < 0.03  # mean 0, variance 1 kept
    y.sum().backward()
    g = host(x.grad.array)
    alpha = 1.7580993408473766
    scale = 1.0 / ((alpha * alpha * 0.2 + 1.0) * 0.8) ** 0.5
    dropped = np.isclose(out, alpha * scale * (0.2 - 1.0))
    np.testing.assert_allclose(g[~dropped], scale)
    np.testing.assert_array_equal(g[dropped], 0.0)
    f = host(F.feature_alpha_dropout(_t(a.reshape(100, 20, 20), d), 0.5, training=True).array)
    const = np.isclose(f, f[:, :, :1]).all(axis=2)
    assert const.any() and not const.all()


def test_gradcheck_and_double_backward(kernel_device):
    x = _t(np.random.default_rng(8).standard_normal((3, 4, 5)), kernel_device)
    for fn in (lambda t: F.dropout(t, 0.4), lambda t: F.dropout2d(t, 0.4),
               lambda t: F.alpha_dropout(t, 0.4, training=True)):
        def seeded(t, fn=fn):
            mc.manual_seed(1)  # the same mask for every evaluation of the check
            return fn(t)
        assert mc.testing.gradcheck(seeded, (x,))
        assert mc.testing.gradgradcheck(seeded, (x,))


# --- float16 / bfloat16 --------------------------------------------------------------------------

@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", Hf.HALVES, ids=Hf.HALF_IDS)
def test_half_dropout_kernels(device, dtype, monkeypatch):
    """The same masks as float32; inverted dropout equal to the float32 reference rounded once
    (x * ka + 0), alpha dropout within one rounding around float32's 4 eps (a GPU may fuse the
    multiply-add); feature dropout, odd sizes, unaligned starts, NaN and inf carried."""
    launched = Hf.spy(device, monkeypatch)
    rng = np.random.default_rng(5)
    eps32 = float(np.finfo(np.float32).eps)
    for n in (1, 7, 33, 1001):
        x = rng.standard_normal(n + 1).astype(dtype)
        x[0], x[-1] = np.nan, np.inf
        x32 = x.astype(np.float32)
        xd = dev(x, device)
        for xs, xs32 in ((xd, x32), (xd[1:], x32[1:])):   # xd[1:]: 2 bytes past alignment
            got = C.dropout(xs, 1234, 7, 0.3, 1.0 / 0.7)
            Hf.half_equal(got, P.dropout_apply(xs32, 1234, 7, 0.3, np.float32(1.0 / 0.7)),
                          dtype)
            args = (2**40 + 3, 5, 0.2, 1.25, -0.1, 0.5, 0.3)
            Hf.half_close(C.dropout(xs, *args),
                          P.dropout_apply(xs32, *args[:3], *map(np.float32, args[3:])), dtype,
                          4 * eps32, 4 * eps32)
    x = rng.standard_normal((3, 5, 7)).astype(dtype)
    Hf.half_equal(C.dropout(dev(x, device), 77, 5, 0.5, 2.0, rows=15),
                  P.dropout_apply(x.astype(np.float32), 77, 5, 0.5, np.float32(2.0), rows=15),
                  dtype)
    Hf.ran_half(device, launched, dtype)
