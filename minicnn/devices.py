"""Where arrays live: the one module that knows about CuPy.

Three targets, asked through one question each:

    get_array_module(*arrays)  numpy, or cupy if any argument is a CuPy array (Chainer's
                               `get_array_module`): what an op computes with
    device_of(a)               'cpu' or 'cuda': where the memory is (Tensor.device, .to())
    kernel_target(a)           'cpu', 'cuda' or 'emu': which kernels a kernel family runs for a.
                               'emu' is a NumPy array inside `emulate_cuda()`: the CUDA kernels
                               then run under the CPU emulator (kernels/cuda/emulator.py), which
                               is how the tests check the GPU path on machines without a GPU.

Only the kernel families (kernels/<family>/__init__.py) ask `kernel_target`; ops never branch on
the device. CuPy is imported lazily, the first time a CUDA array is asked for, so minicnn installs
and runs without CuPy or without a GPU (`import cupy` succeeds on a machine without a GPU, so
`is_cuda_available` also asks the driver).

The public switches live here too and are re-exported as PyTorch spells them:
`mc.cuda.is_available()` / `device_count()` / `synchronize()`, `mc.accelerator`,
`mc.backends.allow_tf32` and `mc.backends.cudnn`, and `mc.device` (the `Device` class).
"""
import contextlib
import contextvars

import numpy

_cupy = None          # the cupy module once a CUDA tensor has been made
_cuda_checked = None  # cached answer of is_cuda_available()
_emulating = contextvars.ContextVar("minicnn_emulate_cuda", default=False)


def cupy():
    """The cupy module (imported on first use, with allow_tf32 applied to it)."""
    global _cupy
    if _cupy is None:
        import cupy as cp  # noqa: PLC0415 -- lazy on purpose
        _cupy = cp
        try:
            _sync_tf32()
        except Exception as exc:  # noqa: BLE001 -- a CuPy without these internals still works
            import warnings  # noqa: PLC0415
            warnings.warn(f"mc.backends: could not set CuPy's TF32 mode: {exc!r}", stacklevel=2)
    return _cupy


def is_cuda_available():
    """True when CuPy imports *and* a CUDA device answers."""
    global _cuda_checked
    if _cuda_checked is None:
        try:
            _cuda_checked = bool(cupy().cuda.is_available())
        except Exception:  # ImportError, or CUDA driver/runtime errors raised by CuPy
            _cuda_checked = False
    return _cuda_checked


def cuda_device_count():
    return _cupy.cuda.runtime.getDeviceCount() if is_cuda_available() else 0


def synchronize():
    """Wait for the current CUDA stream (nothing to do without CUDA)."""
    if is_cuda_available():
        _cupy.cuda.get_current_stream().synchronize()


# --- where an array lives -----------------------------------------------------------------------

def is_cuda_array(a):
    return _cupy is not None and isinstance(a, _cupy.ndarray)


def get_array_module(*arrays):
    """numpy, or cupy if any argument is a CuPy array."""
    if _cupy is not None:
        for a in arrays:
            if isinstance(a, _cupy.ndarray):
                return _cupy
    return numpy


def device_of(a):
    return "cuda" if is_cuda_array(a) else "cpu"


def syncs_on_read(a):
    """Whether reading a value of `a` on the host waits for the device (a CuPy array). Ops ask
    this, not where `a` lives, before a check that needs values (a target out of range): on the
    GPU they defer such checks to NaN results rather than synchronise on every call."""
    return is_cuda_array(a)


def kernel_target(a):
    """'cuda' for a CuPy array; for a NumPy array 'emu' inside emulate_cuda(), else 'cpu'."""
    if is_cuda_array(a):
        return "cuda"
    return "emu" if _emulating.get() else "cpu"


def on_cuda_kernels(a):
    """Whether `a` takes the CUDA kernels (on a GPU or under the emulator)."""
    return is_cuda_array(a) or _emulating.get()


