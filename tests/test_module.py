"""nn.Module, containers, Linear, Identity and mc.summary."""
import collections

import numpy as np
import pytest

import minicnn as mc
from conftest import DEVICES, torch_or_skip
from minicnn import nn
from minicnn.testing import gradcheck


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.register_buffer("running", mc.zeros(4))
        self.register_buffer("scratch", mc.zeros(2), persistent=False)
        self.register_buffer("count", mc.tensor(0))
        self.scale = nn.Parameter(mc.ones(1))

    def forward(self, x):
        return self.fc(x) * self.scale


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.head = nn.Linear(4, 2, bias=False)

    def forward(self, x):
        return self.head(self.block(x))


# --- registration and traversal -------------------------------------------------------------

def test_named_parameters_buffers_modules_order_and_names():
    net = Net()
    assert [n for n, _ in net.named_parameters()] == [
        "block.scale", "block.fc.weight", "block.fc.bias", "head.weight"]
    assert [n for n, _ in net.named_buffers()] == ["block.running", "block.scratch", "block.count"]
    assert [n for n, _ in net.named_modules()] == ["", "block", "block.fc", "head"]
    assert [n for n, _ in net.named_children()] == ["block", "head"]
    assert list(net.children()) == [net.block, net.head]
    assert [n for n, _ in net.named_parameters(recurse=False)] == []
    assert [n for n, _ in net.block.named_parameters(prefix="b", recurse=False)] == ["b.scale"]
    assert net.get_submodule("block.fc") is net.block.fc
    assert net.get_parameter("block.fc.bias") is net.block.fc.bias
    with pytest.raises(AttributeError, match="nope"):
        net.get_submodule("block.nope")


def test_state_dict_keys_persistent_buffers_only():
    net = Net()
    assert list(net.state_dict()) == ["block.scale", "block.running", "block.count",
                                      "block.fc.weight", "block.fc.bias", "head.weight"]
    sd = net.state_dict()
    assert not sd["block.fc.weight"].requires_grad
    assert np.shares_memory(sd["block.fc.weight"].array, net.block.fc.weight.array)
    assert net.state_dict(keep_vars=True)["head.weight"] is net.head.weight
    assert list(net.state_dict(prefix="m."))[0] == "m.block.scale"


def test_state_dict_key_names_match_pytorch():
    torch = torch_or_skip()
    tnet = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(),
                               torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Identity()),
                               torch.nn.ModuleList([torch.nn.Linear(5, 2)]),
                               torch.nn.ModuleDict({"out": torch.nn.Linear(2, 1)}))
    net = nn.Sequential(nn.Linear(3, 4), nn.Identity(),
                        nn.Sequential(nn.Linear(4, 5), nn.Identity()),
                        nn.ModuleList([nn.Linear(5, 2)]), nn.ModuleDict({"out": nn.Linear(2, 1)}))
    assert list(net.state_dict()) == list(tnet.state_dict())
    assert net.num_parameters() == sum(p.numel() for p in tnet.parameters())


def test_shared_parameter_counted_once():
    a = nn.Linear(2, 2)
    net = nn.Sequential(a, a)
    assert len(list(net.parameters())) == 2
    assert net.num_parameters() == 6
    assert list(net.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]  # as PyTorch


