"""The activation family (minicnn.kernels.activation), table-driven: every test of an activation
runs over ACTS, every activation the kernels know (the ACT_* codes of activation.cu), so a new
one is covered with no new test code. The API against the float64 reference on cpu, emu and cuda
(odd sizes, float32 and float64, non-contiguous, unaligned, 0-d, empty, extremes, NaN); the CUDA
launch layer (small grids, 16-byte packs at odd offsets, its checks) on emu and cuda; the
activation and bias_act ops through the CUDA kernels against the CPU path."""
import contextlib

import ml_dtypes
import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from minicnn.kernels import activation as K
from minicnn.kernels._numba import SMALL_WORK
from minicnn.kernels.activation import cuda as C
from minicnn.kernels.activation import reference as R
from minicnn.kernels.cuda.launch import data_ptr
from minicnn.ops.activation import Activation
from cuda_util import KERNEL_DEVICES, dev, emulate, host, noncontiguous, ran_on

from . import half_util as H

ACTS = K.names()
DTYPES = [np.float32, np.float64]
TOL = {np.float32: (1e-5, 1e-6), np.float64: (1e-12, 1e-13)}   # rtol, atol
SLOPE = 0.07   # leaky_relu's negative slope; the other activations ignore it




@contextlib.contextmanager
def case(dtype):
    """Name the dtype in an assertion that fails inside (a loop over dtypes)."""
    try:
        yield
    except AssertionError as e:
        raise AssertionError(f"dtype {np.dtype(dtype)}") from e


def data(shape, dtype, seed, low=-4.0, high=4.0):
    return np.random.default_rng(seed).uniform(low, high, size=shape).astype(dtype)


def close(got, want, dtype, scale=1.0, rtol=None):
    """To TOL (atol times `scale`), or relatively to `rtol`."""
    tol = dict(zip(("rtol", "atol"), TOL[np.dtype(dtype).type]))
    tol = dict(rtol=rtol, atol=0.0) if rtol else dict(tol, atol=tol["atol"] * scale)
    got = host(got)
    assert got.dtype == dtype and got.shape == np.shape(want)
    np.testing.assert_allclose(got, want, **tol)


def ref_fwd(x, act, slope=SLOPE):
    """The float64 reference of the float32 or float64 input's exact values (a float32 reference
    would lose digits to the 1 + erf / 1 + tanh cancellations)."""
    return R.forward(np.asarray(x, np.float64), act, slope)


def ref_bwd(x, gy, act, slope=SLOPE):
    return R.backward(np.asarray(x, np.float64), np.asarray(gy, np.float64), act, slope)


def check(device, x, gy, act, make=dev):
    close(K.forward(make(x, device), act, SLOPE), ref_fwd(x, act), x.dtype)
    close(K.backward(make(x, device), make(gy, device), act, SLOPE), ref_bwd(x, gy, act), x.dtype)


# --- the API against the reference ---------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ACTS)
def test_matches_reference(kernel_device, launched, dtype, act):
    """Odd sizes of uniform(-4, 4) data, 1-D to 3-D normal(0, 3) data; the slope given and by
    default (0, what the ops pass to every activation but leaky_relu)."""
    for k, n in enumerate((1, 3, 7, 33, 1001)):
        check(kernel_device, data(n, dtype, k), data(n, dtype, k + 100), act)
    rng = np.random.default_rng(len(act))
    for shape in ((7,), (3, 5, 11)):
        x = (rng.standard_normal(shape) * 3).astype(dtype)
        gy = rng.standard_normal(shape).astype(dtype)
        check(kernel_device, x, gy, act)
    close(K.forward(dev(x, kernel_device), act), ref_fwd(x, act, 0.0), dtype)
    close(K.backward(dev(x, kernel_device), dev(gy, kernel_device), act),
          ref_bwd(x, gy, act, 0.0), dtype)
    ran_on(kernel_device, launched)


