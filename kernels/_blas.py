"""The CPU's GEMMs and the BLAS's threads (threadpoolctl): `gemm`, one product with small ones
on one BLAS thread; `matmuls`, a batch of products spread over Python threads. No Numba here,
so the families' __init__ modules can import it without loading Numba.
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from minicnn.devices import get_array_module

SMALL_GEMM_MACS = 1 << 24   # products with fewer multiply-adds run on one BLAS thread
TINY_GEMM_MACS = 1 << 18    # below this OpenBLAS keeps to one thread by itself


def gemm(a, b, out=None):
    """a @ b (2-D or stacked; CuPy arrays go to CuPy's matmul as they are). A product of
    TINY_GEMM_MACS to SMALL_GEMM_MACS multiply-adds (at most ~0.3 ms on one thread) runs with the
    BLAS on one thread: waking OpenBLAS's other threads costs more than they save there, and on
    a busy machine far more. Measured at 2 threads, load 2: LeNet-5's first conv (6, 25) @
    (25, 50176) 4.0 ms against 0.43 ms on one thread, the tutorial's (6, 75) @ (75, 3136)
    8.3 ms against 0.06 ms."""
    xp = get_array_module(a)
    if xp is np and TINY_GEMM_MACS <= a.size * b.shape[-1] < SMALL_GEMM_MACS and \
            _blas_width() > 1:
        with _BlasOnOneThread():
            return np.matmul(a, b, out=out)
    return xp.matmul(a, b, out=out)


def matmuls(a, b, out):
    """out[i] = a[i] @ b[i] for a batch of GEMMs (Winograd's 16 per pass; b[i] may be a
    transposed view, which 2-D matmul hands to the BLAS as a flag). With the BLAS on n > 1
    threads, n Python threads take the products in turn, each with the BLAS on one thread: a
    multi-threaded BLAS wakes its sleeping workers for every product, and on a busy machine a
    wake-up can wait a time slice. Measured at 2 threads, load 1-4 (A/B in one process): the
    ResNet-18 CIFAR step at batch 8 0.70x, at batch 32 0.28x (the BLAS's own threads: median
    3.9 s, quartiles 0.95 and 10.4 s), its inference at batch 32 1.2x. A product nobody has
    taken is done by the calling thread, so a worker that is not scheduled delays at most the
    one it holds."""
    width = _blas_width()
    if width <= 1 or len(out) < 2:
        for i in range(len(out)):
            np.matmul(a[i], b[i], out=out[i])
        return
    todo = iter(range(len(out)))      # shared: next() on it is atomic under the GIL

    def work():
        for i in todo:
            np.matmul(a[i], b[i], out=out[i])
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
