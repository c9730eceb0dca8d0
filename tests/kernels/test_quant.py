"""The int8 family (minicnn.kernels.quant) against its NumPy reference, exactly, on every device
(cpu: the Numba kernels, emu: the CUDA kernels under the emulator, cuda: a GPU): GEMM sizes that
are not multiples of the 64 x 64 tiles or of the 64-byte k-step, K not a multiple of 4, rows off
a 4-byte boundary, every zero point, int32 extremes; quantization ties (round half to even) and
clipping at both ends, per tensor and per channel, from float32, float64, float16 and bfloat16
(the quantize kernels' half instances on emu and cuda; per-channel scales then in the half dtype
too); round trips within half a step; every im2col option; non-contiguous inputs and bad input.
Then the CUDA launch layer's own checks."""
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from minicnn.kernels import quant as Q
from minicnn.kernels.quant import cpu as CPU
from minicnn.kernels.quant import cuda as C
from minicnn.kernels.quant import reference as R
from cuda_util import KERNEL_DEVICES, dev, host, noncontiguous

from . import half_util as Hf

# the kernel_device fixture (emulation on for "emu") holds for every example of a @given test
FIXTURE_OK = settings(suppress_health_check=[*settings.default.suppress_health_check,
                                             HealthCheck.function_scoped_fixture])


# x's dtypes: float16 / bfloat16 inputs are quantized from their exact float32 values, so the
# results are the reference's bit for bit as for float32 (the reference widens them too)
DTYPES = [np.float32, np.float64, *Hf.HALVES]
DTYPE_IDS = ["float32", "float64", *Hf.HALF_IDS]


def _ran(device, launched, dtype):
    """In a half dtype, the quantize kernels' half instances ran on emu and cuda."""
    if np.dtype(dtype) in Hf.HALF_T:
        Hf.ran_half(device, launched, dtype)


def _int8(rng, shape, lo=-128):
    return rng.integers(lo, 128, shape).astype(np.int8)


# --- qgemm_nt ---------------------------------------------------------------------------------

@pytest.mark.parametrize("M,K,N,zp", [
    (1, 1, 1, 0), (1, 4, 1, -3), (37, 29, 11, 5), (64, 150, 16, -128), (7, 513, 3, 127),
    (130, 64, 67, 3), (65, 68, 65, 0), (3, 7, 129, -1), (66, 131, 2, 0)])
def test_qgemm_matches_reference(M, K, N, zp, kernel_device):
    rng = np.random.default_rng(M * 1000 + K * 10 + N)
    a, b = _int8(rng, (M, K)), _int8(rng, (N, K), lo=-127)
    out = Q.qgemm_nt(dev(a, kernel_device), dev(b, kernel_device), zp)
    assert out.dtype == np.int32 and out.shape == (M, N)
    np.testing.assert_array_equal(host(out), R.qgemm_nt(a, b, zp))
    # and with plain integer arithmetic
    np.testing.assert_array_equal(host(out), (a.astype(np.int64) - zp) @ b.astype(np.int64).T)


def test_qgemm_misaligned_noncontiguous_extremes_and_bad_input(kernel_device):
    device = kernel_device
    rng = np.random.default_rng(3)
    M, K, N = 9, 40, 70
    a, b = _int8(rng, (M, K)), _int8(rng, (N, K))
    # K % 4 == 0 but rows 1 and 3 bytes off a 4-byte boundary (the CUDA kernel's byte loads)
    big_a = dev(np.concatenate([np.zeros(1, np.int8), a.reshape(-1)]), device)
    big_b = dev(np.concatenate([np.zeros(3, np.int8), b.reshape(-1)]), device)
    a_mis, b_mis = big_a[1:].reshape(M, K), big_b[3:].reshape(N, K)
    np.testing.assert_array_equal(host(Q.qgemm_nt(a_mis, b_mis, 7)), R.qgemm_nt(a, b, 7))
    # non-contiguous operands are made contiguous (K = 40, and an odd K)
    for k in (K, 15):
        np.testing.assert_array_equal(
            host(Q.qgemm_nt(noncontiguous(a[:, :k], device), noncontiguous(b[:, :k], device), -2)),
            R.qgemm_nt(a[:, :k], b[:, :k], -2))
    # extremes: the int32 sum of 1000 products of -128 and -127 does not overflow
    lo_a, lo_b = np.full((3, 1000), -128, np.int8), np.full((2, 1000), -127, np.int8)
    np.testing.assert_array_equal(host(Q.qgemm_nt(dev(lo_a, device), dev(lo_b, device))),
                                  np.full((3, 2), 128 * 127 * 1000))
    np.testing.assert_array_equal(
        host(Q.qgemm_nt(dev(lo_a, device), dev(lo_b, device), 127)), R.qgemm_nt(lo_a, lo_b, 127))
    empty = Q.qgemm_nt(dev(np.zeros((0, 5), np.int8), device), dev(b[:, :5], device))
    assert empty.shape == (0, N)
    with pytest.raises(ValueError, match="qgemm_nt: mat1 and mat2 shapes cannot be multiplied"):
        Q.qgemm_nt(dev(a, device), dev(b[:, :5], device))
    with pytest.raises(TypeError, match="qgemm_nt: expected int8 inputs, got int32"):
        Q.qgemm_nt(dev(a.astype(np.int32), device), dev(b, device))


