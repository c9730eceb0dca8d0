"""Convolution beyond the op table: layers (parameters, init, padding modes, 'same'), regressions
(grouped/depthwise backward with stride 2, PyTorch #51430), second derivatives against PyTorch,
the multi-threaded path, dtypes, and the layer-level errors."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from conftest import DEVICES
from minicnn.devices import to_device, to_numpy

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _both(a, device="cpu", requires_grad=True):
    return (mc.tensor(to_device(a, device), requires_grad=requires_grad),
            torch.tensor(a, requires_grad=requires_grad))


def _copy_params(m, tm):
    for name, p in m.named_parameters():
        getattr(tm, name).data = torch.tensor(to_numpy(p.array))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("groups,K,stride", [(2, 4, 2), (4, 4, 2), (4, 8, 2), (4, 8, 3),
                                             (2, 6, (2, 1))])
def test_grouped_and_depthwise_backward_stride2_regression(device, groups, K, stride):
    """PyTorch #51430: grouped/depthwise conv backward with stride 2 was silently wrong."""
    x, xt = _both(_rand(2, 4, 9, 8, seed=1), device)
    w, wt = _both(_rand(K, 4 // groups, 3, 3, seed=2), device)
    b, bt = _both(_rand(K, seed=3), device)
    y = F.conv2d(x, w, b, stride=stride, padding=1, groups=groups)
    yt = TF.conv2d(xt, wt, bt, stride=stride, padding=1, groups=groups)
    gy = _rand(*yt.shape, seed=4)
    y.backward(mc.tensor(to_device(gy, device)))
    yt.backward(torch.tensor(gy))
    for a, t in ((y, yt), (x.grad, xt.grad), (w.grad, wt.grad), (b.grad, bt.grad)):
        np.testing.assert_allclose(to_numpy(a.array), t.detach().numpy(), rtol=1e-10, atol=1e-10)
    mc.testing.gradcheck(lambda x, w: F.conv2d(x, w, stride=stride, padding=1, groups=groups),
                         [x, w], directional=True)


@pytest.mark.parametrize("groups,Cg,Kg,padding,dilation", [
    (4, 1, 1, 1, 1), (3, 1, 2, 0, 2), (2, 4, 3, 1, 1), (4, 2, 2, 2, 1), (2, 3, 1, (1, 2), 2),
    (32, 4, 4, 1, 1)])
def test_direct_3x3_stride1_paths_match_torch(groups, Cg, Kg, padding, dilation):
    """The direct 3x3 stride-1 depthwise and few-channels-per-group kernels: forward, both
    gradients, conv_transpose2d (their grad_input as a forward) and a second derivative."""
    C, K = groups * Cg, groups * Kg
    x, xt = _both(_rand(2, C, 7, 6, seed=1))
    w, wt = _both(_rand(K, Cg, 3, 3, seed=2))
    b, bt = _both(_rand(K, seed=3))   # the bias is fused into the direct forward kernel
    kw = dict(padding=padding, dilation=dilation, groups=groups)
    y, yt = F.conv2d(x, w, b, **kw), TF.conv2d(xt, wt, bt, **kw)
    gy = _rand(*yt.shape, seed=4)
    y.backward(mc.tensor(gy))
    yt.backward(torch.tensor(gy))
    for a, t in ((y, yt), (x.grad, xt.grad), (w.grad, wt.grad), (b.grad, bt.grad)):
        np.testing.assert_allclose(to_numpy(a.array), t.detach().numpy(), rtol=1e-10, atol=1e-10)
    g, gt = _both(_rand(2, C, 7, 6, seed=5))
    wT, wTt = _both(_rand(C, Kg, 3, 3, seed=6))
    np.testing.assert_allclose(
        F.conv_transpose2d(g, wT, padding=padding, dilation=dilation, groups=groups).array,
        TF.conv_transpose2d(gt, wTt, padding=padding, dilation=dilation,
                            groups=groups).detach().numpy(), rtol=1e-10, atol=1e-10)
    if groups <= 4:
        mc.testing.gradgradcheck(lambda x, w: F.conv2d(x, w, **kw), [x, w], directional=True)


@pytest.mark.parametrize("shape,wshape,kw", [
    ((2, 8, 20, 18), (12, 8, 3, 3), dict(padding=1)),                    # im2col, parallel
    ((2, 16, 17, 15), (16, 1, 3, 3), dict(padding=1, stride=2, groups=16)),  # depthwise
    ((2, 32, 16, 16), (16, 32, 1, 1), dict(stride=2)),                   # strided 1x1
    ((3, 12, 15, 13), (12, 3, 3, 2), dict(padding=(2, 1), dilation=2, groups=4)),
])
def test_parity_on_larger_inputs(shape, wshape, kw):
    """Inputs large enough for the multi-threaded kernels; float32 forward and gradients."""
    a, wa = _rand(*shape).astype(np.float32), _rand(*wshape, seed=1).astype(np.float32)
    x, xt = _both(a)
    w, wt = _both(wa)
    y, yt = F.conv2d(x, w, **kw), TF.conv2d(xt, wt, **kw)
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-4, atol=1e-4)
    gy = _rand(*yt.shape, seed=2).astype(np.float32)
    y.backward(mc.tensor(gy))
    yt.backward(torch.tensor(gy))
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(w.grad.numpy(), wt.grad.numpy(), rtol=1e-4, atol=2e-3)
    assert y.dtype == np.float32 and x.grad.dtype == np.float32 and w.grad.dtype == np.float32


@st.composite
def conv_case(draw):
    G = draw(st.integers(1, 2))
    C, K = G * draw(st.integers(1, 2)), G * draw(st.integers(1, 2))
    k = draw(st.integers(1, 3))
    s = draw(st.integers(1, 2))
    d = draw(st.integers(1, 2))
    p = draw(st.integers(0, 1))
    H = max(1, d * (k - 1) + 1 - 2 * p) + draw(st.integers(0, 3))
    return (draw(st.integers(1, 2)), C, H, K, k, s, p, d, G, draw(st.integers(0, 2 ** 32 - 1)))


@given(case=conv_case())
def test_second_derivatives_match_torch(case):
    """A gradient penalty ||d<conv(x, w), gy>/dx||^2 differentiated again (create_graph)."""
    N, C, H, K, k, s, p, d, G, seed = case
    x, xt = _both(_rand(N, C, H, H + 1, seed=seed))
    w, wt = _both(_rand(K, C // G, k, k, seed=seed + 1))
    kw = dict(stride=s, padding=p, dilation=d, groups=G)
    y, yt = F.conv2d(x, w, **kw), TF.conv2d(xt, wt, **kw)
    gy = _rand(*yt.shape, seed=seed + 2)
    gx, gw = mc.autograd.grad(y, [x, w], mc.tensor(gy), create_graph=True)
    gxt, gwt = torch.autograd.grad(yt, [xt, wt], torch.tensor(gy), create_graph=True)
    pen = (gx * gx).sum() + (gw * gw).sum()
    pent = (gxt * gxt).sum() + (gwt * gwt).sum()
    ggx, ggw = mc.autograd.grad(pen, [x, w], allow_unused=True)
    ggxt, ggwt = torch.autograd.grad(pent, [xt, wt], allow_unused=True)
    for a, t in ((ggx, ggxt), (ggw, ggwt)):
        expect = np.zeros(1) if t is None else t.numpy()
        got = np.zeros(1) if a is None else a.numpy()
        np.testing.assert_allclose(got, expect, rtol=1e-9, atol=1e-9)


def test_conv2d_layer_parameters_and_init():
    mc.manual_seed(0)
    m = mc.nn.Conv2d(6, 8, (3, 5), groups=2)
    assert dict((n, tuple(p.shape)) for n, p in m.named_parameters()) == {
        "weight": (8, 3, 3, 5), "bias": (8,)}
    assert m.weight.dtype == np.float32
    bound = 1 / math.sqrt(3 * 3 * 5)
    for p in (m.weight, m.bias):
        a = p.numpy()
        assert np.abs(a).max() <= bound and np.abs(a).max() > 0.5 * bound
    assert np.std(m.weight.numpy()) == pytest.approx(bound / math.sqrt(3), rel=0.25)
    assert mc.nn.Conv2d(2, 3, 3, bias=False).bias is None
    assert set(mc.nn.Conv2d(2, 3, 3).state_dict()) == {"weight", "bias"}
    t = mc.nn.ConvTranspose2d(4, 6, 3, groups=2)
    assert tuple(t.weight.shape) == (4, 3, 3, 3) and tuple(t.bias.shape) == (6,)
    assert tuple(mc.nn.Conv1d(4, 6, 5).weight.shape) == (6, 4, 5)


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding,kernel,dilation", [(1, 3, 1), ((2, 1), (3, 2), 1),
                                                     ("same", 4, 1), ("same", 3, 2),
                                                     ("valid", 3, 1)])
def test_conv2d_layer_padding_modes_match_torch(mode, padding, kernel, dilation):
    m = mc.nn.Conv2d(3, 4, kernel, padding=padding, dilation=dilation, padding_mode=mode,
                     dtype=mc.float64)
    tm = torch.nn.Conv2d(3, 4, kernel, padding=padding, dilation=dilation, padding_mode=mode,
                         dtype=torch.float64)
    _copy_params(m, tm)
    x, xt = _both(_rand(2, 3, 7, 6))
    y, yt = m(x), tm(xt)
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-10)
    y.sum().backward()
    yt.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(m.weight.grad.numpy(), tm.weight.grad.numpy(), rtol=1e-10,
                               atol=1e-10)


