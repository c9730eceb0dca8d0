"""Pooling: max_pool2d, avg_pool2d, adaptive_{avg,max}_pool2d, global_avg_pool2d, max_unpool2d.

Functions and their gradients (every backward is again a Function, so create_graph works):

    MaxPool2d(x) -> (y, idx)       backward: PlaneScatter(idx)(gy)
    PlaneScatter(idx)(g)           out.flat[idx] += g per (n, c) plane; backward PlaneGather
    PlaneGather(idx)(x)            x.flat[idx] per plane; backward PlaneScatter
    PlaneAssign(idx)(x)            out.flat[idx] = x per plane (max_unpool2d); backward PlaneGather
    AvgPool2d(x)                   backward: AvgPool2dGrad(gy); AvgPool2dGrad's backward AvgPool2d

Max pool keeps the argmax (flat h * W + w in the plane, PyTorch's return_indices convention),
so its gradient is a gather/scatter by index. max_unpool2d writes each value at its index
(PlaneAssign) as PyTorch does: after overlapping windows (3x3 stride 2) one input's index comes
back several times with its one value, which a scatter-add would multiply.
"""
import numbers

from ..dtypes import kind as dtype_kind
from ..kernels import pool as kpool
from ..autograd import Function
from ..devices import get_array_module
from ..tensor import Tensor
from .indexing import getitem
from .shape import concatenate
from .util import check_kernel_float, shape_str


# --- Functions -----------------------------------------------------------------------------------

class MaxPool2d(Function):
    saves = ()
    saves_outputs = (1,)  # the argmax indices

    def __init__(self, k, s, p, d, out):
        self.k, self.s, self.p, self.d, self.out = k, s, p, d, out

    def forward(self, x):
        self.in_hw = x.shape[2:]
        y, idx = kpool.max_pool2d_fwd(x, *self.k, *self.s, *self.p, *self.d, *self.out)
        self.idx = idx
        return y, idx

    def backward(self, gy, gidx=None):
        return PlaneScatter(self.idx, self.in_hw, window=(*self.k, *self.s, *self.p, *self.d))(gy)


class AdaptiveMaxPool2d(Function):
    saves = ()
    saves_outputs = (1,)

    def __init__(self, out):
        self.out = out

    def forward(self, x):
        self.in_hw = x.shape[2:]
        y, idx = kpool.adaptive_max_pool2d_fwd(x, *self.out)
        self.idx = idx
        return y, idx

    def backward(self, gy, gidx=None):
        return PlaneScatter(self.idx, self.in_hw)(gy)


class PlaneScatter(Function):
    """out[n, c].flat[idx[n, c, ...]] += g[n, c, ...] into (H, W) planes. With the max-pool
    `window` (KH, KW, SH, SW, PH, PW, DH, DW) the GPU computes it as a gather (no atomics)."""
    saves = ()  # and idx (save_array)

    def __init__(self, idx, hw, window=None):
        self.idx, self.hw, self.window = self.save_array(idx), tuple(hw), window

    def forward(self, g):
        if self.window is not None:
            return kpool.max_pool2d_bwd(g, self.idx, *self.hw, *self.window)
        return kpool.plane_scatter(g, self.idx, *self.hw)

    def backward(self, gg):
        return PlaneGather(self.idx)(gg)


class PlaneGather(Function):
    """x[n, c].flat[idx[n, c, ...]]."""
    saves = ()  # and idx (save_array)

    def __init__(self, idx):
        self.idx = self.save_array(idx)

    def forward(self, x):
        self.hw = x.shape[2:]
        return kpool.plane_gather(x, self.idx)

    def backward(self, g):
        return PlaneScatter(self.idx, self.hw)(g)


class PlaneAssign(Function):
    """out[n, c].flat[idx[n, c, ...]] = x[n, c, ...] into (H, W) planes. Backward as PyTorch's
    max_unpool2d: every input gathers the gradient at its index (also where indices repeat)."""
    saves = ()  # and idx (save_array)

    def __init__(self, idx, hw):
        self.idx, self.hw = self.save_array(idx), tuple(hw)

    def forward(self, x):
        return kpool.plane_assign(x, self.idx, *self.hw)

    def backward(self, gy):
        return PlaneGather(self.idx)(gy)


class AvgPool2d(Function):
    saves = ()

    def __init__(self, k, s, p, out, inv):
        self.k, self.s, self.p, self.out, self.inv = k, s, p, out, inv

    def forward(self, x):
        self.in_hw = x.shape[2:]
        return kpool.avg_pool2d_fwd(x, *self.k, *self.s, *self.p, *self.out, self.inv)

    def backward(self, gy):
        return AvgPool2dGrad(self.k, self.s, self.p, self.in_hw, self.inv)(gy)


