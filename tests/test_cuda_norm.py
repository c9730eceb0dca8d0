"""The CUDA norm kernels (kernels/cuda/norm.py + norm.cu) against the NumPy references of
kernels/reference/norm.py: under the CPU emulator ("emu") everywhere, on the GPU ("cuda") where
there is one. Odd sizes, rows of length 1, split (two-level) reductions forced by a small
MIN_CHUNK, data with a mean far from zero (1000 + randn), float32 and float64, non-contiguous
inputs, with and without the affine."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicnn.kernels import norm as K
from minicnn.kernels.norm import cuda as C
from minicnn.kernels.norm import reference as R
from cuda_util import KERNEL_DEVICES, dev, host, noncontiguous, emulate

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


@pytest.fixture(params=["onepass", "split", "chunky"])
def split(request, monkeypatch):
    """onepass: rows (all short here) go to the fused one-block-per-row kernels.
    split: every reduction of more than 64 elements runs over several blocks (B > 1), the
    layer-norm column kernel over several row groups, the element loops over a 2-block grid,
    row-norm applies of chunks of 16 or more by the chunk kernel. chunky: chunks of 300 and
    blocks of 32 threads, so each thread of the reduction, chunk and column kernels loops over
    several unrolled trips."""
    if request.param != "onepass":
        monkeypatch.setattr(C, "MIN_CHUNK", 64 if request.param == "split" else 300)
        monkeypatch.setattr(C, "COL_MIN_ROWS", 4)
        monkeypatch.setattr(C, "APPLY_BLOCKS", 2)   # element loops wrap around the grid
        monkeypatch.setattr(C, "CHAN_COL_MIN_ROWS", 4)
        monkeypatch.setattr(C, "APPLY_CHUNK_MIN", 16)  # row-norm apply by chunks
        monkeypatch.setattr(C, "FUSED_MAX", 0)  # onepass: the fused short-row kernels
    if request.param == "chunky":
        monkeypatch.setattr(C, "BLOCK", 32)
    return request.param


ROW_SHAPES = [
    (1, 1, 1, 1),     # one element
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


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ROW_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("affine", [(True, True), (False, False), (False, True)],
                         ids=["affine", "plain", "bias"])
def test_row_norm(device, dtype, shape, split, affine):
    rng = np.random.default_rng(sum(shape) + len(shape))
    N, G, S, I = shape  # noqa: E741
    shift = 1000.0 if sum(shape) % 2 else -3.0
    x = _data(rng, shape, dtype, shift)
    gy = _data(rng, shape, dtype, 0.5)
    w = _data(rng, (G, S), dtype, 1.0) if affine[0] else None
    b = _data(rng, (G, S), dtype, 0.0) if affine[1] else None
    d = lambda a: None if a is None else dev(a, device)  # noqa: E731
    y, mean, rstd = C.row_norm_fwd(d(x), d(w), d(b), EPS)
    ry, rmean, rrstd = R.row_norm_fwd(x, w, b, EPS)
    assert y.dtype == dtype and mean.dtype == rstd.dtype == np.float64
    assert mean.shape == rstd.shape == (N, G)
    _close(y, ry, dtype, shift)
    np.testing.assert_allclose(host(mean), rmean, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(host(rstd), rrstd, rtol=1e-11)
    gx, gw, gb = C.row_norm_bwd(d(gy), d(x), mean, rstd, d(w))
    rgx, rgw, rgb = R.row_norm_bwd(gy, x, rmean, rrstd, w)
    assert gx.dtype == dtype and gx.shape == shape
    assert gw.dtype == gb.dtype == np.float64 and gw.shape[1:] == (G, S) == gb.shape[1:]
    _close(gx, rgx, dtype, shift)
    # partial sums over n (the caller sums axis 0); float64 sums of N*I terms
    tol = dict(rtol=1e-10, atol=1e-11 * N * I * (1.0 + abs(shift)))
    np.testing.assert_allclose(host(gw).sum(0), rgw.sum(0), **tol)
    np.testing.assert_allclose(host(gb).sum(0), rgb.sum(0), **tol)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_row_norm_noncontiguous_and_out_shape(device, dtype):
    rng = np.random.default_rng(5)
    shape = (3, 2, 3, 5)
    x, gy = _data(rng, shape, dtype, 7.0), _data(rng, shape, dtype, 0.0)
    w = _data(rng, (2, 6), dtype, 1.0)[:, ::2]     # (G, S) strided views
    b = _data(rng, (2, 6), dtype, 0.0)[:, 1::2]
    y, mean, rstd = C.row_norm_fwd(noncontiguous(x, device), dev(w, device)[:, :],
                                   dev(b, device), EPS)
    ry, rmean, rrstd = R.row_norm_fwd(x, w, b, EPS)
    _close(y, ry, dtype, 7.0)
    gx, gw, gb = C.row_norm_bwd(noncontiguous(gy, device), noncontiguous(x, device), mean, rstd,
                                dev(w, device), out_shape=(3, 6, 5))
    rgx, rgw, rgb = R.row_norm_bwd(gy, x, rmean, rrstd, w)
    assert gx.shape == (3, 6, 5) and gx.flags.c_contiguous
    _close(gx, rgx.reshape(3, 6, 5), dtype, 7.0)
    np.testing.assert_allclose(host(gw).sum(0), rgw.sum(0), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(host(gb).sum(0), rgb.sum(0), rtol=1e-10, atol=1e-10)
    # layer-norm layout (I == 1) with a float32 gy for a float64 x: cast like the CPU path
    x2 = _data(rng, (4, 1, 9, 1), dtype, 0.0)
    gy2 = _data(rng, (4, 1, 9, 1), np.float32, 0.0)
    y2, m2, r2 = C.row_norm_fwd(dev(x2, device), None, None, EPS)
    gx2, _, _ = C.row_norm_bwd(dev(gy2, device), noncontiguous(x2, device), m2, r2, None,
                               out_shape=(4, 9))
    rgx2 = R.row_norm_bwd(gy2.astype(dtype), x2, *R.row_norm_fwd(x2, None, None, EPS)[1:], None)[0]
    _close(gx2, rgx2.reshape(4, 9), dtype)


CHAN_SHAPES = [(2, 1, 3), (3, 5, 7), (7, 3, 1), (1, 2, 2), (4, 6, 150), (33, 2, 1), (5, 3, 20)]


@pytest.fixture(params=[16, 0], ids=["cols", "runs"])
def cols(request, monkeypatch):
    """cols: batch norm with runs shorter than 16 goes to the per-column kernels; runs: always
    the per-channel kernels."""
    monkeypatch.setattr(C, "CHAN_COLS_MAX_I", request.param)
    return request.param


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", CHAN_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_channel_norm(device, dtype, shape, split, cols):
    rng = np.random.default_rng(sum(shape))
    N, Cc, I = shape  # noqa: E741
    shift = 1000.0 if sum(shape) % 2 else -0.7
    x = _data(rng, shape, dtype, shift)
    xd = dev(x, device)
    mean, var = C.chan_stats(xd)
    rmean, rvar = R.chan_stats(x)
    assert mean.dtype == var.dtype == np.float64 and mean.shape == var.shape == (Cc,)
    np.testing.assert_allclose(host(mean), rmean, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(host(var), rvar, rtol=1e-10, atol=1e-14)
    rstd = 1.0 / np.sqrt(rvar + EPS)
    w = rng.standard_normal(Cc)
    scale = rstd * w
    sh = rng.standard_normal(Cc) - rmean * scale
    _close(C.chan_affine(xd, dev(scale, device), dev(sh, device)), R.chan_affine(x, scale, sh),
           dtype, shift)
    gy = _data(rng, shape, dtype, 0.3)
    s1, s2 = C.chan_bwd_sums(dev(gy, device), xd, dev(rmean, device))
    r1, r2 = R.chan_bwd_sums(gy, x, rmean)
    tol = dict(rtol=1e-10, atol=1e-12 * N * I * (1.0 + abs(shift)))
    np.testing.assert_allclose(host(s1), r1, **tol)
    np.testing.assert_allclose(host(s2), r2, **tol)
    for ww in (w.astype(dtype), None):
        gx = C.chan_bwd_apply(dev(gy, device), xd, dev(rmean, device), dev(rstd, device),
                              None if ww is None else dev(ww, device), dev(r1, device),
                              dev(r2, device))
        assert gx.dtype == dtype
        _close(gx, R.chan_bwd_apply(gy, x, rmean, rstd, ww, r1, r2), dtype, shift)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_channel_norm_noncontiguous(device, cols):
    rng = np.random.default_rng(4)
    x = _data(rng, (5, 4, 9), np.float32, 3.0)
    gy = _data(rng, (5, 4, 9), np.float32, 0.0)
    m, v = C.chan_stats(noncontiguous(x, device))
    rm, rv = R.chan_stats(x)
    np.testing.assert_allclose(host(m), rm, rtol=1e-14)
    np.testing.assert_allclose(host(v), rv, rtol=1e-10)
    s1, s2 = C.chan_bwd_sums(noncontiguous(gy, device), noncontiguous(x, device), dev(rm, device))
    r1, r2 = R.chan_bwd_sums(gy, x, rm)
    np.testing.assert_allclose(host(s1), r1, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(host(s2), r2, rtol=1e-10, atol=1e-10)
    scale, shift = rng.standard_normal(4), rng.standard_normal(4)
    _close(C.chan_affine(noncontiguous(x, device), dev(scale, device), dev(shift, device)),
           R.chan_affine(x, scale, shift), np.float32)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_bad_input(device):
    x = dev(np.ones((2, 3, 4), np.int32), device)
    with pytest.raises(TypeError, match="chan_stats.*float32 or float64"):
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


@pytest.mark.parametrize("device", [d for d in KERNEL_DEVICES if d.id == "cuda"])
def test_dispatchers_use_the_kernels(device):
    """On CuPy arrays the dispatchers of kernels/norm.py run these kernels (poisoned outputs)."""
    rng = np.random.default_rng(1)
    x = _data(rng, (4, 6, 10), np.float32, 2.0)
    gy = _data(rng, (4, 6, 10), np.float32, 0.0)
    m, v = K.chan_stats(dev(x, device))
    np.testing.assert_allclose(host(v), R.chan_stats(x)[1], rtol=1e-10)
    x4 = x.reshape(4, 1, 60, 1)
    y, mean, rstd = K.row_norm_fwd(dev(x4, device), None, None, EPS)
    _close(y, R.row_norm_fwd(x4, None, None, EPS)[0], np.float32)
    gx, _, _ = K.row_norm_bwd(dev(gy.reshape(x4.shape), device), dev(x4, device), mean, rstd,
                              None, out_shape=(4, 6, 10))
    assert gx.shape == (4, 6, 10)


@pytest.mark.parametrize("norm", ["batch", "layer_affine", "layer", "instance", "group"])
def test_ops_through_the_kernels_under_the_emulator(norm, monkeypatch):
    """The norm ops of minicnn/ops/norm.py, forward and backward (running statistics included),
    give the same results with the dispatchers sending their NumPy arrays to the CUDA launch
    functions (run by the emulator) as on the CPU path."""
    from tests.cuda_util import emulator
    if not emulator.available():
        pytest.skip("no C++ compiler for the CUDA emulator")
    import minicnn as mc
    import minicnn.functional as F

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
        return [y.data, rm.data, rv.data] + [g.data for g in grads]

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


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_running_update(device, dtype):
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


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@settings(max_examples=15, deadline=None)
@given(N=st.integers(1, 6), G=st.integers(1, 3), S=st.integers(1, 9), I=st.integers(1, 40),
       chunk=st.sampled_from([32, 64, 100, 2048]), block=st.sampled_from([32, 64, 256]),
       fused=st.sampled_from([0, 8192]), affine=st.booleans(), f32=st.booleans(),
       seed=st.integers(0, 2**16))
def test_random_shapes(device, N, G, S, I, chunk, block, fused, affine, f32,  # noqa: E741
                       seed):
    """Random sizes and launch configurations: row norms forward/backward and batch norm stats."""
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
        d = lambda a: None if a is None else dev(a, device)  # noqa: E731
        y, mean, rstd = C.row_norm_fwd(d(x), d(w), d(b), EPS)
        ry, rmean, rrstd = R.row_norm_fwd(x, w, b, EPS)
        _close(y, ry, dtype, 100.0)
        gx, gw, gb = C.row_norm_bwd(d(gy), d(x), mean, rstd, d(w))
        rgx, rgw, rgb = R.row_norm_bwd(gy, x, rmean, rrstd, w)
        _close(gx, rgx, dtype, 100.0)
        np.testing.assert_allclose(host(gw).sum(0), rgw.sum(0), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(host(gb).sum(0), rgb.sum(0), rtol=1e-9, atol=1e-9)
        x3 = x.reshape(N, G * S, I)
        m3, v3 = C.chan_stats(d(x3))
        rm3, rv3 = R.chan_stats(x3)
        np.testing.assert_allclose(host(m3), rm3, rtol=1e-14)
        np.testing.assert_allclose(host(v3), rv3, rtol=1e-9, atol=1e-12)
        s1, s2 = C.chan_bwd_sums(d(gy.reshape(x3.shape)), d(x3), d(rm3))
        r1, r2 = R.chan_bwd_sums(gy.reshape(x3.shape), x3, rm3)
        np.testing.assert_allclose(host(s1), r1, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(host(s2), r2, rtol=1e-9, atol=1e-9)
