"""Tensors on two devices in one op: a CPU 0-d tensor moves to the GPU (as in PyTorch), anything
else is a clear error (cuda-marked: needs a GPU)."""
import numpy as np
import pytest

import minicnn as mc

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not mc.cuda.is_available(), reason="CUDA is not available")]


def test_cpu_scalar_tensor_joins_a_cuda_tensor():
    g = mc.tensor(np.arange(3, dtype=np.float32), device="cuda", requires_grad=True)
    s = mc.tensor(2.0)
    y = (g * s + s).sum()
    assert y.device == "cuda"
    y.backward()
    np.testing.assert_allclose(g.grad.cpu().numpy(), [2.0, 2.0, 2.0])


def test_two_devices_is_a_clear_error():
    g = mc.tensor(np.ones((2, 3), np.float32), device="cuda")
    c = mc.tensor(np.ones((2, 3), np.float32))
    with pytest.raises(RuntimeError, match="same device.*cuda and cpu"):
        g + c
    with pytest.raises(RuntimeError, match="same device.*cpu and cuda"):
        c * g


def test_summary_of_a_cuda_model_uses_cuda_inputs():
    model = mc.nn.Sequential(mc.nn.Conv2d(3, 4, 3), mc.nn.Flatten(), mc.nn.Linear(4 * 4 * 4, 2))
    model.to("cuda")
    text = mc.summary(model, (3, 6, 6), print_fn=None)
    assert "Total params" in text
