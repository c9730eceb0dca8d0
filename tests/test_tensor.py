"""Tensor creation, attributes, conversion, DLPack and seeding."""
import numpy as np
import pytest

import minicnn as mc
from conftest import DEVICES


def test_default_dtypes_follow_pytorch():
    assert mc.tensor([1.0, 2.0]).dtype == np.float32
    assert mc.tensor([1, 2]).dtype == np.int64
    assert mc.tensor([True, False]).dtype == np.bool_
    assert mc.tensor(np.zeros(2)).dtype == np.float64  # arrays keep their dtype
    assert mc.tensor(3.5).shape == ()
    assert mc.zeros(2, 3).dtype == np.float32
    assert mc.arange(5).dtype == np.int64
    assert mc.arange(0, 1, 0.25).dtype == np.float32


@pytest.mark.parametrize("device", DEVICES)
def test_factories(device):
    assert mc.zeros(2, 3, device=device).shape == (2, 3)
    assert mc.ones((2, 3), device=device).numel() == 6
    t = mc.full((2, 2), 7.0, device=device)
    assert t.tolist() == [[7.0, 7.0], [7.0, 7.0]]
    assert mc.arange(1, 7, 2, device=device).tolist() == [1, 3, 5]
    r = mc.randn(4, 5, device=device, dtype=mc.float64)
    assert r.dtype == np.float64 and r.device == device
    u = mc.rand(1000, device=device)
    assert 0.0 <= float(u.min()) and float(u.max()) < 1.0
    assert mc.zeros_like(r).shape == r.shape and mc.ones_like(r).dtype == np.float64


def test_attributes_and_methods():
    t = mc.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True)
    assert t.shape == (2, 3) and t.ndim == 2 and t.size() == (2, 3) and t.size(1) == 3
    assert t.numel() == 6 and t.device == "cpu" and t.requires_grad and t.is_leaf
    assert isinstance(t.array, np.ndarray)
    assert t.sum().item() == 21.0
    assert t.tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    d = t.detach()
    assert not d.requires_grad and d.array is t.array
    assert "requires_grad=True" in repr(t)
    with pytest.raises(ValueError, match="item: a Tensor with 6 elements"):
        t.item()


def test_numpy_is_zero_copy():
    a = np.arange(6.0)
    t = mc.from_numpy(a)
    t.numpy()[0] = 42.0
    assert a[0] == 42.0


def test_zero_and_inplace_guard():
    t = mc.ones(3)
    t.zero_()
    assert t.tolist() == [0.0, 0.0, 0.0]
    p = mc.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place"):
        p.zero_()
    with mc.no_grad():
        p.mul_(2.0)
    assert p.tolist() == [2.0, 2.0, 2.0]


def test_requires_grad_():
    t = mc.zeros(2)
    assert t.requires_grad_() is t and t.requires_grad


def test_to_dtype_is_differentiable():
    x = mc.tensor([1.0, 2.0], requires_grad=True)
    y = x.to(mc.float64) * 3.0
    assert y.dtype == np.float64
    y.sum().backward()
    assert x.grad.dtype == np.float32 and x.grad.tolist() == [3.0, 3.0]


def test_cuda_unavailable_is_clear():
    if mc.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        mc.zeros(2, device="cuda")
    assert mc.cuda.device_count() == 0


def test_unknown_device():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        mc.zeros(2, device="tpu")


def test_dlpack_numpy_roundtrip_zero_copy():
    a = np.arange(6.0).reshape(2, 3)
    t = mc.from_dlpack(a)
    assert np.shares_memory(t.array, a)
    b = np.from_dlpack(t)
    assert np.shares_memory(b, a)


def test_dlpack_with_torch():
    torch = pytest.importorskip("torch")
    tt = torch.arange(6.0).reshape(2, 3)
    t = mc.from_dlpack(tt)
    tt[0, 0] = 9.0
    assert t.array[0, 0] == 9.0  # shares memory
    back = torch.from_dlpack(mc.tensor([[1.0, 2.0]]))
    assert back.tolist() == [[1.0, 2.0]]


def test_manual_seed_repeats():
    mc.manual_seed(123)
    a = mc.randn(5).numpy().copy()
    mc.manual_seed(123)
    b = mc.randn(5).numpy()
    np.testing.assert_array_equal(a, b)
    mc.manual_seed(124)
    assert not np.array_equal(a, mc.randn(5).numpy())


