"""mc.testing.gradcheck itself: it passes right gradients and catches wrong ones."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicnn as mc
from minicnn.autograd import Function
from minicnn.testing import GradcheckError, gradcheck
from minicnn.testing import strategies as mst


class WrongSquare(Function):
    """x**2 with a deliberately wrong backward (3x instead of 2x)."""

    def forward(self, x):
        return x * x

    def backward(self, gy):
        return gy * self.inputs[0] * 3.0


def test_catches_wrong_backward_with_report():
    x = mc.tensor(np.linspace(0.5, 1.5, 6).reshape(2, 3), requires_grad=True)
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda t: WrongSquare()(t), [x])
    msg = str(info.value)
    assert "input 0" in msg and "(2, 3)" in msg and "worst at index" in msg
    assert "analytic" in msg and "numeric" in msg
    assert gradcheck(lambda t: WrongSquare()(t), [x], raise_exception=False) is False


def test_directional_mode_catches_wrong_backward():
    x = mc.tensor(np.linspace(0.5, 1.5, 50), requires_grad=True)
    with pytest.raises(GradcheckError, match="random directions"):
        gradcheck(lambda t: WrongSquare()(t), [x], directional=True)
    assert gradcheck(lambda t: t * t, [x], directional=True)


def test_requires_float64():
    x = mc.ones(3, requires_grad=True)
    with pytest.raises(TypeError, match="float64"):
        gradcheck(lambda t: t * t, [x])


@given(shapes=mst.broadcastable_shapes(2), data=st.data())
def test_strategies_give_broadcastable_float64_tensors(shapes, data):
    a = data.draw(mst.tensors(shapes[0]))
    b = data.draw(mst.tensors(shapes[1]))
    assert a.dtype == np.float64 and a.requires_grad
    assert gradcheck(lambda u, v: u * v + u, [a, b])
