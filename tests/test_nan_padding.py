"""NaN meeting a convolution's zero padding (issue 23: "NaN input to conv_transpose2d makes 9 of
108 weight-gradient entries NaN where PyTorch's are finite").

Why: conv_transpose2d's weight gradient is sum(x * gy_padded) over the taps, gy padded with zeros
where the forward cropped its output; a NaN in x times such a zero is NaN. PyTorch's float64
kernels (and its float32 ones at batch 1) compute it this way; its float32 oneDNN path, taken
for batches of two or more, leaves out the taps that fall in the padding, and so gives fewer
NaN (24 instead of 36 in the case below; conv2d's forward with a NaN weight likewise). minicnn
follows the definition in every dtype and at every batch size: equal to PyTorch's float64
position by position, and its float32 has the same NaN as its float64. The op table's
test_nan_inf_parity checks every conv op this way on drawn samples; these are the issue's cases,
kept as regression tests."""
import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F

torch = pytest.importorskip("torch")

CASES = [dict(padding=1), dict(stride=2, padding=1, output_padding=1),
         dict(padding=2, dilation=2), dict(stride=2, padding=2, groups=3)]


def _inputs(N, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, 3, 5, 5))
    x[0, 0, 0, 1] = np.nan                  # on the border: its taps reach the padding
    x[-1, 2, 3, 4] = np.nan
    return x, rng


@pytest.mark.parametrize("N", [1, 2])
@pytest.mark.parametrize("kw", CASES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_conv_transpose2d_nan_gradients_as_pytorch_float64(N, kw):
    x, rng = _inputs(N)
    w = rng.standard_normal((3, 6 // kw.get("groups", 1), 3, 3))
    xt, wt = (torch.tensor(a, requires_grad=True) for a in (x, w))
    yt = torch.nn.functional.conv_transpose2d(xt, wt, **kw)
    gy = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.from_numpy(gy))
    masks = []
    for dtype in (np.float64, np.float32):
        xm, wm = (mc.tensor(a.astype(dtype), requires_grad=True) for a in (x, w))
        y = F.conv_transpose2d(xm, wm, **kw)
        y.backward(mc.tensor(gy.astype(dtype)))
        masks.append([np.isnan(a) for a in (y.detach().numpy(), xm.grad.numpy(),
                                             wm.grad.numpy())])
        if dtype is np.float64:
            for ours, theirs in ((y, yt), (xm.grad, xt.grad), (wm.grad, wt.grad)):
                np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(),
                                           rtol=1e-10, atol=1e-12)
    for m64, m32 in zip(*masks):
        np.testing.assert_array_equal(m64, m32)


@pytest.mark.parametrize("N", [1, 2])
def test_conv2d_nan_weight_in_the_padding_as_pytorch_float64(N):
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((N, 3, 4, 4)), rng.standard_normal((2, 3, 3, 3))
    w[0, 0, 0, 0] = np.nan                  # the corner tap reads the padding at the border
    ref = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=1)
    for dtype in (np.float64, np.float32):
        y = F.conv2d(mc.tensor(x.astype(dtype)), mc.tensor(w.astype(dtype)), padding=1)
        np.testing.assert_array_equal(np.isnan(y.numpy()), np.isnan(ref.numpy()))
        assert np.isnan(y.numpy()[:, 0]).all()
