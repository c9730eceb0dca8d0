"""The vectorisable float32 exp of kernels/_numba.py (used by the SiLU / GELU / sigmoid
kernels) against NumPy's exp: accuracy over the whole finite range, subnormals, overflow,
underflow and NaN; and the float32 SiLU kernels at extreme inputs."""
import numpy as np
from numba import njit, prange

from minicnn.kernels import activation as K
from minicnn.kernels._numba import exp_f32
from minicnn.kernels.activation import reference as R


@njit(parallel=True)
def _exp_all(x, y):
    for i in prange(x.size):
        y[i] = exp_f32(x[i])


def _exp(x):
    y = np.empty_like(x)
    _exp_all(x, y)
    return y


def test_exp_f32_within_one_ulp():
    x = np.concatenate([np.linspace(-104.0, 89.0, 400_001, dtype=np.float32),
                        np.linspace(-1.0, 1.0, 20_001, dtype=np.float32),
                        np.float32([0.0, -0.0, 1e-30, -1e-30, 0.34657359, -0.34657359])])
    with np.errstate(over="ignore"):
        want = np.exp(x.astype(np.float64)).astype(np.float32)  # correctly rounded
    got = _exp(x)
    assert got.dtype == np.float32
    fin = np.isfinite(want)
    ulps = np.abs(got[fin].view(np.int32).astype(np.int64) - want[fin].view(np.int32))
    assert ulps.max() <= 1
    assert np.array_equal(got[~fin], want[~fin])


def test_exp_f32_limits():
    x = np.float32([np.nan, np.inf, -np.inf, 88.72283, 88.7229, 100.0, -103.97, -103.98, -200.0,
                    -87.5, -100.0])
    got = _exp(x)
    assert np.isnan(got[0])
    assert got[1] == np.inf and got[2] == 0.0
    assert np.isfinite(got[3]) and got[4] == np.inf and got[5] == np.inf
    assert got[6] > 0 and got[7] == 0.0 and got[8] == 0.0
    np.testing.assert_array_equal(got[9:], np.exp(x[9:]))  # subnormal results, exactly


def test_silu_f32_extremes_and_nan():
    x = np.float32([-1e4, -800.0, -104.0, -50.0, 0.0, 50.0, 104.0, 800.0, 1e4])
    y = K.forward(x, "silu")
    g = K.backward(x, np.ones_like(x), "silu")
    assert y.dtype == g.dtype == np.float32
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(g))
    np.testing.assert_array_equal(y[4:], np.float32([0.0, 50.0, 104.0, 800.0, 1e4]))
    assert np.isnan(K.forward(np.float32([np.nan]), "silu")[0])
    assert np.isnan(K.forward(np.float32([np.nan]), "gelu")[0])


def test_gelu_f32_large_inputs():
    x = np.float32([-1e4, -60.0, -14.0, -13.0, -9.0, -5.0, 5.0, 9.0, 13.0, 14.0, 60.0, 1e4])
    gy = np.ones_like(x)
    np.testing.assert_allclose(K.forward(x, "gelu"), R.forward(x, "gelu"), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(K.backward(x, gy, "gelu"), R.backward(x, gy, "gelu"), rtol=1e-4,
                               atol=1e-5)
    assert np.isnan(K.backward(np.float32([np.nan]), np.float32([1.0]), "gelu")[0])


def test_gelu_tanh_f32_and_sigmoid_large_inputs():
    x = np.float32([-1e4, -60.0, -14.0, -9.0, -5.0, -1e-3, 0.0, 1e-3, 5.0, 9.0, 14.0, 60.0, 1e4])
    gy = np.ones_like(x)
    np.testing.assert_allclose(K.forward(x, "gelu_tanh"), R.forward(x, "gelu_tanh"), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(K.backward(x, gy, "gelu_tanh"), R.backward(x, gy, "gelu_tanh"),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(K.forward(x, "sigmoid"), R.forward(x, "sigmoid"), rtol=1e-4,
                               atol=1e-5)
    assert K.forward(x, "sigmoid").dtype == np.float32
