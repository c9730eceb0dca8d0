"""kernels.optim.unscale_ (GradScaler's unscale and finite check in one pass) against its NumPy
reference, bit for bit, on every device: float32 / float64 through the kernels, float16 /
bfloat16 through array code, gradients as one array or as Pieces, with and without inf / NaN."""
import numpy as np
import pytest

import minicnn as mc
from minicnn.kernels import optim as K
from minicnn.kernels.optim import reference as R
from cuda_util import dev, host, ran_on

DTYPES = [np.float32, np.float64, mc.float16, mc.bfloat16]
SIZES = [1, 7, 40001]   # 40001: several chunks on the CPU


def _grads(sizes, dtype, special, rng):
    arrays = [(rng.standard_normal(n) * 1000).astype(dtype) for n in sizes]
    if special is not None:
        arrays[-1][len(arrays[-1]) // 2] = special
    return arrays


@pytest.mark.parametrize("special", [None, np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("pieces", [False, True], ids=["array", "pieces"])
def test_unscale_equals_reference(kernel_device, launched, dtype, special, pieces):
    rng = np.random.default_rng(0)
    sizes = SIZES if pieces else [SIZES[-1]]
    want = _grads(sizes, dtype, special, rng)
    got = [dev(a.copy(), kernel_device) for a in want]
    inv_scale = np.float32(1.0) / np.float32(3.0 * 2 ** 10)
    want_found = R.unscale_(want, inv_scale)
    g = K.Pieces(got, np.cumsum([0] + sizes)) if pieces else got[0]
    found = K.unscale_(g, inv_scale)
    assert bool(found) == want_found == (special is not None)
    for a, w in zip(got, want):
        np.testing.assert_array_equal(host(a).view(np.uint8), w.view(np.uint8))
    if np.dtype(dtype).itemsize >= 4:   # the kernels' (half gradients: array code)
        ran_on(kernel_device, launched)


def test_unscale_refuses_integer_gradients():
    with pytest.raises(TypeError, match="unscale_.*int64"):
        K.unscale_(np.zeros(3, np.int64), 0.5)
