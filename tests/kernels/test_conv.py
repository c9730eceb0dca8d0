"""The conv family (minicnn.kernels.conv). im2col / col2im through the API against the NumPy
references (kernels/conv/reference.py, im2col also against the definition) on cpu, emu and cuda;
the CUDA launch layer (the implicit-GEMM forward, input checks) on emu and cuda; the CPU's
threaded path and column workspace; the algorithm rule, its override and the per-thread record;
the conv ops on the GPU path (emu, cuda) against the CPU path."""
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn.kernels import conv as K
from minicnn.kernels._blas import gemm
from minicnn.kernels._numba import SMALL_WORK
from minicnn.kernels.conv import cpu as CPU
from minicnn.kernels.conv import cuda as CC
from minicnn.kernels.conv import reference as RC
from minicnn.kernels.grouped import MAX_CG
from cuda_util import KERNEL_DEVICES, dev, emulate, host, noncontiguous

from . import half_util as Hf

TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}
HYPER = ("KH", "KW", "SH", "SW", "PH", "PW", "DH", "DW")


def examples(at_least=None):
    """hypothesis settings for a test taking the `kernel_device` fixture (set once for all its
    examples): the profile's example count, or `at_least` when the profile asks for fewer."""
    more = {} if at_least is None else dict(
        max_examples=max(at_least, settings.default.max_examples))
    return settings(suppress_health_check=[*settings.default.suppress_health_check,
                                           HealthCheck.function_scoped_fixture], **more)


@pytest.fixture(autouse=True)
def _rule_back():
    K.set_algorithm(None)      # also if $MINICNN_CONV_ALGORITHM forced one at import
    yield
    K.set_algorithm(None)


@st.composite
def geometry(draw, max_side=7):
    """A conv / pool window geometry with odd sizes: every (OH, OW) >= 1."""
    N, C = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    KH, KW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    SH, SW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    DH, DW = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    PH, PW = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    H = max(1, DH * (KH - 1) + 1 - 2 * PH) + draw(st.integers(0, max_side - 1))
    W = max(1, DW * (KW - 1) + 1 - 2 * PW) + draw(st.integers(0, max_side - 1))
    OH = (H + 2 * PH - DH * (KH - 1) - 1) // SH + 1
    OW = (W + 2 * PW - DW * (KW - 1) - 1) // SW + 1
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return dict(N=N, C=C, H=H, W=W, KH=KH, KW=KW, SH=SH, SW=SW, PH=PH, PW=PW, DH=DH, DW=DW,
                OH=OH, OW=OW, dtype=dtype, seed=draw(st.integers(0, 2 ** 32 - 1)))


def _data(g):
    rng = np.random.default_rng(g["seed"])
    return rng.standard_normal((g["N"], g["C"], g["H"], g["W"])).astype(g["dtype"])


def _args(g, *names):
    return [g[k] for k in names]


def _transposed(a, device):
    """The same values as `a` with its last two axes stored transposed (non-contiguous)."""
    return dev(np.ascontiguousarray(np.swapaxes(a, -1, -2)), device).swapaxes(-1, -2)


# --- im2col / col2im: the API on every device -------------------------------------------------

def _im2col_definition(x, g):
    N, C, H, W = x.shape
    col = np.zeros((C, g["KH"], g["KW"], N, g["OH"], g["OW"]), x.dtype)
    for c in range(C):
        for kh in range(g["KH"]):
            for kw in range(g["KW"]):
                for n in range(N):
                    for oh in range(g["OH"]):
                        for ow in range(g["OW"]):
                            h = oh * g["SH"] - g["PH"] + kh * g["DH"]
                            w = ow * g["SW"] - g["PW"] + kw * g["DW"]
                            if 0 <= h < H and 0 <= w < W:
                                col[c, kh, kw, n, oh, ow] = x[n, c, h, w]
    return col


@given(g=geometry())
def test_reference_im2col_is_the_definition(g):
    x = _data(g)
    np.testing.assert_array_equal(RC.im2col(x, *_args(g, *HYPER), g["OH"], g["OW"]),
                                  _im2col_definition(x, g))


@examples(at_least=15)
@given(g=geometry())
def test_im2col_col2im_match_reference(kernel_device, g):
    x = _data(g)
    hp = _args(g, *HYPER)
    ref = RC.im2col(x, *hp, g["OH"], g["OW"])
    for xd, workspace in ((dev(x, kernel_device), False), (dev(x, kernel_device), True),
                          (_transposed(x, kernel_device), False)):
        col = host(K.im2col(xd, *hp, g["OH"], g["OW"], workspace=workspace))
        assert col.dtype == g["dtype"]
        np.testing.assert_array_equal(col, ref)                      # a copy: exact
    rng = np.random.default_rng(g["seed"] + 1)
    gcol = rng.standard_normal(ref.shape).astype(g["dtype"])
    img = host(K.col2im(dev(gcol, kernel_device), g["H"], g["W"], *hp[2:]))
    assert img.dtype == g["dtype"] and img.shape == x.shape
    np.testing.assert_allclose(img, RC.col2im(gcol, g["H"], g["W"], *hp[2:]), **TOL[g["dtype"]])
    # the adjoint, in float64: <im2col(x), col> == <x, col2im(col)>
    x64, gcol64 = rng.standard_normal(x.shape), gcol.astype(np.float64)
    lhs = float((RC.im2col(x64, *hp, g["OH"], g["OW"]) * gcol64).sum())
    rhs = float((x64 * host(K.col2im(dev(gcol64, kernel_device), g["H"], g["W"],
                                     *hp[2:]))).sum())
    assert lhs == pytest.approx(rhs, rel=1e-10, abs=1e-10)


