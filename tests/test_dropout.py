"""Dropout: the fraction dropped, scaling, eval identity, seeded repeatability, channel masks."""
import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from conftest import DEVICES
from minicnn.devices import to_device, to_numpy


def _ones(shape, device, dtype=np.float32):
    return mc.Tensor(to_device(np.ones(shape, dtype), device), requires_grad=True)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropped_fraction_and_scale(device, p, dtype):
    n = 20000
    x = _ones((n,), device, dtype)
    y = F.dropout(x, p, training=True)
    out = to_numpy(y.array)
    assert out.dtype == dtype
    dropped = np.mean(out == 0)
    se = np.sqrt(p * (1 - p) / n)
    assert abs(dropped - p) < 5 * se, (dropped, p)
    np.testing.assert_allclose(out[out != 0], 1.0 / (1.0 - p), rtol=1e-6)
    y.sum().backward()
    np.testing.assert_array_equal(to_numpy(x.grad.array), out)  # same mask, same scale


@pytest.mark.parametrize("device", DEVICES)
def test_eval_mode_is_identity(device):
    x = _ones((4, 3, 5, 5), device)
    for m in (mc.nn.Dropout(0.5), mc.nn.Dropout2d(0.5), mc.nn.AlphaDropout(0.5),
              mc.nn.Dropout1d(0.3), mc.nn.FeatureAlphaDropout(0.2)):
        m.eval()
        assert m(x) is x
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0, training=True) is x


def test_module_train_mode_drops():
    m = mc.nn.Dropout(0.5)
    y = m(mc.ones(1000))
    assert 0 < int((y.numpy() == 0).sum()) < 1000
    assert repr(m) == "Dropout(p=0.5, inplace=False)"


@pytest.mark.parametrize("device", DEVICES)
def test_same_seed_same_mask(device):
    x = _ones((64, 64), device)
    mc.manual_seed(123)
    a = to_numpy(F.dropout(x, 0.5).array)
    b = to_numpy(F.dropout(x, 0.5).array)
    mc.manual_seed(123)
    c = to_numpy(F.dropout(x, 0.5).array)
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(8, 16, 5, 5), (8, 16, 7)])
def test_dropout2d_drops_whole_channels(device, shape):
    x = _ones(shape, device)
    y = to_numpy(mc.nn.Dropout2d(0.5)(x).array).reshape(shape[0], shape[1], -1)
    per_channel = y.min(axis=2) == y.max(axis=2)
    assert per_channel.all()
    zero = y[:, :, 0] == 0
    assert 0 < zero.mean() < 1
    np.testing.assert_allclose(y[~zero], 2.0)


def test_alpha_dropout_keeps_selu_statistics_and_matches_formula():
    rng = np.random.default_rng(0)
    a = rng.standard_normal(200000).astype(np.float32)
    for p in (0.2, 0.5):
        y = F.alpha_dropout(mc.tensor(a), p, training=True).numpy()
        assert abs(y.mean()) < 0.02 and abs(y.std() - 1) < 0.02
        mc.manual_seed(7)
        y = F.alpha_dropout(mc.tensor(a), p, training=True).numpy()
        mc.manual_seed(7)
        keep = mc.random.rng("cpu").random(a.shape, dtype="float32") >= p
        alpha = 1.7580993408473766
        k = 1.0 / np.sqrt((alpha * alpha * p + 1) * (1 - p))
        expect = np.where(keep, a * k + alpha * k * p, -alpha * k + alpha * k * p)
        np.testing.assert_allclose(y, expect, rtol=1e-5, atol=1e-6)


def test_bad_probability():
    with pytest.raises(ValueError, match="dropout: dropout probability has to be between 0 and 1, "
                                         "but got 1.5"):
        F.dropout(mc.ones(3), 1.5)
    with pytest.raises(ValueError,
                       match="Dropout2d: dropout probability has to be between 0 and 1"):
        mc.nn.Dropout2d(-0.1)
    with pytest.raises(ValueError, match=r"dropout2d: expected an input with at least 2 dims"):
        F.dropout2d(mc.ones(3))


def test_p_one_zeroes_everything_with_zero_grad():
    x = mc.ones(5, requires_grad=True)
    y = F.dropout(x, 1.0)
    y.sum().backward()
    assert not y.numpy().any() and not x.grad.numpy().any()
