"""Philox dropout on CUDA (kernels/dropout/dropout.cu): the NumPy Philox4x32-10 reference against
Random123's known answers and against the kernels bit for bit, the dropout kernels against their
reference, and F.dropout / dropout2d / alpha_dropout on the GPU path (seeded by mc.manual_seed, the
mask recomputed in backward, never stored). "emu" runs the kernels under the CPU emulator with the
ops' CUDA branch forced; "cuda" runs them on a GPU."""
from pathlib import Path

import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from minicnn.kernels.dropout import cuda as E
from minicnn.kernels.cuda import module
from minicnn.kernels.dropout import reference as P
from cuda_util import KERNEL_DEVICES, dev, host, noncontiguous, emulate

SELFTEST = Path(__file__).parent / "cuda_src" / "emu_selftest.cu"

# Known-answer vectors of Philox4x32-10 published with Random123 (kat_vectors), as in
# tests/test_cuda_emulator.py.
KAT = [((0, 0, 0, 0), (0, 0), (0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8)),
       ((0xffffffff,) * 4, (0xffffffff,) * 2, (0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd)),
       ((0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344), (0xa4093822, 0x299f31d0),
        (0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1))]

SEEDS = [(0, 0), (1234, 7), (2**40 + 3, 2**33 + 1), (-5, 2**64 - 1)]


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


# --- the kernels against the reference -----------------------------------------------------------

