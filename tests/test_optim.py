"""Optimizers: PyTorch parity (20 steps, float64), flat-buffer bookkeeping, state dicts, errors.
The update kernels are tested in tests/kernels/test_optim.py."""
import numpy as np
import pytest

import minicnn as mc
from conftest import DEVICES, EMULATOR, torch_or_skip
from cuda_util import emulate
from minicnn import nn, optim

SHAPES = [(3, 4), (4,), (2, 3, 2), (), (5,)]

CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.05)),
    ("SGD", dict(lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, momentum=0.5, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True, maximize=True)),
    ("Adam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, maximize=True)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.2,
                     eps=1e-8)),
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-5, weight_decay=0.1, maximize=True)),
    ("Adamax", dict(lr=0.01)),
    ("Adamax", dict(lr=0.01, betas=(0.7, 0.9), weight_decay=0.1)),
    ("NAdam", dict(lr=0.01)),
    ("NAdam", dict(lr=0.01, weight_decay=0.1, momentum_decay=0.01)),
    ("NAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
]


def _ids(case):
    name, kw = case
    return name + "-" + "-".join(f"{k}={v}" for k, v in kw.items())


@pytest.fixture
def torch64():
    torch = torch_or_skip()
    old, mc_old = torch.get_default_dtype(), mc.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # NAdam's mu_product uses the default dtype, on
    mc.set_default_dtype(mc.float64)        # both sides
    yield torch
    torch.set_default_dtype(old)
    mc.set_default_dtype(mc_old)


@pytest.mark.parametrize("decoupled", [False, True])
def test_nadam_float64_parameters_with_the_float32_default_dtype(decoupled):
    """PyTorch keeps NAdam's mu_product in a float32 tensor under the float32 default dtype,
    also for float64 parameters; minicnn rounds it the same way (it kept it in double, 2e-9
    relative from PyTorch's trajectory from the first step)."""
    torch = torch_or_skip()
    assert torch.get_default_dtype() == torch.float32 and mc.get_default_dtype() == mc.float32
    tp, mp, _, _ = _drive(torch, "NAdam", dict(lr=0.01, weight_decay=0.1,
                                               decoupled_weight_decay=decoupled))
    _assert_close(tp, mp)


def _drive(torch, name, kw, steps=20, skip=None, dtype=np.float64, groups=None, seed=0):
    """Run torch's and minicnn's optimizer from the same weights on the same gradient sequence.
    skip(k, i): gradient of parameter i is None at step k."""
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(steps)]
    tp = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    mp = [nn.Parameter(mc.tensor(a.copy())) for a in init]

    def params(ps):
        if groups is None:
            return ps
        return [dict(g, params=[ps[i] for i in idx]) for idx, g in groups]
    topt = getattr(torch.optim, name)(params(tp), **kw)
    mopt = getattr(optim, name)(params(mp), **kw)
    for k in range(steps):
        for i, (t, m) in enumerate(zip(tp, mp)):
            if skip is not None and skip(k, i):
                t.grad = m.grad = None
            else:
                t.grad = torch.tensor(grads[k][i])
                m.grad = mc.tensor(grads[k][i].copy())
        topt.step()
        mopt.step()
    return tp, mp, topt, mopt


def _assert_close(tp, mp, rtol=1e-12, atol=1e-14):
    for t, m in zip(tp, mp):
        np.testing.assert_allclose(m.array, t.detach().numpy(), rtol=rtol, atol=atol)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_parity_with_pytorch_20_steps_float64(torch64, case):
    tp, mp, _, _ = _drive(torch64, *case)
    _assert_close(tp, mp)


@pytest.mark.parametrize("case", CASES[::3], ids=_ids)
def test_parity_when_some_grads_are_none(torch64, case):
    # params without a grad are skipped (no update, no state change, step not counted)
    tp, mp, _, _ = _drive(torch64, *case, skip=lambda k, i: (k + i) % 3 == 0 or (i == 4 and k < 5))
    _assert_close(tp, mp)


