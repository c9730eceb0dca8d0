"""Losses beyond the op table: stability, PyTorch's weighted-mean / ignore_index semantics,
the nn classes and the errors."""
import warnings

import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from conftest import DEVICES
from minicnn.devices import to_device, to_numpy

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _pair(a, device="cpu", grad=True):
    return (mc.Tensor(to_device(a, device), requires_grad=grad and a.dtype.kind == "f"),
            torch.tensor(a, requires_grad=grad and a.dtype.kind == "f"))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_extreme_logits(device, dtype, smoothing):
    a = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4]], dtype)
    t = np.array([1, 2, 0])
    x, tx = _pair(a, device)
    loss = F.cross_entropy(x, mc.Tensor(to_device(t, device)), label_smoothing=smoothing)
    tloss = TF.cross_entropy(tx, torch.tensor(t), label_smoothing=smoothing)
    loss.backward()
    tloss.backward()
    assert np.isfinite(loss.item()) and np.all(np.isfinite(to_numpy(x.grad.array)))
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-6)
    np.testing.assert_allclose(to_numpy(x.grad.array), tx.grad.numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.25])
def test_cross_entropy_weighted_ignore_index_semantics(reduction, smoothing):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((6, 4, 3))
    t = rng.integers(0, 4, size=(6, 3))
    t[0, :] = 2
    t[1, 1] = 2
    w = rng.uniform(0.1, 3.0, 4)
    x, tx = _pair(a)
    kw = dict(weight=None, ignore_index=2, reduction=reduction, label_smoothing=smoothing)
    loss = F.cross_entropy(x, mc.tensor(t), **{**kw, "weight": mc.tensor(w)})
    tloss = TF.cross_entropy(tx, torch.tensor(t), **{**kw, "weight": torch.tensor(w)})
    np.testing.assert_allclose(loss.numpy(), tloss.detach().numpy(), rtol=1e-10)
    g = rng.standard_normal(loss.shape)
    loss.backward(mc.tensor(g))
    tloss.backward(torch.tensor(g))
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_all_targets_ignored_gives_nan_mean_like_torch():
    a = np.random.default_rng(1).standard_normal((3, 4))
    t = np.full(3, -100)
    loss = F.cross_entropy(mc.tensor(a), mc.tensor(t))
    assert np.isnan(loss.item())
    assert np.isnan(TF.cross_entropy(torch.tensor(a), torch.tensor(t)).item())
    assert F.cross_entropy(mc.tensor(a), mc.tensor(t), reduction="sum").item() == 0.0


def test_cross_entropy_large_float32_batch_matches_torch():
    rng = np.random.default_rng(2)
    a = (rng.standard_normal((256, 1000)) * 5).astype(np.float32)
    t = rng.integers(0, 1000, 256)
    x, tx = _pair(a)
    loss, tloss = F.cross_entropy(x, mc.tensor(t)), TF.cross_entropy(tx, torch.tensor(t))
    loss.backward()
    tloss.backward()
    assert loss.dtype == np.float32 and x.grad.dtype == np.float32
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-5)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), atol=1e-8, rtol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
def test_bce_at_probabilities_zero_and_one(device):
    p = np.array([0.0, 1.0, 0.0, 1.0, 0.5])
    y = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
    x, tx = _pair(p, device)
    loss = F.binary_cross_entropy(x, mc.Tensor(to_device(y, device)), reduction="none")
    tloss = TF.binary_cross_entropy(tx, torch.tensor(y), reduction="none")
    np.testing.assert_allclose(to_numpy(loss.array), tloss.detach().numpy())  # log clamped at -100
    assert to_numpy(loss.array).tolist()[:4] == [0.0, 0.0, 100.0, 100.0]
    loss.sum().backward()
    tloss.sum().backward()
    g = to_numpy(x.grad.array)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, tx.grad.numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_with_logits_stable_for_large_logits(dtype):
    a = np.array([-1e4, -100.0, -30.0, 0.0, 30.0, 100.0, 1e4], dtype)
    y = np.array([1.0, 0.0, 1.0, 0.5, 0.0, 1.0, 0.0], dtype)
    pw = np.array([2.5], dtype)
    for kw in ({}, {"pos_weight": pw}):
        x, tx = _pair(a)
        loss = F.binary_cross_entropy_with_logits(
            x, mc.tensor(y), reduction="none", **{k: mc.tensor(v) for k, v in kw.items()})
        tloss = TF.binary_cross_entropy_with_logits(
            tx, torch.tensor(y), reduction="none", **{k: torch.tensor(v) for k, v in kw.items()})
        loss.sum().backward()
        tloss.sum().backward()
        assert np.all(np.isfinite(loss.numpy())) and np.all(np.isfinite(x.grad.numpy()))
        # atol covers float32 denormals (~1e-44) where the last bit differs
        np.testing.assert_allclose(loss.numpy(), tloss.detach().numpy(), rtol=1e-6, atol=1e-30)
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-6, atol=1e-7)


