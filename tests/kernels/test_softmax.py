"""The softmax family (minicnn.kernels.softmax) against its float64 NumPy reference on cpu, emu
and cuda: softmax and log-softmax along any axis, forward and backward, and the fused
cross-entropy (class weights, label smoothing, ignored rows). Reductions are compared with a
tolerance that grows with the row length (sqrt(L) ulps of the row's scale), element-wise parts
with a tight relative one. Also: the CUDA launch layer's checks and its agreement with the CPU
path, the CPU cross-entropy over several row blocks and on the thread pool, and the softmax and
cross-entropy ops on the GPU path against the CPU path."""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minicnn as mc
from minicnn.kernels import softmax as KS
from minicnn.kernels._numba import SMALL_WORK
from minicnn.kernels.softmax import cpu as CPU
from minicnn.kernels.softmax import cuda as S
from minicnn.kernels.softmax import reference as R
from cuda_util import KERNEL_DEVICES, dev, emulate, host, noncontiguous, ran_on

from . import half_util as Hf

FLOATS = [np.float32, np.float64]




def _tol(dtype, L):
    """(rtol, atol factor): atol = factor * sqrt(L) * max|want|."""
    if np.dtype(dtype) == np.float32:
        return 1e-5, 8 * np.finfo(np.float32).eps * math.sqrt(max(L, 1))
    return 1e-12, 16 * np.finfo(np.float64).eps * math.sqrt(max(L, 1))


def _close(got, want, dtype, L, what="", scale=None):
    """scale: the magnitude of the terms behind `want` (default max|want|)."""
    got = host(got)
    assert got.dtype == np.dtype(dtype), what
    assert got.shape == want.shape, what
    rtol, k = _tol(dtype, L)
    if scale is None:
        scale = float(np.abs(want).max()) if want.size else 0.0
    np.testing.assert_allclose(got, want, rtol=rtol, atol=k * scale + 1e-300, err_msg=what)


def _softmax_case(device, dtype, shape, axis, log, scale=3.0, seed=0, make=dev):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * scale).astype(dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    L = shape[axis] if shape else 1
    want = R.softmax_fwd(x.astype(np.float64), axis, log)
    y = KS.softmax_fwd(make(x, device), axis, log)
    op = "log_softmax" if log else "softmax"
    _close(y, want, dtype, L, op + " forward")
    # backward from the kernel's own y (as the op does); the reference from the same y
    yh = host(y)
    gwant = R.softmax_bwd(yh.astype(np.float64), gy.astype(np.float64), axis, log)
    gx = KS.softmax_bwd(make(yh, device), make(gy, device), axis, log)
    # the gradient is a difference of terms that can cancel (gy - sum and p * sum): the rounding
    # error scales with those terms, not with the (possibly tiny) result
    y64, g64 = yh.astype(np.float64), gy.astype(np.float64)
    if log:
        p, s = np.exp(y64), g64.sum(axis=axis, keepdims=True) if g64.size else 0.0
        terms = np.abs(g64) + p * np.abs(s)
    else:
        s = (g64 * y64).sum(axis=axis, keepdims=True) if g64.size else 0.0
        terms = np.abs(y64 * g64) + np.abs(y64 * s)
    _close(gx, gwant, dtype, L, op + " backward",
           scale=float(terms.max()) if terms.size else 0.0)
    return yh


LOG = pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])

