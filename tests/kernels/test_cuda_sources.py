"""Every CUDA kernel file compiles, without a GPU: with NVRTC exactly as CuPy will compile it on
the GPU machine (the `nvidia-cuda-nvrtc` wheel of the test extra), with nvcc for sm_90 and sm_80
when nvcc is on the machine, and always through the CPU emulator's C++ build."""
import shutil
from pathlib import Path

import pytest

from minicnn.kernels.cuda import check, emulator, source

FILES = source.sources() + [Path(__file__).parents[1] / "cuda_src" / "emu_selftest.cu",
                            Path(__file__).parent / "half_selftest.cu"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_nvcc_compiles(path):
    if shutil.which("nvcc") is None:
        pytest.skip("nvcc is not installed")
    ok, out = check.check(path)
    assert ok, out


@pytest.mark.parametrize("arch", check.ARCHS)
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_nvrtc_compiles(path, arch):
    if check.nvrtc_library() is None:
        pytest.skip("NVRTC is not installed (pip install nvidia-cuda-nvrtc)")
    ok, log = check.nvrtc_check(path, arch)
    assert ok, log


def test_nvrtc_refuses_what_only_host_headers_define(tmp_path):
    """nvcc compiles host headers into every file; NVRTC, which CuPy uses, has none."""
    if check.nvrtc_library() is None:
        pytest.skip("NVRTC is not installed")
    bad = tmp_path / "bad.cu"
    bad.write_text('extern "C" __global__ void k_kernel(float* y) { y[0] = INFINITY; }\n')
    ok, log = check.nvrtc_check(bad)
    assert not ok and "INFINITY" in log


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_emulator_builds_and_declares_kernels(path):
    if not emulator.available():
        pytest.skip("no C++ compiler")
    lib, decls = emulator.library(path)
    assert decls, f"{path.name} declares no kernels"
    for d in decls.values():
        for T in d.types:
            assert hasattr(lib, emulator._symbol(d, T))


def test_system_includes_are_refused(tmp_path):
    bad = tmp_path / "bad.cu"
    bad.write_text('#include <cstdio>\nextern "C" __global__ void k(int n) {}\n')
    with pytest.raises(ValueError, match="system include"):
        source.read(bad)
    ok, out = check.check(bad)
    assert not ok and "system include" in out


def test_signature_parsing():
    text = '''
    template <typename T>
    __global__ void __launch_bounds__(256) f_kernel(const T* __restrict__ x, T* y, int n,
                                                    unsigned long long seed) { }
    extern "C" __global__ void g_kernel(const float* a, long long m) { }
    '''
    ks = source.kernels(text)
    f, g = ks["f_kernel"], ks["g_kernel"]
    assert f.template and not g.template
    assert [p.c_decl("float") for p in f.params] == ["const float*", "float*", "int",
                                                    "unsigned long long"]
    assert f.params[0].const and not f.params[1].const
    assert g.expression() == "g_kernel" and f.expression("double") == "f_kernel<double>"
    with pytest.raises(ValueError, match="unsupported type"):
        source.kernels('extern "C" __global__ void h(size_t n) { }')
