"""The engine's 'gradient of this leaf is final' event (issue 20): post-accumulate-grad hooks run
when the last use of a leaf has sent its gradient, while the backward still runs, once per
backward, with .grad already holding the total."""
import numpy as np
import pytest

import minicnn as mc


def test_hook_sees_the_final_gradient_once_per_backward():
    w = mc.tensor([1.0, 2.0, 3.0], requires_grad=True)
    seen = []
    w.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.numpy().copy()))
    # w used three times (a diamond and a square): its hook runs once, with the sum
    y = (w * 2.0 + w * w).sum() + w.sum()
    y.backward()
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], 2.0 + 2 * np.array([1.0, 2.0, 3.0]) + 1.0)
    y2 = (w * 3.0).sum()
    y2.backward()
    assert len(seen) == 2
    np.testing.assert_allclose(seen[1], seen[0] + 3.0)   # accumulated into .grad first


def test_hooks_fire_while_the_backward_runs_in_order_of_readiness():
    mc.manual_seed(0)
    first, last = mc.nn.Linear(3, 4), mc.nn.Linear(4, 2)
    x = mc.randn(5, 3)
    order = []
    for name, layer in (("first", first), ("last", last)):
        layer.weight.register_post_accumulate_grad_hook(lambda t, n=name: order.append(n))
    # a hook of the last layer runs before the first layer's backward has produced anything
    seen_first_grad = []
    last.weight.register_post_accumulate_grad_hook(
        lambda t: seen_first_grad.append(first.weight.grad))
    last(first(x).relu()).sum().backward()
    assert order == ["last", "first"]
    assert seen_first_grad == [None]
    assert first.weight.grad is not None


def test_unreached_leaf_hook_does_not_fire_and_grad_does_not_call_hooks():
    a = mc.tensor([1.0, 2.0], requires_grad=True)
    b = mc.tensor([1.0, 2.0], requires_grad=True)
    calls = []
    a.register_post_accumulate_grad_hook(lambda t: calls.append("a"))
    handle = b.register_post_accumulate_grad_hook(lambda t: calls.append("b"))
    (a * 2.0).sum().backward()
    assert calls == ["a"]
    mc.autograd.grad((a * b).sum(), [a, b])
    assert calls == ["a"]
    handle.remove()
    (a * b).sum().backward()
    assert calls == ["a", "a"]


def test_leaf_root_and_grad_hooks_then_post_hooks():
    w = mc.tensor([2.0], requires_grad=True)
    w.register_hook(lambda g: g * 10.0)
    seen = []
    w.register_post_accumulate_grad_hook(lambda t: seen.append(float(t.grad.item())))
    (w * 3.0).sum().backward()
    assert seen == [30.0]
    w.grad = None
    w.backward(mc.tensor([1.0]))    # a leaf as the root: fired at the end of the pass
    assert seen == [30.0, 10.0]


def test_register_errors():
    x = mc.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="only leaf tensors"):
        (x * 2.0).register_post_accumulate_grad_hook(lambda t: None)
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        mc.tensor([1.0]).register_post_accumulate_grad_hook(lambda t: None)


def test_registry_forgets_dead_tensors():
    from minicnn.autograd import function
    before = len(function._POST_ACCUMULATE)
    x = mc.tensor([1.0], requires_grad=True)
    x.register_post_accumulate_grad_hook(lambda t: None)
    assert len(function._POST_ACCUMULATE) == before + 1
    del x
    import gc
    gc.collect()
    assert len(function._POST_ACCUMULATE) == before
