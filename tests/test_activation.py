"""Activations beyond the op table: stability at extreme inputs, the layers, Tensor methods."""
import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from conftest import DEVICES
from minicnn.devices import to_device, to_numpy

torch = pytest.importorskip("torch")

EXTREME = np.array([[1e4, -1e4, 0.0, 3.0], [-1e4, -1e4, -1e4, -1e4], [1e4, 1e4, -5.0, 2.0]])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_stable_for_extreme_logits(device, dtype, name):
    a = EXTREME.astype(dtype)
    x = mc.Tensor(to_device(a, device), requires_grad=True)
    y = getattr(F, name)(x, dim=1)
    ty = getattr(torch.nn.functional, name)(torch.tensor(a, requires_grad=True), dim=1)
    out = to_numpy(y.array)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, ty.detach().numpy(), rtol=1e-6, atol=1e-6)
    (y * mc.Tensor(to_device(np.arange(12.0).reshape(3, 4).astype(dtype), device))).sum().backward()
    assert np.all(np.isfinite(to_numpy(x.grad.array)))


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "softplus", "silu", "gelu", "mish", "elu",
                                  "selu", "celu", "softsign", "hardswish", "log_softmax"])
def test_finite_values_and_grads_at_extremes(name):
    a = np.array([-1e4, -800.0, -50.0, -1.0, 1.0, 50.0, 800.0, 1e4])
    for dtype in (np.float32, np.float64):
        x = mc.tensor(a.astype(dtype), requires_grad=True)
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            y = getattr(F, name)(x, dim=0) if name == "log_softmax" else getattr(F, name)(x)
            y.sum().backward()
        ty = getattr(torch.nn.functional, name)(torch.tensor(a.astype(dtype)),
                                                **({"dim": 0} if name == "log_softmax" else {}))
        assert np.all(np.isfinite(y.numpy())) and np.all(np.isfinite(x.grad.numpy()))
        np.testing.assert_allclose(y.numpy(), ty.numpy(), rtol=1e-5, atol=1e-6)


def test_layers_match_functional_and_torch():
    rng = np.random.default_rng(0)
    a = rng.uniform(-4, 4, size=(2, 3, 4)).astype(np.float32)
    pairs = [(mc.nn.ReLU(), torch.nn.ReLU()), (mc.nn.ReLU6(), torch.nn.ReLU6()),
             (mc.nn.LeakyReLU(0.2), torch.nn.LeakyReLU(0.2)), (mc.nn.ELU(0.5), torch.nn.ELU(0.5)),
             (mc.nn.SELU(), torch.nn.SELU()), (mc.nn.CELU(2.0), torch.nn.CELU(2.0)),
             (mc.nn.GELU(), torch.nn.GELU()), (mc.nn.GELU("tanh"), torch.nn.GELU("tanh")),
             (mc.nn.Sigmoid(), torch.nn.Sigmoid()), (mc.nn.Tanh(), torch.nn.Tanh()),
             (mc.nn.Hardtanh(-2, 2), torch.nn.Hardtanh(-2, 2)),
             (mc.nn.Hardsigmoid(), torch.nn.Hardsigmoid()),
             (mc.nn.Hardswish(), torch.nn.Hardswish()),
             (mc.nn.SiLU(), torch.nn.SiLU()), (mc.nn.Mish(), torch.nn.Mish()),
             (mc.nn.Softplus(2.0, 5.0), torch.nn.Softplus(2.0, 5.0)),
             (mc.nn.Softsign(), torch.nn.Softsign()), (mc.nn.Softmax(1), torch.nn.Softmax(1)),
             (mc.nn.LogSoftmax(-1), torch.nn.LogSoftmax(-1))]
    for m, tm in pairs:
        np.testing.assert_allclose(m(mc.tensor(a)).numpy(), tm(torch.tensor(a)).numpy(),
                                   rtol=1e-5, atol=1e-6, err_msg=repr(m))
    assert repr(mc.nn.LeakyReLU(0.2)) == "LeakyReLU(negative_slope=0.2)"
    assert mc.nn.Swish is mc.nn.SiLU


@pytest.mark.parametrize("num_parameters", [1, 3])
def test_prelu_layer_learns_its_slope(num_parameters):
    rng = np.random.default_rng(1)
    a = rng.uniform(-2, 2, size=(4, 3, 5)).astype(np.float32)
    m, tm = mc.nn.PReLU(num_parameters), torch.nn.PReLU(num_parameters)
    assert list(m.state_dict()) == list(tm.state_dict()) == ["weight"]
    np.testing.assert_allclose(m.weight.numpy(), tm.weight.detach().numpy())
    x, tx = mc.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    (m(x) ** 2).sum().backward()
    (tm(tx) ** 2).sum().backward()
    np.testing.assert_allclose(m.weight.grad.numpy(), tm.weight.grad.numpy(), rtol=1e-4)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-5)


