"""int8 quantization kernels equal their NumPy references exactly (integers), odd sizes included."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minicnn.kernels import quant as kernels
from minicnn.kernels.quant import reference as ref


def _int8(rng, shape, lo=-128):
    return rng.integers(lo, 128, shape).astype(np.int8)


@pytest.mark.parametrize("M,K,N,zp", [(1, 1, 1, 0), (37, 29, 11, 5), (64, 150, 16, -128),
                                      (7, 513, 3, 127)])
def test_qgemm_equals_reference(M, K, N, zp):
    rng = np.random.default_rng(M * K + N)
    a, b = _int8(rng, (M, K)), _int8(rng, (N, K), lo=-127)
    out = kernels.qgemm_nt(a, b, zp)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, ref.qgemm_nt(a, b, zp))
    # and with plain integer arithmetic
    np.testing.assert_array_equal(out, (a.astype(np.int64) - zp) @ b.astype(np.int64).T)


def test_qgemm_extremes_do_not_overflow():
    a = np.full((3, 1000), -128, np.int8)
    b = np.full((2, 1000), -127, np.int8)
    np.testing.assert_array_equal(kernels.qgemm_nt(a, b), np.full((3, 2), 128 * 127 * 1000))


def test_qgemm_noncontiguous_and_bad_input():
    rng = np.random.default_rng(1)
    a = _int8(rng, (9, 14))[:, ::2]
    b = _int8(rng, (5, 7))
    np.testing.assert_array_equal(kernels.qgemm_nt(a, b, 3), ref.qgemm_nt(a, b, 3))
    with pytest.raises(ValueError, match="cannot be multiplied"):
        kernels.qgemm_nt(a, _int8(rng, (5, 6)))
    with pytest.raises(TypeError, match="int8"):
        kernels.qgemm_nt(a.astype(np.int32), b)


@given(N=st.integers(1, 3), C=st.integers(1, 4), H=st.integers(1, 7), W=st.integers(1, 7),
       KH=st.integers(1, 3), KW=st.integers(1, 3), SH=st.integers(1, 2), SW=st.integers(1, 3),
       PH=st.integers(0, 2), PW=st.integers(0, 1), DH=st.integers(1, 2), DW=st.integers(1, 2),
       pad=st.integers(-128, 127))
def test_im2col_int8_equals_reference(N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, pad):
    if H + 2 * PH < DH * (KH - 1) + 1 or W + 2 * PW < DW * (KW - 1) + 1:
        return
    x = _int8(np.random.default_rng(H * W), (N, C, H, W))
    got, OH, OW = kernels.im2col_int8(x, KH, KW, SH, SW, PH, PW, DH, DW, pad_value=pad)
    want, OH2, OW2 = ref.im2col_int8(x, KH, KW, SH, SW, PH, PW, DH, DW, pad_value=pad)
    assert (OH, OW) == (OH2, OW2)
    np.testing.assert_array_equal(got, want)


def test_im2col_int8_kernel_too_large():
    with pytest.raises(ValueError, match="im2col_int8"):
        kernels.im2col_int8(np.zeros((1, 1, 2, 2), np.int8), 3, 3)


@pytest.mark.parametrize("shape", [(1,), (7, 5), (3, 4, 5, 3)])
def test_quantize_per_tensor_equals_reference(shape):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32) * 3
    for scale, zp in [(0.02, 0), (0.031, -17), (1e-3, 100)]:
        got = kernels.quantize_per_tensor(x, scale, zp)
        np.testing.assert_array_equal(got, ref.quantize_per_tensor(x, scale, zp))
        np.testing.assert_array_equal(kernels.dequantize(got, scale, zp),
                                      ref.dequantize(got, scale, zp))


@pytest.mark.parametrize("shape,axis", [((5, 3, 3, 3), 0), ((4, 7), 1), ((3, 5, 2), 1)])
def test_quantize_per_channel_equals_reference(shape, axis):
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    s = kernels.symmetric_weight_scales(x, axis)
    got = kernels.quantize_per_channel(x, s, axis=axis)
    np.testing.assert_array_equal(got, ref.quantize_per_channel(x, s, axis=axis))
    assert np.abs(got.astype(int)).max() == 127  # the largest |w| of some channel maps to 127
    with pytest.raises(ValueError, match="quantize_per_channel"):
        kernels.quantize_per_channel(x, s[:-1], axis=axis)


@given(scale=st.floats(1e-3, 10.0), zp=st.integers(-50, 50))
def test_round_trip_within_half_a_step(scale, zp):
    rng = np.random.default_rng(2)
    lo, hi = (-128 - zp) * scale, (127 - zp) * scale   # the representable range
    x = rng.uniform(lo, hi, size=200).astype(np.float32)
    q = kernels.quantize_per_tensor(x, scale, zp)
    err = np.abs(kernels.dequantize(q, scale, zp).astype(np.float64) - x)
    # half a step, plus the float32 rounding of x / scale and of the dequantized value
    assert (err <= 0.5 * np.float32(scale) + 2 * np.spacing(np.abs(x))).all()
    # out-of-range values saturate
    q2 = kernels.quantize_per_tensor(np.array([hi + 10 * scale, lo - 10 * scale], np.float32),
                                     scale, zp)
    np.testing.assert_array_equal(q2, [127, -128])


def test_per_channel_round_trip_within_half_a_step():
    w = np.random.default_rng(3).standard_normal((6, 4, 3, 3)).astype(np.float32)
    w[2] *= 100
    s = kernels.symmetric_weight_scales(w, 0)
    q = kernels.quantize_per_channel(w, s, axis=0)
    err = np.abs(kernels.dequantize(q, s, 0, axis=0).astype(np.float64) - w)
    assert (err <= 0.5 * s[:, None, None, None] + 2 * np.spacing(np.abs(w))).all()