class AvgPool2dGrad(Function):
    saves = ()

    def __init__(self, k, s, p, in_hw, inv):
        self.k, self.s, self.p, self.in_hw, self.inv = k, s, p, tuple(in_hw), inv

    def forward(self, gy):
        self.out = gy.shape[2:]
        return kpool.avg_pool2d_bwd(gy, *self.in_hw, *self.k, *self.s, *self.p, self.inv)

    def backward(self, ggx):
        return AvgPool2d(self.k, self.s, self.p, self.out, self.inv)(ggx)


# --- argument checking ---------------------------------------------------------------------------

def _pair(v, name, op, allow_zero=False):
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        v = (int(v), int(v))
    elif isinstance(v, (tuple, list)) and len(v) == 1 and isinstance(v[0], numbers.Integral):
        v = (int(v[0]), int(v[0]))
    elif not (isinstance(v, (tuple, list)) and len(v) == 2 and all(
            isinstance(e, numbers.Integral) and not isinstance(e, bool) for e in v)):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {v!r}")
    return tuple(int(e) for e in v)


def _check_input(op, x, kinds="f"):
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), but got input of size "
                         f"{shape_str(x.shape)}"
                         + (" (add a batch dimension with unsqueeze(0))" if x.ndim == 3 else ""))
    if dtype_kind(x.array.dtype) not in kinds:
        raise TypeError(f"{op}: expected a floating point input, got {x.dtype}")
    check_kernel_float(x, op)


def _out_size(I, K, S, P, D, ceil_mode):
    num = I + 2 * P - D * (K - 1) - 1 + (S - 1 if ceil_mode else 0)
    O = num // S + 1
    if ceil_mode and (O - 1) * S >= I + P:
        O -= 1
    return O


def _pool_args(op, x, kernel_size, stride, padding, dilation, ceil_mode, kinds="f"):
    _check_input(op, x, kinds)
    k = _pair(kernel_size, "kernel_size", op)
    s = k if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0) \
        else _pair(stride, "stride", op)
    p = _pair(padding, "padding", op)
    d = _pair(dilation, "dilation", op)
    return k, s, p, d, _window_output(op, x, k, s, p, d, ceil_mode)


