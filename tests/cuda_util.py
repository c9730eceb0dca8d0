"""Running kernels on every device, for the kernel tests.

`KERNEL_DEVICES` parametrizes a test of a CUDA launch layer over "emu" (NumPy arrays: the kernels
run under the CPU emulator, kernels/cuda/emulator.py, so they are tested on every machine with a
C++ compiler) and "cuda" (CuPy arrays on a GPU; skipped without one); `ALL_DEVICES` adds "cpu"
(NumPy arrays: the Numba kernels), for tests of a family's API. The `kernel_device` fixture of
tests/kernels/conftest.py turns emulation on for "emu". `dev(a, device)` puts a NumPy array
there, `host(a)` brings a result back. Import it as `from cuda_util import ...` (tests/ is on the path).
CuPy outputs made by module.empty are filled with NaN in every test (conftest.py), emulated
ones always are.
"""
import contextvars

import numpy as np
import pytest

import minicnn as mc
from minicnn import devices
from minicnn.kernels.cuda import emulator, module

KERNEL_DEVICES = [
    pytest.param("emu", id="emu", marks=pytest.mark.skipif(
        not emulator.available(), reason="no C++ compiler for the CUDA emulator")),
    pytest.param("cuda", id="cuda", marks=[
        pytest.mark.cuda,
        pytest.mark.skipif(not mc.cuda.is_available(), reason="CUDA is not available")]),
]

ALL_DEVICES = [pytest.param("cpu", id="cpu")] + KERNEL_DEVICES


def emulate(monkeypatch):
    """Until the test ends, every kernel dispatch takes its CUDA branch, NumPy arrays too (their
    kernels then run under the CPU emulator): `minicnn.devices.emulate_cuda()` for a test.
    Returns the list of the CUDA kernels launched from then on (by name)."""
    monkeypatch.setattr(devices, "_emulating", contextvars.ContextVar("emulating", default=True))
    launched = []
    call = module.Kernel.__call__

    def spy(self, *args, **kwargs):
        launched.append(self.name)
        return call(self, *args, **kwargs)
    monkeypatch.setattr(module.Kernel, "__call__", spy)
    return launched


def dev(a, device):
    a = np.asarray(a)
    if device == "cuda":
        import cupy  # noqa: PLC0415
        return cupy.asarray(a)
    return a.copy()


def host(a):
    return a.get() if hasattr(a, "get") else np.asarray(a)


def noncontiguous(a, device):
    """The same values as `a` in a non-contiguous array (every other element of a wider one)."""
    a = np.asarray(a)
    wide = np.empty(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    wide[..., ::2] = a
    wide[..., 1::2] = np.nan if a.dtype.kind == "f" else 0
    return dev(wide, device)[..., ::2]


def ran_on(device, launched):
    """The kernels that ran were the device's: CUDA ones on emu and cuda, none on cpu."""
    assert bool(launched) == (device != "cpu"), launched