# --- quantize and dequantize ------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", [(1,), (7,), (7, 5), (3, 5, 7), (3, 4, 5, 3), (1001,)])
def test_quantize_per_tensor(shape, dtype, kernel_device, launched):
    device = kernel_device
    rng = np.random.default_rng(sum(shape))
    scale = 0.25  # exact ties: x / scale lands on .5 for half the values below
    x = (rng.integers(-600, 600, shape) + rng.choice([0.0, 0.5], shape)) * scale
    x = x.astype(dtype)
    for zp, qmin, qmax in [(0, -128, 127), (3, -128, 127), (-20, -127, 127), (5, -10, 10)]:
        got = Q.quantize_per_tensor(dev(x, device), scale, zp, qmin, qmax)
        assert got.dtype == np.int8
        want = R.quantize_per_tensor(x, scale, zp, qmin, qmax)
        np.testing.assert_array_equal(host(got), want)
    if x.size > 100:
        assert (want == 10).any() and (want == -10).any()  # both clips were exercised
    s = 0.037  # an inexact scale
    np.testing.assert_array_equal(host(Q.quantize_per_tensor(dev(x, device), s, 2)),
                                  R.quantize_per_tensor(x, s, 2))
    if len(shape) > 1:
        np.testing.assert_array_equal(host(Q.quantize_per_tensor(noncontiguous(x, device), s)),
                                      R.quantize_per_tensor(x, s, 0))
    # normal values, saturating for the small scale; and back
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    for scale, zp in [(0.02, 0), (0.031, -17), (1e-3, 100)]:
        got = Q.quantize_per_tensor(dev(x, device), scale, zp)
        want = R.quantize_per_tensor(x, scale, zp)
        np.testing.assert_array_equal(host(got), want)
        back = Q.dequantize(got, scale, zp)
        assert back.dtype == np.float32
        np.testing.assert_array_equal(host(back), R.dequantize(want, scale, zp))
    _ran(device, launched, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape,axis", [((5,), 0), ((4, 3, 2, 3), 0), ((2, 3, 5), 1),
                                        ((2, 3, 5), -1), ((1, 33, 7), 1)])
def test_quantize_per_channel_and_dequantize(shape, axis, dtype, kernel_device, launched):
    device = kernel_device
    rng = np.random.default_rng(len(shape) * 10 + shape[axis])
    C_ = shape[axis]
    x = (rng.standard_normal(shape) * 2).astype(dtype)
    # half data comes with half scales (a model converted with .half()): taken as float32
    scale_dtype = dtype if np.dtype(dtype) in Hf.HALF_T else np.float32
    scale = (rng.random(C_) * 0.01 + 0.005).astype(scale_dtype)
    zp = rng.integers(-5, 6, C_).astype(np.float32)
    for z in (None, zp):
        got = Q.quantize_per_channel(dev(x, device), dev(scale, device),
                                     None if z is None else dev(z, device), axis, -127, 127)
        want = R.quantize_per_channel(x, scale, z, axis % len(shape), -127, 127)
        np.testing.assert_array_equal(host(got), want)
    if x.size > 20:
        assert (want == 127).any() and (want == -127).any()  # clipped at both ends
    q = want
    for z in (0, 3, zp):
        got = Q.dequantize(dev(q, device), dev(scale, device),
                           dev(z, device) if isinstance(z, np.ndarray) else z, axis)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(host(got), R.dequantize(q, scale, z, axis % len(shape)))
    got = Q.dequantize(dev(q, device), 0.0371, -4)
    np.testing.assert_array_equal(host(got), R.dequantize(q, 0.0371, -4))
    got = Q.dequantize(dev(q.astype(np.int32), device), 0.0371, -4)  # not int8: plain formula
    np.testing.assert_array_equal(host(got), R.dequantize(q, 0.0371, -4))
    with pytest.raises(ValueError, match="quantize_per_channel: expected"):
        Q.quantize_per_channel(dev(x, device), dev(scale[:-1] if C_ > 1 else
                                                   np.ones(2, np.float32), device), axis=axis)
    _ran(device, launched, dtype)


