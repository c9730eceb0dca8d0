"""The resampling family (minicnn.kernels.resample): resample2d against its dense reference on
cpu, emu and cuda for every kind of taps (linear, cubic, area, identity, transposed), the
transposes as adjoints, and the host plans (Taps) against PyTorch's interpolation weights."""
import numpy as np
import pytest

from minicnn.kernels import resample as K
from minicnn.kernels.resample import reference as R
from cuda_util import dev, host, noncontiguous, ran_on

from . import half_util as Hf

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=2e-6, atol=2e-6), np.float64: dict(rtol=1e-13, atol=1e-13)}

CASES = [  # (H, W, rows, cols)
    (5, 7, ("linear", 8, False), ("cubic", 3, True)),
    (1, 9, ("linear", 1, True), ("area", 4, False)),
    (6, 1, ("cubic", 11, False), ("linear", 3, False)),
    (4, 4, ("area", 4, False), ("area", 1, False)),
    (3, 13, ("linear", 2, True), ("cubic", 17, False)),
]


def _taps(n, spec, dtype):
    mode, out, align = spec
    return K.taps(n, out, mode, align, None, np.dtype(dtype).name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=range(len(CASES)))
@pytest.mark.parametrize("transpose", [False, True], ids=["forward", "adjoint"])
def test_resample2d_matches_reference(kernel_device, launched, dtype, case, transpose):
    H, W, rspec, cspec = case
    rows, cols = _taps(H, rspec, dtype), _taps(W, cspec, dtype)
    if transpose:
        rows, cols = rows.T, cols.T
    x = np.random.default_rng(0).standard_normal((3, rows.n_in, cols.n_in)).astype(dtype)
    y = host(K.resample2d(noncontiguous(x, kernel_device), rows, cols))
    assert y.dtype == dtype and y.shape == (3, rows.n_out, cols.n_out)
    np.testing.assert_allclose(y, R.resample2d(x, rows, cols), **TOL[dtype])
    ran_on(kernel_device, launched)


def test_cpu_and_cuda_kernels_agree_bit_for_bit(monkeypatch):
    """Both sum the row taps outside and the column taps inside, in the same order."""
    from cuda_util import emulate  # noqa: PLC0415
    rows, cols = K.taps(6, 9, "cubic", False, None, "float32"), K.taps(5, 2, "area")
    x = np.random.default_rng(1).standard_normal((2, 6, 5)).astype(np.float32)
    cpu = K.resample2d(x, rows, cols)
    emulate(monkeypatch)
    np.testing.assert_array_equal(K.resample2d(x, rows, cols), cpu)


def test_transposed_taps_are_the_adjoint():
    rows, cols = K.taps(5, 8, "linear", False, 1.7), K.taps(7, 3, "cubic", True)
    rng = np.random.default_rng(2)
    x, g = rng.standard_normal((2, 5, 7)), rng.standard_normal((2, 8, 3))
    lhs = np.sum(K.resample2d(x, rows, cols) * g)
    rhs = np.sum(x * K.resample2d(g, rows.T, cols.T))
    assert abs(lhs - rhs) < 1e-12 * max(1.0, abs(lhs))
    assert rows.T.T is rows
    np.testing.assert_array_equal(rows.T.dense(), rows.dense().T)


@pytest.mark.parametrize("mode,torch_mode", [("linear", "linear"), ("cubic", "bicubic")])
@pytest.mark.parametrize("align", [False, True])
def test_taps_are_pytorchs_weights(mode, torch_mode, align):
    """The dense matrix of the taps is PyTorch's interpolation applied to the identity."""
    from conftest import torch_or_skip  # noqa: PLC0415
    torch = torch_or_skip()
    for n, out, scale in [(5, 8, None), (7, 3, None), (4, 9, 2.3), (1, 3, None), (6, 6, 0.9)]:
        eye = torch.eye(n, dtype=torch.float64)
        if torch_mode == "linear":
            kw = dict(size=out) if scale is None else dict(scale_factor=scale)
            want = torch.nn.functional.interpolate(eye[:, None, :], mode="linear",
                                                   align_corners=align, **kw)[:, 0].T
        else:
            kw = dict(size=(1, out)) if scale is None else dict(scale_factor=(1.0, scale))
            want = torch.nn.functional.interpolate(eye[:, None, None, :], mode="bicubic",
                                                   align_corners=align, **kw)[:, 0, 0].T
        np.testing.assert_allclose(K.taps(n, want.shape[0], mode, align, scale).dense(),
                                   want.numpy(), rtol=1e-12, atol=1e-14)


