"""Post-training int8 quantization and quantization-aware training."""
import numpy as np
import pytest

import minicnn as mc
from minicnn import compress, nn
from minicnn import functional as F
from minicnn.kernels.quant import reference as ref
from minicnn.kernels.quant import symmetric_weight_scales


def _fake(x, s, zp, qmin=-128, qmax=127):
    return ref.dequantize(ref.quantize_per_tensor(x, s, zp, qmin, qmax), s, zp)


def _deq_weight(w):
    s = symmetric_weight_scales(w, 0)
    return ref.dequantize(ref.quantize_per_channel(w, s, axis=0), s, 0, axis=0)


@pytest.mark.parametrize("lo,hi,sym", [(-1.0, 3.0, False), (0.0, 6.0, False), (-2.0, 0.5, True),
                                       (0.5, 2.0, False)])
def test_choose_qparams_zero_is_exact_and_round_trip(lo, hi, sym):
    s, zp = compress.choose_qparams(lo, hi, symmetric=sym)
    assert -128 <= zp <= 127
    assert ref.dequantize(ref.quantize_per_tensor(np.float32([0.0]), s, zp), s, zp)[0] == 0.0
    x = np.linspace(min(lo, 0), max(hi, 0), 101, dtype=np.float32)
    err = np.abs(_fake(x, s, zp).astype(np.float64) - x)
    assert (err <= 0.5 * np.float32(s) + 2 * np.spacing(np.abs(x))).all()


def test_observers():
    mm = compress.MinMaxObserver()
    for a in ([1.0, -2.0], [5.0, 0.0]):
        mm.update(np.array(a))
    assert (mm.min_val, mm.max_val) == (-2.0, 5.0)
    pc = compress.PercentileObserver(percentile=99.0)
    x = np.concatenate([np.random.default_rng(0).uniform(-1, 1, 10000), [1000.0]])
    pc.update(x)
    assert pc.max_val < 1.0 and pc.min_val > -1.0          # the outlier is clipped
    with pytest.raises(RuntimeError, match="observer"):
        compress.MinMaxObserver().qparams()


def test_quantized_linear_equals_fake_quant_reference():
    lin = nn.Linear(13, 7)
    x = mc.randn(5, 2, 13)
    s, zp = compress.choose_qparams(float(x.numpy().min()), float(x.numpy().max()))
    q = compress.QuantizedLinear(lin, s, zp)
    got = q(x).numpy()
    want = _fake(x.numpy(), s, zp) @ _deq_weight(lin.weight.numpy()).T + lin.bias.numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert got.shape == (5, 2, 7)
    assert q.weight_int8.dtype == mc.int8
    # and close to the float layer (error of a few quantization steps)
    with mc.no_grad():
        np.testing.assert_allclose(got, lin(x).numpy(), atol=0.05)


@pytest.mark.parametrize("kw", [dict(), dict(stride=2, padding=1), dict(padding=2, dilation=2),
                                dict(groups=2, padding=1, bias=False), dict(padding="same")])
def test_quantized_conv_equals_fake_quant_reference(kw):
    conv = nn.Conv2d(4, 6, 3, **kw)
    x = mc.randn(2, 4, 7, 6)
    xa = x.numpy()
    s, zp = compress.choose_qparams(float(xa.min()), float(xa.max()))
    q = compress.QuantizedConv2d(conv, s, zp)
    got = q(x).numpy()
    padding = kw.get("padding", 0)
    with mc.no_grad():
        want = F.conv2d(mc.tensor(_fake(xa, s, zp)), mc.tensor(_deq_weight(conv.weight.numpy())),
                        conv.bias, conv.stride, padding, conv.dilation, conv.groups).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="channels"):
        q(mc.randn(1, 3, 5, 5))


def _small_cnn():
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
                         nn.Flatten(), nn.Linear(16 * 4 * 4, 10))


