"""The engine: graph recording, accumulation, retain_graph, hooks, no_grad, grad(), memory."""
import gc
import weakref

import numpy as np
import pytest

import minicnn as mc
from conftest import DEVICES


def leaf(*shape, device="cpu", seed=0):
    a = np.random.default_rng(seed).standard_normal(shape)
    return mc.tensor(a, device=device, requires_grad=True)


@pytest.mark.parametrize("device", DEVICES)
def test_diamond_graph_accumulates(device):
    x = leaf(3, device=device)
    y = x * 2.0
    z = y * y + y  # y used twice
    z.sum().backward()
    expected = 2.0 * (2 * 2.0 * x.array + 1.0)
    np.testing.assert_allclose(mc.devices.to_numpy(x.grad.array), mc.devices.to_numpy(expected))


def test_leaf_gradients_accumulate_across_backward_calls():
    x = leaf(4)
    (x * 3.0).sum().backward()
    (x * 2.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full(4, 5.0))


def test_long_chain_no_recursion_limit():
    x = leaf(2)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full(2, 1.0001 ** 10_000), rtol=1e-9)


def test_second_backward_without_retain_graph_raises():
    x = leaf(3)
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()


def test_retain_graph_allows_second_backward():
    x = leaf(3)
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.numpy().copy()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * first)


def test_backward_non_scalar_needs_gradient():
    x = leaf(2, 3)
    y = x * 2.0
    with pytest.raises(RuntimeError, match=r"only for scalar outputs.*\(2, 3\)"):
        y.backward()
    y.backward(mc.ones(2, 3, dtype=mc.float64))
    np.testing.assert_allclose(x.grad.numpy(), np.full((2, 3), 2.0))


def test_backward_gradient_of_wrong_shape():
    x = leaf(2, 3)
    with pytest.raises(ValueError, match=r"gradient of shape \(3,\) does not match"):
        (x * 2.0).backward(mc.ones(3, dtype=mc.float64))


def test_backward_on_tensor_without_grad():
    with pytest.raises(RuntimeError, match="does not require grad"):
        mc.ones(3).sum().backward()


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(TypeError, match="only Tensors of floating point dtype"):
        mc.tensor([1, 2, 3], requires_grad=True)
    t = mc.arange(3)
    with pytest.raises(TypeError, match="floating point"):
        t.requires_grad = True


def test_no_grad_context_and_decorator():
    x = leaf(3)
    with mc.no_grad():
        y = x * 2.0
    assert not y.requires_grad and y.grad_fn is None

    @mc.no_grad()
    def f(t):
        return t * 2.0
    assert not f(x).requires_grad
    assert mc.is_grad_enabled()
    assert (x * 2.0).requires_grad


def test_set_grad_enabled_and_enable_grad():
    x = leaf(2)
    with mc.set_grad_enabled(False):
        assert not (x * 1.0).requires_grad
        with mc.enable_grad():
            assert (x * 1.0).requires_grad
    assert mc.is_grad_enabled()


def test_graph_freed_after_backward():
    x = leaf(100)
    y = x.exp()
    fn_ref = weakref.ref(y.grad_fn)
    z = (y * x).sum()
    z.backward()
    del y, z
    gc.collect()
    assert fn_ref() is None or fn_ref().released


def test_memory_flat_over_many_steps():
    w = leaf(64, 64)
    x = mc.tensor(np.random.default_rng(1).standard_normal((32, 64)))
    tracked = []
    for _ in range(200):
        loss = ((x @ w).exp() * 0.001).sum()
        loss.backward()
        tracked.append(weakref.ref(loss.grad_fn))
        w.grad = None
    gc.collect()
    alive = [r for r in tracked if r() is not None and not r().released]
    assert not alive


def test_hooks_on_leaf_and_nonleaf():
    x = leaf(3)
    seen = []
    x.register_hook(lambda g: seen.append(g.numpy().copy()))
    y = x * 2.0
    handle = y.register_hook(lambda g: g * 10.0)  # replaces the gradient flowing on
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full(3, 20.0))
    np.testing.assert_allclose(seen[0], np.full(3, 20.0))
    handle.remove()


def test_retain_grad_on_nonleaf():
    x = leaf(3)
    y = x * 3.0
    y.retain_grad()
    (y * y).sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), 2 * y.array)


def test_autograd_grad_leaves_dot_grad_alone_and_reports_unused():
    x, u = leaf(3), leaf(3, seed=1)
    y = (x * x).sum()
    (gx,) = mc.autograd.grad(y, x, retain_graph=True)
    np.testing.assert_allclose(gx.numpy(), 2 * x.array)
    assert x.grad is None
    with pytest.raises(RuntimeError, match="was not used in the graph"):
        mc.autograd.grad(y, [x, u], retain_graph=True)
    gx, gu = mc.autograd.grad(y, [x, u], allow_unused=True)
    assert gu is None