def test_taps_positions_fused_and_floored():
    """PyTorch's CPU kernels (AVX2 / AVX-512 builds) fuse s * (dst + 0.5) - 0.5 into one FMA
    and take the input index as floorf, the float32 floor: 1 -> 5 puts output 2 at 2.8e-17 (not
    0), so an inf input gives inf there, not 0 * inf = NaN; 2 -> 6 puts output 4 at
    1 - 1.1e-16, which floorf makes input 1 with weight 1 (input 0's weight exactly 0)."""
    w = K.taps(1, 5, "linear").w.reshape(5, 2)
    assert w[2, 1] == 2.7755575615628914e-17 and w[1, 1] == 0.0
    t = K.taps(2, 6, "linear")
    np.testing.assert_array_equal(t.idx.reshape(6, 2)[4], [1, 1])
    np.testing.assert_array_equal(t.w.reshape(6, 2)[4], [1.0, 0.0])
    assert K.taps(2, 6, "cubic").dense()[4].tolist() == [0.0, 1.0]
    with np.errstate(invalid="ignore"):
        y = K.resample2d(np.full((1, 1, 1), np.inf), K.identity(1), K.taps(1, 5, "linear"))
    np.testing.assert_array_equal(y.reshape(-1), [np.nan, np.nan, np.inf, np.inf, np.inf])


@pytest.mark.parametrize("dtype", DTYPES)
def test_taps_zero_weights_are_pytorchs(dtype):
    """Where PyTorch's interpolation weight is exactly 0 (what decides NaN or inf next to an
    inf input) the taps' is too, over sizes 1..9 -> 1..24 and scale factors, linear and cubic,
    both align_corners; needs a PyTorch whose kernels fuse the position (AVX2 / AVX-512)."""
    from conftest import torch_or_skip  # noqa: PLC0415
    torch = torch_or_skip()
    F = torch.nn.functional
    probe = F.interpolate(torch.tensor([[[0.0, 1.0]]], dtype=torch.float64), size=10,
                          mode="linear", align_corners=False)[0, 0, 2].item()
    if probe == 0.0:
        pytest.skip("this PyTorch build rounds s * (dst + 0.5) - 0.5 twice (no FMA)")
    for mode in ("linear", "cubic"):
        for align in (False, True):
            for n in range(1, 10):
                for out, scale in [(o, None) for o in range(1, 25)] + [
                        (int(n * s), s) for s in (0.5, 0.7, 1.5, 2.1, 3.0, 2.5) if n * s >= 1]:
                    eye = torch.eye(n, dtype=torch.float64 if dtype == np.float64 else
                                    torch.float32)
                    kw = dict(size=out) if scale is None else dict(scale_factor=scale)
                    if mode == "linear":
                        want = F.interpolate(eye[:, None, :], mode="linear",
                                             align_corners=align, **kw)[:, 0].T
                    else:
                        kw = {k: (1, v) if k == "size" else (1.0, v) for k, v in kw.items()}
                        want = F.interpolate(eye[:, None, None, :], mode="bicubic",
                                             align_corners=align, **kw)[:, 0, 0].T
                    got = K.taps(n, want.shape[0], mode, align, scale, np.dtype(dtype).name)
                    np.testing.assert_array_equal(got.dense() == 0, want.numpy() == 0,
                                                  err_msg=f"{mode} {align} {n} {out} {scale}")


def test_bad_input():
    rows, cols = K.taps(4, 2, "linear"), K.taps(3, 2, "linear")
    with pytest.raises(ValueError, match=r"resample2d: x of shape \(1, 3, 3\) does not match"):
        K.resample2d(np.zeros((1, 3, 3)), rows, cols)
    with pytest.raises(ValueError, match="taps: unknown mode 'nearest'"):
        K.taps(4, 2, "nearest")


@pytest.mark.parametrize("dtype", Hf.HALVES, ids=Hf.HALF_IDS)
@pytest.mark.parametrize("transpose", [False, True], ids=["forward", "adjoint"])
def test_half_resample2d(kernel_device, launched, dtype, transpose):
    """Half x with float32 taps (as the op makes them for the widened values): float32 sums,
    one rounding: within one rounding of the format around float32's TOL."""
    for H, W, rspec, cspec in CASES:
        rows, cols = _taps(H, rspec, np.float32), _taps(W, cspec, np.float32)
        if transpose:
            rows, cols = rows.T, cols.T
        x = np.random.default_rng(1).standard_normal((2, rows.n_in, cols.n_in)).astype(dtype)
        y = K.resample2d(dev(x, kernel_device), rows, cols)
        want = R.resample2d(x.astype(np.float32), rows, cols)
        Hf.half_close(y, want, dtype, TOL[np.float32]["rtol"], TOL[np.float32]["atol"])
    Hf.ran_half(kernel_device, launched, dtype)