@contextlib.contextmanager
def emulate_cuda():
    """Inside this block (in this thread or task) every kernel family takes its CUDA kernels,
    also for NumPy arrays, which then run under the CPU emulator. For tests."""
    token = _emulating.set(True)
    try:
        yield
    finally:
        _emulating.reset(token)


# --- device objects (mc.device) -----------------------------------------------------------------

_DEVICE_TYPES = ("cpu", "cuda")


class Device:
    """mc.device, PyTorch's torch.device: a device type ('cpu' or 'cuda') and an optional index.

        mc.device("cpu"), mc.device("cuda"), mc.device("cuda:0"), mc.device("cuda", 0)

    Accepted wherever a device string is. As in PyTorch, devices compare equal to devices only
    (`mc.device("cpu") == "cpu"` is False: compare `.type`), and `cuda` differs from `cuda:0`.
    Immutable and hashable. `str()` gives the string form ('cuda:0')."""

    __slots__ = ("type", "index")

    def __init__(self, type, index=None):  # noqa: A002 -- PyTorch's argument names
        if isinstance(type, Device):
            if index is not None:
                raise ValueError("mc.device: an index cannot be given with a device object")
            type, index = type.type, type.index
        elif isinstance(type, str):
            name, colon, number = type.strip().partition(":")
            if colon:
                if index is not None:
                    raise ValueError(f"mc.device: {type!r} has an index already; do not pass "
                                     f"index={index!r} too")
                if not number.isdigit():
                    raise ValueError(f"mc.device: invalid device string {type!r} (expected "
                                     "'cpu', 'cuda' or 'cuda:<index>')")
                index = int(number)
            type = name
        elif isinstance(type, int) and not isinstance(type, bool):
            type, index = "cuda", type      # torch.device(0) is the first accelerator
        else:
            raise TypeError(f"mc.device: expected a string, an int or a device, got "
                            f"{type.__class__.__name__}")
        if type not in _DEVICE_TYPES:
            raise ValueError(f"mc.device: unknown device type {type!r}: expected one of "
                             f"{', '.join(_DEVICE_TYPES)}")
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, int):
                raise TypeError(f"mc.device: the index must be an int, got "
                                f"{index.__class__.__name__}")
            if index < 0:
                raise ValueError(f"mc.device: the index must not be negative, got {index}")
        object.__setattr__(self, "type", type)
        object.__setattr__(self, "index", index)

    def __setattr__(self, name, value):
        raise AttributeError("mc.device objects are immutable")

    def __eq__(self, other):
        if not isinstance(other, Device):
            return NotImplemented
        return (self.type, self.index) == (other.type, other.index)

    def __hash__(self):
        return hash((Device, self.type, self.index))

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self):
        index = "" if self.index is None else f", index={self.index}"
        return f"device(type='{self.type}'{index})"

    def __reduce__(self):
        return (Device, (self.type, self.index))


# --- moving arrays ------------------------------------------------------------------------------

def normalize_device(device):
    """'cpu', 'cuda', 'cuda:0', an mc.device or an object with a `type` attribute (a
    torch.device) -> 'cpu' | 'cuda'."""
    if device is None:
        return "cpu"
    if isinstance(device, str):
        if device.lower().partition(":")[0].strip() not in _DEVICE_TYPES:
            raise ValueError(f"unknown device {device!r}: expected 'cpu' or 'cuda'")
        device = Device(device.lower())     # checks the index
    name = str(getattr(device, "type", device)).lower()
    if name == "cpu":
        return "cpu"
    if name == "cuda":
        if not is_cuda_available():
            raise RuntimeError(
                "device 'cuda' was requested but CUDA is not available "
                "(install minicnn[cuda] with CuPy and run on a machine with an NVIDIA GPU)")
        return "cuda"
    raise ValueError(f"unknown device {device!r}: expected 'cpu' or 'cuda'")


def xp_for(device):
    return cupy() if normalize_device(device) == "cuda" else numpy


def to_device(array, device):
    """Move an array to 'cpu' or 'cuda' (no copy when it is already there)."""
    if normalize_device(device) == "cpu":
        return to_numpy(array)
    return cupy().asarray(array)