@pytest.mark.parametrize("act", ACTS)
def test_cpu_above_the_single_thread_threshold(act):
    """The CPU kernels on the thread pool (the other tests' sizes run on the calling thread)."""
    rng = np.random.default_rng(1)
    n = SMALL_WORK + 7
    for dtype in DTYPES:
        x = (rng.standard_normal(n) * 3).astype(dtype)
        with case(dtype):
            check("cpu", x, rng.standard_normal(n).astype(dtype), act)


@pytest.mark.parametrize("act", ACTS)
def test_layouts(kernel_device, launched, act):
    """Non-contiguous inputs; contiguous ones one element past 16-byte alignment (the CUDA
    kernels' scalar path); 0-d and empty arrays."""
    d = kernel_device
    for dtype in DTYPES:
        with case(dtype):
            check(d, data((5, 13), dtype, 3), data((5, 13), dtype, 4), act, make=noncontiguous)
            buf, gbuf = data(66, dtype, 5), data(66, dtype, 6)
            close(K.forward(dev(buf, d)[1:], act, SLOPE), ref_fwd(buf[1:], act), dtype)
            close(K.backward(dev(buf, d)[1:], dev(gbuf, d)[1:], act, SLOPE),
                  ref_bwd(buf[1:], gbuf[1:], act), dtype)
            x0, g0 = np.array(0.7, dtype), np.array(-1.3, dtype)
            rtol = 1e-6 if dtype == np.float32 else TOL[dtype][0]
            close(K.forward(dev(x0, d), act, SLOPE), ref_fwd(x0, act), dtype, rtol=rtol)
            close(K.backward(dev(x0, d), dev(g0, d), act, SLOPE), ref_bwd(x0, g0, act), dtype,
                  rtol=rtol)
            e = np.zeros((0, 3), dtype)
            for got in (K.forward(dev(e, d), act, SLOPE),
                        K.backward(dev(e, d), dev(e, d), act, SLOPE)):
                assert got.shape == (0, 3) and got.dtype == dtype
    ran_on(kernel_device, launched)


# Extreme inputs. FAR: where the activations saturate (at x, 0 or +-1); NEAR: the range between,
# where the reference loses digits to the 1 + erf / 1 + tanh cancellations (x ~ -9), so it is
# compared there to TOL only.
FAR = [-1e30, -1e4, -800.0, -104.0, -100.0, -60.0, -50.0, 50.0, 60.0, 100.0, 104.0, 800.0, 1e4,
       1e30]
NEAR = [-20.0, -14.0, -13.0, -9.0, -5.0, -1e-3, 0.0, 1e-3, 5.0, 9.0, 13.0, 14.0, 20.0]


