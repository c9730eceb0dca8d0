"""Autocast's casting rules, applied where an op takes its tensor arguments.

mc.autocast (minicnn/amp) switches a region on per thread; inside it an op that appears in the
region's table casts its floating tensor arguments before its checks run, as PyTorch's autocast
dispatch key does (so a bfloat16 activation meets a float32 weight in conv2d without an error):

    lower    float32 (and the other half type) -> the region's dtype: convolutions, linear, matmul
    fp32     float16 / bfloat16 -> float32: losses, and on CUDA norms, exp / log, softmax, sums
    promote  every floating argument -> the widest floating dtype among them: cat, stack

float64 arguments are never cast, and only arguments on the region's device type are. The tables
are PyTorch's (aten/src/ATen/autocast_mode.cpp) for the ops minicnn has, per device type. The
casts are ordinary differentiable Casts, so gradients reach the float32 master weights in
float32. Casts of leaf tensors that require grad (parameters) to the lower dtype are cached for
the region: a weight used twice is converted once, and its two uses share one graph node. The
cache empties when the outermost region ends; casting is meant for the forward pass (run the
backward after the region, as with PyTorch).
"""
import threading

import numpy

from ..autograd import is_grad_enabled
from ..devices import device_of
from ..dtypes import bfloat16, float16, float32, float64
from ..dtypes import kind as dtype_kind

_LOWER = "lower"
_FP32 = "fp32"
_PROMOTE = "promote"

_LOWER_OPS = {"conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "linear", "matmul",
              "prelu"}
_PROMOTE_OPS = {"cat", "stack"}
# PyTorch's CPU fp32 list, the ops of it minicnn has
_CPU_FP32_OPS = {"cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss",
                 "huber_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
                 "kl_div", "prod"}
# PyTorch's CUDA fp32 and fp32_set_opt_dtype lists, the ops of them minicnn has (cross_entropy
# is log_softmax and nll_loss there: float32 too)
_CUDA_FP32_OPS = {"cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss",
                  "huber_loss", "binary_cross_entropy_with_logits", "kl_div", "exp", "expm1",
                  "log", "log2", "log10", "log1p", "reciprocal", "rsqrt", "pow", "softplus",
                  "layer_norm", "group_norm", "logsumexp", "softmax", "log_softmax", "sum",
                  "prod", "cumsum", "cumprod"}

POLICIES = {
    "cpu": {**{op: _LOWER for op in _LOWER_OPS}, **{op: _FP32 for op in _CPU_FP32_OPS},
            **{op: _PROMOTE for op in _PROMOTE_OPS}},
    "cuda": {**{op: _LOWER for op in _LOWER_OPS}, **{op: _FP32 for op in _CUDA_FP32_OPS},
             **{op: _PROMOTE for op in _PROMOTE_OPS}},
}
DEFAULT_DTYPES = {"cpu": bfloat16, "cuda": float16}


class _Region(threading.local):
    policy = None        # {op: rule} while a region is on in this thread, else None
    device_type = None
    dtype = None
    caching = True       # cache_enabled of the innermost enabled region
    depth = 0            # nesting of regions (on or off); the cache empties at 0
    cache = None         # {id(leaf): (leaf, its array, the cast)}


region = _Region()


def is_autocast_enabled(device_type=None):
    if region.policy is None:
        return False
    return device_type is None or device_type == region.device_type


def get_autocast_dtype(device_type):
    if device_type == region.device_type and region.dtype is not None:
        return region.dtype
    return DEFAULT_DTYPES[device_type]


def args(op, *tensors):
    """The op's tensor arguments as the active autocast region casts them: unchanged when no
    region is on or the op is in none of its lists. None entries stay None."""
    policy = region.policy
    if policy is None:
        return tensors if len(tensors) != 1 else tensors[0]
    rule = policy.get(op)
    if rule is None:
        return tensors if len(tensors) != 1 else tensors[0]
    out = tuple(_cast_by(rule, tensors))
    return out if len(out) != 1 else out[0]


def sequence(op, tensors):
    """args() for an op that takes a list of tensors (cat, stack); returns a list."""
    if region.policy is None or op not in region.policy:
        return tensors
    return list(_cast_by(region.policy[op], tensors))


def _floating(t):
    return t is not None and hasattr(t, "array") and dtype_kind(t.array.dtype) == "f"


def _cast_by(rule, tensors):
    if rule == _PROMOTE:
        floats = [t.array.dtype for t in tensors if _floating(t)]
        widest = numpy.result_type(*floats) if floats else None
        return (_cast(t, widest) if _floating(t) and t.array.dtype != widest else t
                for t in tensors)
    target = region.dtype if rule == _LOWER else float32
    return (_cast(t, target) if _eligible(t) and t.array.dtype != target else t
            for t in tensors)


def _eligible(t):
    return _floating(t) and t.array.dtype != float64 and device_of(t.array) == region.device_type


def _cast(t, dtype):
    from .arith import Cast  # noqa: PLC0415 -- arith imports shape, which imports this module
    # a float32 leaf that requires grad (a parameter), cast to the region's dtype with grad
    # mode on (a cast made under no_grad has no graph, so reusing it later would cut one)
    cacheable = (region.caching and dtype == region.dtype and t.array.dtype == float32
                 and t.requires_grad and t.creator is None and is_grad_enabled())
    if not cacheable:
        return Cast(numpy.dtype(dtype))(t)
    hit = region.cache.get(id(t))
    if hit is not None and hit[0] is t and hit[1] is t.array:
        return hit[2]
    out = Cast(numpy.dtype(dtype))(t)
    region.cache[id(t)] = (t, t.array, out)
    return out


def enter(device_type, dtype, enabled, cache_enabled=True):
    """Start a region (enabled or not); returns what `leave` restores."""
    saved = (region.policy, region.device_type, region.dtype, region.caching)
    if enabled:
        region.policy, region.device_type, region.dtype = POLICIES[device_type], device_type, \
            dtype
        region.caching = cache_enabled
    else:
        region.policy = None
    if region.depth == 0:
        region.cache = {}
    region.depth += 1
    return saved


def leave(saved):
    region.policy, region.device_type, region.dtype, region.caching = saved
    region.depth -= 1
    if region.depth == 0:
        region.cache = None