def test_grad_of_nonleaf_input():
    x = leaf(3)
    h = x * 2.0
    y = (h * h).sum()
    (gh,) = mc.autograd.grad(y, h)
    np.testing.assert_allclose(gh.numpy(), 2 * h.array)


def test_create_graph_gives_second_derivative():
    x = leaf(4)
    y = (x ** 3).sum()
    (g,) = mc.autograd.grad(y, x, create_graph=True)
    assert g.requires_grad
    (h,) = mc.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(h.numpy(), 6 * x.array)


def test_backward_create_graph_through_exp():
    x = leaf(3)
    y = x.exp().sum()
    y.backward(create_graph=True)
    gx = x.grad
    x.grad = None
    gx.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.exp(x.array))


def test_unreached_leaf_grad_stays_none():
    x, u = leaf(3), leaf(3, seed=1)
    (x * 2.0).sum().backward()
    assert u.grad is None


def test_leaf_grads_do_not_share_memory():
    a, b = leaf(3), leaf(3, seed=1)
    (a + b).sum().backward()
    a.grad.array *= 0.0  # an in-place update (clipping, zeroing) must not reach b
    np.testing.assert_allclose(b.grad.numpy(), np.ones(3))


def test_user_gradient_is_not_aliased():
    x = leaf(3)
    g = mc.ones(3, dtype=mc.float64)
    (x + 0.0).backward(g)
    x.grad.array[...] = 7.0
    np.testing.assert_allclose(g.numpy(), np.ones(3))


def test_split_with_unused_outputs_gets_zero_grads():
    x = leaf(6)
    a, b, c = x.split(2)
    (b * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0, 0, 3, 3, 0, 0])


def test_mixed_devices_error():
    cupy_missing = not mc.cuda.is_available()
    if cupy_missing:
        pytest.skip("needs CUDA to put tensors on two devices")
    a = mc.ones(3, device="cpu")
    b = mc.ones(3, device="cuda")
    with pytest.raises(RuntimeError, match="same device.*cpu.*cuda"):
        a + b


def test_mixed_float_dtypes_promote_and_grads_keep_input_dtype():
    a = mc.tensor(np.ones(3, np.float32), requires_grad=True)
    b = mc.tensor(np.ones(3, np.float64), requires_grad=True)
    y = a * b
    assert y.dtype == np.float64
    y.sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64


def test_int_tensor_with_float_promotes_to_float32():
    i = mc.arange(3)
    f = mc.ones(3)
    assert (i * f).dtype == np.float32
    assert (i * 2.5).dtype == np.float32
    assert (i * 2).dtype == np.int64


@pytest.mark.parametrize("dtype", [np.float32, np.float64, mc.bfloat16])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("x_grad", [True, False])
def test_linear_backward_on_arrays_equals_its_ops(dtype, bias, x_grad):
    # LinearOp.backward runs its three lines on arrays when nothing records or observes them;
    # create_graph (recorded) and an op observer (mc.profiler) take the ops: the same bits
    from minicnn.autograd.function import observe_calls

    def grads(how):
        x = mc.tensor(rng.standard_normal((5, 7)).astype(np.float32), requires_grad=x_grad)
        w = mc.tensor(rng.standard_normal((3, 7)).astype(np.float32), requires_grad=True)
        b = mc.tensor(rng.standard_normal(3).astype(np.float32), requires_grad=True) \
            if bias else None
        x, w, b = (t if t is None else t.detach().to(dtype).requires_grad_(t.requires_grad)
                   for t in (x, w, b))
        y = mc.nn.functional.linear(x, w, b)
        gy = mc.tensor(rng.standard_normal((5, 3)).astype(np.float32)).to(dtype)
        if how == "observed":
            remove = observe_calls(lambda fn, inputs, run: run(fn, *inputs))
            try:
                y.backward(gy)
            finally:
                remove()
        else:
            y.backward(gy, create_graph=how == "recorded")
        return [None if t is None or t.grad is None else np.asarray(t.grad.array)
                for t in (x, w, b)]

    rng = np.random.default_rng(0)
    fast = grads("plain")
    for how in ("recorded", "observed"):
        rng = np.random.default_rng(0)
        for got, want in zip(fast, grads(how)):
            assert (got is None) == (want is None)
            if got is not None:
                assert got.dtype == want.dtype
                np.testing.assert_array_equal(got, want)
