"""The CPU kernels of the activation and softmax families (through their APIs) against their
NumPy references, on random data with odd sizes, float32 and float64, on both sides of the
single-thread threshold. (The norm family's: tests/kernels/test_norm.py.)"""
import numpy as np
import pytest

from minicnn.kernels import activation as KA
from minicnn.kernels import softmax as KS
from minicnn.kernels.activation import reference as RA
from minicnn.kernels.softmax import reference as RS

DTYPES = [np.float64, np.float32]
TOL = {np.float64: dict(rtol=1e-10, atol=1e-10), np.float32: dict(rtol=1e-4, atol=1e-5)}


def _rand(rng, shape, dtype, scale=1.0, shift=0.0):
    return (rng.standard_normal(shape) * scale + shift).astype(dtype)


def _close(a, b, dtype):
    np.testing.assert_allclose(a, b, **TOL[dtype])


ELEM_SHAPES = [(7,), (3, 5, 11), (40001,)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ELEM_SHAPES)
def test_activation_kernels(shape, dtype):
    rng = np.random.default_rng(len(shape))
    x = _rand(rng, shape, dtype, 3.0)
    gy = _rand(rng, shape, dtype)
    for act in ("relu", "gelu", "gelu_tanh", "sigmoid", "silu", "tanh", "mish", "identity"):
        y = KA.forward(x, act)
        _close(y, RA.forward(x, act), dtype)
        gx = KA.backward(x, gy, act)
        _close(gx, RA.backward(x, gy, act), dtype)
        assert y.dtype == dtype and y.shape == x.shape and gx.dtype == dtype
    _close(KA.forward(x, "leaky_relu", 0.1), RA.forward(x, "leaky_relu", 0.1), dtype)
    _close(KA.backward(x, gy, "leaky_relu", 0.1), RA.backward(x, gy, "leaky_relu", 0.1), dtype)
    with pytest.raises(ValueError, match="unknown activation 'swishy'"):
        KA.forward(x, "swishy")


def test_silu_extreme_values_finite():
    x = np.array([-1e4, -800.0, -50.0, 0.0, 50.0, 800.0, 1e4])
    for act in ("silu", "mish"):
        assert np.all(np.isfinite(KA.forward(x, act)))
        assert np.all(np.isfinite(KA.backward(x, np.ones_like(x), act)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,C", [(1, 1), (5, 3), (17, 1000), (64, 7)])
@pytest.mark.parametrize("smooth", [0.0, 0.2])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_kernels(M, C, dtype, smooth, weighted):
    rng = np.random.default_rng(M * C)
    x = _rand(rng, (M, C), dtype, 4.0)
    t = rng.integers(0, C, size=M)
    t[::4] = -100
    w = rng.uniform(0.2, 2.0, C) if weighted else None
    loss, lse = KS.ce_fwd(x, t, w, -100, smooth)
    rloss, rlse = RS.ce_fwd(x, t, w, -100, smooth)
    _close(loss, rloss, dtype)
    _close(lse, rlse, dtype)
    g = rng.standard_normal(M)
    _close(KS.ce_bwd(x, t, w, -100, smooth, lse, g), RS.ce_bwd(x, t, w, -100, smooth, rlse, g),
           dtype)


def test_cross_entropy_kernel_extreme_logits():
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]], np.float32)
    t = np.array([1, 0])
    loss, lse = KS.ce_fwd(x, t, None, -100, 0.1)
    gx = KS.ce_bwd(x, t, None, -100, 0.1, lse, np.ones(2))
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(gx))
    np.testing.assert_allclose(loss[0], 0.9 * 2e4 + 0.1 / 3 * (0 + 2e4 + 1e4), rtol=1e-6)
