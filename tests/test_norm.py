"""Normalization layers against PyTorch: running statistics over several training steps, eval
outputs, state_dict names, the create_graph path, and the errors."""
import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from conftest import DEVICES
from minicnn.devices import to_device, to_numpy

torch = pytest.importorskip("torch")


def _mc(a, device="cpu", grad=False):
    return mc.Tensor(to_device(np.asarray(a), device), requires_grad=grad)


def _copy_params(m, tm):
    for name, p in tm.named_parameters():
        getattr(m, name).array[...] = to_device(p.detach().numpy(), getattr(m, name).device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("momentum", [0.1, 0.7, None])
@pytest.mark.parametrize("cls,shape", [("BatchNorm2d", (4, 3, 5, 6)), ("BatchNorm1d", (6, 3)),
                                       ("BatchNorm1d", (4, 3, 7))])
def test_batchnorm_running_stats_and_eval(device, cls, shape, momentum):
    rng = np.random.default_rng(0)
    m = getattr(mc.nn, cls)(3, momentum=momentum).to(device)
    tm = getattr(torch.nn, cls)(3, momentum=momentum)
    with torch.no_grad():
        tm.weight.uniform_(0.5, 2.0)
        tm.bias.uniform_(-1.0, 1.0)
    _copy_params(m, tm)
    for step in range(5):
        a = (rng.standard_normal(shape) * (1 + step) + step).astype(np.float32)
        x, tx = _mc(a, device, True), torch.tensor(a, requires_grad=True)
        y, ty = m(x), tm(tx)
        np.testing.assert_allclose(to_numpy(y.array), ty.detach().numpy(), atol=1e-5, rtol=1e-4)
        g = rng.standard_normal(shape).astype(np.float32)
        y.backward(_mc(g, device))
        ty.backward(torch.tensor(g))
        np.testing.assert_allclose(to_numpy(x.grad.array), tx.grad.numpy(), atol=1e-4, rtol=1e-3)
    for name in ("running_mean", "running_var"):
        np.testing.assert_allclose(to_numpy(getattr(m, name).array),
                                   getattr(tm, name).numpy(), rtol=1e-5, atol=1e-6)
    assert int(m.num_batches_tracked.item()) == int(tm.num_batches_tracked) == 5
    np.testing.assert_allclose(to_numpy(m.weight.grad.array), tm.weight.grad.numpy(), rtol=1e-4,
                               atol=1e-4)
    m.eval()
    tm.eval()
    a = rng.standard_normal(shape).astype(np.float32)
    np.testing.assert_allclose(to_numpy(m(_mc(a, device)).array),
                               tm(torch.tensor(a)).detach().numpy(),
                               atol=1e-5, rtol=1e-4)


def test_batchnorm_state_dict_matches_torch():
    m, tm = mc.nn.BatchNorm2d(4), torch.nn.BatchNorm2d(4)
    assert list(m.state_dict()) == list(tm.state_dict())
    sd = {k: v.numpy() for k, v in tm.state_dict().items()}
    m.load_state_dict(sd)
    assert m.num_batches_tracked.dtype == np.int64


def test_batchnorm_without_running_stats_uses_batch_stats_in_eval():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    m = mc.nn.BatchNorm2d(2, track_running_stats=False, affine=False).eval()
    tm = torch.nn.BatchNorm2d(2, track_running_stats=False, affine=False).eval()
    assert m.running_mean is None and list(m.state_dict()) == []
    np.testing.assert_allclose(m(mc.tensor(a)).numpy(), tm(torch.tensor(a)).numpy(), atol=1e-5)


def test_batchnorm_running_stats_move_in_training_only():
    m = mc.nn.BatchNorm2d(2)
    x = mc.randn(4, 2, 3, 3) * 3.0 + 1.0
    m.eval()
    m(x)
    assert np.all(m.running_mean.numpy() == 0) and np.all(m.running_var.numpy() == 1)
    m.train()
    m(x)
    assert np.all(m.running_mean.numpy() != 0) and np.all(m.running_var.numpy() != 1)


@pytest.mark.parametrize("track", [False, True])
@pytest.mark.parametrize("affine", [False, True])
def test_instance_norm_module(affine, track):
    rng = np.random.default_rng(2)
    m = mc.nn.InstanceNorm2d(3, affine=affine, track_running_stats=track, momentum=0.3)
    tm = torch.nn.InstanceNorm2d(3, affine=affine, track_running_stats=track, momentum=0.3)
    if affine:
        with torch.no_grad():
            tm.weight.uniform_(0.5, 2.0)
            tm.bias.uniform_(-1.0, 1.0)
        _copy_params(m, tm)
    for _ in range(3):
        a = (rng.standard_normal((2, 3, 4, 5)) * 2 + 1).astype(np.float32)
        np.testing.assert_allclose(m(mc.tensor(a)).numpy(), tm(torch.tensor(a)).detach().numpy(),
                                   atol=1e-5, rtol=1e-4)
    if track:
        np.testing.assert_allclose(m.running_mean.numpy(), tm.running_mean.numpy(), rtol=1e-5)
        np.testing.assert_allclose(m.running_var.numpy(), tm.running_var.numpy(), rtol=1e-5)
    m.eval()
    tm.eval()
    a = rng.standard_normal((3, 4, 5)).astype(np.float32)  # unbatched
    np.testing.assert_allclose(m(mc.tensor(a)).numpy(), tm(torch.tensor(a)).detach().numpy(),
                               atol=1e-5, rtol=1e-4)


def test_layer_norm_and_group_norm_modules_match_torch():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((2, 4, 3, 5)).astype(np.float32)
    for m, tm in [(mc.nn.LayerNorm((3, 5)), torch.nn.LayerNorm((3, 5))),
                  (mc.nn.LayerNorm(5, elementwise_affine=False),
                   torch.nn.LayerNorm(5, elementwise_affine=False)),
                  (mc.nn.LayerNorm([4, 3, 5], bias=False),
                   torch.nn.LayerNorm([4, 3, 5], bias=False)),
                  (mc.nn.GroupNorm(2, 4), torch.nn.GroupNorm(2, 4))]:
        with torch.no_grad():
            for p in tm.parameters():
                p.uniform_(0.5, 1.5)
        _copy_params(m, tm)
        assert list(m.state_dict()) == list(tm.state_dict())
        x, tx = mc.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
        y, ty = m(x), tm(tx)
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), atol=1e-5, rtol=1e-4)
        (y * y).sum().backward()
        (ty * ty).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), atol=1e-4, rtol=1e-3)
        for name, p in tm.named_parameters():
            np.testing.assert_allclose(getattr(m, name).grad.numpy(), p.grad.numpy(), atol=1e-3,
                                       rtol=1e-3)


