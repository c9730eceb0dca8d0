"""The CPU kernels of the activation family (through its API) against its NumPy reference, on
random data with odd sizes, float32 and float64, on both sides of the single-thread threshold.
(The norm and softmax families': tests/kernels/.)"""
import numpy as np
import pytest

from minicnn.kernels import activation as KA
from minicnn.kernels.activation import reference as RA

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