def check_extremes(d, dtype, act):
    x = np.array(FAR + NEAR + [np.inf, -np.inf], dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        want = ref_fwd(x, act)
        got = host(K.forward(dev(x, d), act, SLOPE))
    fin = np.isfinite(want)
    assert np.isfinite(got[fin]).all(), x[fin][~np.isfinite(got[fin])]
    tails = fin & ((np.abs(x) >= 20) | (x == 0))
    np.testing.assert_allclose(got[tails], want[tails], rtol=1e-6 if dtype == np.float32
                               else 1e-12, atol=1e-30)
    close(got[fin], want[fin], dtype)
    sat = want.astype(dtype)
    exact = ((np.abs(x) >= 50) | (x == 0)) & fin & ((sat == 0) | (np.abs(sat) == 1) |
                                                    ((sat == x) & (np.abs(x) <= 1e4)))
    np.testing.assert_array_equal(got[exact], sat[exact])
    xb = x[np.abs(x) <= 1e4]    # the backward at |x| = 1e30: test_backward_huge_inputs
    gy = np.linspace(-2.0, 2.0, xb.size).astype(dtype)
    gx = host(K.backward(dev(xb, d), dev(gy, d), act, SLOPE))
    want = ref_bwd(xb, gy, act)
    assert np.isfinite(want).all() and np.isfinite(gx).all(), xb[~np.isfinite(gx)]
    close(gx, want, dtype)
    # NaN inputs among ordinary ones
    x = np.array([np.nan, -1.5, 0.5, np.nan, 2.0, -0.25, 3.5], dtype)
    gy = np.array([1.0, -2.0, 0.5, 3.0, 1.5, -1.0, 0.25], dtype)
    want = ref_fwd(x, act)
    got = host(K.forward(dev(x, d), act, SLOPE))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    close(got, want, dtype)   # NaN where the reference is NaN, close elsewhere
    close(K.backward(dev(x, d), dev(gy, d), act, SLOPE), ref_bwd(x, gy, act), dtype)


@pytest.mark.parametrize("act", ACTS)
def test_extremes_and_nan(kernel_device, launched, act):
    """Finite wherever the reference is, and equal to it: both passes to TOL up to |x| = 1e4,
    the forward also relatively (to 1e-6, as on the GPU's float32 tails) at 0, |x| >= 20 and
    +-inf. Where the forward saturates (|x| >= 50) or is 0 at 0: exactly 0, +-1 or x itself (x
    up to 1e4: x * 6 / 6 need not round back to x = 1e30). A NaN input gives what the reference
    gives (NaN for the smooth activations), forward and backward, and leaves its neighbours
    alone."""
    for dtype in DTYPES:
        with case(dtype):
            check_extremes(kernel_device, dtype, act)
    ran_on(kernel_device, launched)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ACTS)
def test_backward_huge_inputs(kernel_device, launched, dtype, act):
    """act'(+-1e30) is finite (0, 1, the slope...): the backward must not make inf * 0 (PyTorch's
    float32 gelu_tanh backward does, giving NaN; ours gives the limits)."""
    x = np.array([-1e30, 1e30], dtype)
    gy = np.array([0.5, -2.0], dtype)
    close(K.backward(dev(x, kernel_device), dev(gy, kernel_device), act, SLOPE),
          ref_bwd(x, gy, act), dtype)
    ran_on(kernel_device, launched)


@pytest.mark.parametrize("act", ACTS)
def test_nan_gradient(kernel_device, launched, act):
    """A NaN in gy gives what the reference gives: gy * act'(x), NaN, except where ReLU's and
    Hardswish's slope is 0, where PyTorch's backward selects 0."""
    for dtype in DTYPES:
        x = np.array([-1.5, 0.5, 2.0, -0.25, -5.0, 3.5], dtype)
        gy = np.array([np.nan, np.nan, 1.5, -1.0, np.nan, 0.25], dtype)
        with case(dtype):
            close(K.backward(dev(x, kernel_device), dev(gy, kernel_device), act, SLOPE),
                  ref_bwd(x, gy, act), dtype)
    ran_on(kernel_device, launched)


def test_relu_backward_from_output(kernel_device):
    """relu's backward is also right when given the forward's output y (y > 0 iff x > 0)."""
    for dtype in DTYPES:
        x, gy = data((3, 5, 7), dtype, 1), data((3, 5, 7), dtype, 2)
        y = R.forward(x, "relu")
        close(K.backward(dev(y, kernel_device), dev(gy, kernel_device), "relu"),
              ref_bwd(x, gy, "relu"), dtype)


def test_unknown_activation(kernel_device):
    x = dev(np.ones(4, np.float32), kernel_device)
    for name in ("elu", "swishy"):
        with pytest.raises(ValueError, match=f"unknown activation '{name}'"):
            K.forward(x, name)
        with pytest.raises(ValueError, match=f"unknown activation '{name}'"):
            K.backward(x, x, name)
        with pytest.raises(ValueError, match=f"unknown activation '{name}'"):
            K.bias_act_fwd(x.reshape(2, 2), x[:2], name, 1)


# --- the CUDA launch layer -----------------------------------------------------------------------

