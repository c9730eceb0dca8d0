"""mc.set_num_threads / mc.get_num_threads: one knob for minicnn's two CPU thread pools.

minicnn computes on the CPU with two pools: Numba's (the kernels of kernels/<family>/cpu.py) and
the BLAS under NumPy's matmul (OpenBLAS's own threads). PyTorch has one pool for both;
`set_num_threads(n)` sets both widths to n, as `torch.set_num_threads(n)` sets PyTorch's.

The pools take turns (a kernel, a GEMM, a kernel), so the default must keep one pool from
holding the cores while the other runs. Numba's OpenMP workers sleep when idle
(OMP_WAIT_POLICY=PASSIVE, set by `import minicnn`). OpenBLAS's spin for about 0.1 s after each
product unless OPENBLAS_THREAD_TIMEOUT is small, a setting OpenBLAS reads once, when NumPy is
imported: `import minicnn` sets it when NumPy is not loaded yet (a user's own value wins). So the
default (`default_widths()`):

- OpenBLAS's workers sleep when idle (minicnn imported before NumPy, or the variable set):
  every core for both pools, which never run at once;
- they spin (NumPy imported first): BLAS on one thread, which has no workers to spin, and every
  core for Numba.

`set_num_threads` replaces the default. Numba's width is per Python thread (numba's own
set_num_threads is thread-local): it applies to the calling thread and to the threads minicnn
starts (DataLoader workers call `use_one_thread`, as PyTorch's workers run on one thread).
"""
import os
import sys

_BLAS_TIMEOUT_VAR = "OPENBLAS_THREAD_TIMEOUT"
_QUIET_BLAS_TIMEOUT = "1"   # OpenBLAS raises it to its minimum, 2**4 cycles: sleep at once

_state = {"n": None, "blas_spins": True, "blas_limit": None}


def quiet_blas_before_numpy():
    """Called by `import minicnn` before it imports NumPy: ask OpenBLAS (if not loaded yet) to
    put its idle workers to sleep at once; note whether they will spin."""
    if "numpy" not in sys.modules:
        os.environ.setdefault(_BLAS_TIMEOUT_VAR, _QUIET_BLAS_TIMEOUT)
    try:
        _state["blas_spins"] = int(os.environ.get(_BLAS_TIMEOUT_VAR, "99")) > 4
    except ValueError:
        _state["blas_spins"] = True


def blas_spins():
    """Whether OpenBLAS's idle workers spin (NumPy was loaded before minicnn could stop it)."""
    return _state["blas_spins"]


def _numba_pool_size():
    import numba  # noqa: PLC0415 -- loaded on first use, as the kernels load it
    return int(numba.config.NUMBA_NUM_THREADS)


def default_widths():
    """(Numba threads, BLAS threads) while set_num_threads has not been called."""
    n = _numba_pool_size()
    return (n, 1) if blas_spins() else (n, n)


def apply_default():
    """Called by `import minicnn`: one BLAS thread when OpenBLAS's workers spin."""
    if blas_spins():
        _limit_blas(1)


def _limit_blas(n):
    try:
        from threadpoolctl import ThreadpoolController  # noqa: PLC0415
    except ImportError:       # a declared dependency; an install without it keeps the BLAS's own
        return
    _state["blas_limit"] = ThreadpoolController().limit(limits=n, user_api="blas")


def _numba_width(n):
    import numba  # noqa: PLC0415
    n = min(n, _numba_pool_size())
    if numba.get_num_threads() != n:
        numba.set_num_threads(n)


def set_num_threads(n):
    """Run minicnn's CPU work on n threads: Numba's kernels (in this Python thread and the
    threads minicnn starts; at most Numba's pool, NUMBA_NUM_THREADS) and the BLAS."""
    if isinstance(n, bool) or not hasattr(n, "__index__"):
        raise TypeError(f"set_num_threads: expected an int, got {type(n).__name__}")
    n = n.__index__()
    if n < 1:
        raise ValueError(f"set_num_threads: the number of threads must be positive, got {n}")
    _state["n"] = n
    _numba_width(n)
    _limit_blas(n)


def get_num_threads():
    """The number given to set_num_threads, else the default's Numba width."""
    return _state["n"] if _state["n"] is not None else default_widths()[0]


def use_one_thread(process_wide):
    """A DataLoader worker's setting: Numba on one thread in this Python thread (if Numba is
    loaded; a thread that never runs a kernel need not load it) and, in a worker process
    (process_wide), the BLAS on one thread too."""
    if "numba" in sys.modules:
        import numba  # noqa: PLC0415
        numba.set_num_threads(1)
    if process_wide:
        _limit_blas(1)
