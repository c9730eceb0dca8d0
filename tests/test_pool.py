"""Pooling beyond the op table: layers, max_unpool2d round trips, second derivatives against
PyTorch, overlapping windows, the multi-threaded path, Flatten/Unflatten."""
import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from conftest import DEVICES
from minicnn.devices import to_device, to_numpy

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _distinct(*shape, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.permutation(int(np.prod(shape))).reshape(shape) * 0.01
            + rng.uniform(-1e-3, 1e-3, shape))


def _both(a, requires_grad=True):
    return mc.tensor(a, requires_grad=requires_grad), torch.tensor(a, requires_grad=requires_grad)


@pytest.mark.parametrize("mc_layer,torch_layer", [
    (mc.nn.MaxPool2d(3, 2, 1), torch.nn.MaxPool2d(3, 2, 1)),
    (mc.nn.MaxPool2d((2, 3), (1, 2), (1, 0), dilation=(2, 1), ceil_mode=True),
     torch.nn.MaxPool2d((2, 3), (1, 2), (1, 0), dilation=(2, 1), ceil_mode=True)),
    (mc.nn.AvgPool2d(3, 1, 1), torch.nn.AvgPool2d(3, 1, 1)),             # overlapping windows
    (mc.nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
     torch.nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)),
    (mc.nn.AvgPool2d(2, divisor_override=3), torch.nn.AvgPool2d(2, divisor_override=3)),
    (mc.nn.AdaptiveAvgPool2d((3, 5)), torch.nn.AdaptiveAvgPool2d((3, 5))),
    (mc.nn.AdaptiveAvgPool2d(1), torch.nn.AdaptiveAvgPool2d(1)),
    (mc.nn.AdaptiveAvgPool2d((None, 2)), torch.nn.AdaptiveAvgPool2d((None, 2))),
    (mc.nn.AdaptiveMaxPool2d((4, 3)), torch.nn.AdaptiveMaxPool2d((4, 3))),
], ids=lambda m: repr(m).replace(" ", ""))
@pytest.mark.parametrize("shape", [(2, 3, 7, 9), (3, 16, 23, 21)])  # small and multi-threaded
def test_layers_match_torch(mc_layer, torch_layer, shape):
    x, xt = _both(_distinct(*shape))
    y, yt = mc_layer(x), torch_layer(xt)
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    gy = np.random.default_rng(1).standard_normal(yt.shape)
    y.backward(mc.tensor(gy))
    yt.backward(torch.tensor(gy))
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_global_avg_pool():
    x, xt = _both(np.random.default_rng(0).standard_normal((2, 3, 5, 4)))
    np.testing.assert_allclose(mc.nn.GlobalAvgPool2d()(x).numpy(), xt.mean((2, 3)).detach())
    assert tuple(F.global_avg_pool2d(x, keepdim=True).shape) == (2, 3, 1, 1)


def test_max_pool_indices_and_unpool_round_trip():
    a = _distinct(2, 3, 8, 7)
    x, xt = _both(a)
    pool, unpool = mc.nn.MaxPool2d(2, return_indices=True), mc.nn.MaxUnpool2d(2)
    y, idx = pool(x)
    yt, idxt = TF.max_pool2d(xt, 2, return_indices=True)
    np.testing.assert_array_equal(idx.numpy(), idxt.numpy())
    assert idx.dtype == np.int64 and not idx.requires_grad
    up = unpool(y, idx, output_size=(8, 7))
    upt = TF.max_unpool2d(yt, idxt, 2, output_size=(8, 7))
    np.testing.assert_allclose(up.numpy(), upt.detach().numpy())
    up.sum().backward()
    upt.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy())