def test_quantize_model_size_and_outputs():
    model = _small_cnn()
    model.train()
    for _ in range(2):
        model(mc.randn(8, 1, 8, 8))
    model.eval()
    calib = [mc.randn(16, 1, 8, 8) for _ in range(4)]
    q = compress.quantize_model(model, calib, num_batches=3)
    kinds = [type(m).__name__ for m in q.modules()]
    assert kinds.count("QuantizedConv2d") == 2 and kinds.count("QuantizedLinear") == 1
    assert "BatchNorm2d" not in kinds and "BatchNorm2d" in [type(m).__name__
                                                           for m in model.modules()]
    assert compress.model_size_bytes(q) < compress.model_size_bytes(model) / 3
    x = mc.randn(4, 1, 8, 8)
    with mc.no_grad():
        want = model(x).numpy()
    got = q(x).numpy()
    assert np.abs(got - want).max() < 0.05 * np.abs(want).max()
    report = compress.compare_models(model, q, example_input=x, repeats=2)
    assert report["size_ratio"] < 1 / 3 and report["speedup"] > 0
    # percentile calibration works too
    q2 = compress.quantize_model(model, calib, observer="percentile", percentile=99.9)
    assert np.abs(q2(x).numpy() - want).max() < 0.1 * np.abs(want).max()


# --- QAT -----------------------------------------------------------------------------------

def test_fake_quantize_straight_through_estimator():
    x = mc.tensor(np.array([-3.0, -0.26, 0.0, 0.24, 0.5, 2.9], np.float32), requires_grad=True)
    s, zp = 0.01, 0           # representable: [-1.28, 1.27]
    y = compress.fake_quantize(x, s, zp)
    np.testing.assert_allclose(y.numpy(), _fake(x.numpy(), s, zp))
    (y * mc.tensor(np.arange(1, 7, dtype=np.float32))).sum().backward()
    # gradient passes inside the clamp range, is blocked where the value was clamped
    np.testing.assert_array_equal(x.grad.numpy(), [0, 2, 3, 4, 5, 0])
    # per channel along axis 0
    w = mc.randn(3, 4, requires_grad=True)
    yw = compress.fake_quantize_weight(w)
    np.testing.assert_allclose(yw.numpy(), _deq_weight(w.numpy()))
    yw.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), np.ones((3, 4)))   # max |w| maps to 127


def test_qat_trains_and_converts_to_the_same_int8_model():
    mc.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 6 * 6, 3))
    rng = np.random.default_rng(0)
    x = mc.tensor(rng.standard_normal((24, 1, 6, 6)).astype(np.float32))
    y = mc.tensor(rng.integers(0, 3, 24))
    qat = compress.prepare_qat(model)
    assert sum(isinstance(m, (compress.QATConv2d, compress.QATLinear))
               for m in qat.modules()) == 2
    opt = mc.optim.Adam(qat.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss = F.cross_entropy(qat(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert all(p.grad is not None for p in qat.parameters())
    qat.eval()
    with mc.no_grad():
        want = qat(x).numpy()
    q = compress.convert_qat(qat)
    got = q(x).numpy()
    # the int8 model computes the same quantized values as the fake-quant model
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_calibration_data_forms():
    from minicnn.compress._util import iterate_inputs
    from minicnn.data import ArrayDataset, DataLoader
    x = np.random.default_rng(0).standard_normal((20, 1, 4, 4)).astype(np.float32)
    ds = ArrayDataset(x, np.zeros(20, np.int64))
    assert [b.shape[0] for b in iterate_inputs(ds, None, 8)] == [8, 8, 4]
    assert [b.shape[0] for b in iterate_inputs(ds, 2, 8)] == [8, 8]
    assert [b.shape[0] for b in iterate_inputs(x, 5)] == [20]
    assert [b.shape[0] for b in iterate_inputs(mc.tensor(x), 5)] == [20]
    assert [b.shape[0] for b in iterate_inputs(DataLoader(ds, batch_size=16), 5)] == [16, 4]
    assert [b.shape[0] for b in iterate_inputs([x[:3], x[3:5]], 5)] == [3, 2]
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    q1 = compress.quantize_model(model, ds, num_batches=3, batch_size=8)
    q2 = compress.quantize_model(model, x)
    np.testing.assert_array_equal(q1(mc.tensor(x)).numpy(), q2(mc.tensor(x)).numpy())
