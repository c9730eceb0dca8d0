"""mc.set_num_threads / mc.get_num_threads: one knob for minicnn's two CPU thread pools.

minicnn computes on the CPU with two pools: Numba's (the kernels of kernels/<family>/cpu.py) and
the BLAS under NumPy's matmul (OpenBLAS's own threads). PyTorch has one pool for both;
`set_num_threads(n)` sets both widths to n, as `torch.set_num_threads(n)` sets PyTorch's.

The default never runs both pools at full width: Numba's kernels on every core, the BLAS on one
thread (`default_widths()`, applied by `import minicnn` unless OPENBLAS_NUM_THREADS or
OMP_NUM_THREADS is set). Measured on a shared 2-core machine
(bench/thread_spread.py, bench/results/thread-spread-*.md), a BLAS of two threads is where a
training step's time spread comes from: OpenBLAS's idle workers spin for about 0.1 s after each
product, and even when they sleep at once, every product waits for a sleeping worker to be
scheduled on a busy core. A BLAS of one thread has no workers to wait for.

After `set_num_threads(n)` with n > 1 both pools take turns (a kernel, a GEMM, a kernel); so
that neither holds the cores while the other runs, Numba's idle OpenMP workers spin only
briefly before they sleep (GOMP_SPINCOUNT=3000, set by minicnn/__init__.py: no spin at all cost
~50 us to wake them for each parallel kernel) and OpenBLAS's sleep at once
(OPENBLAS_THREAD_TIMEOUT=1, which OpenBLAS reads
when NumPy is imported: `import minicnn` sets it when NumPy is not loaded yet; a user's own
values win).

Numba's width is per Python thread (numba's own set_num_threads is thread-local): it applies to
the calling thread and to the threads minicnn starts (DataLoader workers run on one thread, as
PyTorch's do: `use_one_thread`).
"""
import os
import sys

_BLAS_TIMEOUT_VAR = "OPENBLAS_THREAD_TIMEOUT"
_QUIET_BLAS_TIMEOUT = "1"   # OpenBLAS raises it to its minimum, 2**4 cycles: sleep at once

_state = {"n": None, "blas_limit": None}


def quiet_blas_before_numpy():
    """Called by `import minicnn` before it imports NumPy: ask OpenBLAS (if not loaded yet) to
    put its idle workers to sleep at once."""
    if "numpy" not in sys.modules:
        os.environ.setdefault(_BLAS_TIMEOUT_VAR, _QUIET_BLAS_TIMEOUT)


def _numba_pool_size():
    import numba  # noqa: PLC0415 -- loaded on first use, as the kernels load it
    return int(numba.config.NUMBA_NUM_THREADS)


def default_widths():
    """(Numba threads, BLAS threads) while set_num_threads has not been called."""
    return _numba_pool_size(), 1


_BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS",
                     "MKL_NUM_THREADS")


def apply_default():
    """Called by `import minicnn`: the BLAS on one thread (Numba's default is its own), unless
    the environment sets the BLAS's threads."""
    if not any(os.environ.get(v) for v in _BLAS_THREAD_VARS):
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
