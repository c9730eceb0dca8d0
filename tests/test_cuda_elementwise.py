"""CUDA activation kernels (kernels/activation/activation.cu): activations forward and backward, the
fused bias + activation, against the NumPy references, under the CPU emulator ("emu") and on a GPU
("cuda"); and the F.bias_act op driven through the kernels."""
import math

import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from minicnn.kernels.activation import cuda as E
from minicnn.kernels.activation import reference as R
from cuda_util import KERNEL_DEVICES, dev, host, noncontiguous, emulate

TOL = {np.float32: (1e-5, 1e-6), np.float64: (1e-12, 1e-13)}   # rtol, atol
ACTS = list(E.codes())
SLOPE = 0.07


def _rng(seed=0):
    return np.random.default_rng(seed)


def ref_fwd(z, act):
    return R.forward(z, act, SLOPE)


def ref_grad(z, gy, act):
    return R.backward(z, gy, act, SLOPE)


def close(got, want, dtype, scale=1.0):
    rtol, atol = TOL[dtype]
    got = host(got)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * scale)


def f64(*arrays):
    """The float64 reference: float32 results are compared with the exact values of their
    float32 inputs (a float32 reference loses digits to 1 + erf / 1 + tanh cancellation)."""
    return [a.astype(np.float64) for a in arrays]


def data(shape, dtype, seed=0, low=-4.0, high=4.0):
    return _rng(seed).uniform(low, high, size=shape).astype(dtype)


# --- activations ---------------------------------------------------------------------------------

