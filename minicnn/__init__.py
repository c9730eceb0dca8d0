"""minicnn: a from-scratch CNN framework with a handwritten autograd engine over NumPy and CuPy.

    import minicnn as mc
    x = mc.randn(4, 3, requires_grad=True)
    (x * x).sum().backward()
"""
import os as _os

# Numba's OpenMP workers (GNU OpenMP) spin for a short while after each parallel kernel, then
# sleep. OpenMP's default spin (300000 rounds) stole the cores from OpenBLAS's threads in the
# GEMM that follows (LeNet's conv forward 8.0 ms against 1.4 ms with no spin); with no spin at
# all (OMP_WAIT_POLICY=PASSIVE, the setting before) waking the workers cost ~50 us per parallel
# kernel on the 2-core VM, which small steps pay many times over. Measured at 2 threads, no
# spin -> 3000 rounds: the CIFAR-10 tutorial's step 2.4-2.7 -> 1.55 ms, ResNet-18 CIFAR at batch
# 8 191-221 -> 175-183 ms (LeNet-5 at batch 64 9.4-10.5 -> 7.9-8.2 ms with 30000 rounds);
# beside two busy loops (bench/results/thread-spread-20261207-055310.md) the tutorial's CNN at
# batch 32 p50 10.8 -> 9.5 ms, p90/p50 1.46 -> 1.08 (10000 rounds: 15.3 ms, 1.03). Must be set
# before the OpenMP runtime starts; a user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT wins.
if "OMP_WAIT_POLICY" not in _os.environ:
    _os.environ.setdefault("GOMP_SPINCOUNT", "3000")
# OpenBLAS's idle workers likewise spin ~0.1 s after each product (see minicnn/threads.py).
from . import threads  # noqa: E402 -- imports no NumPy
threads.quiet_blas_before_numpy()
# glibc's malloc keeps freed arrays for the next step instead of trimming/unmapping them (see
# minicnn/allocator.py: LeNet-5's step 11.6 -> 8.5 ms); a user's MALLOC_* settings win.
from . import allocator  # noqa: E402
allocator.tune()

from . import autograd, devices, dtypes  # noqa: E402
from .devices import backends, cuda  # noqa: E402 -- mc.backends.allow_tf32, mc.cuda.is_available()
from .devices import Device as device, accelerator  # noqa: E402 -- PyTorch's names
from .threads import get_num_threads, set_num_threads  # noqa: E402
threads.apply_default()
from .autograd import (enable_grad, inference_mode, is_grad_enabled, no_grad,
                       set_grad_enabled)
from .creation import (arange, as_tensor, empty, eye, from_dlpack, from_numpy, full, full_like,
                       linspace, ones, ones_like, rand, rand_like, randint, randn, randn_like,
                       randperm, tensor, zeros, zeros_like)
from .dtypes import (bfloat16, bool, double, float, float16, float32, float64,
                     get_default_dtype, half, int, int8, int16, int32, int64, long,
                     set_default_dtype, uint8)
from .ops import (abs, add, amax, amin, argmax, argmin, broadcast_to, chunk, clamp, div, exp,
                  flatten, gather, index_select, log, matmul, max, maximum, mean, min, minimum,
                  mul, neg, permute, pow, reshape, sign, split, sqrt, squeeze, stack, std, sub,
                  sum, transpose, unsqueeze, var, where)
from .ops import concatenate as cat
from .ops import (argwhere, diagonal, flip, fliplr, flipud, index_add, masked_fill,  # noqa: E402
                  masked_select, meshgrid, moveaxis, movedim, narrow, nonzero, repeat_interleave,
                  roll, scatter, scatter_add, scatter_reduce, swapaxes, swapdims, t,
                  take_along_dim, tril, triu, unflatten)
from .ops import (all, any, argsort, cummax, cummin, cumprod, cumsum, kthvalue,  # noqa: E402
                  logcumsumexp, logsumexp, median, msort, prod, sort, std_mean, topk, var_mean)
from .ops import (acos, acosh, arccos, arccosh, arcsin, arcsinh, arctan, arctanh,  # noqa: E402
                  asin, asinh, atan, atanh, ceil, cos, cosh, erf, erfc, exp2, expm1, fix, floor,
                  frac, isfinite, isinf, isnan, isneginf, isposinf, isreal, log1p, log2, log10,
                  nan_to_num, reciprocal, round, rsqrt, signbit, sin, sinh, tan, trunc)
from .ops import (allclose, arctan2, atan2, bitwise_and, bitwise_left_shift,  # noqa: E402
                  bitwise_not, bitwise_or, bitwise_right_shift, bitwise_xor, copysign, divide,
                  eq, equal, floor_divide, fmod, ge, greater, greater_equal, gt, hypot, isclose,
                  le, lerp, less, less_equal, logaddexp, logaddexp2, logical_and, logical_not,
                  logical_or, logical_xor, lt, multiply, ne, not_equal, remainder, subtract,
                  true_divide)
from .ops import concatenate
from .ops import einsum, norm  # noqa: E402
from .random import get_rng_state, manual_seed, set_rng_state
from .serialization import load, load_safetensors, save, save_safetensors  # noqa: E402
from .summary import summary  # noqa: E402
from .ops.activation import log_softmax, relu, sigmoid, softmax, tanh  # noqa: E402
from .tensor import Tensor

clip = clamp

# `import minicnn.backends.cudnn as cudnn` (PyTorch's idiom) finds these objects: mc.backends is
# an object of devices.py, not a package.
import sys as _sys  # noqa: E402
_sys.modules[__name__ + ".backends"] = backends
_sys.modules[__name__ + ".backends.cudnn"] = backends.cudnn

__version__ = "0.1.0"


def is_tensor(obj):
    return isinstance(obj, Tensor)


def __getattr__(name):
    # Heavier subpackages load on first use, so `import minicnn` stays fast.
    import importlib  # noqa: PLC0415
    if name == "autocast":   # mc.autocast is mc.amp.autocast, as torch.autocast
        return importlib.import_module(".amp", __name__).autocast
    if name in ("functional", "nn", "optim", "data", "models", "train", "testing", "kernels",
                "tune", "compress", "utils", "onnx", "profiler", "viz", "amp", "distributed"):
        return importlib.import_module(f".{name}" if name != "kernels" else "minicnn.kernels",
                                       __name__)
    raise AttributeError(f"module 'minicnn' has no attribute {name!r}")