@pytest.mark.parametrize("case", [CASES[2], CASES[7], CASES[13]], ids=_ids)
def test_parity_with_param_groups(torch64, case):
    name, kw = case
    groups = [([0, 2], {}), ([1], {"lr": 0.003}), ([3, 4], {"weight_decay": 0.2})]
    tp, mp, _, _ = _drive(torch64, name, kw, groups=groups)
    _assert_close(tp, mp)


@pytest.mark.parametrize("case", [CASES[1], CASES[5], CASES[14], CASES[21]], ids=_ids)
def test_parity_float32(case):
    torch = torch_or_skip()
    tp, mp, _, _ = _drive(torch, *case, dtype=np.float32)
    for t, m in zip(tp, mp):
        assert m.dtype == np.float32
        np.testing.assert_allclose(m.array, t.detach().numpy(), rtol=2e-5, atol=2e-6)


@pytest.mark.skipif(not EMULATOR, reason="no C++ compiler for the CUDA emulator")
@pytest.mark.parametrize("case", CASES[::2], ids=_ids)
def test_parity_on_the_gpu_code_path(torch64, case, monkeypatch):
    # the GPU path (gradients gathered into a flat buffer, the CUDA kernels under the emulator)
    emulate(monkeypatch)
    tp, mp, _, mopt = _drive(torch64, *case, skip=lambda k, i: (k + i) % 4 == 0)
    _assert_close(tp, mp)
    assert mopt._layouts[0].buckets[0].gbuf is not None


# --- the flat layout ------------------------------------------------------------------------

def test_parameters_are_views_into_one_flat_buffer():
    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    opt = optim.Adam(net.parameters())
    (b,) = opt._layouts[0].buckets
    assert all(p.array.base is b.flat for p in net.parameters())
    assert b.flat.size == net.num_parameters()
    assert set(b.state) == {"exp_avg", "exp_avg_sq"} and b.state["exp_avg"].size == b.flat.size


def test_replaced_parameter_arrays_are_relaid_out(torch64):
    torch = torch64
    rng = np.random.default_rng(1)
    a, g = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    tp, mp = torch.tensor(a, requires_grad=True), nn.Parameter(mc.tensor(a.copy()))
    topt, mopt = torch.optim.Adam([tp], lr=0.1), optim.Adam([mp], lr=0.1)
    for k in range(6):
        if k == 3:  # replace the parameter's array behind the optimizer's back
            with torch.no_grad():
                tp.data = tp.data * 2 + 1
            mp.array = mp.array * 2 + 1
        tp.grad, mp.grad = torch.tensor(g * (k + 1)), mc.tensor(g * (k + 1))
        topt.step()
        mopt.step()
    np.testing.assert_allclose(mp.array, tp.detach().numpy(), rtol=1e-12)
    assert mp.array.base is mopt._layouts[0].buckets[0].flat  # a view again
    np.testing.assert_allclose(mopt.state[mp]["exp_avg"].array, topt.state[tp]["exp_avg"].numpy(),
                               rtol=1e-12)


def test_module_to_and_load_state_dict_after_optimizer_creation():
    net = nn.Linear(3, 2)
    opt = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(mc.randn(4, 3)).sum().backward()
    opt.step()
    net.to(mc.float64)  # replaces the arrays: the optimizer re-lays out, keeping its state
    net.zero_grad()
    x = mc.randn(4, 3, dtype=mc.float64)
    net(x).sum().backward()
    before = net.weight.array.copy()
    buf = opt.state[net.weight]["momentum_buffer"].array.astype(np.float64)
    opt.step()
    assert net.weight.dtype == np.float64
    expected = before - 0.1 * (0.9 * buf + net.weight.grad.array)
    np.testing.assert_allclose(net.weight.array, expected, rtol=1e-6)
    # load_state_dict copies in place: the views stay and the next step updates the model
    other = nn.Linear(3, 2).double()
    net.load_state_dict(other.state_dict())
    assert opt._layouts[0].buckets[0].valid()
    opt.step()
    assert not np.array_equal(net.weight.array, other.weight.array)