@pytest.mark.parametrize("which", ["batch", "layer", "instance", "group"])
def test_create_graph_gradient_equals_kernel_gradient(which):
    """The differentiable backward (used under create_graph) gives the kernel's values."""
    rng = np.random.default_rng(4)
    a = rng.standard_normal((3, 4, 5))
    w, b = rng.uniform(0.5, 2, 4), rng.standard_normal(4)
    gy = rng.standard_normal((3, 4, 5))

    def run(create_graph):
        x, wt, bt = (mc.tensor(v, requires_grad=True) for v in (a, w, b))
        if which == "batch":
            y = F.batch_norm(x, None, None, wt, bt, training=True)
        elif which == "layer":
            wt, bt = (mc.tensor(np.tile(v, (5, 1)).T.copy(), requires_grad=True) for v in (w, b))
            y = F.layer_norm(x, (4, 5), wt, bt)
        elif which == "instance":
            y = F.instance_norm(x, weight=wt, bias=bt)
        else:
            y = F.group_norm(x, 2, wt, bt)
        return mc.autograd.grad(y, [x, wt, bt], mc.tensor(gy), create_graph=create_graph)

    for g1, g2 in zip(run(False), run(True)):
        np.testing.assert_allclose(g1.numpy(), g2.numpy(), rtol=1e-10, atol=1e-12)