def test_loss_modules_match_torch():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((4, 5)).astype(np.float32)
    b = rng.standard_normal((4, 5)).astype(np.float32)
    p = rng.uniform(0.05, 0.95, (4, 5)).astype(np.float32)
    yb = (rng.random((4, 5)) < 0.5).astype(np.float32)
    t = rng.integers(0, 5, 4)
    w = rng.uniform(0.5, 2, 5).astype(np.float32)
    logp = a - np.log(np.exp(a).sum(1, keepdims=True))
    cases = [("MSELoss", {}, a, b), ("L1Loss", {"reduction": "sum"}, a, b),
             ("SmoothL1Loss", {"beta": 0.5}, a, b), ("HuberLoss", {"delta": 0.7}, a, b),
             ("CrossEntropyLoss", {"weight": w, "label_smoothing": 0.1}, a, t),
             ("NLLLoss", {"weight": w, "ignore_index": 1}, logp, t),
             ("BCELoss", {"weight": w}, p, yb),
             ("BCEWithLogitsLoss", {"pos_weight": w}, a, yb),
             ("MultiLabelSoftMarginLoss", {"weight": w}, a, yb),
             ("KLDivLoss", {"reduction": "batchmean"}, logp, p)]
    for name, kw, inp, tgt in cases:
        m = getattr(mc.nn, name)(**{k: mc.tensor(v) if isinstance(v, np.ndarray) else v
                                    for k, v in kw.items()})
        tm = getattr(torch.nn, name)(**{k: torch.tensor(v) if isinstance(v, np.ndarray) else v
                                        for k, v in kw.items()})
        np.testing.assert_allclose(m(mc.tensor(inp), mc.tensor(tgt)).numpy(),
                                   tm(torch.tensor(inp), torch.tensor(tgt)).numpy(), rtol=1e-5,
                                   err_msg=name)
    assert "weight" in mc.nn.CrossEntropyLoss(weight=mc.tensor(w)).state_dict()


def test_errors():
    x = mc.randn(3, 4)
    with pytest.raises(IndexError, match="cross_entropy: target 4 is out of bounds for 4 classes"):
        F.cross_entropy(x, mc.tensor(np.array([0, 4, 1])))
    with pytest.raises(IndexError, match="nll_loss: target -2 is out of bounds"):
        F.nll_loss(x, mc.tensor(np.array([0, -2, 1])))
    with pytest.raises(ValueError, match=r"expected input batch_size \(3\) to match target "
                                         r"batch_size \(2\)"):
        F.cross_entropy(x, mc.tensor(np.array([0, 1])))
    with pytest.raises(ValueError, match=r"expected target size \[2, 5\], got \[2, 4\]"):
        F.cross_entropy(mc.randn(2, 3, 5), mc.tensor(np.zeros((2, 4), np.int64)))
    with pytest.raises(TypeError,
                       match="cross_entropy: expected class indices of an integer dtype"):
        F.cross_entropy(x, mc.tensor(np.zeros(3, bool)))
    with pytest.raises(ValueError, match=r"binary_cross_entropy_with_logits: using a target size"):
        F.binary_cross_entropy_with_logits(mc.randn(3), mc.randn(3, 1))
    with pytest.raises(ValueError, match="'avg' is not a valid value for reduction"):
        F.cross_entropy(x, mc.tensor(np.array([0, 1, 2])), reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing must be between 0.0 and 1.0"):
        F.cross_entropy(x, mc.tensor(np.array([0, 1, 2])), label_smoothing=1.5)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        F.mse_loss(mc.randn(3, 1), mc.randn(3))
    assert any("different to the input size" in str(r.message) for r in rec)


@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_cross_entropy_create_graph_gradient_equals_fused_gradient(smoothing):
    """The differentiable backward (create_graph) and the fused one give the same values."""
    rng = np.random.default_rng(5)
    a = rng.standard_normal((5, 4, 2))
    t = rng.integers(0, 4, size=(5, 2))
    t[0, 0] = -100
    w = mc.tensor(rng.uniform(0.5, 2.0, 4))
    grads = []
    for create_graph in (False, True):
        x = mc.tensor(a, requires_grad=True)
        loss = F.cross_entropy(x, mc.tensor(t), weight=w, label_smoothing=smoothing)
        grads.append(mc.autograd.grad(loss, x, create_graph=create_graph)[0].numpy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-12, atol=1e-14)