@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("act", ACTS)
def test_grid_stride_loops(device, act, monkeypatch):
    """A grid of 2 blocks: each thread walks many packs, and the tail."""
    monkeypatch.setattr(C, "MAX_BLOCKS", 2)
    n = 2 * 256 * 4 * 3 + 5
    x, gy = data(n, np.float32, 7), data(n, np.float32, 8)
    close(C.act_fwd(dev(x, device), act, SLOPE), ref_fwd(x, act), np.float32)
    close(C.act_bwd(dev(x, device), dev(gy, device), act, SLOPE), ref_bwd(x, gy, act),
          np.float32)


def at_offset(a, off, device):
    """A contiguous device copy of `a` whose first element lies `off` elements past a 64-byte
    boundary: arrays at different offsets mix the vector (16-byte pack) and scalar paths."""
    a = np.asarray(a)
    buf = dev(np.zeros(a.size + off + 64 // a.itemsize, a.dtype), device)
    start = (-data_ptr(buf) % 64) // a.itemsize + off
    v = buf[start:start + a.size].reshape(a.shape)
    v[...] = dev(a, device)
    return v


def bias_ref(x, b, gy, dim, act):
    """(y, gx, gb) in float64 of z = x + b rounded to x's dtype, as the kernels compute it."""
    shape = [1] * x.ndim
    shape[dim] = x.shape[dim]
    z = x + b.reshape(shape)
    gz = ref_bwd(z, gy, act)
    return ref_fwd(z, act), gz, gz.sum(axis=tuple(i for i in range(x.ndim) if i != dim))


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("act", ACTS)
def test_mixed_alignment(device, act):
    """Each pointer at its own offset: a 16-byte pack is loaded only where every pointer the
    loop touches is aligned (on a GPU a misaligned vector load faults; the emulator built with
    -fsanitize=alignment aborts on one)."""
    for dtype in DTYPES:
        with case(dtype):
            x, gy = data(37, dtype, 11), data(37, dtype, 12)
            for ox in range(3):
                close(C.act_fwd(at_offset(x, ox, device), act, SLOPE), ref_fwd(x, act), dtype)
                for og in range(3):
                    close(C.act_bwd(at_offset(x, ox, device), at_offset(gy, og, device), act,
                                    SLOPE), ref_bwd(x, gy, act), dtype)
            for k, shape in enumerate([(5, 8), (3, 4, 8)]):
                xs, b = data(shape, dtype, 20 + k), data(shape[1], dtype, 30 + k, -1.0, 1.0)
                y = bias_ref(xs, b, xs, 1, act)[0]
                for ox, ob in [(0, 1), (1, 0), (2, 2), (0, 0)]:
                    close(C.bias_act_fwd(at_offset(xs, ox, device), at_offset(b, ob, device),
                                         act, 1, SLOPE), y, dtype)


def test_launch_bad_input():
    x = np.ones(4, np.float32)
    with pytest.raises(ValueError, match="unknown activation 'elu'"):
        C.act_fwd(x, "elu")
    with pytest.raises(TypeError, match="float64, float16 or bfloat16, got int64"):
        C.act_fwd(np.ones(4, np.int64), "relu")
    with pytest.raises(ValueError, match=r"grad shape \(3,\) does not match"):
        C.act_bwd(x, np.ones(3, np.float32), "relu")


# --- fused bias + activation ---------------------------------------------------------------------

BIAS_CASES = [((5,), 0), ((3, 7), 1), ((3, 7), 0), ((2, 3, 5), 1), ((2, 3, 5), 2), ((2, 3, 5), 0),
              ((2, 33, 1, 3), 1), ((4, 70), 1), ((3, 2, 300), 1), ((1, 2, 1), 1),
              ((5, 8, 12), 1), ((6, 16), 1), ((3, 5, 2), 1)]   # rows of 16-byte packs


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ACTS)
def test_bias_act(kernel_device, launched, dtype, act):
    d = kernel_device
    for k, (shape, dim) in enumerate(BIAS_CASES):
        x, gy = data(shape, dtype, k), data(shape, dtype, k + 50)
        b = data(shape[dim], dtype, k + 90, -1.0, 1.0)
        y, gz, gb = bias_ref(x, b, gy, dim, act)
        close(K.bias_act_fwd(dev(x, d), dev(b, d), act, dim, SLOPE), y, dtype)
        gx_k, gb_k = K.bias_act_bwd(dev(x, d), dev(b, d), dev(gy, d), act, dim, SLOPE)
        close(gx_k, gz, dtype)
        close(gb_k, gb, dtype, scale=x.size // b.size)
    ran_on(kernel_device, launched)


@pytest.mark.parametrize("act", ACTS)
def test_bias_act_layouts(kernel_device, launched, act):
    """Non-contiguous x and gy; contiguous x and b one element past alignment (the CUDA
    forward's element-by-element path); an empty batch."""
    d = kernel_device
    x, gy = data((3, 4, 9), np.float32, 1), data((3, 4, 9), np.float32, 2)
    b = data(4, np.float32, 3)
    y, gz, gb = bias_ref(x, b, gy, 1, act)
    close(K.bias_act_fwd(noncontiguous(x, d), dev(b, d), act, 1, SLOPE), y, np.float32)
    gx_k, gb_k = K.bias_act_bwd(noncontiguous(x, d), dev(b, d), noncontiguous(gy, d), act, 1,
                                SLOPE)
    close(gx_k, gz, np.float32)
    close(gb_k, gb, np.float32, scale=27)
    for shape, dim in [((3, 4, 8), 1), ((5, 8), 1)]:
        n = int(np.prod(shape))
        buf = data(n + 1, np.float32, 4)
        bb = data(shape[dim] + 1, np.float32, 5)
        y = bias_ref(buf[1:].reshape(shape), bb[1:], buf[1:].reshape(shape), dim, act)[0]
        close(K.bias_act_fwd(dev(buf, d)[1:].reshape(shape), dev(bb, d)[1:], act, dim, SLOPE),
              y, np.float32)
    e = dev(np.zeros((0, 3), np.float32), d)
    gx_k, gb_k = K.bias_act_bwd(e, dev(b[:3], d), e, act, 1, SLOPE)
    assert gx_k.shape == (0, 3) and host(gb_k).tolist() == [0.0, 0.0, 0.0]
    assert K.bias_act_fwd(e, dev(b[:3], d), act, 1, SLOPE).shape == (0, 3)
    ran_on(kernel_device, launched)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("max_blocks", [2, 12])
def test_bias_act_grid_stride(device, max_blocks, monkeypatch):
    """Small grids: the backward's incremental (n, i) stepping over several strides and chunks,
    the forward's 2-D loops over rows and columns."""
    monkeypatch.setattr(C, "MAX_BLOCKS", max_blocks)
    for k, (shape, dim) in enumerate([((6, 3, 500), 1), ((50, 3, 7), 1), ((300, 40), 1),
                                      ((2, 3, 700), 1)]):
        x, gy = data(shape, np.float64, k), data(shape, np.float64, k + 9)
        b = data(shape[dim], np.float64, k + 19)
        y, gz, gb = bias_ref(x, b, gy, dim, "silu")
        close(C.bias_act_fwd(dev(x, device), dev(b, device), "silu", dim), y, np.float64)
        gx_k, gb_k = C.bias_act_bwd(dev(x, device), dev(b, device), dev(gy, device), "silu", dim)
        close(gx_k, gz, np.float64)
        close(gb_k, gb, np.float64, scale=x.size)


def test_bias_act_launch_bad_input():
    x, b = np.ones((2, 3), np.float32), np.ones(3, np.float32)
    with pytest.raises(ValueError, match=r"bias of shape \[2\] must be 1-D with 3 elements"):
        C.bias_act_fwd(x, np.ones(2, np.float32), "relu", 1)
    with pytest.raises(TypeError, match="bias dtype float64 differs"):
        C.bias_act_fwd(x, b.astype(np.float64), "relu", 1)
    with pytest.raises(IndexError, match="dim 2 out of range"):
        C.bias_act_fwd(x, b, "relu", 2)
    with pytest.raises(ValueError, match="unknown activation"):
        C.bias_act_bwd(x, b, x, "swish", 1)


# --- the ops through the CUDA kernels ------------------------------------------------------------

@pytest.fixture
def gpu_path(monkeypatch):
    """gpu_path(device): from here on (under the emulator) the ops take their CUDA branch with
    NumPy arrays; call it after computing what the CPU path gives."""
    def use(device):
        if device == "emu":
            emulate(monkeypatch)
    return use


def _t(a, device, grad=True):
    return mc.Tensor(dev(a, device), requires_grad=grad)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("act", ACTS)
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
    np.testing.assert_allclose(host(y.array), want.array, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(host(xt.grad.array), cpu_x.grad.array, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(host(bt.grad.array), cpu_b.grad.array, rtol=1e-5, atol=1e-5)


# The functional forms backed by the kernels; the other activations run as the generic
# kernel-backed op Activation(name). F.sigmoid's backward is y (1 - y) from its saved output.
FUNCTIONAL = {"relu": F.relu, "gelu": F.gelu, "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"),
              "silu": F.silu, "sigmoid": F.sigmoid, "mish": F.mish, "hardswish": F.hardswish}
SAVED_OUTPUT = {"sigmoid"}


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("act", ACTS)
def test_activation_ops_on_kernels(device, act, monkeypatch):
    """The activation ops with the family's API sending their arrays to the CUDA kernels:
    values and gradients against the CPU path (float64 and float32), the kernels of `act` ran,
    gradcheck and gradgradcheck on the device."""
    x = data((3, 5, 7), np.float64, 21, -3.0, 3.0)
    x[np.abs(x) < 0.05] = 0.3   # away from the kinks of relu, leaky_relu
    x[np.abs(np.abs(x) - 3.0) < 0.05] = 2.5   # ... and hardswish
    fn = FUNCTIONAL.get(act, lambda t: Activation(act, SLOPE)(t))
    wants = {}
    for dtype in (np.float64, np.float32):  # the CPU path in float64 on the same input values
        cpu_x = mc.Tensor(x.astype(dtype).astype(np.float64), requires_grad=True)
        y = fn(cpu_x)
        wants[dtype] = (y.array, mc.autograd.grad(y.sum(), [cpu_x])[0].array)
    calls = {"act_fwd": [], "act_bwd": []}   # the activation each launch function ran
    for f, i in (("act_fwd", 1), ("act_bwd", 2)):
        monkeypatch.setattr(C, f, lambda *a, _f=getattr(C, f), _c=calls[f], _i=i, **k:
                            _c.append(a[_i]) or _f(*a, **k))
    if device == "emu":
        emulate(monkeypatch)
    for dtype in (np.float64, np.float32):
        xt = mc.Tensor(dev(x.astype(dtype), device), requires_grad=True)
        y = fn(xt)
        (g,) = mc.autograd.grad(y.sum(), [xt])
        close(y.array, wants[dtype][0], dtype)
        close(g.array, wants[dtype][1], dtype)
    # the kernels of `act` ran in both dtypes, forward and backward
    assert len(calls["act_fwd"]) >= 2 and set(calls["act_fwd"]) == {act}
    if act in SAVED_OUTPUT:
        assert calls["act_bwd"] == []
    else:
        assert len(calls["act_bwd"]) >= 2 and set(calls["act_bwd"]) == {act}
    xt = mc.Tensor(dev(x, device), requires_grad=True)
    assert mc.testing.gradcheck(fn, (xt,))
    # second derivatives on a slice: gradgradcheck costs 4 backward passes per element
    assert mc.testing.gradgradcheck(fn, (mc.Tensor(dev(x[:1, :3], device), requires_grad=True),))


# --- float16 / bfloat16 -------------------------------------------------------------------------

def half_close(got, want, dtype, scale=1.0):
    """Within one rounding of the format each way around the float32 kernels' TOL (atol times
    `scale`): half_util.half_close."""
    rtol32, atol32 = TOL[np.float32]
    H.half_close(got, want, dtype, rtol32, atol32 * scale)


def half_data(shape, dtype, seed):
    """uniform(-4, 4) rounded to dtype, and its exact float64 values."""
    x = data(shape, np.float32, seed).astype(dtype)
    return x, x.astype(np.float64)


@pytest.mark.parametrize("dtype", H.HALVES, ids=H.HALF_IDS)
@pytest.mark.parametrize("act", ACTS)
def test_half_matches_reference(kernel_device, launched, dtype, act):
    """Odd sizes (the 8-element packs and their tails), and NaN, +-inf (forward only, as in
    test_extremes_and_nan), 0, +-6e4 (float16's largest values: bfloat16's own, cubed, are past
    the float32 arithmetic both kernels share) and the smallest subnormal among ordinary ones,
    forward and backward."""
    d = kernel_device
    fi = ml_dtypes.finfo(dtype)
    big = min(float(fi.max), 6e4)   # bfloat16's max cubed overflows the float32 arithmetic
    special = np.array([np.nan, np.inf, -np.inf, 0.0, 1.0, -2.5, big, -big,
                        float(fi.smallest_subnormal), 3.0, -3.0, 20.0], np.float32).astype(dtype)
    for k, n in enumerate((1, 7, 9, 33, 1001)):
        x, x64 = half_data(n, dtype, k)
        gy, gy64 = half_data(n, dtype, k + 100)
        if n == 33:
            x[:special.size], x64[:special.size] = special, special.astype(np.float64)
        half_close(K.forward(dev(x, d), act, SLOPE), R.forward(x64, act, SLOPE), dtype)
        x[np.isinf(x)] = x64[np.isinf(x64)] = 0.5   # act'(+-inf): no limit the reference keeps
        half_close(K.backward(dev(x, d), dev(gy, d), act, SLOPE),
                   R.backward(x64, gy64, act, SLOPE), dtype)
    H.ran_half(d, launched, dtype)


@pytest.mark.parametrize("dtype", H.HALVES, ids=H.HALF_IDS)
@pytest.mark.parametrize("act", ["relu", "gelu", "silu"])
def test_half_bias_act(kernel_device, launched, dtype, act):
    """Both bias_act layouts ((N, C, I) and (N, C)); gb sums the float32 gx of N*I elements (so
    float32's atol times that many) and rounds once."""
    d = kernel_device
    for k, (shape, dim) in enumerate(BIAS_CASES):
        (x, x64), (gy, gy64) = half_data(shape, dtype, k), half_data(shape, dtype, k + 50)
        b = (data(shape[dim], np.float32, k + 90) / 4).astype(dtype)
        y, gz, gb = bias_ref(x64, b.astype(np.float64), gy64, dim, act)
        half_close(K.bias_act_fwd(dev(x, d), dev(b, d), act, dim, SLOPE), y, dtype)
        gx_k, gb_k = K.bias_act_bwd(dev(x, d), dev(b, d), dev(gy, d), act, dim, SLOPE)
        half_close(gx_k, gz, dtype)
        half_close(gb_k, gb, dtype, scale=x.size // b.size)
    H.ran_half(d, launched, dtype)


def test_half_mixed_with_float32_is_widened(monkeypatch):
    """A float16 input with a float32 bias: both widened to float32 (the float kernels run) and
    the result rounded to float16, as on the CPU."""
    launched = emulate(monkeypatch)
    x, x64 = half_data((2, 3, 5), mc.float16, 0)
    b = data(3, np.float32, 1)
    y = K.bias_act_fwd(x, b, "relu", 1)
    assert y.dtype == mc.float16 and launched == ["bias_act_fwd_kernel<float>"]
    half_close(y, np.maximum(x64 + b.astype(np.float64).reshape(3, 1), 0), mc.float16)