@pytest.mark.parametrize("shape,axis", [((5, 3, 3, 3), 0), ((4, 7), 1), ((3, 5, 2), 1)])
def test_quantize_per_channel_with_symmetric_weight_scales(shape, axis, kernel_device):
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    s = Q.symmetric_weight_scales(x, axis)
    got = host(Q.quantize_per_channel(dev(x, kernel_device), dev(s, kernel_device), axis=axis))
    np.testing.assert_array_equal(got, R.quantize_per_channel(x, s, axis=axis))
    assert np.abs(got.astype(int)).max() == 127  # the largest |w| of some channel maps to 127
    with pytest.raises(ValueError, match="quantize_per_channel"):
        Q.quantize_per_channel(dev(x, kernel_device), dev(s[:-1], kernel_device), axis=axis)


@FIXTURE_OK
@given(scale=st.floats(1e-3, 10.0), zp=st.integers(-50, 50))
def test_round_trip_within_half_a_step(kernel_device, scale, zp):
    rng = np.random.default_rng(2)
    lo, hi = (-128 - zp) * scale, (127 - zp) * scale   # the representable range
    x = rng.uniform(lo, hi, size=200).astype(np.float32)
    q = Q.quantize_per_tensor(dev(x, kernel_device), scale, zp)
    err = np.abs(host(Q.dequantize(q, scale, zp)).astype(np.float64) - x)
    # half a step, plus the float32 rounding of x / scale and of the dequantized value
    assert (err <= 0.5 * np.float32(scale) + 2 * np.spacing(np.abs(x))).all()
    # out-of-range values saturate
    q2 = Q.quantize_per_tensor(dev(np.array([hi + 10 * scale, lo - 10 * scale], np.float32),
                                   kernel_device), scale, zp)
    np.testing.assert_array_equal(host(q2), [127, -128])


def test_per_channel_round_trip_within_half_a_step(kernel_device):
    w = np.random.default_rng(3).standard_normal((6, 4, 3, 3)).astype(np.float32)
    w[2] *= 100
    s = Q.symmetric_weight_scales(w, 0)
    q = Q.quantize_per_channel(dev(w, kernel_device), dev(s, kernel_device), axis=0)
    err = np.abs(host(Q.dequantize(q, dev(s, kernel_device), 0, axis=0)).astype(np.float64) - w)
    assert (err <= 0.5 * s[:, None, None, None] + 2 * np.spacing(np.abs(w))).all()


# --- im2col_int8 ------------------------------------------------------------------------------

@FIXTURE_OK
@given(N=st.integers(1, 3), C_=st.integers(1, 4), H=st.integers(1, 7), W=st.integers(1, 7),
       KH=st.integers(1, 3), KW=st.integers(1, 3), SH=st.integers(1, 2), SW=st.integers(1, 3),
       PH=st.integers(0, 2), PW=st.integers(0, 1), DH=st.integers(1, 2), DW=st.integers(1, 2),
       pad=st.integers(-128, 127))
def test_im2col_int8(kernel_device, N, C_, H, W, KH, KW, SH, SW, PH, PW, DH, DW, pad):
    assume(H + 2 * PH >= DH * (KH - 1) + 1 and W + 2 * PW >= DW * (KW - 1) + 1)
    x = _int8(np.random.default_rng(H * W + C_), (N, C_, H, W))
    got, OH, OW = Q.im2col_int8(dev(x, kernel_device), KH, KW, SH, SW, PH, PW, DH, DW,
                                pad_value=pad)
    want, OH2, OW2 = R.im2col_int8(x, KH, KW, SH, SW, PH, PW, DH, DW, pad_value=pad)
    assert (OH, OW) == (OH2, OW2)
    np.testing.assert_array_equal(host(got), want)