def to_numpy(array):
    return array.get() if is_cuda_array(array) else numpy.asarray(array)


def scatter_add(xp, target, index, values):
    """target[index] += values, accumulating repeated indices (NumPy's add.at; cupyx on CUDA)."""
    if xp is numpy:
        numpy.add.at(target, index, values)
    else:
        import cupyx  # noqa: PLC0415
        cupyx.scatter_add(target, index, values)


# --- TF32 (mc.backends.allow_tf32) --------------------------------------------------------------
# False by default, so GPU results match float32 arithmetic (relative error near 1e-6 rather than
# TF32's ~3e-4). It governs every float32 matrix product minicnn hands to cuBLAS through CuPy;
# hand-written CUDA kernels that could use TF32 read it themselves. No effect on the CPU.
# How it reaches CuPy (14.x, read from CuPy's _routines_linalg.pyx):
# - 2-D products call cublasGemmEx with the compute type `cupy._core.get_compute_type(float32)`
#   returns, which CuPy takes once from $CUPY_TF32 unless `set_compute_type` sets it: we set
#   COMPUTE_TYPE_TF32 or COMPUTE_TYPE_DEFAULT, so the flag wins over CUPY_TF32.
# - Batched products (3-D and up) call cublasGemmStridedBatchedEx with the legacy CUDA_R_32F,
#   which ignores the compute type: there cuBLAS's math mode decides, as in PyTorch; we set it on
#   CuPy's cuBLAS handle, one per device and thread, so it reaches the thread that last set the
#   flag or first made a CUDA array (DataLoader workers never run GEMMs).
# Setting the flag imports nothing; CuPy is touched when it is loaded (then at once) or later.

_tf32 = {"allow": False}
_tf32_applied = {}   # "compute_type" -> bool, "tf32_handles" -> set of cuBLAS handles


def _cublas_module(cp):
    try:
        from cupy_backends.cuda.libs import cublas  # noqa: PLC0415 -- CuPy 9..14
    except ImportError:                             # pragma: no cover -- other layouts
        cublas = cp.cuda.cublas
    return cublas


def _sync_tf32():
    """Make CuPy's cuBLAS settings match allow_tf32 (nothing to do before CuPy is loaded). With
    the flag off this only sets CuPy's float32 compute type (no GPU work, no cuBLAS handle)."""
    cp = _cupy
    if cp is None:
        return
    on = _tf32["allow"]
    if on:
        try:
            if not cp.cuda.is_available():
                return      # TF32 needs a device (CuPy checks its compute capability)
        except Exception:  # noqa: BLE001 -- CUDA driver/runtime errors: nothing to configure
            return
    from cupy import _core  # noqa: PLC0415
    from cupy._core import _routines_linalg as linalg  # noqa: PLC0415
    if _tf32_applied.get("compute_type") is not on:
        _core.set_compute_type(numpy.float32,  # (values of CuPy's cpdef enum, as fallbacks)
                               getattr(linalg, "COMPUTE_TYPE_TF32", 7) if on
                               else getattr(linalg, "COMPUTE_TYPE_DEFAULT", 1))
        _tf32_applied["compute_type"] = on
    handles = _tf32_applied.setdefault("tf32_handles", set())
    if on:
        handle = cp.cuda.device.get_cublas_handle()
        if handle not in handles:
            cublas = _cublas_module(cp)
            cublas.setMathMode(handle, getattr(cublas, "CUBLAS_TF32_TENSOR_OP_MATH", 3))
            handles.add(handle)
    elif handles:
        cublas = _cublas_module(cp)
        for handle in handles:
            cublas.setMathMode(handle, getattr(cublas, "CUBLAS_DEFAULT_MATH", 0))
        handles.clear()


def tf32_state():
    """What CuPy does now, for tests and reports: None without CuPy/GPU, else a dict."""
    if _cupy is None or not is_cuda_available():
        return None
    out = {"allow_tf32": _tf32["allow"]}
    try:
        from cupy import _core  # noqa: PLC0415
        from cupy._core import _routines_linalg as linalg  # noqa: PLC0415
        out["compute_type"] = linalg.compute_type_to_str(_core.get_compute_type(numpy.float32))
        handle = _cupy.cuda.device.get_cublas_handle()
        out["math_mode"] = int(_cublas_module(_cupy).getMathMode(handle))  # 0 default, 3 TF32
    except Exception as exc:  # noqa: BLE001 -- a report, never a failure
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out


