"""kernels/cuda/launch.py: the helpers shared by the CUDA launch layers."""
from pathlib import Path

import numpy as np
import pytest
from cuda_util import KERNEL_DEVICES, dev, host

from minicnn.devices import get_array_module
from minicnn.kernels.cuda import launch, module

SRC = Path(__file__).parents[1] / "cuda_src" / "fastdiv.cu"
N_MAX = 2**31 - 1


def _divisors():
    rng = np.random.default_rng(0)
    powers = [v for k in range(31) for v in (2**k - 1, 2**k, 2**k + 1) if 1 <= v <= N_MAX]
    return sorted(set(list(range(1, 600)) + powers + [3136, 200704, 3 * 2**29, N_MAX]
                      + [int(d) for d in rng.integers(1, 2**31, 300)]))


def _numerators(d, rng):
    """The edge values for d: around 0, every multiple of d near the ends of the range, the
    largest n; plus random ones."""
    top = N_MAX // d * d
    ns = [0, 1, d - 1, d, d + 1, 2 * d - 1, 2 * d, top - 1, top, N_MAX - 1, N_MAX]
    ns += [int(n) for n in rng.integers(0, 2**31, 20)]
    return [n for n in ns if 0 <= n <= N_MAX]


def test_fastdiv_exact_on_edge_values():
    """(n * mul) >> shift == n // d (the device formula, in exact integers), mul < 2**32."""
    rng = np.random.default_rng(1)
    for d in _divisors():
        mul, shift = launch.fastdiv(d)
        assert 0 < mul < 2**32 and 31 <= shift <= 62
        for n in _numerators(d, rng):
            assert (n * mul) >> shift == n // d, (n, d)


def test_fastdiv_exhaustive_small():
    """Every n < 2**16 for every d < 2**8, and every d < 2**16 for n near the multiples."""
    n = np.arange(2**16, dtype=np.uint64)
    for d in range(1, 2**8):
        mul, shift = launch.fastdiv(d)
        np.testing.assert_array_equal((n * np.uint64(mul)) >> np.uint64(shift), n // d)
    d = np.arange(1, 2**16, dtype=np.uint64)
    ms = np.array([launch.fastdiv(int(v)) for v in d], dtype=np.uint64)
    for k in (1, 2, 3, 1000, 32767):
        for nn in (d * np.uint64(k) - np.uint64(1), d * np.uint64(k)):
            np.testing.assert_array_equal((nn * ms[:, 0]) >> ms[:, 1], nn // d)


def test_fastdiv_rejects_bad_divisors():
    for d in (0, -3, 2**31):
        with pytest.raises(ValueError, match="fastdiv: divisor must be in"):
            launch.fastdiv(d)
    assert launch.fastdivs(3, 7) == launch.fastdiv(3) + launch.fastdiv(7)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_fastdiv_device_function(device):
    """common.cuh's fastdiv (32-bit arguments, the 64-bit product) on the edge values."""
    rng = np.random.default_rng(2)
    for d in [1, 2, 3, 7, 33, 3136, 2**16 + 1, 2**30, 2**30 + 1, N_MAX]:
        n = np.array(_numerators(d, rng), np.int32)
        nd = dev(n, device)
        q = module.empty(get_array_module(nd), n.shape, np.int32)
        module.kernel(SRC, "fastdiv_kernel")(1, 64, (nd, q, n.size, *launch.fastdiv(d)))
        np.testing.assert_array_equal(host(q), n.astype(np.int64) // d)


def test_blocks():
    assert launch.blocks(0) == 1 and launch.blocks(1) == 1
    assert launch.blocks(257) == 2 and launch.blocks(257, threads=512) == 1
    assert launch.blocks(10**9) == 8 * launch.H100_SMS       # NumPy / no array: an H100
    assert launch.blocks(10**9, waves=16, like=np.zeros(1)) == 16 * launch.H100_SMS
    assert launch.blocks(10**9, cap=2) == 2 and launch.blocks(100, cap=2) == 1
    assert launch.sm_count() == launch.sm_count(np.zeros(1)) == launch.H100_SMS


@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_sm_count_of_the_device(device):
    x = dev(np.zeros(3), device)
    n = launch.sm_count(x)
    assert n >= 1 and launch.sm_count(x) == n
    assert launch.blocks(10**9, waves=4, like=x) == 4 * n


@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_float_input(device):
    x = dev(np.arange(12, dtype=np.float32).reshape(3, 4), device)[:, ::2]
    xp, c = launch.float_input("op", x, 2)
    assert c.flags.c_contiguous and np.array_equal(host(c), host(x))
    assert launch.float_input("op", x)[1].shape == (3, 2)
    assert launch.float_input("op", dev(np.array(2.5), device))[1].shape == ()   # 0-d stays 0-d
    with pytest.raises(ValueError, match="op: expected a 3-D array, got shape"):
        launch.float_input("op", x, 3)
    with pytest.raises(TypeError, match="op: expected float32 or float64, got int32"):
        launch.float_input("op", dev(np.zeros(3, np.int32), device))


def test_check_float_and_data_ptr():
    launch.check_float("op", np.zeros(2, np.float32), np.zeros(2))
    with pytest.raises(TypeError, match="op: expected float32 or float64, got float16"):
        launch.check_float("op", np.zeros(2), np.zeros(2, np.float16))
    a = np.zeros(8)
    assert launch.data_ptr(a[3:]) - launch.data_ptr(a) == 24


def test_pow2ceil_and_split_axis():
    assert [launch.pow2ceil(n) for n in (0, 1, 2, 3, 4, 5, 1000, 1024, 1025)] == \
        [1, 1, 2, 4, 4, 8, 1024, 1024, 2048]
    assert launch.split_axis((2, 3, 4, 5), 1) == (2, 3, 20)
    assert launch.split_axis((2, 3, 4, 5), 0) == (1, 2, 60)
    assert launch.split_axis((2, 3, 4, 5), 3) == (24, 5, 1)
    assert launch.split_axis((7,), 0) == (1, 7, 1)


def test_warp_threads():
    assert [launch.warp_threads(n) for n in (0, 1, 32, 33, 255, 256, 10**6)] == \
        [32, 32, 32, 64, 256, 256, 256]
    assert launch.warp_threads(1000, cap=1024) == 1024 and launch.warp_threads(70, 1024) == 96