def test_im2col_int8_noncontiguous_and_too_large(kernel_device):
    x = _int8(np.random.default_rng(0), (2, 3, 5, 6))
    got, _, _ = Q.im2col_int8(noncontiguous(x, kernel_device), 3, 3, 1, 2, 1, 1, 1, 1,
                              pad_value=-7)
    np.testing.assert_array_equal(host(got), R.im2col_int8(x, 3, 3, 1, 2, 1, 1, 1, 1, -7)[0])
    with pytest.raises(ValueError, match="im2col_int8"):
        Q.im2col_int8(dev(np.zeros((1, 1, 2, 2), np.int8), kernel_device), 3, 3)


# --- dispatch ---------------------------------------------------------------------------------

LAYER_FUNCTIONS = ["quantize_per_tensor", "quantize_per_channel", "dequantize", "qgemm_nt",
                   "im2col_int8"]


def test_a_quantized_conv_runs_on_the_devices_layer(kernel_device, monkeypatch):
    """The API sends NumPy arrays to the Numba kernels, CuPy arrays and emulated ones to the CUDA
    launch layer (so the emu runs above test the CUDA kernels); device arrays stay there from
    one call to the next (quantize, im2col, GEMM, dequantize)."""
    device = kernel_device
    calls = []
    for layer, mod in (("cpu", CPU), ("cuda", C)):
        for fn in LAYER_FUNCTIONS:
            orig = getattr(mod, fn)
            monkeypatch.setattr(mod, fn, lambda *a, _o=orig, _c=(layer, fn), **k: (
                calls.append(_c), _o(*a, **k))[1])
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 3, 6, 5)).astype(np.float32)
    q = Q.quantize_per_tensor(dev(x, device), 0.02, -3)
    np.testing.assert_array_equal(host(q), R.quantize_per_tensor(x, 0.02, -3))
    s = np.array([0.01, 0.02, 0.03], np.float32)
    wq = Q.quantize_per_channel(dev(x, device), dev(s, device), axis=1)
    np.testing.assert_array_equal(host(wq), R.quantize_per_channel(x, s, axis=1))
    np.testing.assert_array_equal(host(Q.dequantize(wq, dev(s, device), 0, axis=1)),
                                  R.dequantize(host(wq), s, 0, axis=1))
    cols, OH, OW = Q.im2col_int8(q, 3, 3, 1, 1, 1, 1, pad_value=-3)
    np.testing.assert_array_equal(host(cols), R.im2col_int8(host(q), 3, 3, 1, 1, 1, 1, 1, 1,
                                                            -3)[0])
    w = _int8(rng, (4, 27), lo=-127)
    acc = Q.qgemm_nt(cols, dev(w, device), -3)
    np.testing.assert_array_equal(host(acc), R.qgemm_nt(host(cols), w, -3))
    layer = "cpu" if device == "cpu" else "cuda"
    assert calls == [(layer, fn) for fn in ["quantize_per_tensor", "quantize_per_channel",
                                            "dequantize", "im2col_int8", "qgemm_nt"]]


# --- the CUDA launch layer --------------------------------------------------------------------

@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_launch_layer_checks(device):
    """qgemm_nt's own checks: what the API refuses, and more tiles of mat2 than the grid's y
    dimension holds."""
    a = dev(np.ones((2, 8), np.int8), device)
    with pytest.raises(ValueError, match="qgemm_nt: expected int8"):
        C.qgemm_nt(a, dev(np.ones((3, 5), np.int8), device))
    with pytest.raises(ValueError, match="qgemm_nt: expected int8"):
        C.qgemm_nt(a, dev(np.ones((3, 8), np.int32), device))
    rows = C.GRID_Y_MAX * C.QG_BN
    b = dev(np.ones((rows + 1, 1), np.int8), device)
    with pytest.raises(ValueError, match=f"qgemm_nt: {rows + 1} rows of mat2 exceed the grid"):
        C.qgemm_nt(a[:, :1], b)
