"""The norm family (minicnn.kernels.norm) against its NumPy reference on cpu, emu and cuda: row
norms (layer, instance, group) and batch norm, forward and backward, and the running-statistics
update. Odd sizes, rows of one element, empty batches, data with a mean far from zero
(1000 + randn), float32 and float64, non-contiguous inputs, with and without the affine. On emu
and cuda each case also runs under forced launch plans (split reductions, column kernels,
chunks, small grids); the CPU kernels also on long rows (on the thread pool). And the norm ops
with the CUDA kernels under the emulator against the CPU path."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minicnn.kernels import norm as K
from minicnn.kernels._numba import SMALL_WORK
from minicnn.kernels.cuda import emulator
from minicnn.kernels.norm import cpu as CPU
from minicnn.kernels.norm import cuda as C
from minicnn.kernels.norm import reference as R
from cuda_util import (ALL_DEVICES, KERNEL_DEVICES, dev, emulate, host, noncontiguous,
                       ran_on)

from . import half_util as Hf

DTYPES = [np.float64, np.float32]
EPS = 1e-5




def _tol(dtype, shift=0.0):
    """float64: a few ulps of the data's magnitude (x - mean rounds at |x|); float32: outputs
    are float64 results rounded once, so 1e-6 relative."""
    if dtype == np.float64:
        return dict(rtol=1e-12, atol=1e-13 * (1.0 + abs(shift)))
    return dict(rtol=1e-6, atol=1e-6)


def _close(a, b, dtype, shift=0.0):
    np.testing.assert_allclose(host(a), b, **_tol(dtype, shift))


def _data(rng, shape, dtype, shift):
    return (rng.standard_normal(shape) * 1.5 + shift).astype(dtype)


# --- launch plans --------------------------------------------------------------------------------
# onepass: the default limits (rows this short go to the fused one-block-per-row kernels).
# split: every reduction of more than 64 elements runs over several blocks (B > 1), the
# layer-norm column kernel over several row groups, the element loops over a 2-block grid,
# row-norm applies of chunks of 16 or more by the chunk kernel, no fused rows. chunky: chunks of
# 300 and blocks of 32 threads, so each thread of the reduction, chunk and column kernels loops
# over several unrolled trips. cols: batch norm with runs shorter than 16 goes to the per-column
# kernels (the default); runs: always the per-channel kernels.
_SPLIT = dict(MIN_CHUNK=64, COL_MIN_ROWS=4, APPLY_BLOCKS=2, CHAN_COL_MIN_ROWS=4,
              APPLY_CHUNK_MIN=16, FUSED_MAX=0)
PLANS = {"onepass": {}, "split": _SPLIT, "chunky": dict(_SPLIT, MIN_CHUNK=300, BLOCK=32),
         "cols": dict(CHAN_COLS_MAX_I=16), "runs": dict(CHAN_COLS_MAX_I=0)}


def on_devices(plans):
    """(kernel_device, plan) parameters: every plan on emu and cuda, cpu once (its kernels have
    no launch plan)."""
    out = []
    for p in ALL_DEVICES:
        (device,) = p.values
        for plan in (plans[:1] if device == "cpu" else plans):
            out.append(pytest.param(device, plan, marks=p.marks,
                                    id=p.id if device == "cpu" else f"{p.id}-{plan}"))
    return out


ROW_PLANS = on_devices(["onepass", "split", "chunky"])
CHAN_PLANS = on_devices([f"{s}-{c}" for s in ("onepass", "split", "chunky")
                         for c in ("cols", "runs")])


@pytest.fixture
def plan(request, monkeypatch):
    for name in request.param.split("-"):
        for k, v in PLANS[name].items():
            monkeypatch.setattr(C, k, v)
    return request.param


# --- row norms (layer / instance / group) --------------------------------------------------------

ROW_SHAPES = [
    (1, 1, 1, 1),     # one element
    (1, 1, 1, 3),
    (3, 1, 1, 1),     # layer norm over L = 1
    (3, 2, 5, 7),     # group norm
    (2, 1, 13, 1),    # layer norm with a per-element affine (column kernel)
    (9, 1, 33, 1),    # ... more rows than a row group
    (2, 3, 4, 1),     # group norm of an (N, C) input: I == 1, G > 1
    (2, 1, 1, 37),    # layer norm without affine
    (5, 3, 1, 11),    # instance norm
    (2, 4, 3, 150),   # group norm, longer runs
    (2, 1, 300, 1),   # a longer layer-norm row
    (1, 1, 1, 700),   # one long row, no affine
]
# CPU: long rows (above the single-thread threshold but one), the layer-norm backward over two
# blocks of columns
CPU_ROW_SHAPES = [(2, 4, 3, 1500), (3, 1, 1100, 1), (40, 1, 1001, 1), (2, 1, CPU._LN_BLOCK + 5, 1)]
AFFINES = [(True, True), (False, False), (False, True)]   # (weight, bias): both, none, bias only


def check_row_norm(device, shape, dtype, affine):
    try:
        _check_row_norm(device, shape, dtype, affine)
    except AssertionError as e:
        raise AssertionError(f"weight, bias: {affine}") from e


def _check_row_norm(device, shape, dtype, affine):
    rng = np.random.default_rng(sum(shape) + len(shape))
    N, G, S, I = shape  # noqa: E741
    shift = 1000.0 if sum(shape) % 2 else -3.0
    x = _data(rng, shape, dtype, shift)
    gy = _data(rng, shape, dtype, 0.5)
    w = _data(rng, (G, S), dtype, 1.0) if affine[0] else None
    b = _data(rng, (G, S), dtype, 0.0) if affine[1] else None
    d = lambda a: None if a is None else dev(a, device)  # noqa: E731
    y, mean, rstd = K.row_norm_fwd(d(x), d(w), d(b), EPS)
    ry, rmean, rrstd = R.row_norm_fwd(x, w, b, EPS)
    assert y.dtype == dtype and mean.dtype == rstd.dtype == np.float64
    assert y.shape == shape and mean.shape == rstd.shape == (N, G)
    _close(y, ry, dtype, shift)
    np.testing.assert_allclose(host(mean), rmean, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(host(rstd), rrstd, rtol=1e-11)
    gx, gw, gb = K.row_norm_bwd(d(gy), d(x), mean, rstd, d(w))
    rgx, rgw, rgb = R.row_norm_bwd(gy, x, rmean, rrstd, w)
    assert gx.dtype == dtype and gx.shape == shape
    assert gw.dtype == gb.dtype == np.float64 and gw.shape[1:] == (G, S) == gb.shape[1:]
    _close(gx, rgx, dtype, shift)
    # partial sums over n (the caller sums axis 0); float64 sums of N*I terms
    tol = dict(rtol=1e-10, atol=1e-11 * N * I * (1.0 + abs(shift)))
    np.testing.assert_allclose(host(gw).sum(0), rgw.sum(0), **tol)
    np.testing.assert_allclose(host(gb).sum(0), rgb.sum(0), **tol)


@pytest.mark.parametrize("kernel_device,plan", ROW_PLANS, indirect=True)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ROW_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_row_norm(kernel_device, plan, launched, dtype, shape):
    for affine in AFFINES:
        check_row_norm(kernel_device, shape, dtype, affine)
    ran_on(kernel_device, launched)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", CPU_ROW_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_row_norm_cpu_long_rows(dtype, shape):
    sizes = [np.prod(s) for s in CPU_ROW_SHAPES]
    assert min(sizes) < SMALL_WORK < max(sizes)   # both sides of the single-thread threshold
    for affine in AFFINES:
        check_row_norm("cpu", shape, dtype, affine)


@pytest.mark.parametrize("dtype", DTYPES)
def test_row_norm_noncontiguous_and_out_shape(kernel_device, launched, dtype):
    d = kernel_device
    rng = np.random.default_rng(5)
    shape = (3, 2, 3, 5)
    x, gy = _data(rng, shape, dtype, 7.0), _data(rng, shape, dtype, 0.0)
    w = _data(rng, (2, 6), dtype, 1.0)[:, ::2]     # (G, S) strided views
    b = _data(rng, (2, 6), dtype, 0.0)[:, 1::2]
    y, mean, rstd = K.row_norm_fwd(noncontiguous(x, d), dev(w, d)[:, :], dev(b, d), EPS)
    ry, rmean, rrstd = R.row_norm_fwd(x, w, b, EPS)
    _close(y, ry, dtype, 7.0)
    gx, gw, gb = K.row_norm_bwd(noncontiguous(gy, d), noncontiguous(x, d), mean, rstd,
                                dev(w, d), out_shape=(3, 6, 5))
    rgx, rgw, rgb = R.row_norm_bwd(gy, x, rmean, rrstd, w)
    assert gx.shape == (3, 6, 5) and gx.flags.c_contiguous
    _close(gx, rgx.reshape(3, 6, 5), dtype, 7.0)
    np.testing.assert_allclose(host(gw).sum(0), rgw.sum(0), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(host(gb).sum(0), rgb.sum(0), rtol=1e-10, atol=1e-10)
    # layer-norm layout (I == 1) with a float32 gy for a float64 x: cast like the CPU path
    x2 = _data(rng, (4, 1, 9, 1), dtype, 0.0)
    gy2 = _data(rng, (4, 1, 9, 1), np.float32, 0.0)
    y2, m2, r2 = K.row_norm_fwd(dev(x2, d), None, None, EPS)
    gx2, _, _ = K.row_norm_bwd(dev(gy2, d), noncontiguous(x2, d), m2, r2, None,
                               out_shape=(4, 9))
    rgx2 = R.row_norm_bwd(gy2.astype(dtype), x2, *R.row_norm_fwd(x2, None, None, EPS)[1:], None)[0]
    assert gx2.shape == (4, 9)
    _close(gx2, rgx2.reshape(4, 9), dtype)
    # two strided axes (a slice of a wider array)
    x3 = rng.standard_normal((5, 4, 9)).astype(dtype)[:, ::2, 1::2].reshape(5, 2, 1, 4)
    _close(K.row_norm_fwd(dev(x3, d), None, None, EPS)[0], R.row_norm_fwd(x3, None, None, EPS)[0],
           dtype)
    ran_on(kernel_device, launched)


# --- channel norm (batch) ------------------------------------------------------------------------

CHAN_SHAPES = [(2, 1, 3), (3, 5, 7), (7, 3, 1), (1, 2, 2), (4, 6, 150), (33, 2, 1), (5, 3, 20)]
CPU_CHAN_SHAPES = [(4, 6, 1500)]   # above the single-thread threshold


def check_channel_norm(device, shape, dtype):
    rng = np.random.default_rng(sum(shape))
    N, Cc, I = shape  # noqa: E741
    shift = 1000.0 if sum(shape) % 2 else -0.7
    x = _data(rng, shape, dtype, shift)
    xd = dev(x, device)
    mean, var = K.chan_stats(xd)
    rmean, rvar = R.chan_stats(x)
    assert mean.dtype == var.dtype == np.float64 and mean.shape == var.shape == (Cc,)
    np.testing.assert_allclose(host(mean), rmean, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(host(var), rvar, rtol=1e-10, atol=1e-14)
    rstd = 1.0 / np.sqrt(rvar + EPS)
    w = rng.standard_normal(Cc)
    scale = rstd * w
    sh = rng.standard_normal(Cc) - rmean * scale
    y = K.chan_affine(xd, dev(scale, device), dev(sh, device))
    assert y.dtype == dtype and y.shape == shape
    _close(y, R.chan_affine(x, scale, sh), dtype, shift)
    gy = _data(rng, shape, dtype, 0.3)
    s1, s2 = K.chan_bwd_sums(dev(gy, device), xd, dev(rmean, device))
    r1, r2 = R.chan_bwd_sums(gy, x, rmean)
    tol = dict(rtol=1e-10, atol=1e-12 * N * I * (1.0 + abs(shift)))
    np.testing.assert_allclose(host(s1), r1, **tol)
    np.testing.assert_allclose(host(s2), r2, **tol)
    for ww in (w.astype(dtype), w, None):   # the weight in x's dtype, in float64, none
        gx = K.chan_bwd_apply(dev(gy, device), xd, dev(rmean, device), dev(rstd, device),
                              None if ww is None else dev(ww, device), dev(r1, device),
                              dev(r2, device))
        assert gx.dtype == dtype and gx.shape == shape
        _close(gx, R.chan_bwd_apply(gy, x, rmean, rstd, ww, r1, r2), dtype, shift)


@pytest.mark.parametrize("kernel_device,plan", CHAN_PLANS, indirect=True)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", CHAN_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_channel_norm(kernel_device, plan, launched, dtype, shape):
    check_channel_norm(kernel_device, shape, dtype)
    ran_on(kernel_device, launched)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", CPU_CHAN_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_channel_norm_cpu_threads(dtype, shape):
    assert np.prod(shape) > SMALL_WORK
    check_channel_norm("cpu", shape, dtype)


@pytest.mark.parametrize("kernel_device,plan", on_devices(["cols", "runs"]), indirect=True)
def test_channel_norm_noncontiguous(kernel_device, plan, launched):
    d = kernel_device
    rng = np.random.default_rng(4)
    x = _data(rng, (5, 4, 9), np.float32, 3.0)
    gy = _data(rng, (5, 4, 9), np.float32, 0.0)
    m, v = K.chan_stats(noncontiguous(x, d))
    rm, rv = R.chan_stats(x)
    np.testing.assert_allclose(host(m), rm, rtol=1e-14)
    np.testing.assert_allclose(host(v), rv, rtol=1e-10)
    s1, s2 = K.chan_bwd_sums(noncontiguous(gy, d), noncontiguous(x, d), dev(rm, d))
    r1, r2 = R.chan_bwd_sums(gy, x, rm)
    np.testing.assert_allclose(host(s1), r1, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(host(s2), r2, rtol=1e-10, atol=1e-10)
    scale, shift = rng.standard_normal(4), rng.standard_normal(4)
    _close(K.chan_affine(noncontiguous(x, d), dev(scale, d), dev(shift, d)),
           R.chan_affine(x, scale, shift), np.float32)
    rstd = 1.0 / np.sqrt(rv + EPS)
    _close(K.chan_bwd_apply(noncontiguous(gy, d), noncontiguous(x, d), dev(rm, d), dev(rstd, d),
                            dev(scale, d), dev(r1, d), dev(r2, d)),
           R.chan_bwd_apply(gy, x, rm, rstd, scale, r1, r2), np.float32)
    # two strided axes (a slice of a wider array)
    x2 = rng.standard_normal((5, 4, 9))[:, ::2, 1::2]
    np.testing.assert_allclose(host(K.chan_stats(dev(x2, d))[1]), R.chan_stats(x2)[1],
                               rtol=1e-10)
    ran_on(kernel_device, launched)


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_batch(kernel_device, dtype):
    """No rows: outputs of the right shapes, statistics NaN (undefined), sums 0."""
    d = kernel_device
    x4 = dev(np.zeros((0, 2, 3, 4), dtype), d)
    y, mean, rstd = K.row_norm_fwd(x4, None, None, EPS)
    assert y.shape == (0, 2, 3, 4) and y.dtype == dtype and mean.shape == rstd.shape == (0, 2)
    gx, gw, gb = K.row_norm_bwd(x4, x4, mean, rstd, None, out_shape=(0, 6, 4))
    assert gx.shape == (0, 6, 4) and gx.dtype == dtype
    assert host(gw).sum(0).shape == host(gb).sum(0).shape == (2, 3)
    assert not host(gw).any() and not host(gb).any()
    x3 = dev(np.zeros((0, 3, 4), dtype), d)
    m, v = K.chan_stats(x3)
    assert host(m).shape == host(v).shape == (3,) and np.isnan(host(m)).all() and \
        np.isnan(host(v)).all()
    ones = dev(np.ones(3), d)
    assert K.chan_affine(x3, ones, ones).shape == (0, 3, 4)
    s1, s2 = K.chan_bwd_sums(x3, x3, ones)
    assert host(s1).tolist() == host(s2).tolist() == [0.0, 0.0, 0.0]
    gx3 = K.chan_bwd_apply(x3, x3, ones, ones, None, ones, ones)
    assert gx3.shape == (0, 3, 4) and gx3.dtype == dtype


@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_launch_bad_input(device):
    x = dev(np.ones((2, 3, 4), np.int32), device)
    with pytest.raises(TypeError, match="chan_stats.*float64, float16 or bfloat16, got int32"):
        C.chan_stats(x)
    with pytest.raises(ValueError, match="row_norm: expected a 4-D array"):
        C.row_norm_fwd(dev(np.ones((2, 3), np.float32), device), None, None, EPS)
    x4 = dev(np.ones((2, 1, 3, 1), np.float32), device)
    with pytest.raises(ValueError, match="row_norm: weight of shape"):
        C.row_norm_fwd(x4, dev(np.ones(4, np.float32), device), None, EPS)
    with pytest.raises(ValueError, match="chan_affine: scale has 2 elements, expected 3"):
        C.chan_affine(dev(np.ones((2, 3, 4), np.float32), device), dev(np.ones(2), device),
                      dev(np.ones(3), device))


def test_split_sizes():
    for Q, total in [(1, 1), (8, 200704), (512, 3136), (1, 10**9), (10**6, 7)]:
        B, chunk = C._split(Q, total)
        assert 1 <= B and (B - 1) * chunk < total <= B * chunk
    assert C._split(8, 200704)[0] * 8 >= 500   # long rows: many blocks per row
    assert C._split(8, 200704)[1] % C.CHUNK_ALIGN == 0
    for M in (1, 31, 33, 700, 8192):
        assert C._fused_threads(M) % 32 == 0 and C._fused_threads(M) * C.FUSED_V >= M
    assert C._fused(8192, 3136) and not C._fused(8, 200704) and not C._fused(8, 8193)


# --- running statistics --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_running_update(kernel_device, dtype):
    """In place, with and without var_scale; buffers that are views (not contiguous) take the
    array-op path on every device."""
    d = kernel_device
    rng = np.random.default_rng(2)
    Cn = 37
    rm0, rv0 = rng.standard_normal(Cn).astype(dtype), rng.random(Cn).astype(dtype) + 0.5
    mean, var = rng.standard_normal(Cn) + 100.0, rng.random(Cn)
    tol = _tol(dtype, 100.0)
    for scale in (9.0 / 8.0, None):
        rm, rv = dev(rm0, d), dev(rv0, d)
        K.running_update(rm, rv, dev(mean, d), dev(var, d), 0.1, scale)
        np.testing.assert_allclose(host(rm), 0.9 * rm0.astype(np.float64) + 0.1 * mean, **tol)
        np.testing.assert_allclose(host(rv), 0.9 * rv0.astype(np.float64)
                                   + 0.1 * var * (scale or 1.0), **tol)
    rm, rv = dev(np.repeat(rm0, 2), d)[::2], dev(np.repeat(rv0, 2), d)[1::2]
    K.running_update(rm, rv, dev(mean, d), dev(var, d), 0.25, 2.0)
    np.testing.assert_allclose(host(rm), 0.75 * rm0.astype(np.float64) + 0.25 * mean, **tol)
    np.testing.assert_allclose(host(rv), 0.75 * rv0.astype(np.float64) + 0.5 * var, **tol)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_running_update_launch(device, dtype):
    rng = np.random.default_rng(2)
    Cn = 37
    rm0, rv0 = rng.standard_normal(Cn).astype(dtype), rng.random(Cn).astype(dtype) + 0.5
    mean, var = rng.standard_normal(Cn) + 100.0, rng.random(Cn)
    rm, rv = dev(rm0, device), dev(rv0, device)
    C.running_update(rm, rv, dev(mean, device), dev(var, device), 0.1, 9.0 / 8.0)
    tol = _tol(dtype, 100.0)
    np.testing.assert_allclose(host(rm), 0.9 * rm0.astype(np.float64) + 0.1 * mean, **tol)
    np.testing.assert_allclose(host(rv), 0.9 * rv0.astype(np.float64) + 0.1 * var * 9.0 / 8.0,
                               **tol)
    with pytest.raises(ValueError, match="running_update"):
        C.running_update(rm, dev(rv0[:5], device), dev(mean, device), dev(var, device), 0.1)


# --- random sizes and launch plans ---------------------------------------------------------------

@settings(max_examples=15, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(N=st.integers(1, 6), G=st.integers(1, 3), S=st.integers(1, 9), I=st.integers(1, 40),
       chunk=st.sampled_from([32, 64, 100, 2048]), block=st.sampled_from([32, 64, 256]),
       fused=st.sampled_from([0, 8192]), affine=st.booleans(), f32=st.booleans(),
       seed=st.integers(0, 2**16))
def test_random_shapes(kernel_device, N, G, S, I, chunk, block, fused, affine, f32,  # noqa: E741
                       seed):
    """Random sizes (and on emu and cuda launch plans): row norms forward and backward, batch
    norm statistics and backward sums."""
    dtype = np.float32 if f32 else np.float64
    rng = np.random.default_rng(seed)
    shape = (N, G, S, I)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(C, "MIN_CHUNK", chunk)
        mp.setattr(C, "BLOCK", block)
        mp.setattr(C, "APPLY_CHUNK_MIN", chunk)
        mp.setattr(C, "COL_MIN_ROWS", 2)
        mp.setattr(C, "CHAN_COL_MIN_ROWS", 2)
        mp.setattr(C, "FUSED_MAX", fused)
        x, gy = _data(rng, shape, dtype, 100.0), _data(rng, shape, dtype, 0.0)
        w = _data(rng, (G, S), dtype, 1.0) if affine else None
        b = _data(rng, (G, S), dtype, 0.0) if affine else None
        d = lambda a: None if a is None else dev(a, kernel_device)  # noqa: E731
        y, mean, rstd = K.row_norm_fwd(d(x), d(w), d(b), EPS)
        ry, rmean, rrstd = R.row_norm_fwd(x, w, b, EPS)
        _close(y, ry, dtype, 100.0)
        gx, gw, gb = K.row_norm_bwd(d(gy), d(x), mean, rstd, d(w))
        rgx, rgw, rgb = R.row_norm_bwd(gy, x, rmean, rrstd, w)
        _close(gx, rgx, dtype, 100.0)
        np.testing.assert_allclose(host(gw).sum(0), rgw.sum(0), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(host(gb).sum(0), rgb.sum(0), rtol=1e-9, atol=1e-9)
        x3 = x.reshape(N, G * S, I)
        m3, v3 = K.chan_stats(d(x3))
        rm3, rv3 = R.chan_stats(x3)
        np.testing.assert_allclose(host(m3), rm3, rtol=1e-14)
        np.testing.assert_allclose(host(v3), rv3, rtol=1e-9, atol=1e-12)
        s1, s2 = K.chan_bwd_sums(d(gy.reshape(x3.shape)), d(x3), d(rm3))
        r1, r2 = R.chan_bwd_sums(gy.reshape(x3.shape), x3, rm3)
        np.testing.assert_allclose(host(s1), r1, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(host(s2), r2, rtol=1e-9, atol=1e-9)


# --- the ops through the CUDA kernels ------------------------------------------------------------

@pytest.mark.skipif(not emulator.available(), reason="no C++ compiler for the CUDA emulator")
@pytest.mark.parametrize("norm", ["batch", "layer_affine", "layer", "instance", "group"])
def test_ops_through_the_kernels_under_the_emulator(norm, monkeypatch):
    """The norm ops of minicnn/ops/norm.py, forward and backward (running statistics included),
    give the same results with the family's API sending their NumPy arrays to the CUDA launch
    functions (run by the emulator) as on the CPU path."""
    import minicnn as mc  # noqa: PLC0415
    import minicnn.functional as F  # noqa: PLC0415

    rng = np.random.default_rng(11)
    x0 = rng.standard_normal((3, 4, 5, 3)) + 50.0
    gy0 = rng.standard_normal((3, 4, 5, 3))
    w0, b0 = rng.standard_normal(4), rng.standard_normal(4)
    wl, bl = rng.standard_normal((4, 5, 3)), rng.standard_normal((4, 5, 3))

    def run():
        x = mc.tensor(x0, requires_grad=True)
        w, b = mc.tensor(w0, requires_grad=True), mc.tensor(b0, requires_grad=True)
        rm, rv = mc.tensor(np.zeros(4)), mc.tensor(np.ones(4))
        if norm == "batch":
            y = F.batch_norm(x, rm, rv, w, b, training=True)
        elif norm == "layer_affine":
            w, b = mc.tensor(wl, requires_grad=True), mc.tensor(bl, requires_grad=True)
            y = F.layer_norm(x, (4, 5, 3), w, b)
        elif norm == "layer":
            y = F.layer_norm(x, (5, 3))
        elif norm == "instance":
            y = F.instance_norm(x, rm, rv, w, b)
        else:
            y = F.group_norm(x, 2, w, b)
        y.backward(mc.tensor(gy0))
        grads = [x.grad] + ([w.grad, b.grad] if w.grad is not None else [])
        return [y.array, rm.array, rv.array] + [g.array for g in grads]

    want = run()
    launched = emulate(monkeypatch)
    ups = []
    update = C.running_update
    monkeypatch.setattr(C, "running_update", lambda *a: ups.append(1) or update(*a))
    got = run()
    assert launched, "the CUDA kernels did not run"
    assert bool(ups) == (norm in ("batch", "instance"))
    assert len(got) == len(want)
    for g, r in zip(got, want):
        np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-10)


# --- float16 / bfloat16 --------------------------------------------------------------------------
# The half kernels compute as the float32 ones (float64 arithmetic on the widened values) and
# round their float32 result once more: within one rounding of the format around float32's _tol.
# Statistics and partial sums are float64, to the float32 tests' tolerances.

def _half_close(got, want, dtype):
    tol = _tol(np.float32)
    Hf.half_close(got, want, dtype, tol["rtol"], tol["atol"])


@pytest.mark.parametrize("kernel_device,plan", on_devices(["onepass", "split"]), indirect=True)
@pytest.mark.parametrize("dtype", Hf.HALVES, ids=Hf.HALF_IDS)
def test_half_row_norm(kernel_device, plan, launched, dtype):
    """Group, layer (per-element affine: the column kernel), instance norm and a longer row,
    forward and backward; a NaN makes its row NaN."""
    d = lambda a: None if a is None else dev(a, kernel_device)  # noqa: E731
    for shape in [(3, 2, 5, 7), (2, 1, 13, 1), (5, 3, 1, 11), (2, 1, 300, 1)]:
        rng = np.random.default_rng(sum(shape))
        N, G, S, I = shape  # noqa: E741
        x, gy = _data(rng, shape, dtype, 3.0), _data(rng, shape, dtype, 0.5)
        w, b = _data(rng, (G, S), dtype, 1.0), _data(rng, (G, S), dtype, 0.0)
        x64, gy64, w64, b64 = (a.astype(np.float64) for a in (x, gy, w, b))
        y, mean, rstd = K.row_norm_fwd(d(x), d(w), d(b), EPS)
        ry, rmean, rrstd = R.row_norm_fwd(x64, w64, b64, EPS)
        _half_close(y, ry, dtype)
        np.testing.assert_allclose(host(mean), rmean, rtol=1e-14, atol=1e-14)
        np.testing.assert_allclose(host(rstd), rrstd, rtol=1e-11)
        gx, gw, gb = K.row_norm_bwd(d(gy), d(x), mean, rstd, d(w))
        rgx, rgw, rgb = R.row_norm_bwd(gy64, x64, rmean, rrstd, w64)
        _half_close(gx, rgx, dtype)
        tol = dict(rtol=1e-10, atol=1e-11 * N * I * 4.0)
        np.testing.assert_allclose(host(gw).sum(0), rgw.sum(0), **tol)
        np.testing.assert_allclose(host(gb).sum(0), rgb.sum(0), **tol)
        x[0, 0, 0, 0] = np.nan
        with np.errstate(invalid="ignore"):
            ry = R.row_norm_fwd(x.astype(np.float64), w64, b64, EPS)[0]
        _half_close(K.row_norm_fwd(d(x), d(w), d(b), EPS)[0], ry, dtype)
    Hf.ran_half(kernel_device, launched, dtype)


@pytest.mark.parametrize("kernel_device,plan", on_devices(["onepass-cols", "split-runs"]),
                         indirect=True)
@pytest.mark.parametrize("dtype", Hf.HALVES, ids=Hf.HALF_IDS)
def test_half_channel_norm(kernel_device, plan, launched, dtype):
    """Batch norm's statistics, affine, backward sums and apply (the weight in the half dtype,
    in float64, none) on runs of 7, 1 (the column kernels) and 150."""
    d = kernel_device
    for shape in [(3, 5, 7), (33, 2, 1), (4, 6, 150)]:
        rng = np.random.default_rng(sum(shape))
        N, Cc, I = shape  # noqa: E741
        x, gy = _data(rng, shape, dtype, -0.7), _data(rng, shape, dtype, 0.3)
        x64, gy64 = x.astype(np.float64), gy.astype(np.float64)
        mean, var = K.chan_stats(dev(x, d))
        rmean, rvar = R.chan_stats(x64)
        np.testing.assert_allclose(host(mean), rmean, rtol=1e-14, atol=1e-14)
        np.testing.assert_allclose(host(var), rvar, rtol=1e-10, atol=1e-14)
        rstd = 1.0 / np.sqrt(rvar + EPS)
        w = rng.standard_normal(Cc)
        scale, sh = rstd * w, rng.standard_normal(Cc) - rmean * rstd * w
        _half_close(K.chan_affine(dev(x, d), dev(scale, d), dev(sh, d)),
                    R.chan_affine(x64, scale, sh), dtype)
        s1, s2 = K.chan_bwd_sums(dev(gy, d), dev(x, d), dev(rmean, d))
        r1, r2 = R.chan_bwd_sums(gy64, x64, rmean)
        tol = dict(rtol=1e-10, atol=1e-12 * N * I * 2.0)
        np.testing.assert_allclose(host(s1), r1, **tol)
        np.testing.assert_allclose(host(s2), r2, **tol)
        for ww in (w.astype(dtype), w, None):
            gx = K.chan_bwd_apply(dev(gy, d), dev(x, d), dev(rmean, d), dev(rstd, d),
                                  None if ww is None else dev(ww, d), dev(r1, d), dev(r2, d))
            w64 = None if ww is None else ww.astype(np.float64)
            _half_close(gx, R.chan_bwd_apply(gy64, x64, rmean, rstd, w64, r1, r2), dtype)
    Hf.ran_half(kernel_device, launched, dtype)