@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act", ACTS)
def test_act_fwd_bwd(device, dtype, act):
    for k, n in enumerate((1, 3, 7, 33, 1001)):
        x, gy = data(n, dtype, k), data(n, dtype, k + 100)
        x64, gy64 = f64(x, gy)
        close(E.act_fwd(dev(x, device), act, SLOPE), ref_fwd(x64, act), dtype)
        close(E.act_bwd(dev(x, device), dev(gy, device), act, SLOPE), ref_grad(x64, gy64, act),
              dtype)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dispatcher_signatures(device, dtype):
    """The functions kernels/norm.py calls on CUDA arrays, with its signatures."""
    x, gy = data((3, 5, 7), dtype, 1), data((3, 5, 7), dtype, 2)
    xd, gd = dev(x, device), dev(gy, device)
    y = R.forward(x, "relu")
    close(E.act_fwd(xd, "relu"), y, dtype)
    close(E.act_bwd(dev(y, device), gd, "relu"), R.backward(y, gy, "relu"), dtype)
    for t in (False, True):
        act = "gelu_tanh" if t else "gelu"
        close(E.act_fwd(xd, act), R.forward(x, act), dtype)
        close(E.act_bwd(xd, gd, act), R.backward(x, gy, act), dtype)
    for act in ("sigmoid", "silu", "mish"):
        close(E.act_fwd(xd, act), R.forward(x, act), dtype)
        close(E.act_bwd(xd, gd, act), R.backward(x, gy, act), dtype)
    assert E.act_fwd(xd, "relu").shape == x.shape


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_noncontiguous_unaligned_and_tiny(device, dtype):
    x, gy = data((5, 13), dtype, 3), data((5, 13), dtype, 4)
    for act in ("gelu", "silu", "relu"):
        close(E.act_fwd(noncontiguous(x, device), act), ref_fwd(x, act), dtype)
        close(E.act_bwd(noncontiguous(x, device), noncontiguous(gy, device), act),
              ref_grad(x, gy, act), dtype)
    # one element in: the arrays are contiguous but not 16-byte aligned (the scalar path)
    buf, gbuf = data(66, dtype, 5), data(66, dtype, 6)
    xu, gu = dev(buf, device)[1:], dev(gbuf, device)[1:]
    close(E.act_fwd(xu, "sigmoid"), ref_fwd(buf[1:], "sigmoid"), dtype)
    close(E.act_bwd(xu, gu, "tanh"), ref_grad(buf[1:], gbuf[1:], "tanh"), dtype)
    # 0-d and empty
    z = E.act_fwd(dev(np.array(0.7, dtype), device), "silu")
    assert z.shape == () and math.isclose(float(host(z)), 0.7 / (1 + math.exp(-0.7)),
                                          rel_tol=1e-6)
    assert E.act_fwd(dev(np.zeros((0, 3), dtype), device), "relu").shape == (0, 3)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_extremes(device):
    x = np.array([-1e30, -100.0, -20.0, 0.0, 20.0, 100.0, 1e30, np.inf, -np.inf], np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        for act in ("sigmoid", "silu", "gelu", "gelu_tanh", "tanh"):
            got = host(E.act_fwd(dev(x, device), act))
            want = ref_fwd(x.astype(np.float64), act)
            fin = np.isfinite(want)
            np.testing.assert_allclose(got[fin], want[fin], rtol=1e-6, atol=1e-30)
            assert not np.isnan(got[fin]).any()
        s = host(E.act_fwd(dev(x, device), "sigmoid"))
        assert s[0] == 0.0 and s[-3] == 1.0 and s[-2] == 1.0


@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_grid_stride_loops(device, monkeypatch):
    """A tiny grid: each thread walks many packs (and the tail)."""
    monkeypatch.setattr(E, "MAX_BLOCKS", 2)
    x, gy = data(2 * 256 * 4 * 3 + 5, np.float32, 7), data(2 * 256 * 4 * 3 + 5, np.float32, 8)
    close(E.act_fwd(dev(x, device), "gelu"), ref_fwd(x, "gelu"), np.float32)
    close(E.act_bwd(dev(x, device), dev(gy, device), "silu"), ref_grad(x, gy, "silu"),
          np.float32)


def at_offset(a, off, device):
    """A contiguous device copy of `a` whose first element lies `off` elements past a 64-byte
    boundary: arrays at different offsets mix the vector (16-byte pack) and scalar paths."""
    from minicnn.kernels.cuda.launch import data_ptr  # noqa: PLC0415
    a = np.asarray(a)
    buf = dev(np.zeros(a.size + off + 64 // a.itemsize, a.dtype), device)
    start = (-data_ptr(buf) % 64) // a.itemsize + off
    v = buf[start:start + a.size].reshape(a.shape)
    v[...] = dev(a, device)
    return v


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mixed_alignment(device, dtype):
    """Each pointer at its own offset: a 16-byte pack is loaded only where every pointer the
    loop touches is aligned (on a GPU a misaligned vector load faults; the emulator built with
    -fsanitize=alignment aborts on one)."""
    x, gy = data(37, dtype, 11), data(37, dtype, 12)
    for ox in range(3):
        close(E.act_fwd(at_offset(x, ox, device), "gelu"), ref_fwd(x, "gelu"), dtype)
        for og in range(3):
            close(E.act_bwd(at_offset(x, ox, device), at_offset(gy, og, device), "silu"),
                  ref_grad(x, gy, "silu"), dtype)
    for k, (shape, dim) in enumerate([((5, 8), 1), ((3, 4, 8), 1)]):
        xs, b = data(shape, dtype, 20 + k), data(shape[dim], dtype, 30 + k, -1.0, 1.0)
        y = bias_ref(xs, b, xs, dim, "relu")[0]
        for ox, ob in [(0, 1), (1, 0), (2, 2), (0, 0)]:
            close(E.bias_act_fwd(at_offset(xs, ox, device), at_offset(b, ob, device), "relu",
                                 dim), y, dtype)


def test_bad_input():
    x = np.ones(4, np.float32)
    with pytest.raises(ValueError, match="unknown activation 'elu'"):
        E.act_fwd(x, "elu")
    with pytest.raises(TypeError, match="expected float32 or float64"):
        E.act_fwd(np.ones(4, np.int64), "relu")
    with pytest.raises(ValueError, match=r"grad shape \(3,\) does not match"):
        E.act_bwd(x, np.ones(3, np.float32), "relu")


# --- fused bias + activation --------------------------------------------------------------------

BIAS_CASES = [((5,), 0), ((3, 7), 1), ((3, 7), 0), ((2, 3, 5), 1), ((2, 3, 5), 2), ((2, 3, 5), 0),
              ((2, 33, 1, 3), 1), ((4, 70), 1), ((3, 2, 300), 1), ((1, 2, 1), 1),
              ((5, 8, 12), 1), ((6, 16), 1), ((3, 5, 2), 1)]   # rows of 16-byte packs


def bias_ref(x, b, gy, dim, act):
    shape = [1] * x.ndim
    shape[dim] = x.shape[dim]
    z, gy = f64(x + b.reshape(shape), gy)  # z rounded to x's dtype, as the kernels do
    gz = ref_grad(z, gy, act)
    axes = tuple(i for i in range(x.ndim) if i != dim)
    return ref_fwd(z, act), gz, gz.sum(axis=axes)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act", ACTS)
def test_bias_act_kernels(device, dtype, act):
    for k, (shape, dim) in enumerate(BIAS_CASES):
        x, gy = data(shape, dtype, k), data(shape, dtype, k + 50)
        b = data(shape[dim], dtype, k + 90, -1.0, 1.0)
        y, gz, gb = bias_ref(x, b, gy, dim, act)
        xd, bd, gd = dev(x, device), dev(b, device), dev(gy, device)
        close(E.bias_act_fwd(xd, bd, act, dim, SLOPE), y, dtype)
        gx_k, gb_k = E.bias_act_bwd(xd, bd, gd, act, dim, SLOPE)
        close(gx_k, gz, dtype)
        close(gb_k, gb, dtype, scale=x.size // b.size)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("max_blocks", [2, 12])
def test_bias_act_grid_stride(device, max_blocks, monkeypatch):
    """Small grids: the backward's incremental (n, i) stepping over several strides and chunks,
    the forward's 2-D loops over rows and columns."""
    monkeypatch.setattr(E, "MAX_BLOCKS", max_blocks)
    for k, (shape, dim) in enumerate([((6, 3, 500), 1), ((50, 3, 7), 1), ((300, 40), 1),
                                      ((2, 3, 700), 1)]):
        x, gy = data(shape, np.float64, k), data(shape, np.float64, k + 9)
        b = data(shape[dim], np.float64, k + 19)
        y, gz, gb = bias_ref(x, b, gy, dim, "silu")
        close(E.bias_act_fwd(dev(x, device), dev(b, device), "silu", dim), y, np.float64)
        gx_k, gb_k = E.bias_act_bwd(dev(x, device), dev(b, device), dev(gy, device), "silu", dim)
        close(gx_k, gz, np.float64)
        close(gb_k, gb, np.float64, scale=x.size)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_bias_act_noncontiguous(device):
    x, gy = data((3, 4, 9), np.float32, 1), data((3, 4, 9), np.float32, 2)
    b = data(4, np.float32, 3)
    y, gz, gb = bias_ref(x, b, gy, 1, "gelu")
    close(E.bias_act_fwd(noncontiguous(x, device), dev(b, device), "gelu", 1), y, np.float32)
    gx_k, gb_k = E.bias_act_bwd(noncontiguous(x, device), dev(b, device),
                                noncontiguous(gy, device), "gelu", 1)
    close(gx_k, gz, np.float32)
    close(gb_k, gb, np.float32, scale=27)
    # contiguous but not 16-byte aligned: the forward's element-by-element path
    for shape, dim in [((3, 4, 8), 1), ((5, 8), 1)]:
        n = int(np.prod(shape))
        buf = data(n + 1, np.float32, 4)
        bb = data(shape[dim] + 1, np.float32, 5)
        y, _, _ = bias_ref(buf[1:].reshape(shape), bb[1:], buf[1:].reshape(shape), dim, "relu")
        got = E.bias_act_fwd(dev(buf, device)[1:].reshape(shape), dev(bb, device)[1:], "relu",
                             dim)
        close(got, y, np.float32)


def test_bias_act_kernel_bad_input():
    x, b = np.ones((2, 3), np.float32), np.ones(3, np.float32)
    with pytest.raises(ValueError, match=r"bias of shape \[2\] must be 1-D with 3 elements"):
        E.bias_act_fwd(x, np.ones(2, np.float32), "relu", 1)
    with pytest.raises(TypeError, match="bias dtype float64 differs"):
        E.bias_act_fwd(x, b.astype(np.float64), "relu", 1)
    with pytest.raises(IndexError, match="dim 2 out of range"):
        E.bias_act_fwd(x, b, "relu", 2)
    with pytest.raises(ValueError, match="unknown activation"):
        E.bias_act_bwd(x, b, x, "swish", 1)


# --- F.bias_act through the kernels -----------------------------------------------------------

@pytest.fixture
def gpu_path(monkeypatch):
    """Under the emulator, make BiasAct take its CUDA branch with NumPy arrays."""
    def use(device):
        if device == "emu":
            emulate(monkeypatch)
    return use


def _t(a, device, grad=True):
    return mc.Tensor(dev(a, device), requires_grad=grad)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("act", ["relu", "gelu", "gelu_tanh", "silu", "sigmoid", "tanh",
                                 "leaky_relu", "identity"])
def test_bias_act_op_gradcheck_on_kernels(device, act, gpu_path):
    gpu_path(device)
    x = data((2, 3, 4), np.float64, 11, -2.0, 2.0)
    b = data(3, np.float64, 12, -1.0, 1.0)
    z = x + b[None, :, None]
    x[np.abs(z) < 0.05] += 0.2  # away from relu's kink
    xt, bt = _t(x, device), _t(b, device)
    fn = lambda x, b: F.bias_act(x, b, act, dim=1, negative_slope=0.2)  # noqa: E731
    assert mc.testing.gradcheck(fn, (xt, bt))
    assert mc.testing.gradgradcheck(fn, (xt, bt))


@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_bias_act_op_matches_cpu_path(device, gpu_path):
    x = data((4, 6), np.float32, 13)
    b = data(6, np.float32, 14)
    cpu_x, cpu_b = mc.Tensor(x, requires_grad=True), mc.Tensor(b, requires_grad=True)
    want = F.bias_act(cpu_x, cpu_b, "silu", dim=-1)
    want.sum().backward()
    gpu_path(device)
    xt, bt = _t(x, device), _t(b, device)
    y = F.bias_act(xt, bt, "silu", dim=-1)
    y.sum().backward()
    np.testing.assert_allclose(host(y.data), want.data, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(host(xt.grad.data), cpu_x.grad.data, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(host(bt.grad.data), cpu_b.grad.data, rtol=1e-5, atol=1e-5)


# --- the activation ops through kernels/norm.py's CUDA branches --------------------------------

@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("name,kw", [("relu", {}), ("gelu", {}), ("gelu", {"approximate": "tanh"}),
                                     ("silu", {}), ("sigmoid", {})])
def test_activation_ops_dispatch_to_kernels(device, name, kw, monkeypatch):
    """F.relu/gelu/silu/sigmoid with the dispatchers of kernels/norm.py sending arrays to the
    kernels (under the emulator: NumPy arrays treated as device arrays): values, gradients and
    second derivatives against the CPU path."""
    x = data((3, 5, 7), np.float64, 21, -3.0, 3.0)
    x[np.abs(x) < 0.05] = 0.3
    fn = lambda t: getattr(F, name)(t, **kw)  # noqa: E731
    wants = {}
    for dtype in (np.float64, np.float32):  # the CPU path in float64 on the same input values
        cpu_x = mc.Tensor(x.astype(dtype).astype(np.float64), requires_grad=True)
        y = fn(cpu_x)
        wants[dtype] = (y.data, mc.autograd.grad(y.sum(), [cpu_x])[0].data)
    calls = []
    for f in ("act_fwd", "act_bwd"):
        monkeypatch.setattr(E, f, lambda *a, _f=getattr(E, f), **k: calls.append(1) or _f(*a, **k))
    if device == "emu":
        emulate(monkeypatch)
    for dtype in (np.float64, np.float32):
        xt = mc.Tensor(dev(x.astype(dtype), device), requires_grad=True)
        y = fn(xt)
        (g,) = mc.autograd.grad(y.sum(), [xt])
        close(y.data, wants[dtype][0], dtype)
        close(g.data, wants[dtype][1], dtype)
    # the kernels ran in both dtypes, forward and backward (sigmoid's backward is y (1 - y))
    assert len(calls) >= (2 if name == "sigmoid" else 4)
    xt = mc.Tensor(dev(x, device), requires_grad=True)
    assert mc.testing.gradcheck(fn, (xt,))
    assert mc.testing.gradgradcheck(fn, (xt,))