CASES = [  # N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW
    (1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1),
    (3, 5, 9, 7, 3, 3, 1, 1, 1, 1, 1, 1),
    (2, 3, 11, 13, 5, 3, 2, 3, 2, 1, 1, 2),
    (1, 4, 6, 5, 2, 4, 3, 1, 3, 4, 2, 1),     # padding larger than the kernel
    (2, 2, 8, 8, 1, 1, 2, 2, 0, 0, 1, 1),     # 1x1 strided
    (1, 33, 5, 3, 3, 1, 1, 1, 0, 0, 1, 1),    # more elements than one block of threads
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
def test_im2col_col2im_cases_and_adjoint(kernel_device, dtype, case):
    N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW = case
    OH = (H + 2 * PH - DH * (KH - 1) - 1) // SH + 1
    OW = (W + 2 * PW - DW * (KW - 1) - 1) // SW + 1
    rng = np.random.default_rng(sum(case))
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    hp = (KH, KW, SH, SW, PH, PW, DH, DW)
    col = host(K.im2col(noncontiguous(x, kernel_device), *hp, OH, OW))  # non-contiguous input
    np.testing.assert_array_equal(col, RC.im2col(x, *hp, OH, OW))
    c = rng.standard_normal(col.shape).astype(dtype)
    img = host(K.col2im(noncontiguous(c, kernel_device), H, W, *hp[2:]))
    np.testing.assert_allclose(img, RC.col2im(c, H, W, *hp[2:]), **TOL[dtype])
    # adjoint: <im2col(x), c> == <x, col2im(c)>
    lhs, rhs = np.vdot(col.astype(np.float64), c), np.vdot(x.astype(np.float64), img)
    assert abs(lhs - rhs) <= 1e-4 * (1 + abs(lhs))


def test_col2im_accumulates_overlapping_windows(kernel_device):
    # 3x3 windows, stride 1, padding 1 on 4x5: each pixel is read by (rows in range) x (cols)
    x = dev(np.ones((1, 1, 4, 5)), kernel_device)
    col = K.im2col(x, 3, 3, 1, 1, 1, 1, 1, 1, 4, 5)
    counts = host(K.col2im(col, 4, 5, 1, 1, 1, 1, 1, 1))[0, 0]
    rows = np.array([2, 3, 3, 2])[:, None]
    cols = np.array([2, 3, 3, 3, 2])[None, :]
    np.testing.assert_array_equal(counts, rows * cols)
    # stride 2 with a 3-wide kernel: the shared column/row is read twice
    col = K.im2col(dev(np.ones((1, 1, 5, 5)), kernel_device), 3, 3, 2, 2, 0, 0, 1, 1, 2, 2)
    counts = host(K.col2im(col, 5, 5, 2, 2, 0, 0, 1, 1))[0, 0]
    line = np.array([1, 1, 2, 1, 1])
    np.testing.assert_array_equal(counts, line[:, None] * line[None, :])


# --- winograd F(2x2, 3x3) on the CPU ---------------------------------------------------------

@st.composite
def winograd_geometry(draw):
    """A 3x3 stride-1 conv with odd sizes (partial tiles), any padding it takes, and sometimes
    fewer outputs than the full size (out_hw)."""
    N, C, Kk = draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    PH, PW = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    H, W = draw(st.integers(max(1, 3 - 2 * PH), 9)), draw(st.integers(max(1, 3 - 2 * PW), 9))
    if (H, W, PH, PW) == (3, 3, 0, 0):
        W = 4       # one window over the whole input is a fully-connected layer: 'dense'
    OH, OW = H + 2 * PH - 2, W + 2 * PW - 2
    OH, OW = OH - draw(st.integers(0, OH - 1)), OW - draw(st.integers(0, OW - 1))
    return N, C, Kk, H, W, PH, PW, OH, OW, draw(st.integers(0, 2 ** 32 - 1))


WINOGRAD = {2: "winograd", 4: "winograd4x4"}   # the algorithm of each output tile size


@pytest.fixture(params=[2, 4])
def winograd_everywhere(request, monkeypatch):
    """The CPU rule takes winograd for every 3x3 stride-1 conv, however small, in output tiles
    of 2x2 (F(2x2, 3x3)) or 4x4 (F(4x4, 3x3), forward and input gradient); the tile size."""
    monkeypatch.setattr(K, "WINOGRAD_MIN_CHANNELS", 1)
    monkeypatch.setattr(K, "WINOGRAD_MIN_TILES", 1)
    monkeypatch.setattr(K, "DIRECT_MAX_OUT", 0)      # these small convs: not the direct kernel
    monkeypatch.setattr(K, "DIRECT_MAX_OUT_FEW_TAPS", 0)
    monkeypatch.setattr(K, "WINOGRAD4_MIN_SIZE", 1 if request.param == 4 else 10 ** 9)
    return request.param


@given(g=winograd_geometry())
def test_winograd_reference_is_the_definition(g):
    N, C, Kk, H, W, PH, PW, OH, OW, seed = g
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal((N, C, H, W)), rng.standard_normal((Kk, C, 3, 3))
    want = RC.conv2d(x, w, 1, 1, PH, PW, 1, 1, 1)[:, :, :OH, :OW]
    for tile in (2, 4):
        np.testing.assert_allclose(RC.winograd_conv2d(x, w, PH, PW, OH, OW, tile=tile), want,
                                   rtol=1e-12, atol=1e-12)


@examples(at_least=30)
@given(g=winograd_geometry(), dtype=st.sampled_from([np.float32, np.float64]))
def test_winograd_matches_reference(winograd_everywhere, g, dtype):
    """The Numba transforms against the reference, forward and weight gradient: float64 to
    rounding; float32 within (n + a^2) eps of the absolute computation (|B^T|, |G|, |A^T| and
    the operands' absolute values), the growth of rounding errors through the three transforms
    ((tile + 2)^2 = a^2 terms at most) and a sum of n products (n = C forward, the T tiles for
    the gradient, which is F(2x2) for either tile)."""
    tile = winograd_everywhere
    N, C, Kk, H, W, PH, PW, OH, OW, seed = g
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((Kk, C, 3, 3)).astype(dtype)
    p = K.ConvParams((1, 1), (PH, PW), (1, 1), 1)
    y = K.conv2d(x, w, p, out_hw=(OH, OW))
    assert K.last_algorithm()["forward"] == WINOGRAD[tile] and y.dtype == dtype
    gy = rng.standard_normal(y.shape).astype(dtype)
    gw = K.conv2d_grad_weight(x, gy, w.shape, p)
    assert K.last_algorithm()["grad_weight"] == "winograd" and gw.dtype == dtype
    x64, w64, gy64 = x.astype(np.float64), w.astype(np.float64), gy.astype(np.float64)
    T = N * ((OH + 1) // 2) * ((OW + 1) // 2)
    for got, n, a, ref in (
            (y, C, tile + 2,
             lambda **k: RC.winograd_conv2d(x64, w64, PH, PW, OH, OW, tile=tile, **k)),
            (gw, T, 4, lambda **k: RC.winograd_grad_weight(x64, gy64, PH, PW, **k))):
        if dtype == np.float64:
            np.testing.assert_allclose(got, ref(), rtol=1e-12, atol=1e-12)
        else:
            bound = (n + a * a) * np.finfo(np.float32).eps * ref(absolute=True)
            assert np.all(np.abs(got - ref()) <= bound)


def test_winograd_rule():
    """Winograd where it measured faster: 3x3 stride 1, one group, enough channels and tiles;
    the stride-1 input gradient (a forward conv of gy) and the weight gradient too."""
    rng = np.random.default_rng(0)
    x = mc.tensor(rng.standard_normal((8, 16, 8, 8)).astype(np.float32), requires_grad=True)
    w = mc.tensor(rng.standard_normal((16, 16, 3, 3)).astype(np.float32), requires_grad=True)
    F.conv2d(x, w, padding=1).sum().backward()
    assert set(K.last_algorithm().values()) == {"winograd"}
    x16 = mc.tensor(rng.standard_normal((2, 16, 16, 17)).astype(np.float32), requires_grad=True)
    F.conv2d(x16, w, padding=1).sum().backward()        # 16x17 outputs: F(4x4, 3x3)
    assert K.last_algorithm() == {"forward": "winograd4x4", "grad_input": "winograd4x4",
                                  "grad_weight": "winograd"}
    for kw, xs in ((dict(stride=2, padding=1), (8, 16, 8, 8)), (dict(padding=1), (8, 15, 8, 8)),
                   (dict(padding=1, dilation=2), (8, 16, 8, 8)), (dict(padding=1), (1, 16, 8, 8)),
                   (dict(padding=1, groups=2), (8, 32, 8, 8))):
        xx = mc.tensor(rng.standard_normal(xs).astype(np.float32))
        F.conv2d(xx, mc.tensor(w.array[:, :xs[1] // kw.get("groups", 1)]), **kw)
        assert K.last_algorithm()["forward"] not in WINOGRAD.values(), kw


def test_winograd_nonfinite_as_the_definition(winograd_everywhere):
    """The transforms spread a NaN or inf over a whole tile (inf - inf); such a pass runs again
    through im2col_gemm, so NaN and inf land where the definition (and PyTorch) puts them."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 7, 6))
    w = rng.standard_normal((5, 4, 3, 3))
    x[0, 1, 3, 2], x[1, 3, 0, 5], w[2, 0, 1, 1] = np.inf, np.nan, -np.inf
    p = K.ConvParams((1, 1), (1, 1), (1, 1), 1)
    for xx, ww in ((x, np.nan_to_num(w)), (np.nan_to_num(x), w), (x, w)):
        want = RC.conv2d(xx, ww, 1, 1, 1, 1, 1, 1, 1)
        got = K.conv2d(xx, ww, p)
        assert K.last_algorithm()["forward"] == "im2col_gemm"
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)   # inf where inf
    gy = rng.standard_normal(want.shape)
    windows = RC.windows(x, 3, 3, 1, 1, 1, 1, 1, 1, 7, 6)
    for xx, gg, win in ((x, gy, windows), (np.nan_to_num(x), np.where(gy > 1, np.inf, gy),
                                           np.nan_to_num(windows))):
        want = np.einsum("nchwij,nkij->kchw", win, gg)          # the definition
        got = K.conv2d_grad_weight(xx, gg, w.shape, p)
        assert K.last_algorithm()["grad_weight"] == "im2col_gemm"
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("padding", [0, 1, 2, (2, 0)])
def test_winograd_conv_gradients(winograd_everywhere, padding):
    """conv2d through winograd (all three passes): float64 gradcheck and gradgradcheck."""
    rng = np.random.default_rng(7)
    x = mc.tensor(rng.standard_normal((2, 3, 5, 6)), requires_grad=True)
    w = mc.tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
    F.conv2d(x, w, padding=padding).sum().backward()
    tile = winograd_everywhere
    assert K.last_algorithm() == {"forward": WINOGRAD[tile], "grad_input": WINOGRAD[tile],
                                  "grad_weight": "winograd"}
    mc.testing.gradcheck(lambda x, w: F.conv2d(x, w, padding=padding), [x, w])
    mc.testing.gradgradcheck(lambda x, w: F.conv2d(x, w, padding=padding), [x, w])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_winograd_padded_workspace_rows(dtype):
    """T a multiple of 4 KiB of elements (here 16 x 8 x 8 = 1024 tiles of F(4x4)): v and m are
    views of longer rows (ROW_PAD), and the result is still the definition's."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((16, 16, 32, 32)).astype(dtype)
    w = rng.standard_normal((16, 16, 3, 3)).astype(dtype)
    assert 16 * 8 * 8 * x.itemsize % 4096 == 0
    padded = K._workspace((2, 3, 1024), dtype, 5, row_len=1024)
    assert padded.shape == (2, 3, 1024) and padded.strides[-2] == (1024 + K.ROW_PAD) * x.itemsize
    y = K.conv2d(x, w, K.ConvParams((1, 1), (1, 1), (1, 1), 1))
    assert K.last_algorithm()["forward"] == "winograd4x4"
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    want = RC.conv2d(x64, w64, 1, 1, 1, 1, 1, 1, 1)
    if dtype == np.float64:
        np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
    else:   # the bound of test_winograd_matches_reference
        bound = (16 + 36) * np.finfo(np.float32).eps * RC.winograd_conv2d(
            x64, w64, 1, 1, 32, 32, absolute=True, tile=4)
        assert np.all(np.abs(y - want) <= bound)


@st.composite
def dilated_winograd_geometry(draw):
    """A 3x3 stride-1 conv dilated by 1-3 on each axis, padding a multiple of the dilation (0, D
    or 2D), odd sizes (phase planes of unequal size), sometimes fewer outputs (out_hw)."""
    N, C, Kk = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    DH, DW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    PH, PW = DH * draw(st.integers(0, 2)), DW * draw(st.integers(0, 2))
    H = max(1, 2 * DH + 1 - 2 * PH) + draw(st.integers(0, 8))
    W = max(1, 2 * DW + 1 - 2 * PW) + draw(st.integers(0, 8))
    if (H, W, PH, PW) == (3, 3, 0, 0):
        W = 4       # one window over the whole input is a fully-connected layer: 'dense'
    OH, OW = H + 2 * PH - 2 * DH, W + 2 * PW - 2 * DW
    OH, OW = OH - draw(st.integers(0, OH - 1)), OW - draw(st.integers(0, OW - 1))
    return N, C, Kk, H, W, PH, PW, DH, DW, OH, OW, draw(st.integers(0, 2 ** 32 - 1))


@examples(at_least=30)
@given(g=dilated_winograd_geometry(), dtype=st.sampled_from([np.float32, np.float64]))
def test_dilated_winograd_matches_definition(winograd_everywhere, g, dtype):
    """A dilated conv through Winograd over its phase planes, forward and weight gradient,
    against the dilated definition: float64 to rounding; float32 within the bound of
    test_winograd_matches_reference computed on the phase planes (each an undilated conv)."""
    tile = winograd_everywhere
    N, C, Kk, H, W, PH, PW, DH, DW, OH, OW, seed = g
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((Kk, C, 3, 3)).astype(dtype)
    p = K.ConvParams((1, 1), (PH, PW), (DH, DW), 1)
    y = K.conv2d(x, w, p, out_hw=(OH, OW))
    assert K.last_algorithm()["forward"] == WINOGRAD[tile]
    gy = rng.standard_normal(y.shape).astype(dtype)
    gw = K.conv2d_grad_weight(x, gy, w.shape, p)
    assert K.last_algorithm()["grad_weight"] == "winograd" and gw.dtype == y.dtype == dtype
    x64, w64, gy64 = x.astype(np.float64), w.astype(np.float64), gy.astype(np.float64)
    want = RC.conv2d(x64, w64, 1, 1, PH, PW, DH, DW, 1)[:, :, :OH, :OW]
    windows = RC.windows(x64, 3, 3, 1, 1, PH, PW, DH, DW, OH, OW)
    want_gw = np.einsum("nchwij,nkij->kchw", windows, gy64)
    if dtype == np.float64:
        np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(gw, want_gw, rtol=1e-12, atol=1e-12)
        return
    xs, gys = CPU.phase_images(x64, DH, DW), CPU.phase_images(gy64, DH, DW)
    Ps, OHs, OWs = (PH // DH, PW // DW), gys.shape[2], gys.shape[3]
    eps = np.finfo(np.float32).eps
    bound = CPU.from_phase_images(
        RC.winograd_conv2d(xs, w64, *Ps, OHs, OWs, absolute=True, tile=tile), DH, DW,
        np.empty(y.shape)) * (C + (tile + 2) ** 2) * eps
    assert np.all(np.abs(y - want) <= bound)
    T = xs.shape[0] * ((OHs + 1) // 2) * ((OWs + 1) // 2)
    bound = (T + 16) * eps * RC.winograd_grad_weight(xs, gys, *Ps, absolute=True)
    assert np.all(np.abs(gw - want_gw) <= bound)


@given(N=st.integers(1, 3), C=st.integers(1, 3), H=st.integers(1, 11), W=st.integers(1, 11),
       DH=st.integers(1, 4), DW=st.integers(1, 4))
def test_phase_images_round_trip(N, C, H, W, DH, DW):
    """phase_images: image (n * DH + ph) * DW + pw is x[n, :, ph::DH, pw::DW] zero-filled to
    ceil(H / DH) x ceil(W / DW); from_phase_images puts the planes back exactly."""
    x = np.random.default_rng(H * W).standard_normal((N, C, H, W))
    xs = CPU.phase_images(x, DH, DW)
    assert xs.shape == (N * DH * DW, C, -(-H // DH), -(-W // DW))
    for n, ph, pw in np.ndindex(N, DH, DW):
        plane, image = x[n, :, ph::DH, pw::DW], xs[(n * DH + ph) * DW + pw]
        np.testing.assert_array_equal(image[:, :plane.shape[1], :plane.shape[2]], plane)
        assert not image[:, plane.shape[1]:].any() and not image[:, :, plane.shape[2]:].any()
    np.testing.assert_array_equal(CPU.from_phase_images(xs, DH, DW, np.empty_like(x)), x)


def test_dilated_winograd_rule():
    """'Same' dilated 3x3 convs take Winograd (F(4x4) where a phase plane's output is at least
    WINOGRAD4_MIN_SIZE): dilation 2, padding 2, as DeepLab's; padding 1 at dilation 2 (not a
    multiple) does not."""
    rng = np.random.default_rng(5)
    x = mc.tensor(rng.standard_normal((2, 16, 40, 36)).astype(np.float32), requires_grad=True)
    w = mc.tensor(rng.standard_normal((16, 16, 3, 3)).astype(np.float32), requires_grad=True)
    F.conv2d(x, w, padding=2, dilation=2).sum().backward()
    assert K.last_algorithm() == {"forward": "winograd4x4", "grad_input": "winograd4x4",
                                  "grad_weight": "winograd"}
    F.conv2d(x, w, padding=(4, 2), dilation=(4, 2)).sum().backward()   # 10x18 phase planes
    assert set(K.last_algorithm().values()) == {"winograd"}
    F.conv2d(x, w, padding=1, dilation=2)
    assert K.last_algorithm()["forward"] not in WINOGRAD.values()


@pytest.mark.parametrize("padding, dilation", [(2, 2), ((3, 2), (3, 1)), (4, 2)])
def test_dilated_winograd_conv_gradients(winograd_everywhere, padding, dilation):
    """A dilated conv through winograd (all three passes): float64 gradcheck."""
    rng = np.random.default_rng(8)
    x = mc.tensor(rng.standard_normal((2, 3, 7, 6)), requires_grad=True)
    w = mc.tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
    F.conv2d(x, w, padding=padding, dilation=dilation).sum().backward()
    tile = winograd_everywhere
    assert K.last_algorithm() == {"forward": WINOGRAD[tile], "grad_input": WINOGRAD[tile],
                                  "grad_weight": "winograd"}
    mc.testing.gradcheck(lambda x, w: F.conv2d(x, w, padding=padding, dilation=dilation),
                         [x, w])


def test_dilated_winograd_nonfinite_as_the_definition(winograd_everywhere):
    """A NaN or inf in a dilated conv's input: the pass runs again through im2col_gemm on the
    original arrays, so the outputs are the definition's."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 9, 8))
    x[1, 2, 4, 3], x[0, 0, 0, 7] = np.inf, np.nan
    w = rng.standard_normal((4, 3, 3, 3))
    p = K.ConvParams((1, 1), (2, 2), (2, 2), 1)
    want = RC.conv2d(x, w, 1, 1, 2, 2, 2, 2, 1)
    got = K.conv2d(x, w, p)
    assert K.last_algorithm()["forward"] == "im2col_gemm"
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


# --- 'direct': few output channels, stride 1, no columns --------------------------------------

@st.composite
def direct_geometry(draw):
    """A stride-1 conv with any padding and dilation, odd sizes, sometimes fewer outputs than
    the full size (out_hw: the adjoint of a transposed conv with output_padding)."""
    N, C, Kk = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 5))
    KH, KW = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    DH, DW = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    PH, PW = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    H = max(1, DH * (KH - 1) + 1 - 2 * PH) + draw(st.integers(0, 6))
    W = max(1, DW * (KW - 1) + 1 - 2 * PW) + draw(st.integers(0, 6))
    OH, OW = H + 2 * PH - DH * (KH - 1), W + 2 * PW - DW * (KW - 1)
    OH, OW = OH - draw(st.integers(0, OH - 1)), OW - draw(st.integers(0, OW - 1))
    return N, C, Kk, H, W, KH, KW, PH, PW, DH, DW, OH, OW, draw(st.integers(0, 2 ** 32 - 1))


@examples(at_least=40)
@given(g=direct_geometry(), bias=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]))
def test_direct_matches_reference(g, bias, dtype):
    """The direct kernel against the definition, bias fused, on random data."""
    N, C, Kk, H, W, KH, KW, PH, PW, DH, DW, OH, OW, seed = g
    rng = np.random.default_rng(seed)
    x = noncontiguous(rng.standard_normal((N, C, H, W)).astype(dtype), "cpu")
    w = rng.standard_normal((Kk, C, KH, KW)).astype(dtype)
    b = rng.standard_normal(Kk).astype(dtype) if bias else None
    y = CPU.direct_conv2d(x, w, b, PH, PW, DH, DW, OH, OW)
    want = RC.conv2d(x, w, 1, 1, PH, PW, DH, DW, 1)[:, :, :OH, :OW]
    if b is not None:
        want = want + b.reshape(1, -1, 1, 1)
    assert y.shape == (N, Kk, OH, OW) and y.dtype == dtype
    np.testing.assert_allclose(y, want, **_tol(dtype, C * KH * KW))


def test_direct_parallel_path_and_workspace():
    """Above SMALL_WORK (the kernel on the thread pool), padded through the workspace."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((5, 3, 23, 19)).astype(np.float32)
    w = rng.standard_normal((7, 3, 5, 3)).astype(np.float32)
    p = K.ConvParams((1, 1), (2, 1), (2, 1), 1)
    y = K.conv2d(x, w, p)
    assert K.last_algorithm()["forward"] == "direct" and y.size * 45 > SMALL_WORK
    np.testing.assert_allclose(y, RC.conv2d(x, w, 1, 1, 2, 1, 2, 1, 1), **_tol(np.float32, 45))


def test_direct_rule():
    """The direct kernel for stride-1 one-group convs with few output channels (or a short sum
    and up to 32), forward and the input gradient run as a forward conv of gy (C channels out);
    never the weight gradient; winograd first where it applies."""
    def algos(xs, ws, **kw):
        x = mc.tensor(np.ones(xs, np.float32), requires_grad=True)
        w = mc.tensor(np.ones(ws, np.float32), requires_grad=True)
        F.conv2d(x, w, **kw).sum().backward()
        return K.last_algorithm()
    assert algos((4, 1, 28, 28), (6, 1, 5, 5)) == {                      # LeNet-5's convs
        "forward": "direct", "grad_input": "direct", "grad_weight": "im2col_gemm"}
    assert algos((4, 6, 14, 14), (16, 6, 5, 5)) == {
        "forward": "direct", "grad_input": "direct", "grad_weight": "im2col_gemm"}
    assert algos((2, 1, 12, 12), (32, 1, 3, 3))["forward"] == "direct"    # 9 taps, 32 out
    got = algos((2, 2, 12, 12), (32, 2, 5, 5))         # 50 taps, 32 out; gx: 32 * 25 -> 2
    assert got["forward"] == "im2col_gemm" and got["grad_input"] == "direct"
    assert algos((2, 4, 12, 12), (17, 4, 3, 3), padding=1)["forward"] == "im2col_gemm"
    assert algos((2, 3, 12, 12), (8, 3, 3, 3), stride=2)["forward"] == "im2col_gemm"
    assert algos((2, 4, 12, 12), (8, 2, 3, 3), groups=2)["forward"] != "direct"
    assert algos((8, 16, 8, 8), (16, 16, 3, 3), padding=1)["forward"] == "winograd"


@pytest.mark.parametrize("kw", [dict(padding=1), dict(padding=(2, 0), dilation=(1, 2)),
                                dict(padding="same", dilation=2)])
def test_direct_conv_gradients(kw):
    """conv2d through the direct kernel (forward and input gradient): float64 gradcheck and
    gradgradcheck, and conv_transpose2d, whose forward is the input gradient."""
    rng = np.random.default_rng(11)
    x = mc.tensor(rng.standard_normal((2, 3, 6, 7)), requires_grad=True)
    w = mc.tensor(rng.standard_normal((4, 3, 3, 2)), requires_grad=True)
    b = mc.tensor(rng.standard_normal(4), requires_grad=True)
    F.conv2d(x, w, b, **kw).sum().backward()
    assert K.last_algorithm()["forward"] == K.last_algorithm()["grad_input"] == "direct"
    mc.testing.gradcheck(lambda x, w, b: F.conv2d(x, w, b, **kw), [x, w, b])
    mc.testing.gradgradcheck(lambda x, w, b: F.conv2d(x, w, b, **kw), [x, w, b])
    y = mc.tensor(rng.standard_normal((2, 4, 5, 5)), requires_grad=True)
    mc.testing.gradcheck(lambda y, w: F.conv_transpose2d(y, w, padding=1), [y, w])
    assert K.last_algorithm()["forward"] == "direct"


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("xs, ws, kw, algo", [
    ((3, 8, 41, 39), (32, 8, 3, 3), dict(stride=2, padding=1), "im2col_gemm"),
    ((2, 5, 30, 29), (24, 5, 5, 5), dict(padding=(2, 1), dilation=(1, 2)), "im2col_gemm"),
    ((3, 64, 20, 21), (40, 64, 1, 1), {}, "gemm_1x1"),
    ((3, 64, 41, 40), (64, 64, 1, 1), dict(stride=2), "gemm_1x1"),
])
def test_forward_gemm_per_image(threads, xs, ws, kw, algo, monkeypatch):
    """Forward GEMMs large enough to go image by image (in column pieces) straight into y:
    equal to the definition, with the bias, on one BLAS thread and shared over two (where
    each image's product is of any size, for these small images)."""
    assert K.PER_IMAGE_MIN_COLUMNS <= 400 and np.prod(ws) * xs[0] * 400 >= K.SPREAD_GEMM_MACS
    monkeypatch.setattr(K, "PER_IMAGE_MIN_MACS_THREADED", 0)
    calls = []
    monkeypatch.setattr(K, "_gemm_per_image", lambda *a, f=K._gemm_per_image: calls.append(1)
                        or f(*a))
    rng = np.random.default_rng(xs[1])
    x, w = rng.standard_normal(xs).astype(np.float32), rng.standard_normal(ws).astype(np.float32)
    b = rng.standard_normal(ws[0]).astype(np.float32)
    before = mc.get_num_threads()
    mc.set_num_threads(threads)
    try:
        y = F.conv2d(mc.tensor(x), mc.tensor(w), mc.tensor(b), **kw).numpy()
    finally:
        mc.set_num_threads(before)
    assert K.last_algorithm()["forward"] == algo and calls
    s, pd, d = (kw.get(k, v) for k, v in (("stride", 1), ("padding", 0), ("dilation", 1)))
    s, pd, d = ((v, v) if isinstance(v, int) else v for v in (s, pd, d))
    want = RC.conv2d(x.astype(np.float64), w.astype(np.float64), *s, *pd, *d, 1)
    np.testing.assert_allclose(y, want + b.reshape(1, -1, 1, 1), **_tol(np.float32, np.prod(ws[1:])))


@pytest.mark.parametrize("threads, per_image", [(1, True), (2, False)])
def test_forward_per_image_rule(threads, per_image, monkeypatch):
    """With the BLAS on several threads a forward goes image by image only where each image's
    product is at least PER_IMAGE_MIN_MACS_THREADED; on one thread from PER_IMAGE_MIN_COLUMNS
    outputs per image (here 256 of 128 x 1024 multiply-adds, DCGAN's second conv's shape)."""
    calls = []
    monkeypatch.setattr(K, "_gemm_per_image", lambda *a, f=K._gemm_per_image: calls.append(1)
                        or f(*a))
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 64, 32, 32)).astype(np.float32)
    w = rng.standard_normal((128, 64, 4, 4)).astype(np.float32)
    assert 128 * 1024 * 256 < K.PER_IMAGE_MIN_MACS_THREADED
    before = mc.get_num_threads()
    mc.set_num_threads(threads)
    try:
        y = F.conv2d(mc.tensor(x), mc.tensor(w), stride=2, padding=1).numpy()
    finally:
        mc.set_num_threads(before)
    assert bool(calls) == per_image and K.last_algorithm()["forward"] == "im2col_gemm"
    want = RC.conv2d(x.astype(np.float64), w.astype(np.float64), 2, 2, 1, 1, 1, 1, 1)
    np.testing.assert_allclose(y, want, **_tol(np.float32, 1024))


def test_forward_gemm_per_image_with_fewer_outputs():
    """A 1x1 stride-1 conv asked for fewer outputs than its input's size (out_hw) takes its
    columns from the strided view, not x's planes as they lie (that reshape failed)."""
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((3, 64, 20, 21)), rng.standard_normal((40, 64, 1, 1))
    p = K.ConvParams((1, 1), (0, 0), (1, 1), 1)
    y = K.conv2d(x, w, p, out_hw=(19, 20))
    assert K.last_algorithm()["forward"] == "gemm_1x1" and 40 * 64 * 3 * 380 >= K.SPREAD_GEMM_MACS
    np.testing.assert_allclose(y, RC.conv2d(x, w, 1, 1, 0, 0, 1, 1, 1)[:, :, :19, :20],
                               rtol=1e-12, atol=1e-12)


# --- the CPU layer: threads and the column workspace ------------------------------------------

def test_cpu_parallel_path_matches_reference():
    """Big enough that the Numba kernels run multi-threaded (above SMALL_WORK)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 8, 25, 19)).astype(np.float32)
    args = (3, 3, 2, 1, 1, 2, 1, 2, 12, 15)
    col = K.im2col(x, *args)
    assert col.size > SMALL_WORK
    np.testing.assert_array_equal(col, RC.im2col(x, *args))
    np.testing.assert_allclose(K.col2im(col, 25, 19, 2, 1, 1, 2, 1, 2),
                               RC.col2im(col, 25, 19, 2, 1, 1, 2, 1, 2), rtol=1e-5, atol=1e-5)


def test_cpu_workspace_is_reused():
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 9)).astype(np.float32)
    K.release_workspace()
    a = K.im2col(x, 3, 3, 1, 1, 1, 1, 1, 1, 9, 9, workspace=True)
    size = K.workspace_bytes()
    assert size == a.nbytes + 3 * 2 * 11 * 11 * 4     # the columns and the zero-bordered x
    b = K.im2col(x[:1], 3, 3, 1, 1, 1, 1, 1, 1, 9, 9, workspace=True)  # smaller: same buffer
    assert K.workspace_bytes() == size
    assert np.shares_memory(a, b)


# --- 'dense': one window over the whole input ------------------------------------------------

@given(N=st.integers(1, 3), C=st.integers(1, 4), Kk=st.integers(1, 4), KH=st.integers(1, 4),
       KW=st.integers(1, 4), S=st.integers(1, 3), bias=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2 ** 32 - 1))
def test_dense_passes_match_the_definition(N, C, Kk, KH, KW, S, bias, dtype, seed):
    """A kernel as large as the unpadded input (any stride: one output position) runs as a
    fully-connected layer, all three passes, equal to the reference / the definition."""
    rng = np.random.default_rng(seed)
    x = noncontiguous(rng.standard_normal((N, C, KH, KW)).astype(dtype), "cpu")
    w = rng.standard_normal((Kk, C, KH, KW)).astype(dtype)
    b = rng.standard_normal(Kk).astype(dtype) if bias else None
    p = K.ConvParams((S, S), (0, 0), (1, 1), 1)
    algo = "gemm_1x1" if KH == KW == 1 else "dense"     # a 1x1 kernel takes gemm_1x1 first
    y = K.conv2d(x, w, p, b)
    want = RC.conv2d(x, w, S, S, 0, 0, 1, 1, 1) + (0 if b is None else b.reshape(1, -1, 1, 1))
    assert K.last_algorithm()["forward"] == algo and y.dtype == dtype
    np.testing.assert_allclose(y, want, **TOL[dtype])
    gy = rng.standard_normal((N, Kk, 1, 1)).astype(dtype)
    gx = K.conv2d_grad_input(w, gy, x.shape, p)
    gw = K.conv2d_grad_weight(x, gy, w.shape, p)
    assert K.last_algorithm()["grad_input"] == K.last_algorithm()["grad_weight"] == algo
    np.testing.assert_allclose(gx, np.einsum("nk,kchw->nchw", gy[:, :, 0, 0], w), **TOL[dtype])
    np.testing.assert_allclose(gw, np.einsum("nk,nchw->kchw", gy[:, :, 0, 0], x), **TOL[dtype])
    assert gx.dtype == gw.dtype == dtype


def test_dense_only_where_one_window_covers_the_input():
    x = np.ones((2, 3, 4, 4))
    for w_shape, kw in (((5, 3, 4, 4), dict(padding=1)), ((5, 3, 3, 3), {}),
                        ((6, 1, 4, 4), dict(groups=3))):
        F.conv2d(mc.tensor(x), mc.tensor(np.ones(w_shape)), **kw)
        assert K.last_algorithm()["forward"] != "dense", (w_shape, kw)


# --- columns kept from the forward for the weight gradient -------------------------------------

@examples(at_least=20)
@given(g=geometry(), G=st.integers(1, 2))
def test_kept_columns_are_the_weight_gradients_columns(g, G):
    """conv2d(keep_columns=True) returns the im2col columns (exactly) with the same output, and
    the weight gradient from them equals the one that builds them again, bit for bit."""
    x = np.repeat(_data(g), G, axis=1)                                  # C * G channels
    rng = np.random.default_rng(g["seed"] + 1)
    w = rng.standard_normal((3 * G, g["C"], g["KH"], g["KW"])).astype(g["dtype"])
    p = K.ConvParams(_args(g, "SH", "SW"), _args(g, "PH", "PW"), _args(g, "DH", "DW"), G)
    y, kept = K.conv2d(x, w, p, keep_columns=True)
    if K.last_algorithm()["forward"] != "im2col_gemm":
        assert kept is None
        return
    np.testing.assert_array_equal(y, K.conv2d(x, w, p))
    col = RC.im2col(x, *_args(g, *HYPER), g["OH"], g["OW"])
    np.testing.assert_array_equal(kept.array, col.reshape(kept.array.shape))
    gy = rng.standard_normal(y.shape).astype(g["dtype"])
    np.testing.assert_array_equal(K.conv2d_grad_weight(x, gy, w.shape, p, kept),
                                  K.conv2d_grad_weight(x, gy, w.shape, p))


def _conv_step(fn, x, w, seed=0):
    """Gradients of <fn(x, w), r> for a random r."""
    y = fn(x, w)
    y.backward(mc.tensor(np.random.default_rng(seed).standard_normal(y.shape)))
    return x.grad.numpy().copy(), w.grad.numpy().copy()


@pytest.mark.parametrize("fn,w_shape", [
    (lambda x, w: F.conv2d(x, w, stride=2, padding=1), (6, 4, 4, 4)),
    (lambda x, w: F.conv2d(x, w, stride=(1, 2), padding=(0, 2), groups=2), (6, 2, 3, 2)),
    (lambda x, w: F.conv_transpose2d(x, w, stride=2, padding=1), (4, 3, 4, 4)),
])
def test_kept_columns_do_not_change_gradients(monkeypatch, fn, w_shape):
    """The same gradients, bit for bit, with and without keeping (budget 0); the buffers go
    back to the pool after the backward, and are taken from it again the next step. (A
    transposed conv keeps the columns of its output's gradient within its backward.)"""
    from minicnn.kernels.conv import kept as KP  # noqa: PLC0415
    rng = np.random.default_rng(5)
    x = mc.tensor(rng.standard_normal((2, 4, 9, 8)).astype(np.float32), requires_grad=True)
    w = mc.tensor(rng.standard_normal(w_shape).astype(np.float32), requires_grad=True)
    K.release_workspace()
    got = _conv_step(fn, x, w)
    assert KP.POOL.lent == 0 and len(KP.POOL.free) == 1       # it kept one, and gave it back
    buf = KP.POOL.free[0]
    x.grad = w.grad = None
    y = fn(x, w)
    if y.grad_fn.name == "Conv2d":
        assert KP.POOL.lent == buf.size and not KP.POOL.free  # the same buffer, taken again
        del y
        assert KP.POOL.lent == 0                               # a dropped graph gives it back
    monkeypatch.setattr(KP, "MAX_BYTES", 0)
    x.grad = w.grad = None
    want = _conv_step(fn, x, w)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_columns_kept_only_for_a_weight_gradient():
    from minicnn.kernels.conv import kept as KP  # noqa: PLC0415
    x = mc.tensor(np.random.default_rng(0).standard_normal((2, 3, 8, 8)), requires_grad=True)
    w = mc.tensor(np.ones((4, 3, 3, 3)), requires_grad=True)
    K.release_workspace()
    with mc.no_grad():
        y = F.conv2d(x, w, stride=2)
    assert KP.POOL.lent == 0
    y = F.conv2d(x, w.detach(), stride=2)                        # only x needs a gradient
    assert KP.POOL.lent == 0
    y = F.conv2d(x, w, stride=2)
    assert KP.POOL.lent > 0
    del y


def test_kept_columns_budget(monkeypatch):
    """Past MAX_BYTES a forward keeps nothing; pooled buffers count against it and are let go
    first."""
    from minicnn.kernels.conv import kept as KP  # noqa: PLC0415
    limit = 1 << 20
    monkeypatch.setattr(KP, "MAX_BYTES", limit)
    pool = KP._Pool()
    a = pool.take(limit // 2)
    assert a is not None and pool.lent == a.size
    assert pool.take(limit // 2 + 1) is None and pool.lent == a.size
    pool.give(a)
    assert pool.lent == 0 and pool.free == [a]
    b = pool.take(limit // 4 - 1)                # a is more than twice as large: a new one
    assert b is not a and b.size == limit // 4 - 1
    c = pool.take(3 * limit // 4)                # a does not fit beside b: let go
    assert c is not None and pool.free == []
    pool.give(b)
    pool.give(c)
    assert pool.lent == 0 and sum(x.size for x in pool.free) <= limit


def test_kept_columns_across_threads():
    """Several Python threads training the same conv at once: each backward reads its own
    forward's columns."""
    rng = np.random.default_rng(1)
    w0 = rng.standard_normal((6, 3, 3, 3)).astype(np.float32)
    xs = [rng.standard_normal((2, 3, 11, 9)).astype(np.float32) for _ in range(4)]

    def grads(x):
        xx, ww = mc.tensor(x, requires_grad=True), mc.tensor(w0, requires_grad=True)
        return _conv_step(lambda a, b: F.conv2d(a, b, stride=2, padding=1), xx, ww)
    want = [grads(x) for x in xs]
    got = [None] * len(xs)

    def run(i):
        for _ in range(5):
            got[i] = grads(xs[i])
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for g, wnt in zip(got, want):
        for a, b in zip(g, wnt):
            np.testing.assert_array_equal(a, b)


# --- the CPU's GEMMs: one BLAS thread for small products, long sums in parts -------------------

@examples(at_least=15)
@given(g=geometry(), chunk=st.integers(1, 9))
def test_grad_weight_in_partial_sums(monkeypatch, g, chunk):
    """A weight gradient with few outputs and a long sum adds partial products of `chunk`
    columns (made small here so that odd remainders occur): equal to the definition."""
    monkeypatch.setattr(K, "LONG_SUM_CHUNK", chunk)
    monkeypatch.setattr(K, "SMALL_OUTPUT", 10 ** 6)
    x = _data(g)
    rng = np.random.default_rng(g["seed"] + 2)
    p = K.ConvParams(_args(g, "SH", "SW"), _args(g, "PH", "PW"), _args(g, "DH", "DW"), 1)
    gy = rng.standard_normal((g["N"], 2, g["OH"], g["OW"])).astype(g["dtype"])
    gw = K.conv2d_grad_weight(x, gy, (2, g["C"], g["KH"], g["KW"]), p)
    win = RC.windows(x.astype(np.float64), *_args(g, *HYPER), g["OH"], g["OW"])
    want = np.einsum("nchwij,nkij->kchw", win, gy.astype(np.float64))
    assert gw.dtype == g["dtype"]
    np.testing.assert_allclose(gw, want, **{np.float32: dict(rtol=1e-4, atol=1e-4),
                                            np.float64: TOL[np.float64]}[g["dtype"]])


def test_small_gemms_run_on_one_blas_thread(monkeypatch):  # kernels/_blas.py
    """With a 2-thread BLAS: a product below SPREAD_GEMM_MACS runs whole on one BLAS thread,
    one below SMALL_GEMM_MACS in column pieces (over Python threads, each on one BLAS thread),
    a larger one on the BLAS's threads; the width is put back after, the values are a@b's."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not threadpoolctl.threadpool_info():
        pytest.skip("no BLAS that threadpoolctl controls")
    seen = []
    matmul = np.matmul

    def width():
        return max(i["num_threads"] for i in threadpoolctl.threadpool_info()
                   if i["user_api"] == "blas")

    def spy(a, b, out=None):
        seen.append((width(), b.shape[-1]))
        return matmul(a, b, out=out)
    rng = np.random.default_rng(0)
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        monkeypatch.setattr(np, "matmul", spy)
        got = {}
        for m, k, n in ((6, 25, 3000), (6, 25, 50001), (64, 512, 1024)):   # 0.45M, 7.5M, 34M
            a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
            seen.clear()
            np.testing.assert_allclose(gemm(a, b), matmul(a, b), rtol=1e-12)
            got[n] = sorted(seen)
        monkeypatch.setattr(np, "matmul", matmul)
        assert got[3000] == [(1, 3000)]
        assert got[50001] == [(1, 12500), (1, 12500), (1, 12500), (1, 12501)]   # 4 pieces
        assert got[1024] == [(2, 1024)]
        assert width() == 2


# --- the CUDA launch layer: input checks, the implicit GEMM -----------------------------------

@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_im2col_col2im_bad_input(device):
    with pytest.raises(ValueError, match="im2col: expected a 4-D input"):
        CC.im2col(dev(np.zeros((2, 3, 4)), device), 1, 1, 1, 1, 0, 0, 1, 1, 3, 4)
    with pytest.raises(ValueError, match="col2im: expected a 6-D column buffer"):
        CC.col2im(dev(np.zeros((2, 3, 4)), device), 3, 4, 1, 1, 0, 0, 1, 1)
    with pytest.raises(TypeError, match="im2col: expected float32, float64, float16 or bf"):
        CC.im2col(dev(np.zeros((1, 1, 3, 3), np.int32), device), 1, 1, 1, 1, 0, 0, 1, 1, 3, 3)


IG_CASES = [  # N, C, H, W, K, KH, KW, SH, SW, PH, PW, DH, DW, G, bias
    (1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, False),
    (2, 3, 7, 6, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, True),      # CKK = 27: not a multiple of 8
    (3, 6, 9, 8, 70, 3, 3, 1, 2, 1, 0, 1, 1, 2, True),     # Kg = 35, grid.z = 2
    (2, 4, 13, 11, 67, 2, 3, 2, 1, 2, 1, 2, 1, 1, False),  # Kg = 67: two M tiles; N*L = 182
    (1, 9, 5, 7, 6, 1, 1, 1, 1, 0, 0, 1, 1, 3, True),      # 1x1 grouped
    (2, 2, 12, 12, 3, 5, 5, 3, 3, 4, 4, 1, 1, 1, True),    # padding wider than the image edge
]


def _ig_case(case, dtype):
    N, C, H, W, Kk, KH, KW, SH, SW, PH, PW, DH, DW, G, bias = case
    rng = np.random.default_rng(sum(case[:-1]))
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((Kk, C // G, KH, KW)).astype(dtype)
    b = rng.standard_normal(Kk).astype(dtype) if bias else None
    ref = RC.conv2d(x.astype(np.float64), w.astype(np.float64), SH, SW, PH, PW, DH, DW, G)
    if b is not None:
        ref = ref + b.reshape(1, -1, 1, 1)
    return x, w, b, ref, (SH, SW, PH, PW, DH, DW), G


def _tol(dtype, ckk):
    if dtype == np.float64:
        return dict(rtol=1e-12, atol=1e-12)
    return dict(rtol=1e-5, atol=1e-6 * ckk)   # fp32 sums of ckk products of N(0, 1) values


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("block_m", [None, 32, 64])
@pytest.mark.parametrize("case", IG_CASES)
def test_implicit_gemm_matches_reference(device, dtype, block_m, case):
    x, w, b, ref, hp, G = _ig_case(case, dtype)
    OH, OW = ref.shape[2:]
    y = CC.implicit_gemm_conv2d(noncontiguous(x, device), dev(w, device), *hp, OH, OW, G,
                                None if b is None else dev(b, device), block_m=block_m)
    y = host(y)
    assert y.dtype == dtype and y.shape == ref.shape
    np.testing.assert_allclose(y, ref, **_tol(dtype, w[0].size))


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@settings(max_examples=12, deadline=None)
@given(g=geometry(), Kk=st.integers(1, 70), G=st.sampled_from([1, 2, 3]),
       block_m=st.sampled_from([None, 32, 64]))
def test_implicit_gemm_random_geometry(device, g, Kk, G, block_m):
    C, Kk = g["C"] * G, Kk * G
    rng = np.random.default_rng(g["seed"])
    x = rng.standard_normal((g["N"], C, g["H"], g["W"])).astype(g["dtype"])
    w = rng.standard_normal((Kk, g["C"], g["KH"], g["KW"])).astype(g["dtype"])
    hp = _args(g, *HYPER[2:])
    y = host(CC.implicit_gemm_conv2d(dev(x, device), dev(w, device), *hp, g["OH"], g["OW"], G,
                                     block_m=block_m))
    ref = RC.conv2d(x.astype(np.float64), w.astype(np.float64), *hp, G)
    np.testing.assert_allclose(y, ref, **_tol(g["dtype"], w[0].size))


@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_implicit_gemm_partial_output(device):
    """Fewer outputs than the full size (the adjoint of conv_transpose with output_padding)."""
    x, w, b, ref, hp, G = _ig_case((2, 3, 9, 8, 4, 3, 3, 2, 2, 1, 1, 1, 1, 1, True), np.float64)
    OH, OW = ref.shape[2] - 1, ref.shape[3] - 1
    y = host(CC.implicit_gemm_conv2d(dev(x, device), dev(w, device), *hp, OH, OW, G,
                                     dev(b, device)))
    np.testing.assert_allclose(y, ref[:, :, :OH, :OW], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_implicit_gemm_bad_input(device):
    x = dev(np.ones((1, 4, 5, 5), np.float32), device)
    w = dev(np.ones((6, 2, 3, 3), np.float32), device)
    with pytest.raises(ValueError, match=r"implicit_gemm_conv2d: groups=3"):
        CC.implicit_gemm_conv2d(x, w, 1, 1, 0, 0, 1, 1, 3, 3, 3)
    with pytest.raises(TypeError, match=r"implicit_gemm_conv2d: input \(float32\), weight "
                                        r"\(float64\)"):
        CC.implicit_gemm_conv2d(x, dev(np.ones((6, 2, 3, 3)), device), 1, 1, 0, 0, 1, 1, 3, 3, 2)
    with pytest.raises(ValueError, match="block_m must be 32 or 64, got 16"):
        CC.implicit_gemm_conv2d(x, w, 1, 1, 0, 0, 1, 1, 3, 3, 2, block_m=16)
    with pytest.raises(ValueError, match="exceed the grid's y dimension"):   # 65536 y-blocks
        CC.implicit_gemm_conv2d(dev(np.ones((1, 1, 1, 1), np.float32), device),
                                dev(np.ones((32 * 65536, 1, 1, 1), np.float32), device),
                                1, 1, 0, 0, 1, 1, 1, 1, block_m=32)
    with pytest.raises(ValueError, match=r"expected bias of size \(6,\)"):
        CC.implicit_gemm_conv2d(x, w, 1, 1, 0, 0, 1, 1, 3, 3, 2,
                                dev(np.ones(5, np.float32), device))


# --- the algorithm rule, its override and the per-thread record -------------------------------

def test_choose_algorithm_rule_and_override():
    ch = K.choose_algorithm
    assert ch((8, 64, 56, 56), (64, 64, 1, 1)) == "gemm_1x1"
    assert ch((8, 64, 56, 56), (64, 64, 1, 1), stride=(2, 2)) == "gemm_1x1"
    assert ch((8, 64, 56, 56), (64, 64, 1, 1), padding=(1, 1)) != "gemm_1x1"
    # few output channels per group: the GEMM is bound by its column operand
    assert ch((8, 3, 32, 32), (K.IMPLICIT_GEMM_MAX_KG, 3, 3, 3), padding=(1, 1)) == \
        "implicit_gemm"
    assert ch((8, 64, 28, 28), (128, 64, 3, 3), padding=(1, 1)) == "im2col_gemm"
    assert ch((8, 64, 28, 28), (128, 64, 3, 3), padding=(1, 1), groups=4) == "implicit_gemm"
    # a huge column buffer
    assert ch((256, 256, 56, 56), (256, 256, 3, 3), padding=(1, 1)) == "implicit_gemm"
    # backward passes: no implicit kernel
    assert ch((8, 3, 32, 32), (16, 3, 3, 3), pass_="grad_input") == "im2col_gemm"
    assert ch((8, 3, 32, 32), (16, 3, 1, 1), pass_="grad_weight") == "gemm_1x1"
    K.set_algorithm("implicit_gemm")
    assert K.get_algorithm() == "implicit_gemm"
    assert ch((8, 64, 28, 28), (128, 64, 3, 3)) == "implicit_gemm"
    assert ch((8, 64, 28, 28), (128, 64, 1, 1)) == "implicit_gemm"
    assert ch((8, 64, 28, 28), (128, 64, 3, 3), pass_="grad_weight") == "im2col_gemm"
    K.set_algorithm("gemm_1x1")                       # only where it can run
    assert ch((8, 64, 28, 28), (128, 64, 3, 3)) == "im2col_gemm"
    assert ch((8, 64, 28, 28), (16, 64, 1, 1)) == "gemm_1x1"
    K.set_algorithm(None)
    assert K.get_algorithm() is None
    with pytest.raises(ValueError, match="set_algorithm: unknown algorithm 'winograd'"):
        K.set_algorithm("winograd")


def test_algorithm_from_environment():
    assert K.algorithm_from_env({}) is None and K.get_algorithm() is None
    assert K.algorithm_from_env({"MINICNN_CONV_ALGORITHM": "implicit_gemm"}) == "implicit_gemm"
    assert K.get_algorithm() == "implicit_gemm"
    with pytest.raises(ValueError, match="unknown algorithm 'fft'"):
        K.algorithm_from_env({"MINICNN_CONV_ALGORITHM": "fft"})


def test_cpu_records_its_algorithm():
    x = mc.tensor(np.random.default_rng(0).standard_normal((2, 3, 6, 6)), requires_grad=True)
    w = mc.tensor(np.random.default_rng(1).standard_normal((4, 3, 3, 3)), requires_grad=True)
    K.set_algorithm("implicit_gemm")                  # the override is for the GPU only
    F.conv2d(x, w, padding=1).sum().backward()
    assert K.last_algorithm() == {"forward": "direct", "grad_input": "direct",
                                  "grad_weight": "im2col_gemm"}
    F.conv2d(x, w, padding=1, stride=2).sum().backward()
    assert set(K.last_algorithm().values()) == {"im2col_gemm"}
    F.conv2d(x, w[:, :, :1, :1]).sum().backward()
    assert set(K.last_algorithm().values()) == {"gemm_1x1"}


def test_last_algorithm_is_per_thread():
    """Each thread sees the algorithms of its own last convolution."""
    x = mc.tensor(np.random.default_rng(0).standard_normal((2, 3, 6, 6)))
    w = mc.tensor(np.random.default_rng(1).standard_normal((4, 3, 3, 3)))
    F.conv2d(x, w, padding=1)
    seen = {}

    def other():      # a fresh thread: nothing recorded until its own conv
        seen["before"] = K.last_algorithm()
        F.conv2d(x, w[:, :, :1, :1])
        seen.update(K.last_algorithm())
    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert seen["before"] == {} and seen["forward"] == "gemm_1x1"
    assert K.last_algorithm()["forward"] == "direct"


# --- the conv ops on the GPU path (emu, cuda) against the CPU path ----------------------------

CG = MAX_CG + 1   # more channels per group than the direct grouped kernels take
OPS_CASES = [  # x shape, w shape, stride, padding, dilation, groups, bias
    ((2, 3, 7, 6), (5, 3, 3, 3), 1, 1, 1, 1, True),
    ((2, 2 * CG, 7, 6), (6, CG, 3, 2), (2, 1), (1, 0), (1, 2), 2, True),
    ((3, 6, 5, 5), (4, 6, 1, 1), 1, 0, 1, 1, False),
    ((2, 4, 7, 7), (6, 4, 1, 1), 2, 0, 1, 1, True),
]


def _on(device, a):
    """A leaf tensor on the device ("emu": the CPU, with emulation on)."""
    return mc.tensor(a, device="cuda" if device == "cuda" else None, requires_grad=True)


def _pair(v):
    return v if isinstance(v, tuple) else (v, v)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("algo", [None, "im2col_gemm", "implicit_gemm", "gemm_1x1"])
@pytest.mark.parametrize("case", OPS_CASES)
def test_conv_ops_gpu_path(device, algo, case, monkeypatch):
    xs, ws, stride, padding, dilation, G, bias = case
    rng = np.random.default_rng(len(xs) + sum(ws))
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    b = rng.standard_normal(ws[0]) if bias else None
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=G)
    # CPU result first (the rule does not apply there)
    xc, wc = mc.tensor(x, requires_grad=True), mc.tensor(w, requires_grad=True)
    bc = None if b is None else mc.tensor(b, requires_grad=True)
    yc = F.conv2d(xc, wc, bc, **kw)
    gy = rng.standard_normal(yc.shape)
    yc.backward(mc.tensor(gy))
    if device == "emu":
        emulate(monkeypatch)
    K.set_algorithm(algo)
    xg, wg = _on(device, x), _on(device, w)
    bg = None if b is None else _on(device, b)
    yg = F.conv2d(xg, wg, bg, **kw)
    pointwise = ws[2:] == (1, 1) and padding == 0
    expect = K.choose_algorithm(xs, ws, _pair(stride), _pair(padding), _pair(dilation), G, 8)
    assert K.last_algorithm()["forward"] == expect
    if algo is not None and (algo != "gemm_1x1" or pointwise):
        assert expect == algo
    yg.backward(_on(device, gy).detach())
    back = K.choose_algorithm(xs, ws, _pair(stride), _pair(padding), _pair(dilation), G, 8,
                              pass_="grad_input")
    assert back == (algo if algo == "im2col_gemm" or algo == "gemm_1x1" and pointwise else
                    "gemm_1x1" if pointwise else "im2col_gemm")
    assert K.last_algorithm()["grad_input"] == K.last_algorithm()["grad_weight"] == back
    for got, want in ((yg, yc), (xg.grad, xc.grad), (wg.grad, wc.grad)) + (
            ((bg.grad, bc.grad),) if b is not None else ()):
        np.testing.assert_allclose(host(got.array), want.array, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_conv_transpose_double_backward_gpu_path(device, monkeypatch):
    """conv_transpose2d with output_padding: forward col2im, and its double backward runs the
    implicit GEMM on a partial output (out_hw smaller than the full size)."""
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((2, 4, 4, 3)), rng.standard_normal((4, 3, 3, 2))
    gy = rng.standard_normal((2, 3, 8, 6))
    # along W: stride 1, dilation 2, output_padding 1, so a conv of the (., 6) output gives 4
    # columns where the input has 3
    kw = dict(stride=(2, 1), padding=(1, 0), output_padding=(1, 1), dilation=(1, 2))
    calls = []
    real = CC.implicit_gemm_conv2d

    def spy(x, w, SH, SW, PH, PW, DH, DW, OH, OW, *rest):
        calls.append((OW, (x.shape[3] + 2 * PW - DW * (w.shape[3] - 1) - 1) // SW + 1))
        return real(x, w, SH, SW, PH, PW, DH, DW, OH, OW, *rest)

    monkeypatch.setattr(CC, "implicit_gemm_conv2d", spy)

    def run(on):
        xt, wt = on(x), on(w)
        y = F.conv_transpose2d(xt, wt, **kw)
        gx, = mc.autograd.grad((y * on(gy).detach()).sum(), [xt], create_graph=True)
        gw, = mc.autograd.grad((gx * gx).sum(), [wt])
        return y, gx, gw

    want = run(lambda a: mc.tensor(a, requires_grad=True))
    if device == "emu":
        emulate(monkeypatch)
    K.set_algorithm("implicit_gemm")
    got = run(lambda a: _on(device, a))
    assert K.last_algorithm()["forward"] == "implicit_gemm"
    assert (3, 4) in calls
    for g, r in zip(got, want):
        assert g.shape == r.shape
        np.testing.assert_allclose(host(g.array), r.array, rtol=1e-12, atol=1e-12)


# --- float16 / bfloat16 --------------------------------------------------------------------------

@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", Hf.HALVES, ids=Hf.HALF_IDS)
def test_half_im2col_col2im(device, dtype, monkeypatch):
    """im2col copies (exact); col2im sums in float32 and rounds once; NaN and inf carried."""
    launched = Hf.spy(device, monkeypatch)
    for case in CASES:
        N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW = case
        OH = (H + 2 * PH - DH * (KH - 1) - 1) // SH + 1
        OW = (W + 2 * PW - DW * (KW - 1) - 1) // SW + 1
        rng = np.random.default_rng(sum(case))
        x = rng.standard_normal((N, C, H, W)).astype(dtype)
        x.flat[-1], x.flat[0] = np.nan, np.inf
        hp = (KH, KW, SH, SW, PH, PW, DH, DW)
        col = K.im2col(dev(x, device), *hp, OH, OW)
        Hf.half_equal(col, RC.im2col(x.astype(np.float32), *hp, OH, OW), dtype)
        c = rng.standard_normal(host(col).shape).astype(dtype)
        img = K.col2im(dev(c, device), H, W, *hp[2:])
        tol = TOL[np.float32]
        Hf.half_close(img, RC.col2im(c.astype(np.float64), H, W, *hp[2:]), dtype, tol["rtol"],
                      tol["atol"])
    Hf.ran_half(device, launched, dtype)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", Hf.HALVES, ids=Hf.HALF_IDS)
@pytest.mark.parametrize("case", [c for c in OPS_CASES if c[5] == 1],
                         ids=lambda c: "x".join(map(str, c[1])))
def test_half_conv_passes(device, dtype, case, monkeypatch):
    """conv2d and its gradients on half arrays: the half im2col / col2im kernels and GEMMs
    accumulating in float32, against float64 references on the widened values. Forward and
    weight gradient round once after a float32 sum of CKK (N*OH*OW) products: one rounding of
    the format around float32's _tol. The input gradient rounds the GEMM's columns to the
    format (as cuBLAS writes them) and col2im sums at most KH*KW of them: each column entry
    may be off by eps times the largest one, on top of the final rounding."""
    launched = Hf.spy(device, monkeypatch)
    xs, ws, stride, padding, dilation, _, _ = case
    rng = np.random.default_rng(sum(xs))
    x, w = rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    p = K.ConvParams(_pair(stride), _pair(padding), _pair(dilation), 1)
    N, C, H, W = xs
    Kk, _, KH, KW = ws
    y = K.conv2d(dev(x, device), dev(w, device), p)
    OH, OW = host(y).shape[2:]
    ref = RC.conv2d(x64, w64, *p.geometry(), 1)
    tol = _tol(np.float32, C * KH * KW)
    Hf.half_close(y, ref, dtype, tol["rtol"], tol["atol"])
    gy = rng.standard_normal(ref.shape).astype(dtype)
    gy_cn = gy.astype(np.float64).transpose(1, 0, 2, 3).reshape(Kk, -1)   # (K, N*OH*OW)
    cols = RC.im2col(x64, KH, KW, *p.geometry(), OH, OW).reshape(C * KH * KW, -1)
    gw = K.conv2d_grad_weight(dev(x, device), dev(gy, device), ws, p)
    tol = _tol(np.float32, N * OH * OW)
    Hf.half_close(gw, (gy_cn @ cols.T).reshape(ws), dtype, tol["rtol"], tol["atol"])
    gcol = (w64.reshape(Kk, -1).T @ gy_cn).reshape(C, KH, KW, N, OH, OW)
    gx = K.conv2d_grad_input(dev(w, device), dev(gy, device), xs, p)
    eps = float(Hf.ml_dtypes.finfo(dtype).eps)
    tol = _tol(np.float32, Kk)
    Hf.half_close(gx, RC.col2im(gcol, H, W, *p.geometry()), dtype, tol["rtol"],
                  KH * KW * (eps * float(np.abs(gcol).max()) + tol["atol"]))
    assert K.last_algorithm()["forward"] in ("im2col_gemm", "gemm_1x1")
    K.set_algorithm("implicit_gemm")   # float32 / float64 only: im2col_gemm instead
    try:
        Hf.half_equal(K.conv2d(dev(x, device), dev(w, device), p), host(y), dtype)
        assert K.last_algorithm()["forward"] in ("im2col_gemm", "gemm_1x1")
    finally:
        K.set_algorithm(None)
    if (KH, KW) != (1, 1):   # 1x1: GEMMs only, no kernel
        Hf.ran_half(device, launched, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xs, ws, stride, direct", [
    ((3, 9, 5, 4), (67, 9, 3, 3), 2, True),       # NL 12 <= 4K: gy @ cols^T straight into gw
    ((2, 5, 11, 9), (70, 5, 2, 3), 1, True),      # CKK 30 <= 128 with a long sum: the same
    ((3, 9, 7, 6), (13, 9, 3, 3), 1, False),      # K < 64: cols @ gy^T, a transposing copy
    ((2, 40, 9, 8), (64, 40, 3, 3), 1, True),     # CKK 360, NL 126 <= 256: direct
    ((5, 40, 31, 29), (64, 40, 3, 3), 2, False),  # CKK 360, NL 1200 > 256: transposed
])
def test_grad_weight_gemm_orientations(dtype, xs, ws, stride, direct, monkeypatch):
    """The CPU weight gradient's two GEMM orientations (kernels.conv._grad_weight_direct) against
    the definition, odd sizes, on random data; the rule is spied on so each case is known to
    take the orientation it names (stride 2 or few output tiles: not winograd)."""
    taken = []
    rule = K._grad_weight_direct
    monkeypatch.setattr(K, "_grad_weight_direct", lambda *a: taken.append(rule(*a)) or taken[-1])
    rng = np.random.default_rng(sum(xs) + sum(ws))
    x, w = rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype)
    p = K.ConvParams((stride, stride), (1, 1), (1, 1), 1)
    OH, OW = p.out_size(xs[2], xs[3], ws[2], ws[3])
    gy = rng.standard_normal((xs[0], ws[0], OH, OW)).astype(dtype)
    got = K.conv2d_grad_weight(x, gy, ws, p)
    windows = RC.windows(x.astype(np.float64), ws[2], ws[3], stride, stride, 1, 1, 1, 1, OH, OW)
    want = np.einsum("nchwij,nkij->kchw", windows, gy.astype(np.float64))
    assert taken == [direct]
    assert got.dtype == dtype and got.flags.c_contiguous
    np.testing.assert_allclose(got, want, **_tol(dtype, xs[0] * OH * OW))


@pytest.mark.parametrize("xs, ws, as_conv", [
    ((2, 8, 9, 9), (8, 8, 3, 3), True),     # gy's im2col no larger than col2im's work
    ((2, 8, 4, 4), (8, 8, 3, 3), False),    # the flipped weight (72 wide) > 32 outputs: GEMM
    ((2, 3, 9, 9), (8, 3, 3, 3), False),    # K*H*W > C*OH*OW: gy's columns too wide
])
def test_grad_input_path_rule_and_both_paths_agree(xs, ws, as_conv, monkeypatch,
                                                   no_direct_conv):
    """kernels.conv._grad_input_as_conv for im2col_gemm passes (stride 1, few tiles, so not
    winograd), and the input gradient against the definition whichever path it takes."""
    rng = np.random.default_rng(sum(xs))
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    p = K.ConvParams((1, 1), (1, 1), (1, 1), 1)
    gy = rng.standard_normal((xs[0], ws[0]) + xs[2:])
    assert K._grad_input_as_conv(p, w, gy, xs, "im2col_gemm") is as_conv
    want = RC.col2im((w.reshape(ws[0], -1).T @ gy.transpose(1, 0, 2, 3).reshape(ws[0], -1))
                     .reshape(xs[1], 3, 3, xs[0], *xs[2:]), *xs[2:], 1, 1, 1, 1, 1, 1)
    for forced in (True, False):
        monkeypatch.setattr(K, "_grad_input_as_conv", lambda *a, f=forced: f)
        got = K.conv2d_grad_input(w, gy, xs, p)
        assert K.last_algorithm()["grad_input"] == "im2col_gemm"
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
