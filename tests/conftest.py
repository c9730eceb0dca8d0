"""Shared test configuration: hypothesis profiles, the device parametrization, torch access."""
import contextlib
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import minicnn as mc

# Gradient checks run many forward passes per example, so no per-example deadline anywhere.
settings.register_profile(
    "ci", max_examples=12, derandomize=True, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile(
    "dev", max_examples=20, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile(
    "thorough", max_examples=400, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

CUDA = mc.cuda.is_available()


def _emulator_available():
    from minicnn.kernels.cuda import emulator  # noqa: PLC0415
    return emulator.available()


# The same tests run on every device; cuda is reported as skipped (not absent) without a GPU.
# "emu" runs a test on CPU tensors with every kernel dispatch taking its CUDA branch, the CUDA
# kernels running under the CPU emulator (backend.emulate_cuda): the GPU path of the ops, checked
# on machines without a GPU.
EMULATOR = _emulator_available()
DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param("cpu", id="emu", marks=[
        pytest.mark.emu, pytest.mark.skipif(not EMULATOR, reason="no C++ compiler")]),
    pytest.param("cuda", id="cuda", marks=[
        pytest.mark.cuda, pytest.mark.skipif(not CUDA, reason="CUDA is not available")]),
]


@pytest.fixture(autouse=True)
def _emulated_cuda(request):
    if request.node.get_closest_marker("emu") is None:
        yield
        return
    with mc.devices.emulate_cuda():
        yield


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


@pytest.fixture(autouse=True)
def _poison_gpu_outputs(monkeypatch):
    """Fill CuPy kernel outputs with NaN before each kernel runs, so unwritten elements show."""
    from minicnn.kernels.cuda import module  # noqa: PLC0415
    monkeypatch.setattr(module, "POISON", True)


@pytest.fixture(autouse=True)
def _seed():
    mc.manual_seed(0)
    np.random.seed(0)


def torch_or_skip():
    return pytest.importorskip("torch")


@contextlib.contextmanager
def conv_direct_off():
    """The CPU conv rule without its direct kernel (kernels.conv._direct_ok), so the small
    stride-1 convs of a test take im2col_gemm (or winograd) as larger ones do."""
    from minicnn.kernels import conv  # noqa: PLC0415
    saved = conv.DIRECT_MAX_OUT, conv.DIRECT_MAX_OUT_FEW_TAPS
    conv.DIRECT_MAX_OUT = conv.DIRECT_MAX_OUT_FEW_TAPS = 0
    try:
        yield
    finally:
        conv.DIRECT_MAX_OUT, conv.DIRECT_MAX_OUT_FEW_TAPS = saved


@pytest.fixture
def no_direct_conv():
    with conv_direct_off():
        yield
