"""The depthwise / grouped family (minicnn.kernels.grouped). Its six kernels through the API
against NumPy references built from kernels/conv/reference.py and kernels/grouped/reference.py
(and PyTorch) on cpu, emu and cuda: the CPU's grouped kernels take 3x3 stride-1 convs only, so
other grouped cases are skipped there, while depthwise runs everywhere; on emu and cuda each
launch plan of the band and plain kernels, in float32, float64, float16 and bfloat16 (the half
instances on emu and cuda: float32 arithmetic, one rounding per result). Then the CUDA launch
layer's plans, counters and checks; the conv family's routing to these kernels; F.conv2d
through them under the emulator."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn.kernels import grouped as KG
from minicnn.kernels._numba import SMALL_WORK
from minicnn.kernels.conv import reference as ref
from minicnn.kernels.cuda import emulator
from minicnn.kernels.grouped import cuda as GC
from minicnn.kernels.grouped import reference as gref
from cuda_util import KERNEL_DEVICES, dev, emulate, host, noncontiguous

from . import half_util as Hf
from .test_conv import examples, geometry

# (N, C, H, W, K, G, KH, KW, stride, padding, dilation): depthwise with multipliers 1..10,
# Cg in {1, 2, 3, 4}, kernels 1x1 to 7x7 (25 and 49 taps: several weight-grad passes),
# strides, paddings, dilations, odd sizes, planes of several blocks, a 1030-wide row.
CASES = [
    (2, 3, 7, 5, 3, 3, 3, 3, (1, 1), (1, 1), (1, 1)),      # depthwise 3x3
    (2, 3, 9, 8, 6, 3, 3, 2, (2, 1), (1, 2), (1, 2)),      # depthwise M=2, stride, dilation
    (3, 2, 5, 4, 6, 2, 1, 1, (2, 2), (0, 0), (1, 1)),      # depthwise M=3, 1x1 stride 2
    (1, 4, 6, 7, 6, 2, 3, 3, (1, 2), (0, 1), (2, 1)),      # Cg=2, Kg=3
    (2, 6, 9, 7, 4, 2, 5, 5, (2, 2), (2, 1), (1, 1)),      # Cg=3, Kg=2, 5x5
    (1, 12, 5, 5, 3, 3, 2, 3, (1, 1), (1, 0), (1, 1)),     # Cg=4, Kg=1, even kernel
    (1, 2, 33, 20, 2, 2, 3, 3, (1, 1), (1, 1), (1, 1)),    # depthwise, several blocks
    (2, 8, 4, 6, 8, 2, 3, 3, (3, 2), (2, 2), (1, 2)),      # Cg=4, Kg=4, pad > reach
    (1, 2, 5, 6, 20, 2, 3, 3, (1, 1), (2, 1), (1, 1)),     # depthwise M=10 (two channel chunks)
    (1, 2, 2, 1030, 2, 2, 1, 3, (1, 1), (0, 1), (1, 1)),   # a row wider than one band chunk
    (1, 3, 11, 10, 3, 3, 3, 3, (2, 2), (2, 3), (3, 3)),    # dilation > stride > 1
    (1, 2, 9, 10, 2, 2, 7, 7, (1, 1), (3, 3), (1, 1)),     # ConvNeXt-style 7x7 depthwise
    (1, 10, 20, 19, 5, 5, 3, 3, (1, 1), (1, 1), (1, 1)),   # 'pack': 3 of 5 groups per block
]
IDS = [f"C{c[1]}K{c[4]}G{c[5]}k{c[6]}x{c[7]}s{c[8][0]}{c[8][1]}" for c in CASES]
EPS = {np.float32: np.finfo(np.float32).eps, np.float64: np.finfo(np.float64).eps}
DTYPES = [np.float32, np.float64, *Hf.HALVES]    # the API's three passes in every dtype
DTYPE_IDS = ["float32", "float64", *Hf.HALF_IDS]


def _is_half(dtype):
    return np.dtype(dtype) in Hf.HALF_T


def _out(H, W, KH, KW, S, P, D):
    return ((H + 2 * P[0] - D[0] * (KH - 1) - 1) // S[0] + 1,
            (W + 2 * P[1] - D[1] * (KW - 1) - 1) // S[1] + 1)


def _rand(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape)


# --- NumPy references (float64), built from kernels/conv/reference.py --------------------------

def ref_fwd(x, w, G, S, P, D, OH, OW, b=None):
    y = ref.conv2d(x, w, *S, *P, *D, G)[:, :, :OH, :OW]
    return y if b is None else y + b.reshape(1, -1, 1, 1)


def ref_grad_input(gy, w, G, C, H, W, S, P, D):
    """col2im of w^T gy, one group at a time."""
    N, K, OH, OW = gy.shape
    _, Cg, KH, KW = w.shape
    Kg = K // G
    col = np.zeros((C, KH, KW, N, OH, OW))
    for g in range(G):
        col[g * Cg:(g + 1) * Cg] = np.einsum("kcij,nkhw->cijnhw", w[g * Kg:(g + 1) * Kg],
                                             gy[:, g * Kg:(g + 1) * Kg])
    return ref.col2im(col, H, W, *S, *P, *D)


def ref_grad_weight(x, gy, G, KH, KW, S, P, D):
    N, C = x.shape[:2]
    _, K, OH, OW = gy.shape
    Cg, Kg = C // G, K // G
    cols = ref.windows(x, KH, KW, *S, *P, *D, OH, OW)     # (N, C, KH, KW, OH, OW)
    gw = np.zeros((K, Cg, KH, KW))
    for g in range(G):
        gw[g * Kg:(g + 1) * Kg] = np.einsum("ncijhw,nkhw->kcij", cols[:, g * Cg:(g + 1) * Cg],
                                            gy[:, g * Kg:(g + 1) * Kg])
    return gw


def _close(got, want, dtype, terms):
    """fp32: 1e-5 relative plus a rounding bound growing with the reduction length. float16 /
    bfloat16: the half kernels sum in float32 and round once, so float32's bound with one
    rounding of the format each way (half_util.half_close: its eps relatively, its smallest
    subnormal absolutely), against the float64 reference of the (exactly widened) half
    inputs."""
    got = host(got)
    assert got.dtype == dtype and got.shape == want.shape
    assert np.isfinite(got.astype(np.float64)).all(), "unwritten (NaN-poisoned) outputs"
    if _is_half(dtype):
        Hf.half_close(got, want, dtype, 1e-5, 4 * EPS[np.float32] * terms)
        return
    eps = EPS[dtype]
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=rtol, atol=4 * eps * terms)


def _ran(device, launched, dtype):
    """In a half dtype, the half instances ran on emu and cuda (no widened copy)."""
    if _is_half(dtype):
        Hf.ran_half(device, launched, dtype)


def _prep(case, dtype, seed=0, oh_cut=0):
    N, C, H, W, K, G, KH, KW, S, P, D = case
    x = _rand((N, C, H, W), seed).astype(dtype)
    w = _rand((K, C // G, KH, KW), seed + 1).astype(dtype)
    b = _rand((K,), seed + 2).astype(dtype)
    OH, OW = _out(H, W, KH, KW, S, P, D)
    OH -= oh_cut
    gy = _rand((N, K, OH, OW), seed + 3).astype(dtype)
    return x, w, b, gy, OH, OW


def _takes(device, pass_, case, out_hw, a):
    """Whether the API's grouped_* kernels compute `case` on the device: every conv on emu and
    cuda; on cpu a 3x3 stride-1 conv with padding <= 2 * dilation, and for the backward passes
    gy of the full output size. The family's grouped_ok answers the same."""
    N, C, H, W, K, G, KH, KW, S, P, D = case
    takes = device != "cpu" or (
        (KH, KW, *S) == (3, 3, 1, 1) and P[0] <= 2 * D[0] and P[1] <= 2 * D[1]
        and (pass_ == "forward" or tuple(out_hw) == _out(H, W, KH, KW, S, P, D)))
    assert KG.grouped_ok(a, pass_, (N, C, H, W), (K, C // G, KH, KW), G, *S, *P, *D,
                         out_hw) == takes
    return takes


def _skip_unless(takes, depthwise):
    if not (takes or depthwise):
        pytest.skip("the CPU's grouped kernels take 3x3 stride-1 convs only (emu and cuda "
                    "run this case)")


def _entries(device, takes, depthwise):
    """(grouped, depthwise): which of the API's entry points to call for a case, skipping the
    case where neither takes it. On emu and cuda depthwise_* is grouped_* with G = C, so for a
    depthwise case one call covers both; on the CPU they are different kernels."""
    _skip_unless(takes, depthwise)
    return takes and not (depthwise and device != "cpu"), depthwise


def _plans(*names):
    """(kernel_device, plan): the Numba kernels on cpu, each launch plan on emu and cuda."""
    return [pytest.param("cpu", "numba", id="cpu")] + [
        pytest.param(d.values[0], name, id=f"{d.id}-{name}", marks=d.marks)
        for d in KERNEL_DEVICES for name in names]


PLANS = _plans("band", "pack", "tiles", "plain")
WG_PLANS = _plans(*(f"{a}+{s}" for a in ("band", "pack", "tiles", "plain")
                    for s in ("one_slice", "split")))


@pytest.fixture
def plan(request, monkeypatch):
    """How kernels/grouped/cuda.py launches (emu, cuda; 'numba' on cpu). 'band': the shared-
    memory band kernels (forward; grad input of stride-1 convs; grad weight) as planned for
    these small sizes (many row bands to reach 264 blocks); 'pack': no block-count target, so
    whole planes of several groups per block; 'tiles': the forward band kernel with only 1 KiB
    of shared memory, so that wide rows are cut into column tiles; 'plain': the one-thread-per-
    element kernels. Weight grad, '+split': many slices of 16 positions per (k, cg) pair, so
    the partial sums go through the second (reduce) kernel; '+one_slice': the default for
    these small sizes, S = 1. Returns (algo, split)."""
    algo, _, split = request.param.partition("+")
    monkeypatch.setattr(GC, "USE_BAND", algo != "plain")
    if algo == "tiles":
        monkeypatch.setattr(GC, "BAND_SMEM", 1024)
    if algo == "pack":
        monkeypatch.setattr(GC, "BAND_MIN_BLOCKS", 1)
    if split == "split":
        monkeypatch.setattr(GC, "WG_MIN_CHUNK", 16)
        monkeypatch.setattr(GC, "WG_TARGET_BLOCKS", 1 << 20)
        monkeypatch.setattr(GC, "WG_MIN_BAND", 1)
    return algo, split


DEPTHWISE = [(c, i) for c, i in zip(CASES, IDS) if c[1] == c[5]]


@pytest.mark.parametrize("case", [c for c, _ in DEPTHWISE], ids=[i for _, i in DEPTHWISE])
def test_depthwise_references_are_the_grouped_ones(case):
    """kernels/grouped/reference.py's depthwise passes equal the grouped references above."""
    N, C, H, W, K, G, KH, KW, S, P, D = case
    x, w, b, gy, OH, OW = _prep(case, np.float64)
    np.testing.assert_allclose(gref.depthwise_conv2d(x, w, *S, *P, *D, OH, OW) + b[:, None, None],
                               ref_fwd(x, w, G, S, P, D, OH, OW, b), atol=1e-12)
    np.testing.assert_allclose(gref.depthwise_grad_input(gy, w, C, H, W, *S, *P, *D),
                               ref_grad_input(gy, w, G, C, H, W, S, P, D), atol=1e-12)
    np.testing.assert_allclose(gref.depthwise_grad_weight(x, gy, KH, KW, *S, *P, *D),
                               ref_grad_weight(x, gy, G, KH, KW, S, P, D), atol=1e-12)


# --- the API on every device: forward --------------------------------------------------------

@pytest.mark.parametrize("kernel_device,plan", PLANS, indirect=True)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_forward(kernel_device, plan, dtype, case, launched):
    N, C, H, W, K, G, KH, KW, S, P, D = case
    x, w, b, _, OH, OW = _prep(case, dtype)
    takes = _takes(kernel_device, "forward", case, (OH, OW), x)
    grouped, depthwise = _entries(kernel_device, takes, G == C)
    if case == CASES[-1] and plan[0] == "pack":     # the last block has fewer groups
        assert GC._band_plan(N, G, C // G, K // G, OH, OW, KH, KW, *S, *D, 8)["GB"] == 3
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    terms = (C // G) * KH * KW
    xd, wd = dev(x, kernel_device), dev(w, kernel_device)
    for bias in (None, b):
        want = ref_fwd(x64, w64, G, S, P, D, OH, OW, None if bias is None else bias + 0.0)
        bd = None if bias is None else dev(bias, kernel_device)
        if grouped:
            _close(KG.grouped_conv2d(xd, wd, G, *S, *P, *D, OH, OW, bd), want, dtype, terms)
        if depthwise:
            _close(KG.depthwise_conv2d(xd, wd, *S, *P, *D, OH, OW, bd), want, dtype, terms)
    _ran(kernel_device, launched, dtype)


@pytest.mark.parametrize("kernel_device,plan", PLANS, indirect=True)
@pytest.mark.parametrize("case", [CASES[1], CASES[4]], ids=[IDS[1], IDS[4]])
def test_forward_noncontiguous_and_partial_output(kernel_device, plan, case):
    """Non-contiguous x, w and bias; only the first OH-1 output rows (a transposed conv's
    adjoint with output_padding asks for fewer rows than fit)."""
    N, C, H, W, K, G, KH, KW, S, P, D = case
    x, w, b, _, OH, OW = _prep(case, np.float64, seed=5, oh_cut=1)
    takes = _takes(kernel_device, "forward", case, (OH, OW), x)
    grouped, depthwise = _entries(kernel_device, takes, G == C)
    want = ref_fwd(x, w, G, S, P, D, OH, OW, b)
    args = (noncontiguous(x, kernel_device), noncontiguous(w, kernel_device))
    bd = noncontiguous(b, kernel_device)
    if grouped:
        _close(KG.grouped_conv2d(*args, G, *S, *P, *D, OH, OW, bd), want, np.float64,
               (C // G) * KH * KW)
    if depthwise:
        _close(KG.depthwise_conv2d(*args, *S, *P, *D, OH, OW, bd), want, np.float64,
               (C // G) * KH * KW)


# --- grad input --------------------------------------------------------------------------------

@pytest.mark.parametrize("kernel_device,plan", PLANS, indirect=True)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_grad_input(kernel_device, plan, dtype, case, launched):
    N, C, H, W, K, G, KH, KW, S, P, D = case
    _, w, _, gy, OH, OW = _prep(case, dtype, seed=7)
    takes = _takes(kernel_device, "grad_input", case, (OH, OW), gy)
    grouped, depthwise = _entries(kernel_device, takes, G == C)
    want = ref_grad_input(gy.astype(np.float64), w.astype(np.float64), G, C, H, W, S, P, D)
    terms = (K // G) * KH * KW
    gyd, wd = dev(gy, kernel_device), dev(w, kernel_device)
    if grouped:
        _close(KG.grouped_grad_input(gyd, wd, G, C, H, W, *S, *P, *D), want, dtype, terms)
    if depthwise:
        _close(KG.depthwise_grad_input(gyd, wd, C, H, W, *S, *P, *D), want, dtype, terms)
    _ran(kernel_device, launched, dtype)


@pytest.mark.parametrize("kernel_device,plan", PLANS, indirect=True)
@pytest.mark.parametrize("case", [CASES[1], CASES[3], CASES[7]], ids=[IDS[1], IDS[3], IDS[7]])
def test_grad_input_noncontiguous_and_larger_image(kernel_device, plan, case):
    """Non-contiguous gy and w; an image one row and column larger than the output covers
    (conv_transpose2d with output_padding): those pixels get only the taps that reach them."""
    N, C, H, W, K, G, KH, KW, S, P, D = case
    _, w, _, gy, OH, OW = _prep(case, np.float64, seed=9)
    H2, W2 = H + 1, W + 1
    takes = _takes(kernel_device, "grad_input", (N, C, H2, W2, *case[4:]), (OH, OW), gy)
    grouped, depthwise = _entries(kernel_device, takes, G == C)
    want = ref_grad_input(gy, w, G, C, H2, W2, S, P, D)
    gyd, wd = noncontiguous(gy, kernel_device), noncontiguous(w, kernel_device)
    if grouped:
        _close(KG.grouped_grad_input(gyd, wd, G, C, H2, W2, *S, *P, *D), want, np.float64,
               (K // G) * KH * KW)
    if depthwise:
        _close(KG.depthwise_grad_input(gyd, wd, C, H2, W2, *S, *P, *D), want, np.float64,
               (K // G) * KH * KW)


# --- grad weight -------------------------------------------------------------------------------

@pytest.mark.parametrize("kernel_device,plan", WG_PLANS, indirect=True)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_grad_weight(kernel_device, plan, dtype, case, launched):
    N, C, H, W, K, G, KH, KW, S, P, D = case
    x, _, _, gy, OH, OW = _prep(case, dtype, seed=11)
    takes = _takes(kernel_device, "grad_weight", case, (OH, OW), x)
    grouped, depthwise = _entries(kernel_device, takes, G == C)
    P_ = N * OH * OW
    if plan == ("plain", "split"):
        assert GC._wg_split(P_, K * (C // G))[0] == -(-P_ // 16)   # > 1 but for P <= 16
    if plan == ("band", "split"):
        band = GC._wg_band_plan(N, K * (C // G), OH, OW, KH, KW, *S, *D, 8)
        assert band["RB"] == 1 and (band["S"] > 1 or N * OH == 1 or P_ <= 16)
    want = ref_grad_weight(x.astype(np.float64), gy.astype(np.float64), G, KH, KW, S, P, D)
    xd, gyd = dev(x, kernel_device), dev(gy, kernel_device)
    if grouped:
        _close(KG.grouped_grad_weight(xd, gyd, G, KH, KW, *S, *P, *D), want, dtype, P_)
    if depthwise:
        _close(KG.depthwise_grad_weight(xd, gyd, KH, KW, *S, *P, *D), want, dtype, P_)
    if kernel_device != "cpu":
        for buf in GC._counters.values():   # the band kernel's last blocks reset them
            assert int(host(buf).max()) == 0
    _ran(kernel_device, launched, dtype)


@pytest.mark.parametrize("kernel_device,plan", PLANS, indirect=True)
@pytest.mark.parametrize("case", [CASES[0], CASES[4]], ids=[IDS[0], IDS[4]])
def test_grad_weight_noncontiguous_partial_gy(kernel_device, plan, case, monkeypatch):
    """Non-contiguous x and gy; gy covering fewer rows than fit (output_padding's adjoint)."""
    monkeypatch.setattr(GC, "WG_MIN_CHUNK", 8)
    N, C, H, W, K, G, KH, KW, S, P, D = case
    x, _, _, gy, OH, OW = _prep(case, np.float64, seed=13, oh_cut=1)
    takes = _takes(kernel_device, "grad_weight", case, (OH, OW), x)
    grouped, depthwise = _entries(kernel_device, takes, G == C)
    want = ref_grad_weight(x, gy, G, KH, KW, S, P, D)
    xd, gyd = noncontiguous(x, kernel_device), noncontiguous(gy, kernel_device)
    if grouped:
        _close(KG.grouped_grad_weight(xd, gyd, G, KH, KW, *S, *P, *D), want, np.float64,
               N * OH * OW)
    if depthwise:
        _close(KG.depthwise_grad_weight(xd, gyd, KH, KW, *S, *P, *D), want, np.float64,
               N * OH * OW)


# --- edge cases, random shapes, non-finite values, PyTorch -------------------------------------

def test_empty_batch(kernel_device):
    x = dev(np.zeros((0, 4, 5, 5)), kernel_device)
    w = dev(_rand((4, 2, 3, 3), 0), kernel_device)
    gy = dev(np.zeros((0, 4, 3, 3)), kernel_device)
    assert host(KG.grouped_conv2d(x, w, 2, 1, 1, 0, 0, 1, 1, 3, 3)).shape == (0, 4, 3, 3)
    assert host(KG.grouped_grad_input(gy, w, 2, 4, 5, 5, 1, 1, 0, 0, 1, 1)).shape == \
        (0, 4, 5, 5)
    gw = host(KG.grouped_grad_weight(x, gy, 2, 3, 3, 1, 1, 0, 0, 1, 1))
    assert gw.shape == (4, 2, 3, 3) and (gw == 0).all()


@st.composite
def _conv_cases(draw, cpu=False):
    """A grouped conv of random geometry; with cpu=True one the CPU's kernels take (3x3,
    stride 1, padding <= 2 * dilation)."""
    G = draw(st.integers(1, 4))
    Cg = draw(st.sampled_from([1, 1, 2, 3, 4]))
    Kg = draw(st.integers(1, 3))
    dims = []
    for _ in range(2):
        k = 3 if cpu else draw(st.sampled_from([1, 2, 3, 3, 4, 5, 7]))
        s, d = 1 if cpu else draw(st.integers(1, 3)), draw(st.sampled_from([1, 1, 2, 3]))
        p = draw(st.integers(0, min(3, 2 * d) if cpu else 3))
        lo = max(1, d * (k - 1) + 1 - 2 * p)
        size = draw(st.integers(lo, lo + 6))
        dims.append((size, k, s, p, d))
    (H, KH, SH, PH, DH), (W, KW, SW, PW, DW) = dims
    N = draw(st.integers(1, 3))
    return (N, G * Cg, H, W, G * Kg, G, KH, KW, (SH, SW), (PH, PW), (DH, DW))


@examples(at_least=25)
@given(data=st.data(), band=st.booleans(), f32=st.booleans(), bias=st.booleans())
def test_random_shapes_all_passes(kernel_device, data, band, f32, bias):
    """Forward, grad input and grad weight on random groups / kernels / strides / paddings /
    dilations (sizes from the smallest valid one); on the CPU 3x3 stride-1 convs only; on emu
    and cuda with and without the band kernels."""
    case = data.draw(_conv_cases(cpu=kernel_device == "cpu"), label="case")
    N, C, H, W, K, G, KH, KW, S, P, D = case
    dtype = np.float32 if f32 else np.float64
    old = GC.USE_BAND
    GC.USE_BAND = band
    try:
        x, w, b, gy, OH, OW = _prep(case, dtype, seed=N * 7 + H)
        x64, w64, gy64 = (a.astype(np.float64) for a in (x, w, gy))
        bb = b if bias else None
        xd, wd, gyd = (dev(a, kernel_device) for a in (x, w, gy))
        y = KG.grouped_conv2d(xd, wd, G, *S, *P, *D, OH, OW,
                              None if bb is None else dev(bb, kernel_device))
        _close(y, ref_fwd(x64, w64, G, S, P, D, OH, OW, None if bb is None else bb + 0.0),
               dtype, (C // G) * KH * KW)
        gx = KG.grouped_grad_input(gyd, wd, G, C, H, W, *S, *P, *D)
        _close(gx, ref_grad_input(gy64, w64, G, C, H, W, S, P, D), dtype, (K // G) * KH * KW)
        gw = KG.grouped_grad_weight(xd, gyd, G, KH, KW, *S, *P, *D)
        _close(gw, ref_grad_weight(x64, gy64, G, KH, KW, S, P, D), dtype, N * OH * OW)
    finally:
        GC.USE_BAND = old


def _hp(g):
    return (g["SH"], g["SW"], g["PH"], g["PW"], g["DH"], g["DW"])


@examples()
@given(g=geometry(), M=st.integers(1, 2))
def test_depthwise_random_geometry(kernel_device, g, M):
    rng = np.random.default_rng(g["seed"])
    C = g["C"]
    x = rng.standard_normal((g["N"], C, g["H"], g["W"])).astype(g["dtype"])
    w = rng.standard_normal((C * M, 1, g["KH"], g["KW"])).astype(g["dtype"])
    gy = rng.standard_normal((g["N"], C * M, g["OH"], g["OW"])).astype(g["dtype"])
    tol = 1e-4 if g["dtype"] == np.float32 else 1e-11
    hp = _hp(g)
    xd, wd, gyd = (dev(a, kernel_device) for a in (x, w, gy))
    np.testing.assert_allclose(host(KG.depthwise_conv2d(xd, wd, *hp, g["OH"], g["OW"])),
                               gref.depthwise_conv2d(x, w, *hp, g["OH"], g["OW"]), rtol=tol,
                               atol=tol)
    np.testing.assert_allclose(host(KG.depthwise_grad_input(gyd, wd, C, g["H"], g["W"], *hp)),
                               gref.depthwise_grad_input(gy, w, C, g["H"], g["W"], *hp),
                               rtol=tol, atol=tol)
    np.testing.assert_allclose(host(KG.depthwise_grad_weight(xd, gyd, g["KH"], g["KW"], *hp)),
                               gref.depthwise_grad_weight(x, gy, g["KH"], g["KW"], *hp),
                               rtol=tol, atol=tol)
    # and the depthwise reference is the grouped conv of the definition
    np.testing.assert_allclose(gref.depthwise_conv2d(x, w, *hp, g["OH"], g["OW"]),
                               ref.conv2d(x, w, *hp, C), rtol=tol, atol=tol)


@examples()
@given(N=st.integers(1, 3), C=st.integers(1, 3), M=st.integers(1, 2), H=st.integers(1, 8),
       W=st.integers(1, 8), PH=st.integers(0, 3), PW=st.integers(0, 3), DH=st.integers(1, 2),
       DW=st.integers(1, 2), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2 ** 32 - 1))
def test_depthwise_3x3_stride1_matches_reference(kernel_device, N, C, M, H, W, PH, PW, DH, DW,
                                                 dtype, seed):
    # on the CPU the register-blocked 3x3 stride-1 kernels (and grad_input as the flipped
    # forward, taken when M == 1 and P <= 2D); the generic geometry() draws this case rarely
    H, W = H + max(0, 2 * DH - 2 * PH), W + max(0, 2 * DW - 2 * PW)
    OH, OW = H + 2 * PH - 2 * DH, W + 2 * PW - 2 * DW
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((C * M, 1, 3, 3)).astype(dtype)
    gy = rng.standard_normal((N, C * M, OH, OW)).astype(dtype)
    tol = 1e-4 if dtype == np.float32 else 1e-11
    hp = (1, 1, PH, PW, DH, DW)
    xd, wd, gyd = (dev(a, kernel_device) for a in (x, w, gy))
    np.testing.assert_allclose(host(KG.depthwise_conv2d(xd, wd, *hp, OH, OW)),
                               gref.depthwise_conv2d(x, w, *hp, OH, OW), rtol=tol, atol=tol)
    np.testing.assert_allclose(host(KG.depthwise_grad_input(gyd, wd, C, H, W, *hp)),
                               gref.depthwise_grad_input(gy, w, C, H, W, *hp), rtol=tol,
                               atol=tol)
    np.testing.assert_allclose(host(KG.depthwise_grad_weight(xd, gyd, 3, 3, *hp)),
                               gref.depthwise_grad_weight(x, gy, 3, 3, *hp), rtol=tol, atol=tol)


def test_depthwise_3x3_large_and_nonfinite(kernel_device):
    """NaN and inf propagate (no finite-math flags); on the CPU a suite-sized input takes the
    threaded path."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 16, 29, 31)).astype(np.float32)
    w = rng.standard_normal((16, 1, 3, 3)).astype(np.float32)
    x[0, 1, 5, 7], x[1, 2, 0, 0] = np.nan, np.inf
    hp = (1, 1, 1, 1, 1, 1)
    wd = dev(w, kernel_device)
    y = host(KG.depthwise_conv2d(dev(x, kernel_device), wd, *hp, 29, 31))
    assert y.size * 9 > SMALL_WORK
    np.testing.assert_allclose(y, gref.depthwise_conv2d(x, w, *hp, 29, 31), rtol=1e-4, atol=1e-4)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    gy[1, 3, 4, 4] = np.nan
    np.testing.assert_allclose(
        host(KG.depthwise_grad_input(dev(gy, kernel_device), wd, 16, 29, 31, *hp)),
        gref.depthwise_grad_input(gy, w, 16, 29, 31, *hp), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        host(KG.depthwise_grad_weight(dev(x, kernel_device), dev(gy, kernel_device), 3, 3,
                                      *hp)),
        gref.depthwise_grad_weight(x, gy, 3, 3, *hp), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("case", [CASES[4], CASES[12]], ids=[IDS[4], IDS[12]])
def test_matches_torch(kernel_device, case):
    """The grouped kernels against PyTorch, and the test's own references too."""
    torch = pytest.importorskip("torch")
    N, C, H, W, K, G, KH, KW, S, P, D = case
    x, w, b, gy, OH, OW = _prep(case, np.float64, seed=17)
    _skip_unless(_takes(kernel_device, "forward", case, (OH, OW), x), False)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.conv2d(tx, tw, tb, S, P, D, G)
    ty.backward(torch.tensor(gy))
    xd, wd, gyd = (dev(a, kernel_device) for a in (x, w, gy))
    y = host(KG.grouped_conv2d(xd, wd, G, *S, *P, *D, OH, OW, dev(b, kernel_device)))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    gx = host(KG.grouped_grad_input(gyd, wd, G, C, H, W, *S, *P, *D))
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-12, atol=1e-12)
    gw = host(KG.grouped_grad_weight(xd, gyd, G, KH, KW, *S, *P, *D))
    np.testing.assert_allclose(gw, tw.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ref_grad_input(gy, w, G, C, H, W, S, P, D), tx.grad.numpy(),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ref_grad_weight(x, gy, G, KH, KW, S, P, D), tw.grad.numpy(),
                               rtol=1e-12, atol=1e-12)


# --- the CUDA launch layer: plans, counters, checks --------------------------------------------

def test_band_plan():
    # the depthwise suite size (32, 256, 28, 28) 3x3: a whole plane per block, 8 lanes x 4
    # outputs along ow, 28 thread-rows (224 threads), conflict-free pitch (8 mod 32)
    plan = GC._band_plan(32, 256, 1, 1, 28, 28, 3, 3, 1, 1, 1, 1, 4)
    assert (plan["TX"], plan["RB"], plan["HB"], plan["WB"], plan["KB"]) == (8, 28, 30, 30, 1)
    assert plan["pitch"] % 32 == 8 and plan["threads"] == 256 and plan["GB"] == 2
    assert plan["grid"] == (32 * 128, 1, 1) and plan["CB"] == 28
    # 7x7 planes (MobileNet's last depthwise layers): 36 channels per block, 256 threads
    plan = GC._band_plan(32, 960, 1, 1, 7, 7, 3, 3, 1, 1, 1, 1, 4)
    assert (plan["GB"], plan["TX"], plan["threads"]) == (36, 2, 256)
    assert plan["grid"] == (32 * 27, 1, 1)
    # grouped g=32 (Cg = Kg = 4): four output channels per block share the staged input
    plan = GC._band_plan(32, 32, 4, 4, 28, 28, 3, 3, 1, 1, 1, 1, 4)
    assert plan["KB"] == 4 and plan["grid"] == (32 * 32, 2, 1) and plan["smem"] <= 48 * 1024
    assert plan["RB"] == 16 and plan["threads"] == 256 and plan["GB"] == 1
    # few planes: rows split into bands (here as many as there are rows)
    plan = GC._band_plan(1, 4, 1, 1, 64, 64, 3, 3, 1, 1, 1, 1, 4)
    assert plan["grid"] == (4, 64, 1) and plan["RB"] == 1
    # every block size a multiple of 32, at most 256
    for OW in (1, 2, 7, 14, 28, 56, 112, 1030):
        plan = GC._band_plan(2, 3, 2, 2, 9, OW, 3, 3, 1, 1, 1, 1, 4)
        assert plan["threads"] % 32 == 0 and 32 <= plan["threads"] <= 256
    # a row too wide for 48 KiB: column tiles
    plan = GC._band_plan(1, 2, 8, 8, 4, 5000, 3, 3, 1, 1, 1, 1, 8)
    assert plan["CB"] < 5000 and plan["grid"][2] == -(-5000 // plan["CB"])
    assert plan["smem"] <= 48 * 1024 and plan["RB"] == 1
    # a dilation so large that not even 4 columns of one row fit: the plain kernels
    assert GC._band_plan(1, 2, 8, 8, 4, 5, 3, 3, 1, 1, 1, 400, 8) is None


def test_wg_band_plan():
    # the depthwise suite size: whole 28x28 images, 4 per block, 8 slices per channel
    plan = GC._wg_band_plan(32, 256, 28, 28, 3, 3, 1, 1, 1, 1, 4)
    assert (plan["RB"], plan["S"], plan["ips"], plan["TX"], plan["threads"]) == (28, 8, 4, 32,
                                                                                   256)
    # one image: bands of rows to spread the work
    plan = GC._wg_band_plan(1, 32, 112, 112, 3, 3, 1, 1, 1, 1, 4)
    assert plan["RB"] < 112 and plan["S"] > 1 and plan["threads"] % 32 == 0
    # too wide for 48 KiB even one row high: the plain kernel
    assert GC._wg_band_plan(1, 2, 4, 20000, 3, 3, 1, 1, 1, 1, 8) is None


def test_wg_split_shapes():
    for P, pairs in [(1, 1), (25088, 256), (25088, 512), (10 ** 6, 3), (999, 4096)]:
        S, chunk, block = GC._wg_split(P, pairs)
        assert S >= 1 and (S - 1) * chunk < P <= S * chunk
        assert block % 32 == 0 and 32 <= block <= GC.BLOCK
    assert GC._wg_split(25088, 256)[0] == 8      # the depthwise suite size: 2048 blocks


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("case", [(12, 2, 5, 5, 2, 2, 3, 3, (1, 1), (1, 1), (1, 1)),
                                  (9, 2, 4, 19, 4, 2, 3, 3, (1, 2), (1, 1), (1, 1))],
                         ids=["L25", "L40"])
def test_grad_weight_position_carries(device, case, monkeypatch):
    """Blocks of 256 threads stepping over more positions than one plane (N*OH*OW > 256 with
    OH*OW < 256): the (n, oh, ow) counters advance with carries."""
    monkeypatch.setattr(GC, "USE_BAND", False)
    N, C, H, W, K, G, KH, KW, S, P, D = case
    x, _, _, gy, OH, OW = _prep(case, np.float64, seed=23)
    assert GC._wg_split(N * OH * OW, K * (C // G)) == (1, N * OH * OW, 256)
    got = GC.grouped_grad_weight(dev(x, device), dev(gy, device), G, KH, KW, *S, *P, *D)
    _close(got, ref_grad_weight(x, gy, G, KH, KW, S, P, D), np.float64, N * OH * OW)


def test_counter_buffer_per_stream(monkeypatch):
    """The weight-grad band kernel's counters: one zeroed buffer per (device, stream), reused
    on the same stream; two streams may run launches at once, so they never share one."""
    from types import SimpleNamespace  # noqa: PLC0415
    stream = SimpleNamespace(ptr=0)
    fake = SimpleNamespace(__name__="cupy", uint32=np.uint32, zeros=np.zeros,
                           cuda=SimpleNamespace(get_current_stream=lambda: stream))
    monkeypatch.setattr(GC, "_counters", {})
    a = GC._counter_buffer(fake, None, 10)
    assert GC._counter_buffer(fake, None, 10) is a and a.size >= 10 and not a.any()
    stream.ptr = 1234
    b = GC._counter_buffer(fake, None, 10)
    assert b is not a and GC._counter_buffer(fake, None, 5000) is not b   # grows
    stream.ptr = 0
    assert GC._counter_buffer(fake, None, 10) is a


def test_bad_input_errors():
    x, w = _rand((1, 4, 5, 5), 0), _rand((4, 2, 3, 3), 1)
    with pytest.raises(ValueError, match=r"grouped_conv2d: input \(1, 4, 5, 5\) has 4 "
                                         r"channels.*groups=4 expects 8"):
        GC.grouped_conv2d(x, w, 4, 1, 1, 0, 0, 1, 1, 3, 3)
    with pytest.raises(ValueError, match="not a multiple of groups=3"):
        GC.grouped_conv2d(x, w, 3, 1, 1, 0, 0, 1, 1, 3, 3)
    with pytest.raises(TypeError, match=r"grouped_conv2d: input \(float32\) and weight "
                                        r"\(float64\)"):
        GC.grouped_conv2d(x.astype(np.float32), w, 2, 1, 1, 0, 0, 1, 1, 3, 3)
    with pytest.raises(ValueError, match="4-D"):
        GC.grouped_conv2d(x[0], w, 2, 1, 1, 0, 0, 1, 1, 3, 3)
    with pytest.raises(ValueError, match=r"bias \(3,\) must have shape \(4,\)"):
        GC.grouped_conv2d(x, w, 2, 1, 1, 0, 0, 1, 1, 3, 3, _rand((3,), 2))
    with pytest.raises(ValueError, match="depthwise weight must be"):
        GC.depthwise_conv2d(x, w, 1, 1, 0, 0, 1, 1, 3, 3)
    with pytest.raises(ValueError, match="grouped_grad_input: grad_output"):
        GC.grouped_grad_input(_rand((1, 4, 3, 3), 3), w, 2, 6, 5, 5, 1, 1, 0, 0, 1, 1)
    with pytest.raises(ValueError, match="grouped_grad_weight: input"):
        GC.grouped_grad_weight(x, _rand((2, 4, 3, 3), 3), 2, 3, 3, 1, 1, 0, 0, 1, 1)
    with pytest.raises(ValueError, match="32-bit"):
        GC.grouped_conv2d(x, w, 2, 1, 1, 0, 0, 1, 1, 2 ** 16, 2 ** 14)
    with pytest.raises(ValueError, match=r"grouped_grad_weight: \(4, 2, 65536, 65536\).*32-bit"):
        GC.grouped_grad_weight(x, _rand((1, 4, 3, 3), 3), 2, 2 ** 16, 2 ** 16, 1, 1, 0, 0, 1, 1)


# --- the conv family's routing, and the conv op through these kernels -------------------------

def test_conv_rule_routes_small_groups_on_the_gpu(monkeypatch):
    """The conv family's rule (kernels.conv._algorithm, asking grouped_ok): on CUDA arrays,
    G > 1 with at most MAX_CG channels per group takes the direct grouped kernels (any kernel
    size, stride, 1x1 too); depthwise stays 'depthwise'; on NumPy arrays only the 3x3 stride-1
    case does."""
    from minicnn.kernels import conv as KC  # noqa: PLC0415

    def algo(p, C, w_shape):
        x_shape = (2, C, 9, 9)
        out = p.out_size(9, 9, *w_shape[2:])
        return KC._algorithm("forward", p, np.zeros(1), x_shape, w_shape, out)
    p = KC.ConvParams((2, 1), (1, 1), (1, 1), 8)
    assert algo(p, 32, (64, 4, 5, 5)) == "im2col_gemm"
    assert algo(p, 32, (64, 4, 1, 1)) != "grouped"
    assert algo(KC.ConvParams((1, 1), (1, 1), (1, 1), 8), 32, (64, 4, 3, 3)) == "grouped"
    emulate(monkeypatch)
    assert algo(p, 32, (64, 4, 5, 5)) == "grouped"
    assert algo(p, 32, (64, 4, 1, 1)) == "grouped"
    assert algo(p, 8 * 9, (64, 9, 3, 3)) != "grouped"                        # Cg = 9 > 8
    assert algo(KC.ConvParams((1, 1), (0, 0), (1, 1), 1), 4, (8, 4, 3, 3)) != "grouped"  # G = 1
    p16 = KC.ConvParams((1, 1), (1, 1), (1, 1), 16)
    assert algo(p16, 16, (32, 1, 3, 3)) == "depthwise"


@pytest.mark.skipif(not emulator.available(), reason="no C++ compiler for the CUDA emulator")
def test_conv_op_through_the_kernels_emulated(monkeypatch):
    """F.conv2d forward and backward on NumPy arrays under emulation, so the op runs the launch
    functions under the emulator end to end."""
    calls = []
    for name in ("grouped_conv2d", "grouped_grad_input", "grouped_grad_weight",
                 "depthwise_conv2d", "depthwise_grad_input", "depthwise_grad_weight"):
        fn = getattr(GC, name)
        monkeypatch.setattr(GC, name,
                            lambda *a, _fn=fn, _n=name, **k: calls.append(_n) or _fn(*a, **k))
    emulate(monkeypatch)
    for case in (CASES[3], CASES[1]):      # grouped Cg=2, depthwise M=2
        N, C, H, W, K, G, KH, KW, S, P, D = case
        x0, w0, b0, gy, OH, OW = _prep(case, np.float64, seed=19)
        x, w, b = (mc.tensor(a, requires_grad=True) for a in (x0, w0, b0))
        y = F.conv2d(x, w, b, stride=S, padding=P, dilation=D, groups=G)
        (y * mc.tensor(gy)).sum().backward()
        np.testing.assert_allclose(y.numpy(), ref_fwd(x0, w0, G, S, P, D, OH, OW, b0),
                                   rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(x.grad.numpy(), ref_grad_input(gy, w0, G, C, H, W, S, P, D),
                                   rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(w.grad.numpy(), ref_grad_weight(x0, gy, G, KH, KW, S, P, D),
                                   rtol=1e-12, atol=1e-12)
    assert set(calls) == {"grouped_conv2d", "grouped_grad_input", "grouped_grad_weight",
                          "depthwise_conv2d", "depthwise_grad_input", "depthwise_grad_weight"}


@examples(at_least=20)
@given(N=st.integers(1, 3), C=st.integers(1, 5), H=st.integers(3, 19), W=st.integers(3, 37),
       f32=st.booleans(), seed=st.integers(0, 2**16))
def test_depthwise3x3_same_against_reference(N, C, H, W, f32, seed):
    """The CPU's padding-1 depthwise 3x3 kernel (planes read in place, border columns and rows
    redone exactly) against the reference: forward with bias, and the input gradient that
    runs through it; planes from 3x3 up, odd widths."""
    from minicnn.kernels.grouped import cpu as GCPU
    dtype = np.float32 if f32 else np.float64
    rng = np.random.default_rng(seed)
    x, w, b, gy = (rng.standard_normal(s).astype(dtype)
                   for s in ((N, C, H, W), (C, 1, 3, 3), (C,), (N, C, H, W)))
    y = GCPU.depthwise_conv2d(x, w, 1, 1, 1, 1, 1, 1, H, W, b)
    _close(y, ref_fwd(*(a.astype(np.float64) for a in (x, w)), C, (1, 1), (1, 1), (1, 1), H, W,
                      b.astype(np.float64)), dtype, 9)
    gx = GCPU.depthwise_grad_input(gy, w, C, H, W, 1, 1, 1, 1, 1, 1)
    _close(gx, ref_grad_input(gy.astype(np.float64), w.astype(np.float64), C, C, H, W, (1, 1),
                              (1, 1), (1, 1)), dtype, 9)


@pytest.mark.parametrize("spot", [(0, 0), (0, 4), (3, 0), (6, 4), (3, 2), (1, 1)])
def test_depthwise3x3_same_nonfinite_stays_in_its_windows(spot):
    """An inf in x reaches exactly the outputs whose window holds it (the definition's
    pattern), wherever it sits: corner, edge, inside; none leaks across a row's end."""
    from minicnn.kernels.grouped import cpu as GCPU
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 2, 7, 5))
    x[0, 1][spot] = np.inf
    w = np.abs(rng.standard_normal((2, 1, 3, 3))) + 0.1   # positive: inf stays inf
    y = GCPU.depthwise_conv2d(x, w, 1, 1, 1, 1, 1, 1, 7, 5)
    want = np.zeros((7, 5), bool)
    h, c = spot
    want[max(h - 1, 0):h + 2, max(c - 1, 0):c + 2] = True
    np.testing.assert_array_equal(np.isinf(y[0, 1]), want)
    assert np.isfinite(y[0, 0]).all()
