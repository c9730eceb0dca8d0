"""The vectorisable float32 exp of kernels/_numba.py (used by the SiLU / GELU / sigmoid
kernels) against NumPy's exp: accuracy over the whole finite range, subnormals, overflow,
underflow and NaN. (The activation kernels at extreme inputs: tests/kernels/test_activation.py.)"""
import numpy as np
from numba import njit, prange

from minicnn.kernels._numba import exp_f32


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
