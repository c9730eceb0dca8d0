"""The scan family: cumulative sums, products and log-sum-exps, and running maxima / minima,
along one axis of a float32 or float64 array.

    scan(x, axis, op)      -> y            op: 'sum', 'prod', 'logsumexp'
    scan_arg(x, axis, op)  -> (y, idx)     op: 'max', 'min'; idx int64

PyTorch's CPU kernels are the model: sums, products and log-sum-exps accumulate in float64 (its
acc_type of float) and round each output to x's dtype; log-add-exp is its
_log_add_exp_helper (log1p(exp(min - max)) + max, x kept when both are the same infinity); a
running max / min is replaced by a later element that ties it or is NaN, and a NaN only by a
later NaN. One line (the axis, for one position of the other dims) per CPU iteration / CUDA
thread, scanned in order.
"""
from minicnn.devices import on_cuda_kernels
from minicnn.dtypes import HALF_FLOATS

from .. import lazy
from .._half import in_float32

_cpu = lazy(__name__ + ".cpu")
_cuda = lazy(__name__ + ".cuda")

OPS = ("sum", "prod", "logsumexp")
ARG_OPS = ("max", "min")


@in_float32(half_kernels=True)
def scan(x, axis, op):
    if op not in OPS:
        raise ValueError(f"scan: op must be one of {OPS}, got {op!r}")
    _check("scan", x, axis)
    return (_cuda if on_cuda_kernels(x) else _cpu).scan(x, axis, OPS.index(op))


@in_float32(half_kernels=True)
def scan_arg(x, axis, op):
    if op not in ARG_OPS:
        raise ValueError(f"scan_arg: op must be one of {ARG_OPS}, got {op!r}")
    _check("scan_arg", x, axis)
    return (_cuda if on_cuda_kernels(x) else _cpu).scan_arg(x, axis, ARG_OPS.index(op))


def _check(op, x, axis):
    if not (x.dtype.kind == "f" and x.dtype.itemsize in (4, 8) or x.dtype in HALF_FLOATS):
        raise TypeError(f"{op}: expected float32 or float64, got {x.dtype}")
    if not 0 <= axis < max(x.ndim, 1):
        raise ValueError(f"{op}: axis {axis} out of range for shape {tuple(x.shape)}")