def test_a_parameter_shared_by_two_optimizers(torch64):
    torch = torch64
    a = np.arange(4.0)
    mp, tp = nn.Parameter(mc.tensor(a.copy())), torch.tensor(a.copy(), requires_grad=True)
    m1, m2 = optim.SGD([mp], lr=0.1, momentum=0.9), optim.Adam([mp], lr=0.01)
    t1, t2 = torch.optim.SGD([tp], lr=0.1, momentum=0.9), torch.optim.Adam([tp], lr=0.01)
    for k in range(4):
        mp.grad, tp.grad = mc.tensor(a * k - 1), torch.tensor(a * k - 1)
        for m, t in ((m1, t1), (m2, t2)):
            m.step()
            t.step()
    np.testing.assert_allclose(mp.array, tp.detach().numpy(), rtol=1e-12)


def test_mixed_dtypes_in_one_group(torch64):
    torch = torch64
    a32, a64 = np.ones((2, 2), np.float32), np.ones(3)
    p32, p64 = nn.Parameter(mc.tensor(a32)), nn.Parameter(mc.tensor(a64))
    t32, t64 = torch.tensor(a32, requires_grad=True), torch.tensor(a64, requires_grad=True)
    mopt, topt = optim.Adam([p32, p64], lr=0.1), torch.optim.Adam([t32, t64], lr=0.1)
    assert len(mopt._layouts[0].buckets) == 2
    for k in range(3):
        p32.grad, p64.grad = mc.tensor(a32 * k), mc.tensor(a64 * -k)
        t32.grad, t64.grad = torch.tensor(a32 * k), torch.tensor(a64 * -k)
        mopt.step()
        topt.step()
    np.testing.assert_allclose(p32.array, t32.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(p64.array, t64.detach().numpy(), rtol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_training_reduces_a_loss(device):
    mc.manual_seed(0)
    net = nn.Linear(4, 1).to(device)
    x = mc.randn(32, 4, device=device)
    y = x @ mc.tensor([[1.0], [-2.0], [0.5], [3.0]], device=device)
    opt = optim.Adam(net.parameters(), lr=0.2)
    losses = []
    for _ in range(100):
        opt.zero_grad()
        d = net(x) - y
        loss = (d * d).mean()
        loss.backward()
        opt.step()
        losses.append(float(loss.item()))
    assert losses[-1] < 0.05 * losses[0]


def test_zero_grad_and_closure():
    p = nn.Parameter(mc.ones(3))
    opt = optim.SGD([p], lr=0.5)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss
    loss = opt.step(closure)
    assert float(loss.item()) == 3.0
    np.testing.assert_allclose(p.array, 0.0)  # p - 0.5 * 2p
    p.grad = mc.ones(3)
    opt.zero_grad(set_to_none=False)
    assert p.grad is not None and not p.grad.array.any()
    opt.zero_grad()
    assert p.grad is None


# --- state dicts ----------------------------------------------------------------------------

def test_state_dict_layout_matches_pytorch(torch64):
    for name, kw in [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(amsgrad=True)),
                     ("RMSprop", dict(momentum=0.9, centered=True)), ("Adagrad", {}),
                     ("NAdam", {}), ("Adadelta", {}), ("Adamax", {})]:
        tp, mp, topt, mopt = _drive(torch64, name, kw, steps=2, skip=lambda k, i: i == 1)
        tsd, msd = topt.state_dict(), mopt.state_dict()
        assert sorted(tsd["state"]) == sorted(msd["state"]), name
        for i in tsd["state"]:
            assert set(tsd["state"][i]) == set(msd["state"][i]), (name, i)
            for key, tv in tsd["state"][i].items():
                np.testing.assert_allclose(np.asarray(msd["state"][i][key].array),
                                           tv.numpy() if hasattr(tv, "numpy") else tv,
                                           rtol=1e-12, err_msg=f"{name} {i} {key}")
        assert [g["params"] for g in tsd["param_groups"]] == \
            [g["params"] for g in msd["param_groups"]]
        for key in ("lr", "weight_decay"):
            assert tsd["param_groups"][0][key] == msd["param_groups"][0][key]


@pytest.mark.parametrize("case", [CASES[3], CASES[7], CASES[13], CASES[16], CASES[23]], ids=_ids)
def test_load_pytorch_state_dict_and_continue(torch64, case):
    torch = torch64
    name, kw = case
    tp, mp, topt, mopt = _drive(torch, name, kw, steps=5)
    # a fresh minicnn optimizer takes torch's state dict (tensors as arrays) and continues
    tsd = topt.state_dict()
    converted = {"state": {i: {k: v.numpy() for k, v in s.items()}
                           for i, s in tsd["state"].items()},
                 "param_groups": tsd["param_groups"]}
    fresh = [nn.Parameter(mc.tensor(t.detach().numpy().copy())) for t in tp]
    opt2 = getattr(optim, name)(fresh, **kw)
    opt2.load_state_dict(converted)
    rng = np.random.default_rng(5)
    for _ in range(5):
        gs = [rng.standard_normal(s) for s in SHAPES]
        for t, m, g in zip(tp, fresh, gs):
            t.grad, m.grad = torch.tensor(g), mc.tensor(g)
        topt.step()
        opt2.step()
    _assert_close(tp, fresh)


def test_own_state_dict_round_trip_continues_identically():
    torch_or_skip()
    for name, kw in CASES:
        rng = np.random.default_rng(2)
        a = [rng.standard_normal(s) for s in SHAPES]
        p1 = [nn.Parameter(mc.tensor(x.copy())) for x in a]
        opt1 = getattr(optim, name)(p1, **kw)
        grads = [[rng.standard_normal(s) for s in SHAPES] for _ in range(6)]
        for k in range(3):
            for p, g in zip(p1, grads[k]):
                p.grad = mc.tensor(g)
            opt1.step()
        p2 = [nn.Parameter(mc.tensor(p.array.copy())) for p in p1]
        opt2 = getattr(optim, name)(p2, **dict(kw, lr=123.0))
        opt2.load_state_dict(opt1.state_dict())
        assert opt2.param_groups[0]["lr"] == kw.get("lr", opt1.defaults["lr"])
        for k in range(3, 6):
            for p, q, g in zip(p1, p2, grads[k]):
                p.grad, q.grad = mc.tensor(g), mc.tensor(g)
            opt1.step()
            opt2.step()
        for p, q in zip(p1, p2):
            np.testing.assert_array_equal(p.array, q.array, err_msg=name)


def test_load_state_dict_errors_change_nothing():
    ps = [nn.Parameter(mc.ones(2, 2)), nn.Parameter(mc.ones(3))]
    opt = optim.Adam(ps, lr=0.1)
    for p in ps:
        p.grad = mc.ones(*p.shape)
    opt.step()
    sd = opt.state_dict()
    before = {k: v.array.copy() for k, v in opt.state[ps[0]].items()}

    def check_unchanged():
        for k, v in opt.state[ps[0]].items():
            np.testing.assert_array_equal(v.array, before[k])
        assert opt.param_groups[0]["lr"] == 0.1

    bad = {"state": {0: dict(sd["state"][0], exp_avg=np.zeros(5)), 1: sd["state"][1]},
           "param_groups": [dict(sd["param_groups"][0], lr=9.0)]}
    with pytest.raises(ValueError, match=r"state 'exp_avg' of parameter 0 has shape \[5\], but "
                                         r"the parameter has shape \[2, 2\]"):
        opt.load_state_dict(bad)
    check_unchanged()
    with pytest.raises(ValueError, match="unknown state 'foo'"):
        opt.load_state_dict({"state": {0: {"foo": np.zeros(4)}},
                             "param_groups": [dict(sd["param_groups"][0], lr=9.0)]})
    check_unchanged()
    with pytest.raises(ValueError, match="different number of parameter groups"):
        opt.load_state_dict({"state": {}, "param_groups": sd["param_groups"] * 2})
    with pytest.raises(ValueError, match="doesn't match the size"):
        opt.load_state_dict({"state": {}, "param_groups": [dict(sd["param_groups"][0],
                                                                params=[0])]})
    with pytest.raises(ValueError, match="parameter 7, which is in no parameter group"):
        opt.load_state_dict({"state": {7: {}}, "param_groups": sd["param_groups"]})
    check_unchanged()


# --- errors ---------------------------------------------------------------------------------

def test_errors():
    p, q = nn.Parameter(mc.ones(2)), nn.Parameter(mc.ones(2))
    with pytest.raises(ValueError, match="Invalid learning rate: -0.1"):
        optim.SGD([p], lr=-0.1)
    with pytest.raises(ValueError, match="Invalid learning rate: -1"):
        optim.Adam([{"params": [p]}, {"params": [q], "lr": -1}])
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter group"):
        optim.Adam([{"params": [p]}, {"params": [p, q]}])
    with pytest.raises(ValueError, match="optimizer got an empty parameter list"):
        optim.Adam([])
    with pytest.raises(ValueError, match="optimizer got an empty parameter list"):
        optim.SGD(iter([]), lr=0.1)
    with pytest.raises(TypeError, match="iterable of Tensors or dicts"):
        optim.Adam(p)
    with pytest.raises(TypeError, match="ordered collections"):
        optim.Adam({p, q})
    with pytest.raises(ValueError, match="non-leaf"):
        optim.Adam([p * 2])
    with pytest.raises(ValueError, match="duplicate parameters"):
        optim.Adam([p, p])
    with pytest.raises(ValueError,
                       match="Nesterov momentum requires a momentum and zero dampening"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="Invalid beta parameter at index 1: 1.0"):
        optim.Adam([p], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="Invalid momentum value"):
        optim.RMSprop([p], momentum=-1)
    with pytest.raises(ValueError, match="Invalid epsilon value"):
        optim.Adagrad([p], eps=-1)
    with pytest.raises(ValueError, match="Invalid rho value"):
        optim.Adadelta([p], rho=1.5)
    opt = optim.SGD([p], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [p]})
    opt.add_param_group({"params": q, "lr": 0.5})
    assert opt.param_groups[1]["lr"] == 0.5 and opt.param_groups[1]["momentum"] == 0