def test_assignment_rules():
    m = Block()
    with pytest.raises(TypeError, match="parameter 'scale'"):
        m.scale = mc.ones(1)  # a plain Tensor where a Parameter is registered
    m.scale = None
    assert "scale" not in dict(m.named_parameters())
    with pytest.raises(TypeError, match="buffer 'running'"):
        m.running = np.zeros(4)
    m.fc = nn.Identity()
    assert isinstance(m.fc, nn.Identity)
    m.extra = nn.Linear(1, 1)
    assert "extra.weight" in m.state_dict()
    del m.extra
    assert "extra.weight" not in m.state_dict()

    class Bad(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(mc.ones(1))
    with pytest.raises(AttributeError, match="before Module.__init__"):
        Bad()
    with pytest.raises(AttributeError, match="has no attribute 'missing'"):
        m.missing  # noqa: B018


def test_train_eval_propagate_and_call_overrides():
    calls = []

    class Frozen(nn.Module):
        def train(self, mode=True):
            calls.append(mode)
            return super().train(mode)

    net = nn.Sequential(nn.Linear(1, 1), nn.Sequential(Frozen()))
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    assert calls == [False, True]
    with pytest.raises(ValueError, match="boolean"):
        net.train("yes")


def test_to_dtype_changes_floats_keeps_objects_and_ints():
    net = Net()
    w = net.block.fc.weight
    (net(mc.randn(2, 3)).sum()).backward()
    net.to(mc.float64)
    assert net.block.fc.weight is w and w.dtype == np.float64 and w.grad.dtype == np.float64
    assert net.block.running.dtype == np.float64
    assert net.block.count.dtype == np.int64
    assert net(mc.randn(2, 3, dtype=mc.float64)).dtype == np.float64
    net.float()
    assert w.dtype == np.float32
    net.to("float64")
    assert w.dtype == np.float64
    net.to(dtype=mc.float32, device="cpu")
    assert w.dtype == np.float32
    with pytest.raises(TypeError, match="floating point"):
        net.to(mc.int32)


@pytest.mark.parametrize("device", DEVICES)
def test_to_device_moves_parameters_and_buffers(device):
    net = Net().to(device)
    assert all(p.device == device for p in net.parameters())
    assert all(b.device == device for b in net.buffers())
    assert net(mc.randn(2, 3, device=device)).device == device


def test_zero_grad_apply_requires_grad():
    net = Net()
    net(mc.randn(2, 3)).sum().backward()
    net.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.array.any() for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Linear", "Block", "Linear", "Net"]  # children first, as PyTorch
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())
    assert net.num_parameters(trainable_only=True) == 0


# --- load_state_dict ------------------------------------------------------------------------

def test_load_state_dict_round_trip_in_place():
    a, b = Net(), Net()
    view = b.block.fc.weight.array
    result = b.load_state_dict(a.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert b.block.fc.weight.array is view  # copied in place: views (optimizers) stay valid
    for (n, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        np.testing.assert_array_equal(x.array, y.array, err_msg=n)
    # plain arrays are accepted, and dtypes are kept
    b.load_state_dict({k: v.array.astype(np.float64) if v.dtype == np.float32 else v.array
                       for k, v in a.state_dict().items()})
    assert b.block.fc.weight.dtype == np.float32


def _snapshot(m):
    return {k: v.array.copy() for k, v in m.state_dict().items()}


def _assert_unchanged(m, snap):
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v.array, snap[k], err_msg=k)


def test_load_state_dict_errors_change_nothing():
    net, other = Net(), Net()
    snap = _snapshot(net)
    sd = other.state_dict()
    missing = {k: v for k, v in sd.items() if k != "head.weight"}
    with pytest.raises(RuntimeError, match='Missing key\\(s\\) in state_dict: "head.weight"'):
        net.load_state_dict(missing)
    _assert_unchanged(net, snap)
    extra = dict(sd, **{"head.bias": mc.zeros(2)})
    with pytest.raises(RuntimeError, match='Unexpected key\\(s\\) in state_dict: "head.bias"'):
        net.load_state_dict(extra)
    _assert_unchanged(net, snap)
    bad = dict(sd, **{"block.fc.weight": mc.zeros(4, 2)})
    with pytest.raises(RuntimeError, match=r"size mismatch for block.fc.weight: copying a param "
                                           r"with shape \[4, 2\] from checkpoint, the shape in "
                                           r"current model is \[4, 3\]"):
        net.load_state_dict(bad)
    _assert_unchanged(net, snap)
    with pytest.raises(RuntimeError, match="size mismatch"):  # even with strict=False
        net.load_state_dict(bad, strict=False)
    _assert_unchanged(net, snap)


def test_load_state_dict_non_strict_reports_and_loads_the_rest():
    net, other = Net(), Net()
    sd = {k: v for k, v in other.state_dict().items() if k != "head.weight"}
    sd["junk"] = mc.zeros(1)
    res = net.load_state_dict(sd, strict=False)
    assert res.missing_keys == ["head.weight"] and res.unexpected_keys == ["junk"]
    np.testing.assert_array_equal(net.block.fc.weight.array, other.block.fc.weight.array)


# --- hooks and printing ---------------------------------------------------------------------

def test_forward_hooks_and_pre_hooks():
    lin = nn.Linear(2, 2)
    seen = []
    h1 = lin.register_forward_pre_hook(lambda m, args: (args[0] * 0,))
    h2 = lin.register_forward_hook(lambda m, args, out: seen.append(out.shape) or out + 1)
    y = lin(mc.ones(3, 2))
    np.testing.assert_allclose(y.array, np.broadcast_to(lin.bias.array + 1, (3, 2)), rtol=1e-6)
    assert seen == [(3, 2)]
    h1.remove()
    h2.remove()
    np.testing.assert_allclose(lin(mc.zeros(1, 2)).array[0], lin.bias.array, rtol=1e-6)
    assert seen == [(3, 2)]


def test_repr_matches_pytorch():
    torch = torch_or_skip()
    t = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Identity(),
                            torch.nn.Sequential(torch.nn.Linear(4, 2, bias=False)),
                            torch.nn.ModuleList([torch.nn.Identity()]))
    m = nn.Sequential(nn.Linear(3, 4), nn.Identity(), nn.Sequential(nn.Linear(4, 2, bias=False)),
                      nn.ModuleList([nn.Identity()]))
    assert repr(m) == repr(t)
    assert repr(nn.Linear(1, 2)) == "Linear(in_features=1, out_features=2, bias=True)"


