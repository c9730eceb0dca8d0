"""nn.utils: gradient clipping (PyTorch parity), parameter vectors, regularization penalties."""
import math

import numpy as np
import pytest

import minicnn as mc
from conftest import torch_or_skip
from minicnn import nn, optim
from minicnn.nn import utils


def _params_with_grads(torch, scale=1.0, seed=0):
    rng = np.random.default_rng(seed)
    shapes = [(3, 4), (4,), (2, 2, 2)]
    data = [rng.standard_normal(s) for s in shapes]
    grads = [scale * rng.standard_normal(s) for s in shapes]
    mp = [nn.Parameter(mc.tensor(d)) for d in data]
    tp = [torch.nn.Parameter(torch.tensor(d)) for d in data]
    for m, t, g in zip(mp, tp, grads):
        m.grad, t.grad = mc.tensor(g.copy()), torch.tensor(g)
    return mp, tp


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 3.0])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_matches_pytorch(norm_type, max_norm):
    torch = torch_or_skip()
    mp, tp = _params_with_grads(torch)
    mp.append(nn.Parameter(mc.ones(2)))  # no grad: skipped
    total = utils.clip_grad_norm_(mp, max_norm, norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tp, max_norm, norm_type)
    assert isinstance(total, mc.Tensor)
    assert float(total.item()) == pytest.approx(float(ttotal), rel=1e-12)
    for m, t in zip(mp, tp):
        np.testing.assert_allclose(m.grad.array, t.grad.numpy(), rtol=1e-12)
    if max_norm < 1:
        clipped = float(utils.get_total_norm([p.grad for p in mp[:3]], norm_type).item())
        assert clipped == pytest.approx(max_norm, rel=1e-5)


def test_clip_grad_norm_nonfinite_and_single_tensor():
    p = nn.Parameter(mc.ones(3))
    p.grad = mc.tensor([1.0, float("inf"), 0.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        utils.clip_grad_norm_(p, 1.0, error_if_nonfinite=True)
    p.grad = mc.tensor([3.0, 4.0, 0.0])
    assert float(utils.clip_grad_norm_(p, 1.0).item()) == pytest.approx(5.0)
    np.testing.assert_allclose(p.grad.array, [0.6, 0.8, 0.0], rtol=1e-5)
    assert float(utils.clip_grad_norm_([nn.Parameter(mc.ones(1))], 1.0).item()) == 0.0


def test_clip_grad_value_matches_pytorch():
    torch = torch_or_skip()
    mp, tp = _params_with_grads(torch, scale=3.0)
    utils.clip_grad_value_(mp, 1.5)
    torch.nn.utils.clip_grad_value_(tp, 1.5)
    for m, t in zip(mp, tp):
        np.testing.assert_array_equal(m.grad.array, t.grad.numpy())
        assert np.abs(m.grad.array).max() <= 1.5


def test_clipping_between_backward_and_step():
    net = nn.Linear(3, 2)
    opt = optim.SGD(net.parameters(), lr=1.0)
    before = net.weight.array.copy()
    (net(mc.randn(4, 3)) * 100).sum().backward()
    utils.clip_grad_norm_(net.parameters(), 0.1)
    opt.step()
    assert np.sqrt(((net.weight.array - before) ** 2).sum()) <= 0.1 + 1e-6


def test_parameters_vector_round_trip():
    torch = torch_or_skip()
    mp, tp = _params_with_grads(torch)
    v = utils.parameters_to_vector(mp)
    np.testing.assert_array_equal(v.array, torch.nn.utils.parameters_to_vector(tp).detach().numpy())
    utils.vector_to_parameters(v * 2, mp)
    np.testing.assert_array_equal(mp[0].array, 2 * tp[0].detach().numpy())
    with pytest.raises(ValueError, match="has 3 elements but the parameters have"):
        utils.vector_to_parameters(mc.zeros(3, dtype=mc.float64), mp)


def test_l1_l2_penalties_values_and_gradients():
    torch = torch_or_skip()
    mp, tp = _params_with_grads(torch)
    for p, t in zip(mp, tp):
        p.grad = t.grad = None
    l1 = utils.l1_penalty(mp, 0.01)
    assert float(l1.item()) == pytest.approx(0.01 * sum(float(t.abs().sum()) for t in tp))
    l1.backward()
    for m in mp:
        np.testing.assert_allclose(m.grad.array, 0.01 * np.sign(m.array), rtol=1e-12)
        m.grad = None
    l2 = utils.l2_penalty(mp, 0.5)
    assert float(l2.item()) == pytest.approx(0.5 * sum(float((t * t).sum()) for t in tp))
    l2.backward()
    for m in mp:
        np.testing.assert_allclose(m.grad.array, m.array, rtol=1e-12)  # d/dp 0.5 p^2 = p
        m.grad = None
    for q in (2.0, 1.0, 3.0, math.inf):
        n = utils.parameters_norm(mp, q)
        tn = torch.linalg.vector_norm(torch.cat([t.reshape(-1) for t in tp]), q)
        tn.backward()
        n.backward()
        assert float(n.item()) == pytest.approx(float(tn), rel=1e-12)
        for m, t in zip(mp, tp):
            np.testing.assert_allclose(m.grad.array, t.grad.numpy(), rtol=1e-10, atol=1e-14)
            m.grad, t.grad = None, None
    assert float(utils.norm_penalty(mp, 0.1).item()) == pytest.approx(
        0.1 * float(utils.parameters_norm(mp).item()))
    with pytest.raises(ValueError, match="got no parameters"):
        utils.l1_penalty([])


def test_l2_penalty_is_sgd_weight_decay():
    # loss + l2_penalty(params, wd / 2) gives the same SGD step as weight_decay=wd
    mc.manual_seed(0)
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    b.load_state_dict(a.state_dict())
    x = mc.randn(5, 3)
    oa = optim.SGD(a.parameters(), lr=0.1, weight_decay=0.2)
    ob = optim.SGD(b.parameters(), lr=0.1)
    a(x).sum().backward()
    (b(x).sum() + utils.l2_penalty(b.parameters(), 0.1)).backward()
    oa.step()
    ob.step()
    np.testing.assert_allclose(a.weight.array, b.weight.array, rtol=1e-6)
