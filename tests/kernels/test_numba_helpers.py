"""What the CPU kernel families share (minicnn.kernels._numba): the vectorisable float32 exp
against NumPy's over the whole finite range (subnormals, overflow, underflow, NaN) and its
clamped variant, `run`'s single-thread threshold, `matmuls`, and `valid_range`. (The activation
kernels built on exp_f32 are tested at extreme inputs in test_activation.py.)"""
import numba
import numpy as np
import pytest
from numba import njit

from minicnn.kernels import _numba
from minicnn.kernels._numba import exp_f32, exp_f32_neg_clamped, valid_range


@njit(cache=True)
def _exps(x, y, z):
    for i in range(x.size):   # a plain loop: LLVM vectorises it as it does the kernels' prange
        y[i] = exp_f32(x[i])
        z[i] = exp_f32_neg_clamped(x[i])


def _exp(x):
    y, z = np.empty_like(x), np.empty_like(x)
    _exps(x, y, z)
    return y


def _exp_neg_clamped(x):
    y, z = np.empty_like(x), np.empty_like(x)
    _exps(x, y, z)
    return z


def _ulps(got, want):
    return np.abs(got.view(np.int32).astype(np.int64) - want.view(np.int32))


def test_exp_f32_within_one_ulp():
    x = np.concatenate([np.linspace(-104.0, 89.0, 400_001, dtype=np.float32),
                        np.linspace(-1.0, 1.0, 20_001, dtype=np.float32),
                        np.float32([0.0, -0.0, 1e-30, -1e-30, 0.34657359, -0.34657359])])
    with np.errstate(over="ignore"):
        want = np.exp(x.astype(np.float64)).astype(np.float32)  # correctly rounded
    got = _exp(x)
    assert got.dtype == np.float32
    fin = np.isfinite(want)
    assert _ulps(got[fin], want[fin]).max() <= 1
    assert np.array_equal(got[~fin], want[~fin])


def test_exp_f32_limits():
    x = np.float32([np.nan, np.inf, -np.inf, 88.72283, 88.7229, 100.0, -103.97, -103.98, -200.0,
                    -87.5, -100.0])
    got = _exp(x)
    assert np.isnan(got[0])
    assert got[1] == np.inf and got[2] == 0.0
    assert np.isfinite(got[3]) and got[4] == np.inf and got[5] == np.inf
    assert got[6] > 0 and got[7] == 0.0 and got[8] == 0.0
    np.testing.assert_array_equal(got[9:], np.exp(x[9:]))  # subnormal results, exactly


def test_exp_f32_neg_clamped():
    """e**max(x, -87) for x <= 0, within one ulp; below -87, -inf and NaN give e**-87."""
    x = np.concatenate([np.linspace(-87.0, 0.0, 100_001, dtype=np.float32),
                        np.float32([-0.0, -1e-30, -0.34657359])])
    want = np.exp(x.astype(np.float64)).astype(np.float32)
    got = _exp_neg_clamped(x)
    assert got.dtype == np.float32 and _ulps(got, want).max() <= 1
    floor = _exp_neg_clamped(np.float32([-87.0]))[0]
    low = _exp_neg_clamped(np.float32([-87.5, -100.0, -1e30, -np.inf, np.nan]))
    np.testing.assert_array_equal(low, floor)


def test_run_single_thread_threshold():
    """Below SMALL_WORK inner-loop steps a kernel runs on one thread; the thread count is
    restored afterwards, also when the kernel raises."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("Numba has one thread here")
    prev = numba.get_num_threads()
    numba.set_num_threads(2)
    try:
        seen = []

        def kernel(a):
            seen.append(numba.get_num_threads())
            return a

        assert _numba.run(kernel, _numba.SMALL_WORK - 1, 5) == 5
        assert _numba.run(kernel, _numba.SMALL_WORK, 6) == 6
        assert seen == [1, 2] and numba.get_num_threads() == 2

        def boom():
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            _numba.run(boom, 0)
        assert numba.get_num_threads() == 2
    finally:
        numba.set_num_threads(prev)


def test_valid_range():
    """[lo, hi) is exactly the outputs o < O whose tap o * S + off lands in [0, size)."""
    for off in range(-7, 8):
        for S in (1, 2, 3):
            for size in range(0, 9):
                for O in range(0, 9):  # noqa: E741
                    lo, hi = valid_range(off, S, size, O)
                    want = [o for o in range(O) if 0 <= o * S + off < size]
                    assert lo <= hi and list(range(lo, hi)) == want, (off, S, size, O, lo, hi)


@pytest.mark.parametrize("width", [1, 2, 3])
def test_matmuls_products_and_blas_width(width):
    """matmuls: each product exact (as np.matmul, transposed operands too), from two Python
    threads at once, and the BLAS's width as it was afterwards."""
    import threading  # noqa: PLC0415

    import minicnn as mc  # noqa: PLC0415
    rng = np.random.default_rng(width)
    a = rng.standard_normal((16, 7, 5)).astype(np.float32)
    b = rng.standard_normal((16, 9, 5)).astype(np.float32).transpose(0, 2, 1)   # a view
    from minicnn import threads  # noqa: PLC0415
    state, blas, nb = dict(threads._state), _numba._blas_width(), numba.get_num_threads()
    mc.set_num_threads(width)
    try:
        outs = [np.empty((16, 7, 9), np.float32) for _ in range(4)]
        workers = [threading.Thread(target=_numba.matmuls, args=(a, b, o)) for o in outs[:2]]
        for t in workers:
            t.start()
        _numba.matmuls(a, b, outs[2])
        for t in workers:
            t.join()
        for o in outs[:3]:
            np.testing.assert_array_equal(o, [np.matmul(a[i], b[i]) for i in range(16)])
        assert _numba._blas_width() == (width if _numba._blas_libs() else 1)
    finally:     # the widths as they were (the default has the BLAS on one thread)
        threads._state.update(state)
        numba.set_num_threads(nb)
        for lib in _numba._blas_libs():
            lib.set_num_threads(blas)
