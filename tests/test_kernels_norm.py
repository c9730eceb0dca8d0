"""The CPU kernels of the norm, activation and softmax families (through their APIs) against
their NumPy references, on random data with odd sizes, float32 and float64, on both sides of the
single-thread threshold."""
import numpy as np
import pytest

from minicnn.kernels import activation as KA
from minicnn.kernels import norm as K
from minicnn.kernels import softmax as KS
from minicnn.kernels.activation import reference as RA
from minicnn.kernels.norm import reference as R
from minicnn.kernels.softmax import reference as RS

DTYPES = [np.float64, np.float32]
TOL = {np.float64: dict(rtol=1e-10, atol=1e-10), np.float32: dict(rtol=1e-4, atol=1e-5)}

ROW_SHAPES = [(1, 1, 1, 3), (3, 2, 5, 7), (2, 1, 13, 1), (5, 3, 1, 11), (2, 4, 3, 1500),
              (3, 1, 1100, 1), (40, 1, 1001, 1)]  # the last two: layer-norm kernels
CHAN_SHAPES = [(2, 1, 3), (3, 5, 7), (7, 3, 1), (4, 6, 1500)]


def _rand(rng, shape, dtype, scale=1.0, shift=0.0):
    return (rng.standard_normal(shape) * scale + shift).astype(dtype)


def _close(a, b, dtype):
    np.testing.assert_allclose(a, b, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ROW_SHAPES)
@pytest.mark.parametrize("affine", [True, False])
def test_row_norm(shape, dtype, affine):
    rng = np.random.default_rng(sum(shape))
    N, G, S, I = shape  # noqa: E741
    x = _rand(rng, shape, dtype, 3.0, 1.5)
    w = _rand(rng, (G, S), dtype) if affine else None
    b = _rand(rng, (G, S), dtype) if affine else None
    y, mean, rstd = K.row_norm_fwd(x, w, b, 1e-5)
    ry, rmean, rrstd = R.row_norm_fwd(x, w, b, 1e-5)
    assert y.dtype == dtype
    _close(y, ry, dtype)
    _close(mean, rmean, np.float64)
    np.testing.assert_allclose(rstd, rrstd, rtol=1e-9)
    gy = _rand(rng, shape, dtype)
    gx, gw, gb = K.row_norm_bwd(gy, x, mean, rstd, w)
    rgx, rgw, rgb = R.row_norm_bwd(gy, x, rmean, rrstd, w)
    _close(gx, rgx, dtype)
    # partial sums over n (the layer-norm layout G = I = 1 returns them already summed)
    _close(gw.sum(0), rgw.sum(0), dtype)
    _close(gb.sum(0), rgb.sum(0), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", CHAN_SHAPES)
def test_channel_norm(shape, dtype):
    rng = np.random.default_rng(sum(shape))
    C = shape[1]
    x = _rand(rng, shape, dtype, 2.0, -0.7)
    mean, var = K.chan_stats(x)
    rmean, rvar = R.chan_stats(x)
    _close(mean, rmean, np.float64)
    _close(var, rvar, np.float64)
    scale, shift = rng.standard_normal(C), rng.standard_normal(C)
    _close(K.chan_affine(x, scale, shift), R.chan_affine(x, scale, shift), dtype)
    gy = _rand(rng, shape, dtype)
    s1, s2 = K.chan_bwd_sums(gy, x, mean)
    r1, r2 = R.chan_bwd_sums(gy, x, mean)
    _close(s1, r1, np.float64)
    _close(s2, r2, np.float64)
    rstd = 1.0 / np.sqrt(var + 1e-5)
    w = rng.standard_normal(C)
    for ww in (w, None):
        _close(K.chan_bwd_apply(gy, x, mean, rstd, ww, s1, s2),
               R.chan_bwd_apply(gy, x, mean, rstd, ww, s1, s2), dtype)


def test_noncontiguous_inputs():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 4, 9))[:, ::2, 1::2]   # strided view (5, 2, 4)
    _close(K.chan_stats(x)[1], R.chan_stats(x)[1], np.float64)
    x4 = x.reshape(5, 2, 1, 4)
    _close(K.row_norm_fwd(x4, None, None, 1e-5)[0], R.row_norm_fwd(x4, None, None, 1e-5)[0],
           np.float64)


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