@pytest.mark.parametrize("layers", [
    lambda nn: (nn.MaxPool2d(3, 2, return_indices=True), nn.MaxUnpool2d(3, 2)),
    lambda nn: (nn.MaxPool2d(3, 1, 1, return_indices=True), nn.MaxUnpool2d(3, 1, 1)),
], ids=["3x3s2", "3x3s1p1"])
def test_unpool_after_overlapping_windows_matches_torch(device, layers):
    # an input that wins several windows comes back once with its value (PyTorch assigns);
    # a scatter-add gave 4x the value here
    a = np.random.default_rng(3).uniform(-1, 1, (2, 3, 9, 8))
    a[:, :, 4, 4] = 5.0
    xt = torch.tensor(a, requires_grad=True)
    x = mc.tensor(a, device=device, requires_grad=True)
    pool, unpool = layers(mc.nn)
    tpool, tunpool = layers(torch.nn)
    y, idx = pool(x)
    yt, idxt = tpool(xt)
    assert (np.bincount(idxt[0, 0].flatten().numpy()) > 1).any()   # indices do repeat
    up, upt = unpool(y, idx, output_size=(9, 8)), tunpool(yt, idxt, output_size=(9, 8))
    np.testing.assert_allclose(up.cpu().numpy(), upt.detach().numpy(), rtol=1e-12, atol=0)
    g = np.random.default_rng(4).standard_normal(up.shape)
    up.backward(mc.tensor(g, device=device))
    upt.backward(torch.tensor(g))
    np.testing.assert_allclose(x.grad.cpu().numpy(), xt.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fn", [
    lambda F, x: F.max_pool2d(x, 3, 2, 1),
    lambda F, x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False),
    lambda F, x: F.adaptive_max_pool2d(x, (2, 3)),
    lambda F, x: F.adaptive_avg_pool2d(x, (2, 3)),
], ids=["max", "avg", "adaptive_max", "adaptive_avg"])
def test_second_derivatives_match_torch(fn):
    """d/dx and d/dgy of <d<pool(x)^2, gy>/dx, v>: max-pool grad is a gather/scatter by index."""
    x, xt = _both(_distinct(2, 2, 6, 7))
    gy = np.random.default_rng(1).standard_normal(tuple(fn(TF, xt).shape))
    g, gt = _both(gy)
    (gx,) = mc.autograd.grad(fn(F, x) ** 2, [x], g, create_graph=True)
    (gxt,) = torch.autograd.grad(fn(TF, xt) ** 2, [xt], gt, create_graph=True)
    np.testing.assert_allclose(gx.numpy(), gxt.detach().numpy(), rtol=1e-10, atol=1e-12)
    v = np.random.default_rng(2).standard_normal(x.shape)
    a = mc.autograd.grad((gx * mc.tensor(v)).sum(), [x, g])
    at = torch.autograd.grad((gxt * torch.tensor(v)).sum(), [xt, gt])
    for p, q in zip(a, at):
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-10, atol=1e-12)


def test_max_pool_float32_and_nan():
    a = _distinct(1, 2, 5, 5).astype(np.float32)
    a[0, 0, 1, 1] = np.nan
    y = F.max_pool2d(mc.tensor(a), 2)
    yt = TF.max_pool2d(torch.tensor(a), 2)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(y.numpy()), np.isnan(yt.numpy()))
    np.testing.assert_allclose(y.numpy(), yt.numpy())


def test_flatten_unflatten():
    x = mc.randn(2, 3, 4, 5)
    assert tuple(mc.nn.Flatten()(x).shape) == (2, 60)
    assert tuple(mc.nn.Flatten(0, 2)(x).shape) == (24, 5)
    assert tuple(mc.nn.Unflatten(1, (3, 4))(mc.randn(2, 12)).shape) == (2, 3, 4)
    assert tuple(mc.nn.Unflatten(-1, (2, -1))(mc.randn(2, 12)).shape) == (2, 2, 6)
    with pytest.raises(ValueError, match=r"Unflatten: unflattened_size \(5, 2\) does not match"):
        mc.nn.Unflatten(1, (5, 2))(mc.randn(2, 12))
    y = mc.nn.Sequential(mc.nn.Conv2d(3, 4, 3), mc.nn.MaxPool2d(2), mc.nn.Flatten())(x)
    assert tuple(y.shape) == (2, 4)


def test_pool_errors():
    with pytest.raises(ValueError, match=r"max_pool2d: expected a 4-D input .* \[3, 8, 8\]"):
        mc.nn.MaxPool2d(2)(mc.randn(3, 8, 8))
    with pytest.raises(ValueError, match="Output size is too small"):
        F.avg_pool2d(mc.randn(1, 1, 2, 2), 3)
    with pytest.raises(TypeError, match="kernel_size must be an int or a pair"):
        F.max_pool2d(mc.randn(1, 1, 4, 4), (2, 2, 2))


@pytest.mark.parametrize("device", DEVICES)
def test_max_pool_window_without_input_as_torch(device):
    """Padding and dilation can leave a window with no input element: PyTorch gives -inf, an
    index past the plane and no gradient (minicnn's CPU backward once wrote through that
    index)."""
    a = np.arange(1.0, 4.0).reshape(1, 1, 1, 3)
    x = mc.Tensor(to_device(a, device), requires_grad=True)
    y = F.max_pool2d(x, (2, 1), 1, (1, 0), dilation=(2, 1))
    y.sum().backward()
    ty = torch.nn.functional.max_pool2d(torch.tensor(a), (2, 1), 1, (1, 0), dilation=(2, 1))
    np.testing.assert_array_equal(to_numpy(y.array), ty.numpy())
    np.testing.assert_array_equal(to_numpy(x.grad.array), np.zeros_like(a))