class _Cudnn:
    """mc.backends.cudnn (PyTorch's torch.backends.cudnn): `benchmark`, `deterministic`,
    `enabled` and `allow_tf32` are accepted and stored, so PyTorch programs that set them run
    unchanged; minicnn uses no cuDNN and nothing reads them (it has no autotuner, and its CUDA
    kernels give the same result on every run, deterministic or not)."""

    _settings = {"benchmark": False, "deterministic": False, "enabled": True,
                 "allow_tf32": True}

    def __init__(self):
        object.__setattr__(self, "_values", dict(self._settings))

    def __getattr__(self, name):
        values = object.__getattribute__(self, "_values")
        if name in values:
            return values[name]
        raise AttributeError(f"mc.backends.cudnn has no setting {name!r} (settings: "
                             f"{', '.join(self._settings)})")

    def __setattr__(self, name, value):
        if name not in self._settings:
            raise AttributeError(f"mc.backends.cudnn has no setting {name!r} (settings: "
                                 f"{', '.join(self._settings)})")
        if not isinstance(value, (bool, numpy.bool_)):
            raise TypeError(f"mc.backends.cudnn.{name} must be True or False, got {value!r}")
        self._values[name] = bool(value)

    @staticmethod
    def is_available():
        return False        # minicnn does not use cuDNN

    @staticmethod
    def version():
        return None

    def __repr__(self):
        return f"mc.backends.cudnn({', '.join(f'{k}={v}' for k, v in self._values.items())})"


class _Backends:
    """mc.backends (PyTorch's torch.backends): `mc.backends.allow_tf32 = True` lets float32
    GEMMs on the GPU use TF32 tensor cores; False (the default) keeps strict float32.
    `mc.backends.cudnn` takes PyTorch's cuDNN switches (stored, see _Cudnn)."""

    cudnn = _Cudnn()

    @property
    def allow_tf32(self):
        return _tf32["allow"]

    @allow_tf32.setter
    def allow_tf32(self, value):
        if not isinstance(value, (bool, numpy.bool_)):
            raise TypeError(f"mc.backends.allow_tf32 must be True or False, got {value!r}")
        _tf32["allow"] = bool(value)
        _sync_tf32()

    def __setattr__(self, name, value):
        if name != "allow_tf32":
            raise AttributeError(f"mc.backends has no setting {name!r} (settings: allow_tf32; "
                                 "and those of mc.backends.cudnn)")
        super().__setattr__(name, value)

    def __repr__(self):
        return f"mc.backends(allow_tf32={self.allow_tf32})"


class _Cuda:
    """mc.cuda (PyTorch's torch.cuda): answers False / 0 cleanly without CuPy or a GPU."""

    @staticmethod
    def is_available():
        return is_cuda_available()

    @staticmethod
    def device_count():
        return cuda_device_count()

    @staticmethod
    def synchronize():
        synchronize()

    def __repr__(self):
        return "mc.cuda"


class _Accelerator:
    """mc.accelerator (PyTorch's torch.accelerator): the one accelerator minicnn knows is CUDA."""

    @staticmethod
    def is_available():
        return is_cuda_available()

    @staticmethod
    def current_accelerator(check_available=False):
        """mc.device('cuda') when CUDA is available, else None (as PyTorch without one)."""
        return Device("cuda") if is_cuda_available() else None

    @staticmethod
    def device_count():
        return cuda_device_count()

    @staticmethod
    def current_device_index():
        return 0 if is_cuda_available() else -1

    @staticmethod
    def synchronize(device=None):
        synchronize()

    def __repr__(self):
        return "mc.accelerator"


backends = _Backends()
cuda = _Cuda()
accelerator = _Accelerator()
