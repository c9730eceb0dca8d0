"""The half-precision storage of the CUDA kernels (kernels/cuda/half.cuh) on emu and cuda: the
conversions (float32 -> float16 as NumPy rounds, float32 -> bfloat16 bit-equal to ml_dtypes,
both to nearest even, NaN and inf included; the way back exact), the loader's instances, and
the routing of kernels._half (half arrays straight to the half kernels on the CUDA target,
widened where the arguments mix dtypes). Each family's half kernels are tested in its own
test_<family>.py."""
from pathlib import Path

import numpy as np
import pytest

import minicnn as mc
from minicnn.kernels.cuda import module, source
from cuda_util import KERNEL_DEVICES, dev, host

SELFTEST = Path(__file__).parent / "half_selftest.cu"
HALVES = [mc.float16, mc.bfloat16]


def _floats(rng):
    """float32 values where rounding is decided: random bit patterns (every exponent, NaNs and
    subnormals among them), ties of both formats, the overflow thresholds, signed zeros, inf."""
    bits = rng.integers(0, 2**32, 20000, dtype=np.uint64).astype(np.uint32)
    ties = (rng.integers(0, 2**16, 2000, dtype=np.uint32) << 16) | 0x8000   # bfloat16 ties
    f16_ties = np.float32(np.arange(1, 2000) * 2.0**-10 + 2.0**-11).view(np.uint32)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 65504.0, 65519.996, 65520.0,
                        3.3895314e38, 3.4028235e38, 2.0**-24, 2.0**-25, 2.0**-26, 1e-45],
                       np.float32).view(np.uint32)
    return np.concatenate([bits, ties, f16_ties, special, special ^ 0x80000000]).view(np.float32)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", HALVES, ids=lambda d: np.dtype(d).name)
def test_conversions_round_as_numpy(device, dtype):
    x = _floats(np.random.default_rng(1))
    with np.errstate(over="ignore", invalid="ignore"):   # beyond the range: inf, as IEEE's
        want = x.astype(dtype)
    y, back = module.empty(np, x.shape, dtype), module.empty(np, x.shape, np.float32)
    y, back = dev(y, device), dev(back, device)
    module.kernel(SELFTEST, "narrow_kernel", dtype)((64,), (256,), (dev(x, device), y, back,
                                                                    x.size))
    y, back = host(y), host(back)
    nan = np.isnan(want.astype(np.float32))
    np.testing.assert_array_equal(np.isnan(y.astype(np.float32)), nan)
    got_bits, want_bits = y.view(np.uint16), want.view(np.uint16)
    if device == "emu" and dtype == mc.bfloat16:   # the emulator's own rounding: NaNs too
        np.testing.assert_array_equal(got_bits, want_bits)
    else:   # a GPU (and g++'s _Float16) may give NaN another payload
        np.testing.assert_array_equal(got_bits[~nan], want_bits[~nan])
    np.testing.assert_array_equal(back.view(np.uint32)[~nan],
                                  want.astype(np.float32).view(np.uint32)[~nan])


def test_half_instances_are_declared():
    decls = source.kernels(source.read(SELFTEST))
    assert decls["narrow_kernel"].types == ("float", "double", "__half", "__nv_bfloat16")
    assert [p.c_decl("__half") for p in decls["narrow_kernel"].params] == \
        ["const float*", "__half*", "float*", "int"]
    k = module.kernel(SELFTEST, "narrow_kernel", mc.bfloat16)
    assert k.name == "narrow_kernel<__nv_bfloat16>"


def test_signature_of_a_half_template(tmp_path):
    text = '''
    template <typename T>
    HALF_STORAGE __global__ void f_kernel(const T* x, T* y, int n, acc_t<T> slope) { }
    template <typename T>
    __global__ void g_kernel(const T* x, acc_t<T> s) { }
    '''
    ks = source.kernels(text)
    f, g = ks["f_kernel"], ks["g_kernel"]
    assert f.half and not g.half and g.types == ("float", "double")
    assert f.params[3].c_decl("__nv_bfloat16") == "float"
    assert f.params[3].c_decl("double") == "double"
    assert f.params[0].dtype("__half") == np.float16
    assert f.params[1].dtype("__nv_bfloat16") == mc.bfloat16
    plain = tmp_path / "plain.cu"
    plain.write_text(text)
    with pytest.raises(TypeError, match="g_kernel: no instance for dtype float16"):
        module.kernel(plain, "g_kernel", np.float16)
    with pytest.raises(ValueError, match="HALF_STORAGE needs"):
        source.kernels('HALF_STORAGE extern "C" __global__ void h(int n) { }')


def test_only_the_half_headers_are_let_through(tmp_path):
    ok = tmp_path / "ok.cu"
    ok.write_text('#include <cuda_fp16.h>\n#include <cuda_bf16.h>\n'
                  'extern "C" __global__ void k(int n) {}\n')
    assert "#include <cuda_fp16.h>" in source.read(ok)
    bad = tmp_path / "bad.cu"
    bad.write_text('#include <cuda_runtime.h>\nextern "C" __global__ void k(int n) {}\n')
    with pytest.raises(ValueError, match="system include"):
        source.read(bad)
