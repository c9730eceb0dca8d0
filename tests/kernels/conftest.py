"""The device fixture of the kernel tests."""
import pytest

from cuda_util import ALL_DEVICES, emulate


@pytest.fixture(params=ALL_DEVICES)
def kernel_device(request, monkeypatch):
    """'cpu', 'emu' or 'cuda' for a test of a family's API: with 'emu', every kernel family
    takes its CUDA kernels (under the emulator) until the test ends. Put arrays there with
    cuda_util.dev(a, kernel_device)."""
    if request.param == "emu":
        emulate(monkeypatch)
    return request.param