@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_kernel_bit_exact(device, dtype):
    rng = np.random.default_rng(1)
    for n in (1, 3, 4, 7, 33, 1001):
        x = rng.standard_normal(n).astype(dtype)
        for (seed, offset), p in zip(SEEDS, (0.5, 0.1, 0.9, 0.3)):
            got = host(E.dropout(dev(x, device), seed, offset, p, 1.0 / (1.0 - p)))
            want = P.dropout_apply(x, seed, offset, p, 1.0 / (1.0 - p))
            assert got.dtype == dtype
            np.testing.assert_array_equal(got, want)
            keep = P.keep_mask(n, seed, offset, p)
            np.testing.assert_array_equal(got != 0, keep & (x != 0))


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_kernel_layouts(device, dtype):
    """Non-contiguous and unaligned inputs (the scalar path) draw the same mask."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 11)).astype(dtype)
    want = P.dropout_apply(x, 9, 4, 0.4, 2.5)
    np.testing.assert_array_equal(host(E.dropout(noncontiguous(x, device), 9, 4, 0.4, 2.5)), want)
    buf = rng.standard_normal(67).astype(dtype)
    xu = dev(buf, device)[1:]
    np.testing.assert_array_equal(host(E.dropout(xu, 9, 4, 0.4, 2.5)),
                                  P.dropout_apply(buf[1:], 9, 4, 0.4, 2.5))
    y = E.dropout(dev(np.array(3.0, dtype), device), 1, 1, 0.5, 2.0)
    assert y.shape == ()
    assert E.dropout(dev(np.zeros((0, 2), dtype), device), 1, 1, 0.5, 2.0).shape == (0, 2)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_feature_dropout_kernel(device, dtype):
    rng = np.random.default_rng(3)
    for shape in [(2, 3, 5), (4, 7, 1), (3, 5, 300), (1, 1, 33), (5, 6, 2, 3)]:
        x = rng.standard_normal(shape).astype(dtype)
        rows = shape[0] * shape[1]
        got = host(E.dropout(dev(x, device), 77, 5, 0.5, 2.0, rows=rows))
        np.testing.assert_array_equal(got, P.dropout_apply(x, 77, 5, 0.5, 2.0, rows=rows))
        flat = got.reshape(rows, -1)
        keep = P.keep_mask(rows, 77, 5, 0.5)
        assert (flat[~keep] == 0).all()
        # a feature row uses the draw element-wise dropout makes for the row's index
        np.testing.assert_array_equal(keep, P.keep_mask(rows * 4, 77, 5, 0.5)[:rows])


@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_dropout_kernel_grid_stride(device, monkeypatch):
    monkeypatch.setattr(E, "MAX_BLOCKS", 2)
    x = np.random.default_rng(4).standard_normal(2 * 256 * 4 * 3 + 6).astype(np.float32)
    np.testing.assert_array_equal(host(E.dropout(dev(x, device), 3, 8, 0.2, 1.25)),
                                  P.dropout_apply(x, 3, 8, 0.2, 1.25))
    xf = x[:3 * 7 * 40].reshape(3, 7, 40)
    np.testing.assert_array_equal(host(E.dropout(dev(xf, device), 3, 8, 0.2, 1.25, rows=21)),
                                  P.dropout_apply(xf, 3, 8, 0.2, 1.25, rows=21))


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_kernel_alignments(device, dtype):
    """x and y at every element offset from a 64-byte boundary: the 4-element vector path needs
    4 * sizeof(T) bytes (32 for float64: 16-byte aligned is not enough), the mask never changes."""
    from test_cuda_elementwise import at_offset  # noqa: PLC0415
    x = np.random.default_rng(9).standard_normal(41).astype(dtype)
    want = P.dropout_apply(x, 5, 6, 0.3, 2.0)
    for off in range(5):
        np.testing.assert_array_equal(host(E.dropout(at_offset(x, off, device), 5, 6, 0.3, 2.0)),
                                      want)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_alpha_constants(device):
    x = np.random.default_rng(5).standard_normal(301)
    args = (11, 2, 0.3, 1.7, 0.2, 0.0, -1.1)
    np.testing.assert_allclose(host(E.dropout(dev(x, device), *args)),
                               P.dropout_apply(x, *args), rtol=1e-15, atol=1e-15)


def test_kernel_bad_input():
    with pytest.raises(ValueError, match="between 0 and 1"):
        E.dropout(np.ones(3, np.float32), 0, 0, 1.5, 1.0)
    with pytest.raises(TypeError, match="float32 or float64"):
        E.dropout(np.ones(3, np.int32), 0, 0, 0.5, 2.0)
    with pytest.raises(ValueError, match="do not split into 4 rows"):
        E.dropout(np.ones(6, np.float32), 0, 0, 0.5, 2.0, rows=4)


# --- the ops on the GPU path -------------------------------------------------------------------

@pytest.fixture
def gpu_dropout(monkeypatch):
    """Tensors on `device`; under the emulator the dropout ops take their CUDA branch."""
    def make(device, a, grad=True):
        if device == "emu":
            emulate(monkeypatch)
        return mc.Tensor(dev(a, device), requires_grad=grad)
    return make


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_keep_rate_scale_and_backward_mask(device, dtype, p, gpu_dropout):
    n = 20000
    x = gpu_dropout(device, np.ones(n, dtype))
    y = F.dropout(x, p, training=True)
    out = host(y.data)
    assert out.dtype == dtype
    se = np.sqrt(p * (1 - p) / n)
    assert abs(np.mean(out == 0) - p) < 5 * se
    np.testing.assert_allclose(out[out != 0], 1.0 / (1.0 - p), rtol=1e-6)
    y.backward(mc.Tensor(dev(np.full(n, 2.0, dtype), device)))
    np.testing.assert_array_equal(host(x.grad.data), 2.0 * out)  # the mask drawn again


@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_seeding(device, gpu_dropout):
    x = gpu_dropout(device, np.ones((8, 125), np.float32), grad=False)
    mc.manual_seed(3)
    a, b = host(F.dropout(x, 0.5).data), host(F.dropout(x, 0.5).data)
    assert not np.array_equal(a, b)                     # each call: a fresh offset
    mc.manual_seed(3)
    np.testing.assert_array_equal(host(F.dropout(x, 0.5).data), a)
    state = mc.get_rng_state()
    c = host(F.dropout(x, 0.5).data)
    np.testing.assert_array_equal(c, P.dropout_apply(np.ones((8, 125), np.float32), 3, 1, 0.5,
                                                     2.0))
    mc.set_rng_state(state)
    np.testing.assert_array_equal(host(F.dropout(x, 0.5).data), c)
    mc.manual_seed(4)
    assert not np.array_equal(host(F.dropout(x, 0.5).data), a)


def test_generator_philox_state():
    g = mc.random.Generator(5)
    assert g.next_philox() == (5, 0) and g.next_philox() == (5, 1)
    s = g.get_state()
    assert s["philox_offset"] == 2
    g.manual_seed(6)
    assert g.next_philox() == (6, 0)
    g.set_state(s)
    assert g.next_philox() == (5, 2)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_dropout2d_channels(device, gpu_dropout):
    a = np.random.default_rng(6).uniform(1.0, 2.0, (4, 6, 3, 5))
    x = gpu_dropout(device, a)
    mc.manual_seed(0)
    y = F.dropout2d(x, 0.5)
    out = host(y.data)
    zero = (out == 0).all(axis=(2, 3))
    kept = (out != 0).all(axis=(2, 3))
    assert (zero | kept).all() and zero.any() and kept.any()
    np.testing.assert_allclose(out[kept], 2.0 * a[kept])
    y.backward(mc.Tensor(dev(np.ones_like(a), device)))
    np.testing.assert_array_equal(host(x.grad.data),
                                  np.where(kept[:, :, None, None], 2.0, 0.0) * np.ones_like(a))
    y1 = host(F.dropout1d(gpu_dropout(device, a[:, :, 0]), 0.5).data)
    assert ((y1 == 0).all(axis=2) | (y1 != 0).all(axis=2)).all()


@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_alpha_dropout(device, gpu_dropout):
    a = np.random.default_rng(7).standard_normal(40000)
    x = gpu_dropout(device, a)
    y = F.alpha_dropout(x, 0.2, training=True)
    out = host(y.data)
    assert abs(out.mean()) < 0.03 and abs(out.std() - 1.0) < 0.03  # mean 0, variance 1 kept
    y.sum().backward()
    g = host(x.grad.data)
    alpha = 1.7580993408473766
    scale = 1.0 / ((alpha * alpha * 0.2 + 1.0) * 0.8) ** 0.5
    dropped = np.isclose(out, alpha * scale * (0.2 - 1.0))
    np.testing.assert_allclose(g[~dropped], scale)
    np.testing.assert_array_equal(g[dropped], 0.0)
    f = host(F.feature_alpha_dropout(gpu_dropout(device, a.reshape(100, 20, 20)), 0.5,
                                     training=True).data)
    const = np.isclose(f, f[:, :, :1]).all(axis=2)
    assert const.any() and not const.all()


@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_gradcheck_and_double_backward(device, gpu_dropout):
    x = gpu_dropout(device, np.random.default_rng(8).standard_normal((3, 4, 5)))
    for fn in (lambda t: F.dropout(t, 0.4), lambda t: F.dropout2d(t, 0.4),
               lambda t: F.alpha_dropout(t, 0.4, training=True)):
        def seeded(t, fn=fn):
            mc.manual_seed(1)  # the same mask for every evaluation of the check
            return fn(t)
        assert mc.testing.gradcheck(seeded, (x,))
        assert mc.testing.gradgradcheck(seeded, (x,))


def test_cpu_path_unchanged():
    """NumPy tensors keep the generator's masks (no Philox)."""
    mc.manual_seed(0)
    x = mc.Tensor(np.ones(1000, np.float32))
    y = F.dropout(x, 0.3).data
    mc.manual_seed(0)
    keep = mc.random.rng("cpu").random(1000, dtype="float32") >= 0.3
    np.testing.assert_array_equal(y, keep / np.float32(0.7))