# --- containers -----------------------------------------------------------------------------

def test_sequential_indexing_slicing_append_insert_delete():
    layers = [nn.Linear(2, 2), nn.Identity(), nn.Linear(2, 3)]
    seq = nn.Sequential(*layers)
    assert len(seq) == 3 and list(seq) == layers
    assert seq[0] is layers[0] and seq[-1] is layers[2]
    sub = seq[1:]
    assert isinstance(sub, nn.Sequential) and list(sub) == layers[1:]
    assert list(sub.state_dict()) == ["2.weight", "2.bias"]  # names kept, as PyTorch
    with pytest.raises(IndexError, match="out of range"):
        seq[3]  # noqa: B018
    seq.append(nn.Identity())
    assert len(seq) == 4 and list(seq._modules) == ["0", "1", "2", "3"]
    x = mc.randn(5, 2)
    np.testing.assert_allclose(seq(x).array, layers[2](layers[0](x)).array, rtol=1e-6)
    del seq[1]
    assert list(seq._modules) == ["0", "1", "2"] and seq[1] is layers[2]
    seq.insert(0, nn.Identity())
    assert isinstance(seq[0], nn.Identity) and seq[1] is layers[0]
    last = seq[-1]
    seq.insert(-1, nn.Identity())  # before the last module, as torch.nn.Sequential.insert
    assert isinstance(seq[-2], nn.Identity) and seq[-1] is last and len(seq) == 5
    del seq[-2]
    seq[0] = nn.Linear(2, 2)
    assert isinstance(seq[0], nn.Linear)
    with pytest.raises(TypeError, match="not a Module"):
        seq.append(lambda t: t)
    named = nn.Sequential(collections.OrderedDict([("fc", nn.Linear(2, 2)),
                                                   ("act", nn.Identity())]))
    assert list(named.state_dict()) == ["fc.weight", "fc.bias"] and named.fc is named[0]


def test_module_list_and_dict():
    ml = nn.ModuleList([nn.Linear(1, 1) for _ in range(3)])
    assert len(ml) == 3 and list(ml.state_dict())[:2] == ["0.weight", "0.bias"]
    first = ml[0]
    ml.append(nn.Identity())
    ml.extend([nn.Identity()])
    assert len(ml) == 5
    del ml[0]
    assert list(ml._modules) == ["0", "1", "2", "3"] and first not in list(ml)
    assert isinstance(ml[1:3], nn.ModuleList) and len(ml[1:3]) == 2
    ml.insert(1, first)
    assert ml[1] is first
    with pytest.raises(NotImplementedError):
        ml(mc.zeros(1))
    md = nn.ModuleDict({"a": nn.Linear(1, 2), "b": nn.Identity()})
    assert list(md.keys()) == ["a", "b"] and "a" in md and len(md) == 2
    assert list(md.state_dict()) == ["a.weight", "a.bias"]
    md.update({"c": nn.Linear(2, 1)})
    assert list(md) == ["a", "b", "c"]
    assert isinstance(md.pop("b"), nn.Identity) and list(md) == ["a", "c"]
    with pytest.raises(TypeError):
        md["d"] = 3