def test_errors():
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected input with 4 channels "
                                         r"\(num_features\), but got input of shape "
                                         r"\[2, 3, 5, 5\]"):
        mc.nn.BatchNorm2d(4)(mc.randn(2, 3, 5, 5))
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected 4D input \(got 3D input"):
        mc.nn.BatchNorm2d(3)(mc.randn(2, 3, 5))
    with pytest.raises(ValueError, match=r"Expected more than 1 value per channel when training, "
                                         r"got input size \[1, 4\]"):
        mc.nn.BatchNorm1d(4)(mc.randn(1, 4))
    mc.nn.BatchNorm1d(4).eval()(mc.randn(1, 4))  # fine in eval mode
    with pytest.raises(ValueError, match=r"given normalized_shape=\[4\], expected input with "
                                         r"shape \[\*, 4\], but got input of size \[2, 3\]"):
        mc.nn.LayerNorm(4)(mc.randn(2, 3))
    with pytest.raises(ValueError, match=r"GroupNorm: num_channels \(6\) must be divisible by "
                                         r"num_groups \(4\)"):
        mc.nn.GroupNorm(4, 6)
    with pytest.raises(ValueError, match=r"GroupNorm: expected input with 6 channels"):
        mc.nn.GroupNorm(3, 6)(mc.randn(2, 4, 3))
    with pytest.raises(ValueError, match=r"InstanceNorm2d: expected input's size at dim=1 to "
                                         r"match num_features \(4\)"):
        mc.nn.InstanceNorm2d(4)(mc.randn(2, 3, 5, 5))
    with pytest.raises(TypeError, match="batch_norm: expected a floating point input"):
        F.batch_norm(mc.tensor(np.ones((2, 3), np.int64)), None, None, training=True)
    # momentum=None is the layers' cumulative average; the functional forms need the factor
    rm, rv = mc.zeros(3), mc.ones(3)
    with pytest.raises(TypeError, match="batch_norm: momentum must be a float, got NoneType"):
        F.batch_norm(mc.randn(4, 3), rm, rv, training=True, momentum=None)
    with pytest.raises(TypeError, match="instance_norm: momentum must be a float, got str"):
        F.instance_norm(mc.randn(2, 3, 4), rm, rv, momentum="0.1")
    assert (rm.numpy() == 0).all() and (rv.numpy() == 1).all()   # nothing was updated


def test_float32_stays_float32_and_large_offsets_are_accurate():
    a = (np.random.default_rng(5).standard_normal((8, 3, 6, 6)) + 1e3).astype(np.float32)
    y = F.batch_norm(mc.tensor(a), None, None, training=True)
    ty = torch.nn.functional.batch_norm(torch.tensor(a, dtype=torch.float64), None, None,
                                        training=True)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), ty.numpy(), atol=2e-3)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_layer_norm_rows_longer_than_one_kernel_block_match_torch(dtype):
    """Rows of 2*41*61 = 5002 features span two 4096-feature blocks of the backward kernel."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 2, 41, 61)).astype(dtype)
    w = rng.standard_normal((2, 41, 61)).astype(dtype)
    b = rng.standard_normal((2, 41, 61)).astype(dtype)
    gy = rng.standard_normal(x.shape).astype(dtype)
    xs = [mc.tensor(a, requires_grad=True) for a in (x, w, b)]
    ts = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    y = mc.functional.layer_norm(xs[0], (2, 41, 61), xs[1], xs[2])
    ty = torch.nn.functional.layer_norm(ts[0], (2, 41, 61), ts[1], ts[2])
    y.backward(mc.tensor(gy))
    ty.backward(torch.tensor(gy))
    atol, rtol = (1e-10, 1e-8) if dtype == np.float64 else (1e-4, 1e-4)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), atol=atol, rtol=rtol)
    for a, t in zip(xs, ts):
        np.testing.assert_allclose(a.grad.numpy(), t.grad.numpy(), atol=atol, rtol=rtol)