def test_comparisons_have_no_grad():
    x = mc.tensor([1.0, 2.0, 3.0], requires_grad=True)
    m = x > 1.5
    assert m.dtype == np.bool_ and not m.requires_grad
    assert (x == 2.0).tolist() == [False, True, False]
    assert (~m).tolist() == [True, False, False]


def test_numpy_array_on_left_defers_to_tensor():
    x = mc.tensor([1.0, 2.0], requires_grad=True)
    y = np.array([3.0, 4.0], dtype=np.float32) * x
    assert isinstance(y, mc.Tensor) and y.requires_grad


def test_tensors_are_hashable():
    x = mc.ones(2)
    assert len({x, x}) == 1


def test_max_with_dim_returns_values_and_indices():
    x = mc.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]], requires_grad=True)
    values, indices = x.max(dim=1)
    assert values.tolist() == [5.0, 7.0] and indices.tolist() == [1, 0]
    values.sum().backward()
    assert x.grad.tolist() == [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]


def test_amax_ties_share_gradient_like_torch():
    x = mc.tensor([2.0, 2.0, 1.0], requires_grad=True)
    x.amax().backward()
    assert x.grad.tolist() == [0.5, 0.5, 0.0]


def test_maximum_ties_split_gradient():
    a = mc.tensor([1.0, 2.0], requires_grad=True)
    b = mc.tensor([1.0, 0.0], requires_grad=True)
    mc.maximum(a, b).sum().backward()
    assert a.grad.tolist() == [0.5, 1.0] and b.grad.tolist() == [0.5, 0.0]


# --- PyTorch's .data and in-place augmented assignment ----------------------------------------

def test_data_is_a_detached_tensor_sharing_the_array():
    x = mc.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]], requires_grad=True)
    d = x.data
    assert isinstance(d, mc.Tensor) and not d.requires_grad and d.array is x.array
    assert d.max(1)[1].tolist() == [1, 0]                  # out.data.max(1)[1]: the indices
    assert mc.max(x.data, 1)[1].tolist() == [1, 0]
    x.data.mul_(2)                                         # in place, outside the graph
    assert x.tolist() == [[2.0, 10.0, 4.0], [14.0, 0.0, 6.0]] and x.requires_grad
    x.data = mc.zeros(3)                                   # replaces the array (any shape)
    assert x.shape == (3,) and x.requires_grad and x.is_leaf
    x.data = np.ones(2)
    assert x.tolist() == [1.0, 1.0]


def test_augmented_assignment_updates_in_place_under_no_grad():
    """The tutorials' manual SGD: `p -= lr * p.grad` under no_grad must change the model."""
    mc.manual_seed(0)
    net = mc.nn.Linear(3, 2)
    before = {n: p.numpy().copy() for n, p in net.named_parameters()}
    ids = {n: id(p) for n, p in net.named_parameters()}
    net(mc.randn(4, 3)).sum().backward()
    with mc.no_grad():
        for p in net.parameters():
            p -= 0.1 * p.grad
    for n, p in net.named_parameters():
        assert id(p) == ids[n] and p.requires_grad and p.is_leaf
        np.testing.assert_allclose(p.numpy(), before[n] - 0.1 * p.grad.numpy(), rtol=1e-6)
    a = mc.tensor([1.0, 2.0])
    for op, want in (("+=", [3.0, 6.0]), ("*=", [6.0, 24.0]), ("/=", [3.0, 6.0]),
                     ("-=", [1.0, 2.0]), ("**=", [1.0, 4.0])):
        b = a
        exec(f"a {op} (mc.tensor([2.0, 4.0]) if '{op}' != '**=' else 2)")
        assert a is b and a.tolist() == want, op


def test_augmented_assignment_in_the_graph():
    x = mc.tensor([1.0, 2.0, 3.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        x += 1                                             # as PyTorch refuses it
    y = x * 2
    y += 1                                                 # a non-leaf takes the new node
    y *= y
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * (2 * np.array([1.0, 2, 3]) + 1) * 2)
    acc = mc.zeros(3)                                      # a constant that meets the graph
    acc += x
    assert acc.requires_grad and not acc.is_leaf


def test_augmented_assignment_keeps_the_dtype():
    f = mc.tensor([1.0, 2.0])
    f += mc.tensor([0.5, 0.5], dtype=mc.float64)
    assert f.dtype == np.float32 and f.tolist() == [1.5, 2.5]
    i = mc.tensor([1, 2])
    i += 3
    assert i.dtype == np.int64 and i.tolist() == [4, 5]
    with pytest.raises(RuntimeError, match="cannot be cast"):
        i += 1.5