def _window_output(op, x, k, s, p, d, ceil_mode):
    """The output size of a pooling window (k, s, p, d: tuples, one value per spatial dim of x),
    checked as PyTorch checks it: positive kernel, stride and dilation, padding within half the
    kernel, an output of at least one."""
    for name, v in (("kernel_size", k), ("stride", s), ("dilation", d)):
        if any(e <= 0 for e in v):
            raise ValueError(f"{op}: {name} must be greater than zero, but got {v}")
    if any(e < 0 for e in p):
        raise ValueError(f"{op}: negative padding is not supported, got padding={p}")
    if any(pp > kk // 2 for kk, pp in zip(k, p)):
        raise ValueError(f"{op}: pad should be smaller than or equal to half of kernel size, but "
                         f"got pad={p}, kernel_size={k}")
    out = tuple(_out_size(i, kk, ss, pp, dd, ceil_mode)
                for i, kk, ss, pp, dd in zip(x.shape[2:], k, s, p, d))
    if min(out) < 1:
        sizes = "x".join(map(str, x.shape[1:]))
        outs = "x".join(map(str, (x.shape[1],) + out))
        raise ValueError(f"{op}: Given input size: ({sizes}). Calculated output size: ({outs}). "
                         f"Output size is too small (kernel_size={k}, stride={s}, padding={p}, "
                         f"dilation={d})")
    return out


# --- functional API ------------------------------------------------------------------------------

def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """F.max_pool2d; with return_indices also the flat (h * W + w) argmax of each window."""
    k, s, p, d, out = _pool_args("max_pool2d", input, kernel_size, stride, padding, dilation,
                                 ceil_mode, kinds="fiu")
    if dtype_kind(input.array.dtype) != "f":
        y, idx = _int_max_pool2d(input.array, k, s, p, d, out)
        y, idx = Tensor._wrap(y), Tensor._wrap(idx)
    else:
        y, idx = MaxPool2d(k, s, p, d, out)(input)
    return (y, idx) if return_indices else y


def _int_max_pool2d(x, k, s, p, d, out):
    """max_pool2d of an integer array (PyTorch takes one; no gradient): every window's taps
    gathered by index, then the first valid tap holding the window's maximum, as the float
    kernels and PyTorch's choose it. Not a hot loop, so array code."""
    xp = get_array_module(x)
    H, W = x.shape[2:]
    ih = xp.arange(out[0])[:, None] * s[0] - p[0] + xp.arange(k[0]) * d[0]    # (OH, KH)
    iw = xp.arange(out[1])[:, None] * s[1] - p[1] + xp.arange(k[1]) * d[1]    # (OW, KW)
    rows = xp.clip(ih, 0, H - 1)[:, None, :, None]                           # (OH, 1, KH, 1)
    cols = xp.clip(iw, 0, W - 1)[None, :, None, :]                           # (1, OW, 1, KW)
    valid = ((ih >= 0) & (ih < H))[:, None, :, None] & ((iw >= 0) & (iw < W))[None, :, None, :]
    shape = out + (k[0] * k[1],)
    valid = valid.reshape(shape)
    flat = xp.broadcast_to(rows * W + cols, out + k).reshape(shape)          # (OH, OW, K)
    taps = x.reshape(x.shape[:2] + (H * W,))[:, :, flat]                     # (N, C, OH, OW, K)
    y = xp.where(valid, taps, xp.iinfo(x.dtype).min).max(axis=-1)
    j = (valid & (taps == y[..., None])).argmax(axis=-1)
    idx = xp.take_along_axis(xp.broadcast_to(flat, taps.shape), j[..., None], axis=-1)[..., 0]
    return y, idx.astype(xp.int64)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    op = "avg_pool2d"
    k, s, p, _, out = _pool_args(op, input, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None and (not isinstance(divisor_override, numbers.Integral)
                                         or divisor_override <= 0):
        raise ValueError(f"{op}: divisor must be a positive int, got {divisor_override!r}")
    H, W = input.shape[2:]
    inv = kpool.avg_pool_inv(H, W, *k, *s, *p, *out, count_include_pad, divisor_override,
                                    input.array.dtype)
    return AvgPool2d(k, s, p, out, inv)(input)


def _adaptive_out(op, x, output_size):
    _check_input(op, x)
    if isinstance(output_size, numbers.Integral) or output_size is None:
        output_size = (output_size, output_size)
    if not (isinstance(output_size, (tuple, list)) and len(output_size) == 2):
        raise TypeError(f"{op}: output_size must be an int or a pair, got {output_size!r}")
    out = tuple(x.shape[2 + i] if o is None else int(o) for i, o in enumerate(output_size))
    if any(o <= 0 for o in out):
        raise ValueError(f"{op}: output_size must be positive, got {output_size!r} for input "
                         f"{shape_str(x.shape)}")
    return out


def _adaptive_mean(x, axis, O):
    """The mean over each of PyTorch's O adaptive windows along `axis` (2 or 3), one slice each:
    not a product with an averaging matrix, whose zeros would turn an inf anywhere in a row into
    NaN in every output of the row (0 * inf)."""
    start, end = kpool.adaptive_bounds(x.shape[axis], O)
    lead = (slice(None),) * axis
    return concatenate([getitem(x, lead + (slice(int(s), int(e)),)).mean(dim=axis, keepdim=True)
                        for s, e in zip(start, end)], axis)


def adaptive_avg_pool2d(input, output_size):
    OH, OW = _adaptive_out("adaptive_avg_pool2d", input, output_size)
    H, W = input.shape[2:]
    if (OH, OW) == (1, 1):
        return input.mean(dim=(2, 3), keepdim=True)
    if H % OH == 0 and W % OW == 0:
        return avg_pool2d(input, (H // OH, W // OW))
    # a rectangle's mean is the mean over its columns of the means over its rows
    return _adaptive_mean(_adaptive_mean(input, 2, OH), 3, OW)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    out = _adaptive_out("adaptive_max_pool2d", input, output_size)
    y, idx = AdaptiveMaxPool2d(out)(input)
    return (y, idx) if return_indices else y


def global_avg_pool2d(input, keepdim=False):
    """Mean over H and W: (N, C, H, W) -> (N, C) (or (N, C, 1, 1) with keepdim)."""
    _check_input("global_avg_pool2d", input)
    return input.mean(dim=(2, 3), keepdim=keepdim)


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Inverse of max_pool2d: each value goes to its argmax position, zeros elsewhere."""
    op = "max_unpool2d"
    _check_input(op, input)
    k = _pair(kernel_size, "kernel_size", op)
    s = k if stride is None else _pair(stride, "stride", op)
    p = _pair(padding, "padding", op)
    H, W = input.shape[2:]
    default = ((H - 1) * s[0] - 2 * p[0] + k[0], (W - 1) * s[1] - 2 * p[1] + k[1])
    if output_size is None:
        out = default
    else:
        out = tuple(int(o) for o in tuple(output_size)[-2:])
    idx = indices.array if hasattr(indices, "data") else indices
    xp = get_array_module(input.array)
    idx = xp.asarray(idx)
    if idx.dtype != xp.int64:   # as PyTorch: a float index would be truncated, silently
        raise TypeError(f"{op}: expected indices of dtype int64 (as max_pool2d returns them), "
                        f"got {idx.dtype}")
    if tuple(idx.shape) != tuple(input.shape):
        raise ValueError(f"{op}: expected indices of the input's shape {shape_str(input.shape)}, "
                         f"got {shape_str(idx.shape)}")
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= out[0] * out[1]):
        raise ValueError(f"{op}: found an invalid max index {int(idx.max())} (output volumes "
                         f"are of size {out[0]}x{out[1]})")
    return PlaneAssign(idx, out)(input)

