"""The fixtures of the kernel tests: the device, and the CUDA kernels a test launched."""
import pytest

from cuda_util import ALL_DEVICES, emulate
from minicnn.kernels.cuda import module


@pytest.fixture(params=ALL_DEVICES)
def kernel_device(request, monkeypatch):
    """'cpu', 'emu' or 'cuda' for a test of a family's API: with 'emu', every kernel family
    takes its CUDA kernels (under the emulator) until the test ends. Put arrays there with
    cuda_util.dev(a, kernel_device)."""
    if request.param == "emu":
        emulate(monkeypatch)
    return request.param


@pytest.fixture
def launched(kernel_device, monkeypatch):
    """The CUDA kernels launched during the test (by name): none on cpu, some on emu and cuda
    (check with cuda_util.ran_on, so an emu case cannot quietly test the CPU path)."""
    names = []
    call = module.Kernel.__call__

    def spy(self, *args, **kwargs):
        names.append(self.name)
        return call(self, *args, **kwargs)
    monkeypatch.setattr(module.Kernel, "__call__", spy)
    return names