# --- Linear ---------------------------------------------------------------------------------

def test_linear_init_matches_pytorch_distribution():
    lin = nn.Linear(400, 300)
    bound = 1 / np.sqrt(400)
    w, b = lin.weight.array, lin.bias.array
    assert w.dtype == np.float32 and w.shape == (300, 400) and b.shape == (300,)
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    # U(-bound, bound): variance bound^2 / 3; 120000 samples -> 5 standard errors ~ 1.3%
    np.testing.assert_allclose(w.var(), bound ** 2 / 3, rtol=0.015)
    assert abs(w.mean()) < 5 * bound / np.sqrt(3 * w.size)
    mc.manual_seed(3)
    a = nn.Linear(5, 4)
    mc.manual_seed(3)
    b2 = nn.Linear(5, 4)
    np.testing.assert_array_equal(a.weight.array, b2.weight.array)
    assert nn.Linear(2, 3, dtype=mc.float64).weight.dtype == np.float64
    assert nn.Linear(0, 3).bias.array.tolist() == [0, 0, 0]


@pytest.mark.parametrize("shape", [(3,), (5, 3), (2, 4, 3)])
@pytest.mark.parametrize("bias", [True, False])
def test_functional_linear_matches_pytorch(shape, bias):
    torch = torch_or_skip()
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal(shape), rng.standard_normal((4, 3)), rng.standard_normal(4)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    mx, mw, mb = (mc.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.linear(tx, tw, tb if bias else None)
    my = mc.functional.linear(mx, mw, mb if bias else None)
    np.testing.assert_allclose(my.array, ty.detach().numpy(), rtol=1e-12)
    g = rng.standard_normal(ty.shape)
    ty.backward(torch.tensor(g))
    my.backward(mc.tensor(g))
    for m, t in [(mx, tx), (mw, tw)] + ([(mb, tb)] if bias else []):
        np.testing.assert_allclose(m.grad.array, t.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_functional_linear_gradcheck_and_errors():
    x = mc.randn(3, 2, dtype=mc.float64, requires_grad=True)
    w = mc.randn(4, 2, dtype=mc.float64, requires_grad=True)
    b = mc.randn(4, dtype=mc.float64, requires_grad=True)
    gradcheck(lambda x, w, b: mc.functional.linear(x, w, b), [x, w, b])
    with pytest.raises(ValueError,
                       match=r"mat1 and mat2 shapes cannot be multiplied \(3x2 and 5x4\)"):
        mc.functional.linear(x, mc.randn(4, 5, dtype=mc.float64))
    with pytest.raises(ValueError, match="bias"):
        mc.functional.linear(x, w, mc.randn(3, dtype=mc.float64))
    with pytest.raises(TypeError, match="dtype"):
        mc.functional.linear(x, mc.randn(4, 2))


def test_identity_and_summary():
    assert nn.Identity(3, foo=1)(mc.ones(2)) is not None
    net = nn.Sequential(nn.Linear(3, 4), nn.Identity(), nn.Sequential(nn.Linear(4, 2)))
    net.eval()
    text = mc.summary(net, (3,), print_fn=None)
    lines = text.splitlines()
    assert lines[0] == 'Model: "Sequential"'
    assert any(line.startswith(" 0 (Linear)") and "(None, 4)" in line and line.endswith("16")
               for line in lines)
    assert any(line.startswith(" 2.0 (Linear)") and "(None, 2)" in line and line.endswith("10")
               for line in lines)
    assert "Total params: 26" in lines and "Trainable params: 26" in lines
    assert not net.training  # modes restored
