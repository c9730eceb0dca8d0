"""The CUDA int8 kernels (kernels/cuda/quant.cu through kernels/cuda/quant.py) equal the NumPy
references (kernels/reference/quant.py) exactly: on the emulator here, on the GPU where there is
one. GEMM sizes that are not multiples of the 64 x 64 tiles or of the 64-byte k-step, K not a
multiple of 4, misaligned rows (the byte-packing path), every zero point; quantization ties
(round half to even) and clipping at both ends; every im2col option."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicnn.kernels import quant as kernels
from minicnn.kernels.quant import cuda as C
from minicnn.kernels.quant import reference as R
from cuda_util import KERNEL_DEVICES, dev, emulate, host, noncontiguous


def _int8(rng, shape, lo=-128):
    return rng.integers(lo, 128, shape).astype(np.int8)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("M,K,N,zp", [
    (1, 1, 1, 0), (1, 4, 1, -3), (37, 29, 11, 5), (64, 150, 16, -128), (7, 513, 3, 127),
    (130, 64, 67, 3), (65, 68, 65, 0), (3, 7, 129, -1), (66, 131, 2, 0)])
def test_qgemm_matches_reference(M, K, N, zp, device):
    rng = np.random.default_rng(M * 1000 + K * 10 + N)
    a, b = _int8(rng, (M, K)), _int8(rng, (N, K), lo=-127)
    out = C.qgemm_nt(dev(a, device), dev(b, device), zp)
    assert out.dtype == np.int32 and out.shape == (M, N)
    np.testing.assert_array_equal(host(out), R.qgemm_nt(a, b, zp))


@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_qgemm_misaligned_noncontiguous_and_extremes(device):
    rng = np.random.default_rng(3)
    M, K, N = 9, 40, 70
    a, b = _int8(rng, (M, K)), _int8(rng, (N, K))
    # K % 4 == 0 but rows 1 byte off a 4-byte boundary: the byte-packing loads
    big_a = dev(np.concatenate([np.zeros(1, np.int8), a.reshape(-1)]), device)
    big_b = dev(np.concatenate([np.zeros(3, np.int8), b.reshape(-1)]), device)
    a_mis, b_mis = big_a[1:].reshape(M, K), big_b[3:].reshape(N, K)
    np.testing.assert_array_equal(host(C.qgemm_nt(a_mis, b_mis, 7)), R.qgemm_nt(a, b, 7))
    # a non-contiguous operand is made contiguous
    np.testing.assert_array_equal(host(C.qgemm_nt(noncontiguous(a, device), dev(b, device), -2)),
                                  R.qgemm_nt(a, b, -2))
    # extremes: the int32 sum of 1000 products of -128 and -127
    lo_a, lo_b = np.full((3, 1000), -128, np.int8), np.full((2, 1000), -127, np.int8)
    np.testing.assert_array_equal(host(C.qgemm_nt(dev(lo_a, device), dev(lo_b, device))),
                                  np.full((3, 2), 128 * 127 * 1000))
    np.testing.assert_array_equal(
        host(C.qgemm_nt(dev(lo_a, device), dev(lo_b, device), 127)), R.qgemm_nt(lo_a, lo_b, 127))
    empty = C.qgemm_nt(dev(np.zeros((0, 5), np.int8), device), dev(b[:, :5], device))
    assert empty.shape == (0, N)
    with pytest.raises(ValueError, match="qgemm_nt"):
        C.qgemm_nt(dev(a, device), dev(b[:, :5], device))


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5, 7), (1001,)])
def test_quantize_per_tensor(shape, dtype, device):
    rng = np.random.default_rng(sum(shape))
    scale = 0.25  # exact ties: x / scale lands on .5 for half the values below
    x = (rng.integers(-600, 600, shape) + rng.choice([0.0, 0.5], shape)) * scale
    x = x.astype(dtype)
    for zp, qmin, qmax in [(0, -128, 127), (3, -128, 127), (-20, -127, 127), (5, -10, 10)]:
        got = C.quantize_per_tensor(dev(x, device), scale, zp, qmin, qmax)
        assert got.dtype == np.int8
        want = R.quantize_per_tensor(x, scale, zp, qmin, qmax)
        np.testing.assert_array_equal(host(got), want)
    if x.size > 100:
        assert (want == 10).any() and (want == -10).any()  # both clips were exercised
    s = 0.037  # an inexact scale
    np.testing.assert_array_equal(host(C.quantize_per_tensor(dev(x, device), s, 2)),
                                  R.quantize_per_tensor(x, s, 2))
    if len(shape) > 1:
        np.testing.assert_array_equal(host(C.quantize_per_tensor(noncontiguous(x, device), s)),
                                      R.quantize_per_tensor(x, s, 0))


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,axis", [((5,), 0), ((4, 3, 2, 3), 0), ((2, 3, 5), 1),
                                        ((2, 3, 5), -1), ((1, 33, 7), 1)])
def test_quantize_per_channel_and_dequantize(shape, axis, dtype, device):
    rng = np.random.default_rng(len(shape) * 10 + shape[axis])
    C_ = shape[axis]
    x = (rng.standard_normal(shape) * 2).astype(dtype)
    scale = (rng.random(C_) * 0.01 + 0.005).astype(np.float32)
    zp = rng.integers(-5, 6, C_).astype(np.float32)
    for z in (None, zp):
        got = C.quantize_per_channel(dev(x, device), dev(scale, device),
                                     None if z is None else dev(z, device), axis, -127, 127)
        want = R.quantize_per_channel(x, scale, z, axis % len(shape), -127, 127)
        np.testing.assert_array_equal(host(got), want)
    if x.size > 20:
        assert (want == 127).any() and (want == -127).any()  # clipped at both ends
    q = want
    for z in (0, 3, zp):
        got = C.dequantize(dev(q, device), dev(scale, device),
                           dev(z, device) if isinstance(z, np.ndarray) else z, axis)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(host(got), R.dequantize(q, scale, z, axis % len(shape)))
    got = C.dequantize(dev(q, device), 0.0371, -4)
    np.testing.assert_array_equal(host(got), R.dequantize(q, 0.0371, -4))
    got = C.dequantize(dev(q.astype(np.int32), device), 0.0371, -4)  # not int8: plain formula
    np.testing.assert_array_equal(host(got), R.dequantize(q, 0.0371, -4))
    with pytest.raises(ValueError, match="quantize_per_channel: expected"):
        C.quantize_per_channel(dev(x, device), dev(scale[:-1] if C_ > 1 else
                                                   np.ones(2, np.float32), device), axis=axis)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@settings(max_examples=12, deadline=None)
@given(N=st.integers(1, 3), C_=st.integers(1, 4), H=st.integers(1, 7), W=st.integers(1, 7),
       KH=st.integers(1, 3), KW=st.integers(1, 3), SH=st.integers(1, 2), SW=st.integers(1, 3),
       PH=st.integers(0, 2), PW=st.integers(0, 1), DH=st.integers(1, 2), DW=st.integers(1, 2),
       pad=st.integers(-128, 127))
def test_im2col_int8(device, N, C_, H, W, KH, KW, SH, SW, PH, PW, DH, DW, pad):
    if H + 2 * PH < DH * (KH - 1) + 1 or W + 2 * PW < DW * (KW - 1) + 1:
        return
    x = _int8(np.random.default_rng(H * W + C_), (N, C_, H, W))
    got, OH, OW = C.im2col_int8(dev(x, device), KH, KW, SH, SW, PH, PW, DH, DW, pad_value=pad)
    want, OH2, OW2 = R.im2col_int8(x, KH, KW, SH, SW, PH, PW, DH, DW, pad_value=pad)
    assert (OH, OW) == (OH2, OW2)
    np.testing.assert_array_equal(host(got), want)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_im2col_int8_noncontiguous_and_too_large(device):
    x = _int8(np.random.default_rng(0), (2, 3, 5, 6))
    got, _, _ = C.im2col_int8(noncontiguous(x, device), 3, 3, 1, 2, 1, 1, 1, 1, pad_value=-7)
    np.testing.assert_array_equal(host(got), R.im2col_int8(x, 3, 3, 1, 2, 1, 1, 1, 1, -7)[0])
    with pytest.raises(ValueError, match="im2col_int8"):
        kernels.im2col_int8(dev(np.zeros((1, 1, 2, 2), np.int8), device), 3, 3)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_dispatchers_send_device_arrays_to_the_kernels(device, monkeypatch):
    """kernels.quantize_per_tensor & co. with CuPy arrays run these kernels (on the emulator:
    NumPy arrays, with the dispatchers' array-module check made to answer 'not NumPy')."""
    if device == "emu":
        emulate(monkeypatch)
    calls = []
    for fn in ("quantize_per_tensor", "quantize_per_channel", "dequantize", "qgemm_nt",
               "im2col_int8"):
        orig = getattr(C, fn)
        monkeypatch.setattr(C, fn, lambda *a, _o=orig, _n=fn, **k: (calls.append(_n),
                                                                     _o(*a, **k))[1])
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 3, 6, 5)).astype(np.float32)
    q = kernels.quantize_per_tensor(dev(x, device), 0.02, -3)
    np.testing.assert_array_equal(host(q), R.quantize_per_tensor(x, 0.02, -3))
    s = np.array([0.01, 0.02, 0.03], np.float32)
    wq = kernels.quantize_per_channel(dev(x, device), dev(s, device), axis=1)
    np.testing.assert_array_equal(host(wq), R.quantize_per_channel(x, s, axis=1))
    np.testing.assert_array_equal(host(kernels.dequantize(wq, dev(s, device), 0, axis=1)),
                                  R.dequantize(host(wq), s, 0, axis=1))
    cols, OH, OW = kernels.im2col_int8(q, 3, 3, 1, 1, 1, 1, pad_value=-3)
    np.testing.assert_array_equal(host(cols), R.im2col_int8(host(q), 3, 3, 1, 1, 1, 1, 1, 1,
                                                            -3)[0])
    w = _int8(rng, (4, 27), lo=-127)
    np.testing.assert_array_equal(host(kernels.qgemm_nt(cols, dev(w, device), -3)),
                                  R.qgemm_nt(host(cols), w, -3))
    assert sorted(set(calls)) == ["dequantize", "im2col_int8", "qgemm_nt", "quantize_per_channel",
                                  "quantize_per_tensor"]
