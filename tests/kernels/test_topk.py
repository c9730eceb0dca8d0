"""The top-k family (minicnn.kernels.topk): topk against its reference on cpu, emu and cuda
(ties, NaN, infinities, k from 1 to the row length, both directions), the sort-order helper
against PyTorch's sort, and the fallbacks (large k, integers)."""
import numpy as np
import pytest

from conftest import torch_or_skip
from minicnn.kernels import topk as K
from minicnn.kernels.topk import reference as R
from cuda_util import dev, host, noncontiguous, ran_on

from . import half_util as Hf

DTYPES = [np.float32, np.float64]


def _rows(dtype, R_=7, L=11, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(-4, 5, (R_, L)).astype(dtype)      # many ties
    x[0, [2, 6]] = np.nan
    x[1, 3], x[2, 8], x[3, :] = np.inf, -np.inf, np.nan
    x[4, [0, 3, 5, 7, 9]] = np.inf, np.nan, np.inf, -np.inf, np.nan    # NaN above inf
    return x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("largest", [True, False])
def test_topk_matches_reference(kernel_device, launched, dtype, largest):
    x = _rows(dtype)
    for k in (1, 2, 5, 11):
        values, idx = K.topk(noncontiguous(x, kernel_device), k, largest)
        rv, ri = R.topk(x, k, largest)
        np.testing.assert_array_equal(host(values), rv, err_msg=f"k {k}")
        np.testing.assert_array_equal(host(idx), ri, err_msg=f"k {k}")
    ran_on(kernel_device, launched)


@pytest.mark.parametrize("descending", [False, True])
def test_argsort_is_pytorchs_stable_sort(descending):
    torch = torch_or_skip()
    for x in (_rows(np.float64), np.random.default_rng(1).integers(-3, 3, (5, 9)),
              np.random.default_rng(2).integers(0, 3, (5, 9)).astype(np.uint8),
              np.random.default_rng(3).random((4, 6)) < 0.5):
        want = torch.sort(torch.from_numpy(x), stable=True, dim=-1, descending=descending).indices
        np.testing.assert_array_equal(K.argsort(x, descending), want.numpy())


def test_large_k_and_integers_take_the_sort():
    x = np.random.default_rng(4).standard_normal((3, 100))
    values, idx = K.topk(x, K.MAX_KERNEL_K + 1, True)
    rv, ri = R.topk(x, K.MAX_KERNEL_K + 1, True)
    np.testing.assert_array_equal(values, rv)
    np.testing.assert_array_equal(idx, ri)
    ints = np.array([[3, 1, 3, 2]])
    np.testing.assert_array_equal(K.topk(ints, 2, True)[1], [[0, 2]])
    np.testing.assert_array_equal(K.topk(ints, 2, False)[1], [[1, 3]])


def test_bad_input():
    with pytest.raises(ValueError, match=r"topk: k \(5\) out of range for rows of 4 elements"):
        K.topk(np.zeros((2, 4)), 5)
    with pytest.raises(ValueError, match="topk: expected a 2-D"):
        K.topk(np.zeros(4), 1)


@pytest.mark.parametrize("dtype", Hf.HALVES, ids=Hf.HALF_IDS)
@pytest.mark.parametrize("largest", [True, False])
def test_half_topk(kernel_device, launched, dtype, largest):
    """Half rows (ties, NaN, infinities): the values and indices of the float32 reference."""
    x32 = _rows(np.float32)
    x = x32.astype(dtype)
    for k in (1, 2, 5, 11):
        values, idx = K.topk(dev(x, kernel_device), k, largest)
        rv, ri = R.topk(x32, k, largest)
        Hf.half_equal(values, rv, dtype)
        np.testing.assert_array_equal(host(idx), ri, err_msg=f"k {k}")
    Hf.ran_half(kernel_device, launched, dtype)
