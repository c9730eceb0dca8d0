"""minicnn.devices: mc.backends.allow_tf32: the default, setting it, no CuPy import, and its effect on cuBLAS."""
import subprocess
import sys
import types

import numpy as np
import pytest

import minicnn as mc
from minicnn import devices

CUDA = mc.cuda.is_available()


@pytest.fixture
def restore_tf32():
    before = mc.backends.allow_tf32
    yield
    mc.backends.allow_tf32 = before


def test_default_is_off():
    # In a fresh process: the default, and that neither reading nor setting it loads CuPy.
    code = ("import sys, minicnn as mc\n"
            "assert mc.backends.allow_tf32 is False\n"
            "mc.backends.allow_tf32 = True\n"
            "assert mc.backends.allow_tf32 is True\n"
            "mc.backends.allow_tf32 = False\n"
            "assert 'cupy' not in sys.modules, 'mc.backends loaded cupy'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_set_and_reset(restore_tf32):
    mc.backends.allow_tf32 = True
    assert mc.backends.allow_tf32 is True
    mc.backends.allow_tf32 = np.bool_(False)
    assert mc.backends.allow_tf32 is False


@pytest.mark.parametrize("bad", [1, "yes", None])
def test_rejects_non_bool(bad, restore_tf32):
    with pytest.raises(TypeError, match="allow_tf32 must be True or False"):
        mc.backends.allow_tf32 = bad
    assert mc.backends.allow_tf32 is False


def test_cpu_results_do_not_change(restore_tf32):
    a = mc.randn(16, 32)
    b = mc.randn(32, 8)
    ref = (a @ b).numpy().copy()
    mc.backends.allow_tf32 = True
    np.testing.assert_array_equal((a @ b).numpy(), ref)


class _FakeCupy:
    """Just enough of CuPy's layout for devices._sync_tf32: records what it is asked to set."""

    def __init__(self, monkeypatch, gpu=True):
        self.compute_type = {}   # dtype -> compute type
        self.math_mode = {}      # handle -> mode
        self.handle = 1234
        linalg = types.SimpleNamespace(COMPUTE_TYPE_DEFAULT=1, COMPUTE_TYPE_TF32=7,
                                       compute_type_to_str=str)
        core = types.ModuleType("cupy._core")
        core._routines_linalg = linalg
        core.set_compute_type = lambda dtype, ct: self.compute_type.__setitem__(
            np.dtype(dtype), ct)
        core.get_compute_type = lambda dtype: self.compute_type.get(np.dtype(dtype), 0)
        cublas = types.ModuleType("cupy_backends.cuda.libs.cublas")
        cublas.CUBLAS_DEFAULT_MATH, cublas.CUBLAS_TF32_TENSOR_OP_MATH = 0, 3
        cublas.setMathMode = self.math_mode.__setitem__
        cublas.getMathMode = lambda h: self.math_mode.get(h, 0)
        cupy = types.ModuleType("cupy")
        cupy._core = core
        cupy.cuda = types.SimpleNamespace(
            is_available=lambda: gpu,
            device=types.SimpleNamespace(get_cublas_handle=lambda: self.handle))
        for name, mod in [("cupy", cupy), ("cupy._core", core),
                          ("cupy._core._routines_linalg", linalg),
                          ("cupy_backends", types.ModuleType("cupy_backends")),
                          ("cupy_backends.cuda", types.ModuleType("cupy_backends.cuda")),
                          ("cupy_backends.cuda.libs", types.ModuleType("cupy_backends.cuda.libs")),
                          ("cupy_backends.cuda.libs.cublas", cublas)]:
            monkeypatch.setitem(sys.modules, name, mod)
        sys.modules["cupy_backends.cuda.libs"].cublas = cublas
        monkeypatch.setattr(devices, "_cupy", cupy)
        monkeypatch.setattr(devices, "_tf32_applied", {})


@pytest.mark.skipif(CUDA, reason="replaces the real CuPy; the cuda test covers a real GPU")
def test_sync_sets_compute_type_and_math_mode(monkeypatch, restore_tf32):
    fake = _FakeCupy(monkeypatch)
    devices._sync_tf32()                       # what loading CuPy does: strict fp32, no handle
    assert fake.compute_type == {np.dtype(np.float32): 1} and fake.math_mode == {}
    mc.backends.allow_tf32 = True
    assert fake.compute_type[np.dtype(np.float32)] == 7 and fake.math_mode == {1234: 3}
    monkeypatch.setattr(devices, "_cuda_checked", True)
    assert devices.tf32_state() == {"allow_tf32": True, "compute_type": "7", "math_mode": 3}
    mc.backends.allow_tf32 = False
    assert fake.compute_type[np.dtype(np.float32)] == 1 and fake.math_mode == {1234: 0}
    assert devices.tf32_state()["math_mode"] == 0


@pytest.mark.skipif(CUDA, reason="replaces the real CuPy; the cuda test covers a real GPU")
def test_sync_without_gpu_leaves_cupy_alone(monkeypatch, restore_tf32):
    fake = _FakeCupy(monkeypatch, gpu=False)
    mc.backends.allow_tf32 = True               # no device: nothing to set, no error
    assert mc.backends.allow_tf32 is True
    assert fake.compute_type == {} and fake.math_mode == {}


def _rel_err(got, ref):
    return float(np.linalg.norm(got - ref) / np.linalg.norm(ref))


@pytest.mark.cuda
@pytest.mark.skipif(not CUDA, reason="CUDA is not available")
@pytest.mark.parametrize("batched", [False, True], ids=["2d", "batched"])
def test_tf32_changes_cuda_matmul(batched, restore_tf32):
    import cupy  # noqa: PLC0415
    rng = np.random.default_rng(0)
    shape_a, shape_b = ((4, 256, 1024), (4, 1024, 256)) if batched else ((512, 1024), (1024, 512))
    a = rng.standard_normal(shape_a).astype(np.float32)
    b = rng.standard_normal(shape_b).astype(np.float32)
    ref = np.matmul(a.astype(np.float64), b.astype(np.float64))
    ga, gb = cupy.asarray(a), cupy.asarray(b)

    mc.backends.allow_tf32 = False
    strict = _rel_err(cupy.asnumpy(cupy.matmul(ga, gb)), ref)
    strict_mc = _rel_err((mc.tensor(a, device="cuda") @ mc.tensor(b, device="cuda")).cpu()
                         .numpy(), ref)
    mc.backends.allow_tf32 = True
    tf32 = _rel_err(cupy.asnumpy(cupy.matmul(ga, gb)), ref)
    mc.backends.allow_tf32 = False
    again = _rel_err(cupy.asnumpy(cupy.matmul(ga, gb)), ref)

    state = devices.tf32_state()
    msg = f"rel. errors: fp32 {strict:.2e}, minicnn {strict_mc:.2e}, tf32 {tf32:.2e}, {state}"
    assert strict < 1e-5 and strict_mc < 1e-5, msg      # fp32: ~1e-7
    assert again < 1e-5, msg                            # switching back restores fp32
    assert 1e-4 < tf32 < 5e-3, msg                      # TF32's 10-bit mantissa: ~3e-4