def test_tensor_methods_and_top_level_functions():
    a = np.array([[-1.0, 2.0, 0.5], [3.0, -2.0, 1.0]], np.float32)
    x, tx = mc.tensor(a), torch.tensor(a)
    for name in ("relu", "sigmoid", "tanh"):
        np.testing.assert_allclose(getattr(x, name)().numpy(), getattr(tx, name)().numpy(),
                                   rtol=1e-6)
        np.testing.assert_allclose(getattr(mc, name)(x).numpy(), getattr(torch, name)(tx).numpy(),
                                   rtol=1e-6)
    for name in ("softmax", "log_softmax"):
        np.testing.assert_allclose(getattr(x, name)(1).numpy(), getattr(tx, name)(1).numpy(),
                                   rtol=1e-6)
        np.testing.assert_allclose(getattr(mc, name)(x, 0).numpy(),
                                   getattr(torch, name)(tx, 0).numpy(), rtol=1e-6)


def test_softmax_implicit_dim_follows_torch():
    a = np.random.default_rng(2).standard_normal((2, 3, 4)).astype(np.float32)
    for shape in [(4,), (3, 4), (2, 3, 4), (1, 2, 3, 4)]:
        b = a.reshape(-1)[:int(np.prod(shape))].reshape(shape)
        with pytest.warns(UserWarning):
            tm = torch.nn.functional.softmax(torch.tensor(b), dim=None)
        np.testing.assert_allclose(F.softmax(mc.tensor(b)).numpy(), tm.numpy(), rtol=1e-6)


def test_relu_gradient_is_zero_at_zero_like_torch():
    x = mc.tensor(np.array([-1.0, 0.0, 2.0]), requires_grad=True)
    F.relu(x).sum().backward()
    assert x.grad.numpy().tolist() == [0.0, 0.0, 1.0]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_hardswish_at_its_kinks_equals_torch(device, dtype):
    """The pieces of Hardswish's gradient meet at -3 and 3, which the op table's random inputs
    avoid: there PyTorch takes 0 and 1 (the array version once gave -0.5 and 1.5)."""
    a = np.array([-4.0, -3.0, -2.999, 0.0, 2.999, 3.0, 4.0, -1e4, 1e4], dtype)
    x = mc.Tensor(to_device(a, device), requires_grad=True)
    F.hardswish(x).sum().backward()
    tx = torch.tensor(a, requires_grad=True)
    ty = torch.nn.functional.hardswish(tx)
    ty.sum().backward()
    np.testing.assert_array_equal(to_numpy(F.hardswish(x).array), ty.detach().numpy())
    np.testing.assert_array_equal(to_numpy(x.grad.array), tx.grad.numpy())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["relu", "bias_relu", "hardswish"])
def test_nan_in_and_nan_gradient_as_torch(device, name):
    """ReLU keeps a NaN input (a diverged network must not look healthy); its backward selects
    0 where x <= 0 even for a NaN gradient, as PyTorch's threshold_backward does. The arrays are
    16 columns wide: PyTorch's hardswish backward gives NaN at a NaN x in its vectorized loop but
    gy in its scalar tail (tensors under 16 float64 elements); minicnn follows the vectorized
    loop, where all but a few elements of a real tensor go."""
    a = np.tile(np.array([[np.nan, -1.0, 0.0, 2.0], [np.nan, np.nan, -3.5, 4.0]]), 4)
    g = np.tile(np.array([[1.0, np.nan, 1.0, np.nan], [np.nan, 2.0, np.nan, 1.0]]), 4)
    b = np.linspace(-0.5, 0.5, 16)
    x = mc.Tensor(to_device(a, device), requires_grad=True)
    tx = torch.tensor(a, requires_grad=True)
    if name == "bias_relu":
        y = F.bias_act(x, mc.Tensor(to_device(b, device)), "relu", dim=1)
        ty = torch.relu(tx + torch.tensor(b))
    else:
        y, ty = getattr(F, name)(x), getattr(torch.nn.functional, name)(tx)
    y.backward(mc.Tensor(to_device(g, device)))
    ty.backward(torch.tensor(g))
    np.testing.assert_array_equal(to_numpy(y.array), ty.detach().numpy())
    np.testing.assert_array_equal(to_numpy(x.grad.array), tx.grad.numpy())
