"""Checks shared by the kernel tests of the float16 / bfloat16 instances (kernels/cuda/half.cuh).

A half kernel loads half values, computes in float32 and rounds each result once. Its test
compares it with the family's reference evaluated on the same (exactly widened) inputs, rounded
to the format: `half_close` allows one rounding each way around what the float32 kernel is
already allowed (its test's rtol32 / atol32), no more; `ran_half` checks the half instances ran.
"""
import ml_dtypes
import numpy as np

import minicnn as mc
from minicnn.kernels.cuda import module
from cuda_util import emulate, host, ran_on

HALVES = [mc.float16, mc.bfloat16]
HALF_IDS = ["float16", "bfloat16"]
HALF_T = {np.dtype(mc.float16): "__half", np.dtype(mc.bfloat16): "__nv_bfloat16"}


def rounded(want, dtype):
    """The reference (float32 or float64) rounded to the half dtype, as float64."""
    with np.errstate(over="ignore"):   # beyond the format's range: inf, as IEEE rounds
        return np.asarray(want, np.float64).astype(np.float32).astype(dtype).astype(np.float64)


def half_close(got, want, dtype, rtol32, atol32):
    """got (dtype) against `want` rounded to dtype. The kernel's float32 result is within
    rtol32 / atol32 of `want`; rounding moves each side by at most half the format's eps
    (relative) or half its smallest subnormal (absolute): so eps + rtol32 relatively and the
    smallest subnormal + atol32 absolutely."""
    fi = ml_dtypes.finfo(dtype)
    got = host(got)
    assert got.dtype == dtype and got.shape == np.shape(want), (got.dtype, got.shape)
    np.testing.assert_allclose(got.astype(np.float64), rounded(want, dtype),
                               rtol=float(fi.eps) + rtol32,
                               atol=float(fi.smallest_subnormal) + atol32)


def half_equal(got, want, dtype):
    """got (dtype) equal to `want` rounded to dtype (exact kernels: max, gathers, the sums the
    float32 kernel already does bit for bit like the reference), NaN where it is NaN."""
    got = host(got)
    assert got.dtype == dtype and got.shape == np.shape(want), (got.dtype, got.shape)
    np.testing.assert_array_equal(got.astype(np.float64), rounded(want, dtype))


def ran_half(device, launched, dtype):
    """The half instances ran on emu and cuda (no float32 copy; extern "C" kernels of float64
    statistics beside them), nothing on cpu."""
    ran_on(device, launched)
    templates = [name for name in launched if "<" in name]
    assert device == "cpu" or templates, launched
    assert all(name.endswith(f"<{HALF_T[np.dtype(dtype)]}>") for name in templates), launched


def spy(device, monkeypatch):
    """The list of the CUDA kernels launched from now on, for a test parametrized over
    KERNEL_DEVICES (emu: with emulation on)."""
    if device == "emu":
        return emulate(monkeypatch)
    names, call = [], module.Kernel.__call__

    def spying(self, *args, **kwargs):
        names.append(self.name)
        return call(self, *args, **kwargs)
    monkeypatch.setattr(module.Kernel, "__call__", spying)
    return names
