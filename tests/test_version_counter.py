"""Version counters: an in-place write between a forward and its backward to something the
backward reads raises PyTorch's error; a write to something it does not read does not (issue 23).
Each case runs the same code on PyTorch and checks that both raise, or neither does."""
import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F

torch = pytest.importorskip("torch")

VERSION_ERROR = r"modified by an inplace operation: .* is at version \d+; expected version \d+"


def _x(lib, requires_grad=True):
    return lib.tensor([1.0, 2.0, 3.0], requires_grad=requires_grad)


def square_then_mul_x(lib):
    x = _x(lib)
    y = (x * x).sum()
    with lib.no_grad():
        x.mul_(2)
    return y, x


def exp_output_zeroed(lib):
    x = _x(lib)
    e = x.exp()
    s = e.sum()
    e.zero_()
    return s, x


def constant_operand_changed(lib):
    x, c = _x(lib), _x(lib, requires_grad=False)
    y = (x * c).sum()
    c.add_(1)
    return y, x


def added_constant_changed(lib):     # add reads neither operand: no error
    x, c = _x(lib), _x(lib, requires_grad=False)
    y = (x + c).sum()
    c.add_(1)
    return y, x


def unsaved_side_changed(lib):       # x * c reads only c when c needs no gradient
    x, c = _x(lib), _x(lib, requires_grad=False)
    y = (x * c).sum()
    with lib.no_grad():
        x.mul_(2)
    return y, x


def write_through_data(lib):
    x = _x(lib)
    y = (x * x).sum()
    x.data.mul_(2)
    return y, x


def write_through_detach(lib):
    x = _x(lib)
    y = (x * x).sum()
    x.detach().mul_(2)
    return y, x


def write_through_a_view(lib):
    x = _x(lib)
    y = (x * x).sum()
    with lib.no_grad():
        x[1:].mul_(2)
    return y, x


def setitem(lib):
    x = _x(lib)
    y = (x * x).sum()
    with lib.no_grad():
        x[0] = 7.0
    return y, x


def augmented_assignment(lib):
    x = _x(lib)
    y = (x * x).sum()
    with lib.no_grad():
        x -= 1.0
    return y, x


def augmented_in_graph(lib):        # x op= in the graph: x's node changes, its memory too
    a = _x(lib)
    x = a * 1.0
    y = (x * x).sum()
    x += 1.0
    return y, a


def copy_into(lib):
    x = _x(lib)
    y = x.sigmoid().sum()
    with lib.no_grad():
        x.copy_(lib.tensor([0.0, 0.0, 0.0]))
    return y, x


def sigmoid_output_changed(lib):
    x = _x(lib)
    s = x.sigmoid()
    y = s.sum()
    s.mul_(2)
    return y, x


def relu_input_changed(lib):
    x = _x(lib)
    y = (x * 1.0).relu().sum()   # relu reads its input
    with lib.no_grad():
        x.zero_()
    return y, x


def matmul_weight_changed(lib):
    x = lib.ones(2, 3, requires_grad=True)
    w = lib.ones(3, 4)
    y = (x @ w).sum()
    w.fill_(2.0)
    return y, x


def conv_weight_changed(lib):
    x = lib.ones(1, 2, 5, 5, requires_grad=True)
    w = lib.ones(3, 2, 3, 3)
    y = lib.nn.functional.conv2d(x, w).sum()
    w.mul_(0.5)
    return y, x


def conv_bias_changed(lib):          # the bias is never read by the backward
    x = lib.ones(1, 2, 5, 5, requires_grad=True)
    w, b = lib.ones(3, 2, 3, 3), lib.ones(3, requires_grad=True)
    y = lib.nn.functional.conv2d(x, w, b).sum()
    with lib.no_grad():
        b.mul_(0.5)
    return y, x


def max_pool_indices_changed(lib):
    x = lib.tensor(np.arange(16.0).reshape(1, 1, 4, 4), requires_grad=True)
    y, idx = lib.nn.functional.max_pool2d(x, 2, return_indices=True)
    idx.zero_()
    return y.sum(), x


CASES = [square_then_mul_x, exp_output_zeroed, constant_operand_changed, added_constant_changed,
         unsaved_side_changed, write_through_detach, write_through_a_view, setitem,
         augmented_assignment, augmented_in_graph, copy_into, sigmoid_output_changed,
         relu_input_changed, matmul_weight_changed, conv_weight_changed, conv_bias_changed,
         max_pool_indices_changed]


