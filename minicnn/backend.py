"""The one place that chooses NumPy or CuPy.

CuPy is imported lazily, the first time a CUDA array is asked for, so minicnn installs and runs on
machines without CuPy or without a GPU. Ops never import numpy/cupy for array work: they ask
`get_array_module(*arrays)` for `xp` (the pattern of Chainer and DeZero).
"""
import contextlib

import numpy

_cupy = None          # the cupy module once a CUDA tensor has been made
_cuda_checked = None  # cached answer of is_cuda_available()


def _import_cupy():
    global _cupy
    if _cupy is None:
        import cupy  # noqa: PLC0415 -- lazy on purpose
        _cupy = cupy
        from . import backends  # noqa: PLC0415 -- apply mc.backends.allow_tf32 (default: off)
        try:
            backends._sync_cupy()
        except Exception as exc:  # noqa: BLE001 -- a CuPy without these internals still works
            import warnings  # noqa: PLC0415
            warnings.warn(f"mc.backends: could not set CuPy's TF32 mode: {exc!r}", stacklevel=2)
    return _cupy


def is_cuda_available():
    """True when CuPy imports *and* a CUDA device answers (import alone succeeds without a GPU)."""
    global _cuda_checked
    if _cuda_checked is None:
        try:
            cupy = _import_cupy()
            _cuda_checked = bool(cupy.cuda.is_available())
        except Exception:  # ImportError, or CUDA driver/runtime errors raised by CuPy
            _cuda_checked = False
    return _cuda_checked


def cuda_device_count():
    return _cupy.cuda.runtime.getDeviceCount() if is_cuda_available() else 0


def get_array_module(*arrays):
    """numpy, or cupy if any argument is a CuPy array."""
    if _cupy is not None:
        for a in arrays:
            if isinstance(a, _cupy.ndarray):
                return _cupy
    return numpy


def is_cuda_array(a):
    return _cupy is not None and isinstance(a, _cupy.ndarray)


_emulating = False  # see emulate_cuda()


def uses_cuda_kernels(a):
    """Whether the array `a` takes the CUDA kernels at a kernel dispatch: a CuPy array, or any
    array inside `emulate_cuda()`."""
    return _emulating or is_cuda_array(a)


@contextlib.contextmanager
def emulate_cuda():
    """Inside this block every kernel dispatch takes its CUDA branch, also for NumPy arrays: the
    CUDA kernels then run under the CPU emulator (kernels/cuda/emulator.py). This is how the tests
    check the GPU path of the ops -- dispatch, launch shapes, kernels -- on machines without a GPU.
    Not thread-safe; for tests only."""
    global _emulating
    prev, _emulating = _emulating, True
    try:
        yield
    finally:
        _emulating = prev


def device_of(a):
    return "cuda" if is_cuda_array(a) else "cpu"


def normalize_device(device):
    """'cpu', 'cuda', 'cuda:0' or an object with a device attribute -> 'cpu' | 'cuda'."""
    if device is None:
        return "cpu"
    name = str(getattr(device, "type", device)).lower()
    if name == "cpu":
        return "cpu"
    if name == "cuda" or name.startswith("cuda:"):
        if not is_cuda_available():
            raise RuntimeError(
                "device 'cuda' was requested but CUDA is not available "
                "(install minicnn[cuda] with CuPy and run on a machine with an NVIDIA GPU)")
        return "cuda"
    raise ValueError(f"unknown device {device!r}: expected 'cpu' or 'cuda'")


def xp_for(device):
    return _import_cupy() if normalize_device(device) == "cuda" else numpy


def to_device(array, device):
    """Move an array to 'cpu' or 'cuda' (no copy when it is already there)."""
    device = normalize_device(device)
    if device == "cpu":
        return array.get() if is_cuda_array(array) else numpy.asarray(array)
    return _import_cupy().asarray(array)


def to_numpy(array):
    return array.get() if is_cuda_array(array) else numpy.asarray(array)


def scatter_add(xp, target, index, values):
    """target[index] += values, accumulating repeated indices (NumPy's add.at; cupyx on CUDA)."""
    if xp is numpy:
        numpy.add.at(target, index, values)
    else:
        import cupyx  # noqa: PLC0415
        cupyx.scatter_add(target, index, values)
