"""mc.backends: switches for how the back ends compute (PyTorch's `torch.backends`).

    import minicnn as mc
    mc.backends.allow_tf32 = True    # float32 GEMMs on the GPU may use TF32 tensor cores
    mc.backends.allow_tf32 = False   # strict float32 again (the default)

`allow_tf32` is False by default, so GPU results match float32 arithmetic (relative error near
1e-6 rather than TF32's ~3e-4). It governs every float32 matrix product that minicnn hands to
cuBLAS through CuPy (`xp.matmul`: Linear, and the convolutions built on im2col + GEMM). Hand-written
CUDA kernels that could use TF32 read `mc.backends.allow_tf32` themselves. It has no effect on
the CPU.

How it reaches CuPy (14.x; read from CuPy's `_routines_linalg.pyx`):
- 2-D products (`cupy.dot`, `matmul` of matrices) call cublasGemmEx with the compute type that
  `cupy._core.get_compute_type(float32)` returns; CuPy picks it once from the environment variable
  CUPY_TF32 unless `cupy._core.set_compute_type` sets it. We set COMPUTE_TYPE_TF32 (->
  CUBLAS_COMPUTE_32F_FAST_TF32) or COMPUTE_TYPE_DEFAULT (-> CUBLAS_COMPUTE_32F): the flag wins
  over CUPY_TF32.
- Batched products (3-D and up, e.g. grouped convolutions) call cublasGemmStridedBatchedEx with
  the legacy compute type CUDA_R_32F, which ignores CuPy's compute type; there cuBLAS's math mode
  decides, as in PyTorch: we set CUBLAS_TF32_TENSOR_OP_MATH or CUBLAS_DEFAULT_MATH on CuPy's
  cuBLAS handle. CuPy keeps one handle per device and thread, so the math mode reaches the
  current device in the thread that last set the flag or first made a CUDA array (DataLoader
  workers never run GEMMs).

Lazy: setting the flag imports nothing. CuPy is touched only when it is already loaded (then at
once) or later, when minicnn first loads it (backend._import_cupy calls `_sync_cupy`).
"""
import sys
import types

import numpy

_state = {"allow_tf32": False}
_applied = {}   # last applied to CuPy: "compute_type" -> bool, "tf32_handles" -> set of handles


def _cublas_module(cupy):
    try:
        from cupy_backends.cuda.libs import cublas  # noqa: PLC0415 -- CuPy 9..14
    except ImportError:                             # pragma: no cover -- older/newer layouts
        cublas = cupy.cuda.cublas
    return cublas


def _sync_cupy():
    """Make CuPy's cuBLAS settings match allow_tf32 (no-op when CuPy is not loaded).

    With the flag off on a fresh process this only sets CuPy's float32 compute type to DEFAULT
    (a Python-level setting: no GPU work, no cuBLAS handle created).
    """
    from . import backend  # noqa: PLC0415
    cupy = backend._cupy
    if cupy is None:
        return
    on = _state["allow_tf32"]
    if on:
        try:
            if not cupy.cuda.is_available():
                return      # TF32 needs a device (CuPy checks its compute capability)
        except Exception:  # noqa: BLE001 -- CUDA driver/runtime errors: nothing to configure
            return
    from cupy import _core  # noqa: PLC0415
    from cupy._core import _routines_linalg as linalg  # noqa: PLC0415
    if _applied.get("compute_type") is not on:
        _core.set_compute_type(numpy.float32,  # (values of CuPy's cpdef enum, as fallbacks)
                               getattr(linalg, "COMPUTE_TYPE_TF32", 7) if on
                               else getattr(linalg, "COMPUTE_TYPE_DEFAULT", 1))
        _applied["compute_type"] = on
    tf32_handles = _applied.setdefault("tf32_handles", set())
    if on:
        handle = cupy.cuda.device.get_cublas_handle()
        if handle not in tf32_handles:
            cublas = _cublas_module(cupy)
            cublas.setMathMode(handle, getattr(cublas, "CUBLAS_TF32_TENSOR_OP_MATH", 3))
            tf32_handles.add(handle)
    elif tf32_handles:
        cublas = _cublas_module(cupy)
        for handle in tf32_handles:
            cublas.setMathMode(handle, getattr(cublas, "CUBLAS_DEFAULT_MATH", 0))
        tf32_handles.clear()


def _tf32_state():
    """What CuPy does now, for tests and reports: None without CuPy/GPU, else a dict."""
    from . import backend  # noqa: PLC0415
    cupy = backend._cupy
    if cupy is None or not backend.is_cuda_available():
        return None
    out = {"allow_tf32": _state["allow_tf32"]}
    try:
        from cupy import _core  # noqa: PLC0415
        from cupy._core import _routines_linalg as linalg  # noqa: PLC0415
        out["compute_type"] = linalg.compute_type_to_str(_core.get_compute_type(numpy.float32))
        cublas = _cublas_module(cupy)
        handle = cupy.cuda.device.get_cublas_handle()
        out["math_mode"] = int(cublas.getMathMode(handle))   # 0 default, 3 TF32 tensor op
    except Exception as exc:  # noqa: BLE001 -- a report, never a failure
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out


class _BackendsModule(types.ModuleType):
    @property
    def allow_tf32(self):
        return _state["allow_tf32"]

    @allow_tf32.setter
    def allow_tf32(self, value):
        if not isinstance(value, (bool, numpy.bool_)):
            raise TypeError(f"mc.backends.allow_tf32 must be True or False, got {value!r}")
        _state["allow_tf32"] = bool(value)
        _sync_cupy()


sys.modules[__name__].__class__ = _BackendsModule
