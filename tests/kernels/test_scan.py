"""The scan family (minicnn.kernels.scan): scan / scan_arg against the reference on cpu, emu and
cuda (every axis of odd shapes, non-contiguous input, NaN and infinities), and against PyTorch's
CPU kernels bit for bit (float64 accumulation, log-add-exp, tie and NaN rules)."""
import numpy as np
import pytest

from conftest import torch_or_skip
from minicnn.kernels import scan as K
from minicnn.kernels.scan import reference as R
from cuda_util import dev, host, noncontiguous, ran_on

from . import half_util as Hf

DTYPES = [np.float32, np.float64]
SHAPES = [(7,), (3, 5), (2, 1, 6), (4, 3, 2), (1,)]


def _data(shape, dtype, seed=0, special=True):
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 4, shape).astype(dtype) * dtype(0.75)
    if special and x.size > 4:
        flat = x.reshape(-1)
        flat[rng.integers(0, x.size, 3)] = [np.nan, np.inf, -np.inf]
    return x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", K.OPS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_scan_matches_reference(kernel_device, launched, dtype, op, shape):
    x = _data(shape, dtype, special=op != "prod")
    for axis in range(len(shape)):
        y = host(K.scan(noncontiguous(x, kernel_device), axis, op))
        assert y.dtype == dtype and y.shape == x.shape
        np.testing.assert_array_equal(y, R.scan(x, axis, op), err_msg=f"axis {axis}")
    ran_on(kernel_device, launched)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", K.ARG_OPS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_scan_arg_matches_reference(kernel_device, launched, dtype, op, shape):
    x = _data(shape, dtype, seed=1)
    for axis in range(len(shape)):
        y, idx = K.scan_arg(dev(x, kernel_device), axis, op)
        ry, ridx = R.scan_arg(x, axis, op)
        np.testing.assert_array_equal(host(y), ry)
        np.testing.assert_array_equal(host(idx), ridx)
        assert host(idx).dtype == np.int64
    ran_on(kernel_device, launched)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cpu_kernels_match_pytorch_bit_for_bit(dtype):
    torch = torch_or_skip()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 50)).astype(dtype) * 3
    x[0, [5, 9]] = [np.inf, -np.inf]
    x[1, 7], x[2, :] = np.nan, -np.inf
    t = torch.from_numpy(x)
    np.testing.assert_array_equal(K.scan(x, 1, "sum"), torch.cumsum(t, 1).numpy())
    np.testing.assert_array_equal(K.scan(x / 2, 1, "prod"), torch.cumprod(t / 2, 1).numpy())
    np.testing.assert_array_equal(K.scan(x, 1, "logsumexp"), torch.logcumsumexp(t, 1).numpy())
    ties = np.round(x)
    for op, fn in [("max", torch.cummax), ("min", torch.cummin)]:
        y, idx = K.scan_arg(ties, 1, op)
        ty, tidx = fn(torch.from_numpy(ties), 1)
        np.testing.assert_array_equal(y, ty.numpy())
        np.testing.assert_array_equal(idx, tidx.numpy())


def test_bad_input():
    with pytest.raises(TypeError, match="scan: expected float32 or float64, got int64"):
        K.scan(np.arange(3), 0, "sum")
    with pytest.raises(ValueError, match="scan: op must be one of"):
        K.scan(np.zeros(3), 0, "max")
    with pytest.raises(ValueError, match="scan_arg: axis 1 out of range"):
        K.scan_arg(np.zeros(3), 1, "max")


@pytest.mark.parametrize("dtype", Hf.HALVES, ids=Hf.HALF_IDS)
def test_half_scans(kernel_device, launched, dtype):
    """Half input: sums, products and log-sum-exps in double, each output rounded to float32
    and then to the format (the float32 reference rounded once more, exactly); running max /
    min and their indices exact. NaN and infinities as in float32."""
    for shape in SHAPES:
        for axis in range(len(shape)):
            for op in K.OPS:
                x32 = _data(shape, np.float32, special=op != "prod")   # multiples of 0.75:
                got = K.scan(dev(x32.astype(dtype), kernel_device), axis, op)   # exact in both
                Hf.half_equal(got, R.scan(x32, axis, op), dtype)
            x32 = _data(shape, np.float32)
            x = x32.astype(dtype)
            for op in K.ARG_OPS:
                y, idx = K.scan_arg(dev(x, kernel_device), axis, op)
                ry, ridx = R.scan_arg(x32, axis, op)
                Hf.half_equal(y, ry, dtype)
                np.testing.assert_array_equal(host(idx), ridx)
    Hf.ran_half(kernel_device, launched, dtype)