@pytest.mark.parametrize("mode", ["zeros", "circular"])
def test_conv1d_layer_matches_torch(mode):
    m = mc.nn.Conv1d(4, 6, 3, stride=1, padding="same", dilation=2, groups=2, padding_mode=mode,
                     dtype=mc.float64)
    tm = torch.nn.Conv1d(4, 6, 3, padding="same", dilation=2, groups=2, padding_mode=mode,
                         dtype=torch.float64)
    _copy_params(m, tm)
    x, xt = _both(_rand(2, 4, 9))
    np.testing.assert_allclose(m(x).numpy(), tm(xt).detach().numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("output_size", [None, (9, 10), (10, 9)])
def test_conv_transpose2d_layer_output_size(output_size):
    m = mc.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, groups=2, dtype=mc.float64)
    tm = torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, groups=2, dtype=torch.float64)
    _copy_params(m, tm)
    x, xt = _both(_rand(2, 4, 5, 5))
    y, yt = m(x, output_size=output_size), tm(xt, output_size=output_size)
    assert tuple(y.shape) == tuple(yt.shape)
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="requested an output size of"):
        m(x, output_size=(12, 12))


def test_conv_transpose_is_the_input_gradient_of_conv():
    x, _ = _both(_rand(2, 4, 7, 7))
    w = mc.tensor(_rand(6, 2, 3, 3, seed=1))
    y = F.conv2d(x, w, stride=2, padding=1, groups=2)
    gy = mc.tensor(_rand(*y.shape, seed=2))
    (gx,) = mc.autograd.grad(y, [x], gy)
    gt = F.conv_transpose2d(gy, w, stride=2, padding=1, groups=2, output_padding=0)
    np.testing.assert_allclose(gx.numpy(), gt.numpy(), rtol=1e-12, atol=1e-12)