# rows of 1, 3, 33, 1000 (and long rows: one block per row) along the first, a middle and the
# last axis; shapes chosen so every launch shape of the CUDA kernels (sub-warp groups, warp rows,
# block rows, cols blocks with by = 1 and by > 1, partial column tiles) runs.
SHAPES = [
    ((4, 1), 1), ((1, 5), 0), ((2, 1, 3), 1),
    ((7, 3), -1), ((3, 7), 0), ((2, 3, 5), 1),
    ((5, 33), 1), ((33, 4), 0), ((2, 33, 5), 1), ((2, 5, 3, 7), 1),
    ((3, 1000), 1), ((1000, 3), 0), ((2, 1000, 2), 1),
    ((2, 3, 300), 1), ((1, 3, 40, 7), 1),
    ((2, 4100), 1), ((1, 9000, 2), 1),
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape,axis", SHAPES, ids=[f"{s}-{a}" for s, a in SHAPES])
def test_softmax_matches_reference(kernel_device, launched, dtype, shape, axis):
    for log in (False, True):
        _softmax_case(kernel_device, dtype, shape, axis, log)
    ran_on(kernel_device, launched)


@pytest.mark.parametrize("dtype", FLOATS)
@LOG
@pytest.mark.parametrize("shape,axis", [((6, 1000), 1), ((3, 40, 5), 1), ((40, 3), 0)])
def test_softmax_large_logits_are_stable(kernel_device, launched, dtype, log, shape, axis):
    rng = np.random.default_rng(1)
    x = rng.uniform(-1000, 1000, shape).astype(dtype)
    want = R.softmax_fwd(x.astype(np.float64), axis, log)
    y = host(KS.softmax_fwd(dev(x, kernel_device), axis, log))
    assert np.isfinite(y).all()
    _close(y, want, dtype, shape[axis], "forward")
    if not log:
        np.testing.assert_allclose(y.sum(axis=axis), 1.0, rtol=1e-5)
    ran_on(kernel_device, launched)


@pytest.mark.parametrize("dtype", FLOATS)
@LOG
def test_softmax_masked_rows(kernel_device, launched, dtype, log):
    """-inf entries (attention masks) get probability 0; a row of only -inf is NaN, as in the
    NumPy op (and PyTorch)."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 40)).astype(dtype)
    x[:, ::3] = -np.inf
    x[1, 0] = 5.0                       # a finite max after a -inf start
    x[3, :] = -np.inf
    with np.errstate(invalid="ignore"):
        want = R.softmax_fwd(x.astype(np.float64), 1, log)
        for axis, xx, ww in ((1, x, want), (0, x.T.copy(), want.T)):
            y = host(KS.softmax_fwd(dev(xx, kernel_device), axis, log))
            assert np.isnan(y).sum() == np.isnan(ww).sum() == 40
            ok = ~np.isnan(ww)
            np.testing.assert_allclose(y[ok], ww[ok], rtol=1e-5 if dtype == np.float32 else 1e-12)
    ran_on(kernel_device, launched)


@pytest.mark.parametrize("dtype", FLOATS)
@LOG
def test_softmax_noncontiguous_inputs(kernel_device, launched, dtype, log):
    _softmax_case(kernel_device, dtype, (3, 5, 33), 2, log, make=noncontiguous)
    _softmax_case(kernel_device, dtype, (4, 9, 6), 1, log, make=noncontiguous)
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((7, 33)) * 2).astype(dtype)
    xt = dev(x, kernel_device).T                   # (33, 7), softmax over its axis 0
    want = R.softmax_fwd(x.T.astype(np.float64), 0, log)
    _close(KS.softmax_fwd(xt, 0, log), want, dtype, 33)
    ran_on(kernel_device, launched)


@LOG
def test_softmax_scalar(kernel_device, log):
    for axis in (0, -1):
        y = host(KS.softmax_fwd(dev(np.array(2.5), kernel_device), axis, log))
        assert y.shape == () and y == (0.0 if log else 1.0)


@pytest.mark.parametrize("shape,axis", [((0, 4), 1), ((3, 0), 1), ((2, 0, 3), 1)])
def test_softmax_empty(kernel_device, shape, axis):
    e = dev(np.zeros(shape, np.float32), kernel_device)
    assert host(KS.softmax_bwd(e, e, axis)).shape == shape
    assert host(KS.softmax_fwd(e, axis)).shape == shape
    assert host(KS.softmax_fwd(e, axis, log=True)).shape == shape


@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_softmax_launch_agrees_with_the_cpu_op(device):
    """The kernel against what mc.softmax / mc.log_softmax compute on the CPU (float32)."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 6, 5)).astype(np.float32)
    for log, fn in ((False, mc.softmax), (True, mc.log_softmax)):
        cpu = fn(mc.tensor(x), dim=1).numpy()
        got = host(S.softmax_fwd(dev(x, device), 1, log))
        np.testing.assert_allclose(got, cpu, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_softmax_launch_bad_input(device):
    x = dev(np.ones((2, 3), np.float32), device)
    with pytest.raises(ValueError, match="softmax: dim 2 is out of range"):
        S.softmax_fwd(x, 2)
    with pytest.raises(ValueError, match="log_softmax backward: grad of shape"):
        S.softmax_bwd(x, dev(np.ones((3, 2), np.float32), device), 1, log=True)


@settings(max_examples=10, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(shape=st.lists(st.integers(1, 7), min_size=1, max_size=4), data=st.data(),
       log=st.booleans(), dtype=st.sampled_from(FLOATS))
def test_softmax_random_shapes(kernel_device, shape, data, log, dtype):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    _softmax_case(kernel_device, dtype, tuple(shape), axis, log, seed=len(shape))


# --- cross-entropy -------------------------------------------------------------------------------

def _ce_data(dtype, M, C, seed, scale=3.0, ignore_index=-100):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((M, C)) * scale).astype(dtype)
    t = rng.integers(0, C, M).astype(np.int64)
    t[::3] = ignore_index                   # ignored rows
    w = rng.uniform(0.2, 2.0, C)
    g = rng.standard_normal(M)
    return x, t, w, g


def _ce_check(device, dtype, x, t, w, ignore_index, smooth, g, make=dev):
    M, C = x.shape
    what = f"weighted: {w is not None}, smoothing: {smooth}, ignore_index: {ignore_index}"
    lw, lsew = R.ce_fwd(x.astype(np.float64), t, w, ignore_index, smooth)
    loss, lse = KS.ce_fwd(make(x, device), dev(t, device), None if w is None else dev(w, device),
                          ignore_index, smooth)
    for got, want in ((loss, lw), (lse, lsew)):
        got = host(got)
        assert got.dtype == np.float64 and got.shape == (M,), what
        rtol, k = _tol(dtype, C)
        np.testing.assert_allclose(got, want, rtol=rtol,
                                   atol=k * (np.abs(x).max() + np.abs(lsew).max()) + 1e-300,
                                   err_msg=what)
    assert (host(loss)[t == ignore_index] == 0).all(), what
    gw = R.ce_bwd(x.astype(np.float64), t, w, ignore_index, smooth, lsew, g)
    gx = KS.ce_bwd(make(x, device), dev(t, device), None if w is None else dev(w, device),
                   ignore_index, smooth, lse, dev(g, device))
    # element-wise given lse; terms of size |g| * qsum (cancelling to 0 when C == 1)
    _close(gx, gw, dtype, 1, "backward, " + what,
           scale=np.abs(g).max() * (1 if w is None else w.max()))
    assert (host(gx)[t == ignore_index] == 0).all(), what
    return host(loss), host(lse), host(gx)


CE_SIZES = [(1, 1), (5, 1), (5, 3), (7, 3), (64, 7), (4, 33), (5, 1000), (17, 1000), (2, 2500)]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("M,C", CE_SIZES)
def test_cross_entropy_matches_reference(kernel_device, launched, dtype, M, C):
    """Unweighted and weighted, without and with label smoothing."""
    x, t, w, g = _ce_data(dtype, M, C, seed=M * C)
    for ww in (None, w):
        for smooth in (0.0, 0.1, 0.2):
            _ce_check(kernel_device, dtype, x, t, ww, -100, smooth, g)
    ran_on(kernel_device, launched)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("M,C", [(3, CPU._CE_BLOCK // 2 + 1), (70, 1000)])
def test_cross_entropy_cpu_blocks_and_threads(dtype, M, C):
    """The CPU cross-entropy over several blocks of rows (float64) and above the single-thread
    threshold (the float32 kernels)."""
    assert M * C > max(SMALL_WORK, CPU._CE_BLOCK) and len(CPU._row_blocks(M, C)) > 1
    x, t, w, g = _ce_data(dtype, M, C, seed=M)
    for ww in (None, w):
        _ce_check("cpu", dtype, x, t, ww, -100, 0.1, g)


@pytest.mark.parametrize("dtype", FLOATS)
def test_cross_entropy_extreme_logits(kernel_device, dtype):
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]], dtype)
    t = np.array([1, 0])
    d = kernel_device
    loss, lse = KS.ce_fwd(dev(x, d), dev(t, d), None, -100, 0.1)
    gx = KS.ce_bwd(dev(x, d), dev(t, d), None, -100, 0.1, lse, dev(np.ones(2), d))
    loss, gx = host(loss), host(gx)
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(gx))
    np.testing.assert_allclose(loss[0], 0.9 * 2e4 + 0.1 / 3 * (0 + 2e4 + 1e4), rtol=1e-6)
    np.testing.assert_allclose(loss[1], math.log(3), rtol=1e-6)


@pytest.mark.parametrize("dtype", FLOATS)
def test_cross_entropy_large_logits_ignore_and_noncontiguous(kernel_device, launched, dtype):
    d = kernel_device
    x, t, w, g = _ce_data(dtype, 6, 40, seed=6, scale=1.0)
    x = np.random.default_rng(7).uniform(-1000, 1000, x.shape).astype(dtype)
    loss, lse, gx = _ce_check(d, dtype, x, t, w, -100, 0.1, g)
    assert np.isfinite(loss).all() and np.isfinite(lse).all() and np.isfinite(gx).all()
    _ce_check(d, dtype, x, t, None, -100, 0.0, g, make=noncontiguous)
    # an ignore_index that is a real class; every row ignored
    t2 = t.copy()
    t2[t2 == -100] = 2
    _ce_check(d, dtype, x, t2.astype(np.int32), w, 2, 0.05, g)   # int32 targets
    _ce_check(d, dtype, x, np.full(6, 7, np.int64), w, 7, 0.1, g)
    ran_on(kernel_device, launched)


def test_cross_entropy_no_rows(kernel_device):
    x = dev(np.zeros((0, 4), np.float32), kernel_device)
    t = dev(np.zeros(0, np.int64), kernel_device)
    loss, lse = KS.ce_fwd(x, t, None, -100, 0.1)
    assert host(loss).shape == host(lse).shape == (0,)
    gx = KS.ce_bwd(x, t, None, -100, 0.1, lse, dev(np.zeros(0), kernel_device))
    assert host(gx).shape == (0, 4)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", FLOATS)
def test_cross_entropy_launch_agrees_with_the_cpu_kernels(device, dtype):
    """The CUDA kernels and the CPU ones (without emulation) give the same numbers, to a tighter
    tolerance than each's against the reference."""
    x, t, w, g = _ce_data(dtype, 9, 37, seed=5)
    for ww, smooth in ((None, 0.0), (w, 0.2)):
        loss, lse = S.ce_fwd(dev(x, device), dev(t, device), None if ww is None else
                             dev(ww, device), -100, smooth)
        gx = S.ce_bwd(dev(x, device), dev(t, device), None if ww is None else dev(ww, device),
                      -100, smooth, lse, dev(g, device))
        lc, lsec = KS.ce_fwd(x, t, ww, -100, smooth)
        gc = KS.ce_bwd(x, t, ww, -100, smooth, lsec, g)
        tol = 2e-6 if dtype == np.float32 else 1e-13
        np.testing.assert_allclose(host(loss), lc, rtol=tol, atol=tol)
        np.testing.assert_allclose(host(lse), lsec, rtol=tol, atol=tol)
        np.testing.assert_allclose(host(gx), gc, rtol=tol, atol=tol)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_cross_entropy_launch_bad_input(device):
    x = dev(np.ones((3, 4), np.float32), device)
    t = dev(np.zeros(3, np.int64), device)
    with pytest.raises(ValueError, match=r"cross_entropy: expected targets of shape \(3,\)"):
        S.ce_fwd(x, dev(np.zeros(2, np.int64), device), None, -100, 0.0)
    with pytest.raises(ValueError, match=r"cross_entropy: expected a weight of shape \(4,\)"):
        S.ce_fwd(x, t, dev(np.ones(3), device), -100, 0.0)
    with pytest.raises(ValueError, match=r"cross_entropy backward: expected lse of shape"):
        S.ce_bwd(x, t, None, -100, 0.0, dev(np.zeros(2), device), dev(np.ones(3), device))


# --- the ops on the GPU path ---------------------------------------------------------------------

def _gpu_tensor(a, device, **kw):
    """A tensor where the GPU path runs: CuPy for cuda, NumPy under the emulator for emu."""
    return mc.tensor(a, device="cuda" if device == "cuda" else "cpu", **kw)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_ops_match_the_cpu_path(device, dim, monkeypatch):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((4, 5, 6)).astype(np.float32)
    gy = rng.standard_normal((4, 5, 6)).astype(np.float32)

    def run(on):
        outs = []
        for fn in (mc.softmax, mc.log_softmax):
            xt = on(x, requires_grad=True)
            y = fn(xt, dim=dim)
            y.backward(on(gy))
            outs.append((host(y.array), host(xt.grad.array)))
        return outs

    want = run(mc.tensor)
    launched = emulate(monkeypatch) if device == "emu" else None
    got = run(lambda a, **kw: _gpu_tensor(a, device, **kw))
    assert launched is None or launched
    for (y, gx), (wy, wgx) in zip(got, want):
        np.testing.assert_allclose(y, wy, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(gx, wgx, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_cross_entropy_op_matches_the_cpu_path(device, monkeypatch):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((6, 11, 3)).astype(np.float32)
    t = rng.integers(0, 11, (6, 3))
    t[0, 0] = -100
    w = rng.uniform(0.5, 2, 11).astype(np.float32)

    def run(on):
        xt = on(x, requires_grad=True)
        loss = mc.nn.functional.cross_entropy(xt, on(t), weight=on(w), label_smoothing=0.1)
        loss.backward()
        return host(loss.array), host(xt.grad.array)

    want = run(mc.tensor)
    launched = emulate(monkeypatch) if device == "emu" else None
    got = run(lambda a, **kw: _gpu_tensor(a, device, **kw))
    assert launched is None or launched
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-7)


# --- float16 / bfloat16 --------------------------------------------------------------------------

def _half_close(got, want, dtype, L, scale=None):
    """Within one rounding of the format each way around float32's _tol (half_util)."""
    rtol32, k = _tol(np.float32, L)
    if scale is None:
        finite = np.abs(want[np.isfinite(want)])
        scale = float(finite.max()) if finite.size else 0.0
    Hf.half_close(got, want, dtype, rtol32, k * scale)


@pytest.mark.parametrize("dtype", Hf.HALVES, ids=Hf.HALF_IDS)
@pytest.mark.parametrize("shape,axis", [((7, 3), -1), ((2, 33, 5), 1), ((3, 1000), 1),
                                        ((2, 4100), 1), ((1, 3, 40, 7), 1)])
def test_half_softmax(kernel_device, launched, dtype, shape, axis):
    """Rows kernels (sub-warp, warp and block rows) and cols kernels, forward and backward,
    against the float64 reference on the same values rounded to the format; a row with -inf
    (masked) entries and one with a NaN."""
    d = kernel_device
    rng = np.random.default_rng(7)
    L = shape[axis]
    for log in (False, True):
        x = (rng.standard_normal(shape) * 3).astype(dtype)
        first = np.moveaxis(x, axis, -1).reshape(-1, L)   # a view: the rows along the axis
        first[0, ::2] = -np.inf
        first[1, L // 2] = np.nan
        x64 = x.astype(np.float64)
        with np.errstate(invalid="ignore"):
            want = R.softmax_fwd(x64, axis, log)
        y = KS.softmax_fwd(dev(x, d), axis, log)
        _half_close(y, want, dtype, L)
        x = (rng.standard_normal(shape) * 3).astype(dtype)   # finite, for the backward
        yh = host(KS.softmax_fwd(dev(x, d), axis, log))
        gy = rng.standard_normal(shape).astype(dtype)
        y64, g64 = yh.astype(np.float64), gy.astype(np.float64)
        gwant = R.softmax_bwd(y64, g64, axis, log)
        if log:
            terms = np.abs(g64) + np.exp(y64) * np.abs(g64.sum(axis=axis, keepdims=True))
        else:
            terms = np.abs(y64 * g64) + np.abs(y64 * (g64 * y64).sum(axis=axis, keepdims=True))
        gx = KS.softmax_bwd(dev(yh, d), dev(gy, d), axis, log)
        _half_close(gx, gwant, dtype, L, scale=float(terms.max()))
    Hf.ran_half(d, launched, dtype)


@pytest.mark.parametrize("dtype", Hf.HALVES, ids=Hf.HALF_IDS)
@pytest.mark.parametrize("M,C", [(5, 3), (4, 33), (17, 1000), (2, 2500)])
def test_half_cross_entropy(kernel_device, launched, dtype, M, C):
    """Half logits, float64 weights: loss and lse (float64) within float32's tolerance of the
    reference on the same values, gx rounded once; weighted and smoothed, ignored rows."""
    d = kernel_device
    x, t, w, g = _ce_data(dtype, M, C, seed=M + C)
    x64 = x.astype(np.float64)
    for ww, smooth in ((None, 0.0), (w, 0.1)):
        lw, lsew = R.ce_fwd(x64, t, ww, -100, smooth)
        loss, lse = KS.ce_fwd(dev(x, d), dev(t, d), None if ww is None else dev(ww, d), -100,
                              smooth)
        rtol, k = _tol(np.float32, C)
        for got, want in ((loss, lw), (lse, lsew)):
            assert host(got).dtype == np.float64
            np.testing.assert_allclose(host(got), want, rtol=rtol,
                                       atol=k * (np.abs(x64).max() + np.abs(lsew).max()))
        gw = R.ce_bwd(x64, t, ww, -100, smooth, lsew, g)
        gx = KS.ce_bwd(dev(x, d), dev(t, d), None if ww is None else dev(ww, d), -100, smooth,
                       lse, dev(g, d))
        _half_close(gx, gw, dtype, 1, scale=np.abs(g).max() * (1 if ww is None else w.max()))
    Hf.ran_half(d, launched, dtype)