def test_wrong_sized_grad_is_an_error_not_a_wild_read():
    p = nn.Parameter(mc.ones(3))
    opt = optim.Adam([p])
    p.grad = mc.ones(4)
    with pytest.raises(RuntimeError,
                       match=r"gradient of a parameter of shape \[3\] has shape \[4\]"):
        opt.step()
    np.testing.assert_array_equal(p.array, 1.0)


def test_user_subclass_with_its_own_step_like_pytorch():
    class SignSGD(optim.Optimizer):
        def __init__(self, params, lr=0.1):
            super().__init__(params, dict(lr=lr))

        def step(self, closure=None):
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    st = self.state[p]
                    st["n"] = st.get("n", 0) + 1
                    p.array -= group["lr"] * np.sign(p.grad.array)

    p = nn.Parameter(mc.tensor([1.0, -1.0]))
    original = p.array
    opt = SignSGD([p])
    assert p.array is original  # no flat layout for a user step()
    p.grad = mc.tensor([2.0, -3.0])
    opt.step()
    opt.step()
    np.testing.assert_allclose(p.array, [0.8, -0.8])
    sd = opt.state_dict()
    assert sd["state"] == {0: {"n": 2}} and sd["param_groups"][0]["params"] == [0]
    opt2 = SignSGD([nn.Parameter(mc.zeros(2))], lr=0.5)
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == 0.1 and list(opt2.state.values()) == [{"n": 2}]

    class NoStep(optim.Optimizer):
        pass
    with pytest.raises(NotImplementedError):
        NoStep([p], {"lr": 0.1}).step()


def test_add_param_group_then_step():
    p, q = nn.Parameter(mc.ones(2)), nn.Parameter(mc.ones(3))
    opt = optim.SGD([p], lr=0.1)
    opt.add_param_group({"params": [q], "lr": 1.0})
    p.grad, q.grad = mc.ones(2), mc.ones(3)
    opt.step()
    np.testing.assert_allclose(p.array, 0.9, rtol=1e-6)
    np.testing.assert_allclose(q.array, 0.0, atol=1e-7)