def test_noncontiguous_inputs():
    a = _rand(2, 3, 8, 9)
    x = mc.tensor(a.transpose(0, 1, 3, 2))          # a strided view
    w = mc.tensor(_rand(4, 3, 3, 3, seed=1)[:, :, ::-1])
    y = F.conv2d(x, w, padding=1)
    yt = TF.conv2d(torch.tensor(a.transpose(0, 1, 3, 2).copy()),
                   torch.tensor(_rand(4, 3, 3, 3, seed=1)[:, :, ::-1].copy()), padding=1)
    np.testing.assert_allclose(y.numpy(), yt.numpy(), rtol=1e-10, atol=1e-10)


def test_layer_errors():
    with pytest.raises(ValueError, match=r"in_channels \(3\) must be divisible by groups \(2\)"):
        mc.nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match=r"out_channels \(3\) must be divisible by groups"):
        mc.nn.Conv2d(4, 3, 3, groups=2)
    with pytest.raises(ValueError, match="padding='same' is not supported for strided"):
        mc.nn.Conv2d(4, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        mc.nn.Conv2d(4, 4, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match=r"Given groups=1, weight of size \[4, 4, 3, 3\], "
                                         r"expected input\[1, 3, 8, 8\] to have 4 channels"):
        mc.nn.Conv2d(4, 4, 3)(mc.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"expected a 4-D input .* \(add a batch dimension"):
        mc.nn.Conv2d(4, 4, 3)(mc.randn(4, 8, 8))


def test_conv_column_buffer_stays_one(no_direct_conv):
    """Repeated convolutions reuse one workspace: its size does not grow with calls."""
    from minicnn.kernels import conv as K  # noqa: PLC0415
    x = mc.randn(2, 4, 12, 12, requires_grad=True)
    w = mc.randn(5, 4, 3, 3, requires_grad=True)
    K.release_workspace()
    F.conv2d(x, w, padding=1).sum().backward()
    size = K.workspace_bytes()
    # C*KH*KW*N*OH*OW float32 columns and im2col's zero-bordered input C*N*(H+2)*(W+2)
    assert size == 4 * 9 * 2 * 144 * 4 + 4 * 2 * 14 * 14 * 4
    for _ in range(3):
        F.conv2d(x, w, padding=1).sum().backward()
    assert K.workspace_bytes() == size