def _torch_raises(case):
    y, _ = case(torch)
    try:
        y.backward()
    except RuntimeError as e:
        assert "modified by an inplace operation" in str(e)
        return True
    return False


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__)
def test_inplace_write_raises_as_pytorch(case):
    y, x = case(mc)
    if _torch_raises(case):
        with pytest.raises(RuntimeError, match=VERSION_ERROR):
            y.backward()
    else:
        y.backward()
        _, tx = case(torch)
        tx.grad = None
        ty, tx = case(torch)
        ty.backward()
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-6)


def test_writes_through_data_count_too():
    """Unlike PyTorch, whose `.data` has a counter of its own (so `x.data.mul_(2)` there gives
    the gradient of the new values without a word), a write through `.data` is counted."""
    y, _ = write_through_data(mc)
    with pytest.raises(RuntimeError, match=VERSION_ERROR):
        y.backward()


def test_the_message_names_the_tensor_and_both_versions():
    x = mc.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = (x * x).sum()
    with mc.no_grad():
        x.mul_(2)
    with pytest.raises(RuntimeError, match=r"\[\[3\] float32\], which is input \d saved by Mul, is at "
                                           r"version 1; expected version 0 instead"):
        y.backward()


def test_versions_count_writes_on_the_memory():
    x = mc.zeros(4)
    assert x._version == 0
    x.add_(1)
    x.data.mul_(2)
    x[0:2].zero_()          # a view counts on its base's memory
    x[3] = 1.0
    x -= 1.0
    assert x._version == 5
    assert x.data._version == 5 and x[1:]._version == 5


def test_retain_graph_second_backward_after_a_write():
    x = mc.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    with mc.no_grad():
        x.add_(1)
    with pytest.raises(RuntimeError, match=VERSION_ERROR):
        y.backward()


def test_optimizer_step_between_forward_and_backward():
    lin = mc.nn.Linear(3, 2)
    opt = mc.optim.SGD(lin.parameters(), lr=0.1)
    x = mc.ones(4, 3, requires_grad=True)
    lin(x).sum().backward()
    y = lin(x).sum()           # saves the weight
    opt.step()
    with pytest.raises(RuntimeError, match=VERSION_ERROR):
        y.backward()


def test_updating_one_parameter_leaves_the_others_valid():
    """The optimizer keeps a group's parameters in one flat buffer; writing one of them must not
    invalidate another that a Function saved (they are separate tensors, as in PyTorch)."""
    lin = mc.nn.Linear(3, 2)
    mc.optim.Adam(lin.parameters(), lr=0.1)
    x = mc.ones(4, 3, requires_grad=True)
    y = lin(x).sum()           # saves the weight, not the bias
    with mc.no_grad():
        lin.bias.mul_(2)
    y.backward()               # no error
    with mc.no_grad():
        lin.weight.data.mul_(2)
    y2 = lin(x).sum()
    with mc.no_grad():
        lin.weight[0].zero_()  # a view of one parameter
    with pytest.raises(RuntimeError, match=VERSION_ERROR):
        y2.backward()


def test_running_stats_saved_by_eval_batch_norm():
    bn = mc.nn.BatchNorm2d(2)
    x = mc.randn(2, 2, 3, 3, requires_grad=True)
    bn.eval()
    y = bn(x).sum()
    bn.train()
    bn(mc.randn(2, 2, 3, 3))   # updates the running statistics in place
    with pytest.raises(RuntimeError, match=VERSION_ERROR):
        y.backward()


def test_cross_entropy_target_changed():
    x = mc.randn(3, 4, requires_grad=True)
    t = mc.tensor([0, 1, 2])
    loss = F.cross_entropy(x, t)
    t.zero_()
    with pytest.raises(RuntimeError, match=VERSION_ERROR):
        loss.backward()


def test_load_state_dict_and_init_count_as_writes():
    lin = mc.nn.Linear(3, 2)
    x = mc.ones(1, 3, requires_grad=True)
    y = lin(x).sum()
    lin.load_state_dict(mc.nn.Linear(3, 2).state_dict())
    with pytest.raises(RuntimeError, match=VERSION_ERROR):
        y.backward()
    y = lin(x).sum()
    mc.nn.init.normal_(lin.weight)
    with pytest.raises(RuntimeError, match=VERSION_ERROR):
        y.backward()


def test_index_tensors_are_saved_and_slices_read_nothing():
    x = mc.tensor([1.0, 2.0, 3.0], requires_grad=True)
    idx = mc.tensor([2, 0])
    y = x[idx].sum()
    idx.zero_()
    with pytest.raises(RuntimeError, match=VERSION_ERROR):
        y.backward()
    y = (x[1:] * 2.0).sum()    # slicing reads nothing of x in its backward
    with mc.no_grad():
        x.mul_(3)
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 2.0, 2.0])
