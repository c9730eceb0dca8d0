"""The CPU's GEMMs and the BLAS's threads (threadpoolctl): `gemm`, one product, the small
ones kept off the BLAS's own threads; `matmuls`, a batch of products, and `spread`, any tasks,
shared by Python threads each with the BLAS on one thread. No Numba here, so the families'
__init__ modules can import it without loading Numba.
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from minicnn.devices import get_array_module

SMALL_GEMM_MACS = 1 << 24   # below: not on the BLAS's own threads (see gemm)
SPREAD_GEMM_MACS = 1 << 21  # from here to SMALL_GEMM_MACS: in column pieces over Python threads
TINY_GEMM_MACS = 1 << 18    # below this OpenBLAS keeps to one thread by itself
PIECE_COLUMNS = 256         # the fewest output columns of a piece


def gemm(a, b, out=None):
    """a @ b (2-D or stacked; CuPy arrays go to CuPy's matmul as they are). With the BLAS on
    n > 1 threads, a product below SMALL_GEMM_MACS multiply-adds (at most ~0.3 ms on one
    thread) does not go to the BLAS's own threads: waking them costs more than they save there,
    and on a busy machine far more (measured at 2 threads, load 2: LeNet-5's first conv (6, 25)
    @ (25, 50176) 4.0 ms against 0.43 ms on one thread, the tutorial's (6, 75) @ (75, 3136)
    8.3 ms against 0.06 ms). From SPREAD_GEMM_MACS a 2-D product is cut into pieces of output
    columns that n Python threads take in turn, each with the BLAS on one thread, as `matmuls`
    does (the quiet machine's two-thread speed: 0.67 -> 0.36 ms for that first conv); below, it
    runs on the calling thread."""
    xp = get_array_module(a)
    macs = a.size * b.shape[-1]
    if xp is not np or macs < TINY_GEMM_MACS or macs >= SMALL_GEMM_MACS:
        return xp.matmul(a, b, out=out)
    width = _blas_width()
    if width <= 1:
        return np.matmul(a, b, out=out)
    n = b.shape[-1]
    pieces = min(2 * width, n // PIECE_COLUMNS)
    if macs < SPREAD_GEMM_MACS or a.ndim != 2 or pieces < 2:
        with _BlasOnOneThread():
            return np.matmul(a, b, out=out)
    if out is None:
        out = np.empty((a.shape[0], n), np.result_type(a, b))
    cuts = [n * i // pieces for i in range(pieces + 1)]
    spread(pieces, lambda i: np.matmul(a, b[:, cuts[i]:cuts[i + 1]],
                                       out=out[:, cuts[i]:cuts[i + 1]]))
    return out


def matmuls(a, b, out):
    """out[i] = a[i] @ b[i] for a batch of GEMMs (Winograd's 16 per pass; b[i] may be a
    transposed view, which 2-D matmul hands to the BLAS as a flag), through `spread`: with the
    BLAS on n > 1 threads, a multi-threaded BLAS wakes its sleeping workers for every product,
    and on a busy machine a wake-up can wait a time slice. Measured at 2 threads, load 1-4 (A/B
    in one process): the ResNet-18 CIFAR step at batch 8 0.70x, at batch 32 0.28x (the BLAS's
    own threads: median 3.9 s, quartiles 0.95 and 10.4 s), its inference at batch 32 1.2x."""
    spread(len(out), lambda i: np.matmul(a[i], b[i], out=out[i]))


def spread(count, task):
    """task(0), ..., task(count - 1) (each a GEMM or a few), shared by the calling thread and
    n - 1 pool threads when the BLAS has n > 1 threads, each with the BLAS on one thread. A
    task nobody has taken is done by the calling thread, so a worker that is not scheduled
    delays at most the one it holds."""
    width = _blas_width()
    if width <= 1 or count < 2:
        for i in range(count):
            task(i)
        return
    todo = iter(range(count))      # shared: next() on it is atomic under the GIL

    def work():
        for i in todo:
            task(i)
    with _BlasOnOneThread():
        helpers = [_executor(width - 1).submit(work) for _ in range(width - 1)]
        work()
        for h in helpers:
            h.result()


_blas = {"libs": None, "executor": None, "pid": None, "depth": 0, "saved": None}
_BLAS_LOCK = threading.Lock()


def _blas_libs():
    if _blas["libs"] is None:
        try:
            from threadpoolctl import ThreadpoolController  # noqa: PLC0415
            _blas["libs"] = ThreadpoolController().select(user_api="blas").lib_controllers
        except Exception:  # noqa: BLE001 - without threadpoolctl: one thread's products
            _blas["libs"] = []
    return _blas["libs"]


def _blas_width():
    with _BLAS_LOCK:     # while another thread holds the BLAS at one thread, its own width
        if _blas["depth"]:
            return _blas["saved"]
    return max((lib.get_num_threads() or 1 for lib in _blas_libs()), default=1)


class _BlasOnOneThread:
    """The BLAS on one thread while any Python thread is inside (nested and concurrent users
    counted, so the width they restore is the one from before the first)."""

    def __enter__(self):
        with _BLAS_LOCK:
            if _blas["depth"] == 0:
                _blas["saved"] = max(lib.get_num_threads() or 1 for lib in _blas_libs())
                for lib in _blas_libs():
                    lib.set_num_threads(1)
            _blas["depth"] += 1

    def __exit__(self, *exc):
        with _BLAS_LOCK:
            _blas["depth"] -= 1
            if _blas["depth"] == 0:
                for lib in _blas_libs():
                    lib.set_num_threads(_blas["saved"])


def _executor(workers):
    """A pool of `workers` threads, made again after a fork (a child has none of its
    parent's threads) or when the width changes."""
    ex = _blas["executor"]
    if ex is None or _blas["pid"] != os.getpid() or ex._max_workers != workers:
        ex = _blas["executor"] = ThreadPoolExecutor(workers, thread_name_prefix="minicnn-gemm")
        _blas["pid"] = os.getpid()
    return ex
