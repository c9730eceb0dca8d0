"""3-D convolutions and pools (conv3d, conv_transpose3d, max_pool3d, avg_pool3d,
adaptive_avg_pool3d) and 1-D pools (max_pool1d, avg_pool1d, adaptive_avg_pool1d,
adaptive_max_pool1d) built on the 2-D ones, so they reuse their kernels and gradients of every
order.

The depth axis is handled apart from the plane:

- conv3d: the KD depth taps of every output depth become channels (F.unfold along depth), and
  one conv2d over (N * OD, C * KD, H, W) with the weight as (K, C/groups * KD, KH, KW) sums
  over channels and depth taps at once (the channel order (C, KD) keeps the groups apart).
- conv_transpose3d, its adjoint: one conv_transpose2d per input depth gives the KD depth taps
  as channels, and F.fold adds each tap into the output depth it lands on.
- Pools are separable: a 3-D window's max (its mean) is the max (mean) over the window's depths
  of the plane windows' maxima (means). Each stage is a 2-D pool (the depth stage with a (KD, 1)
  window over (D, OH * OW)); PyTorch's divisors are products of per-axis counts, and its argmax
  (the last NaN, else the first maximum in (d, h, w) order) is what the two stages pick.

Half inputs to conv3d and conv_transpose3d are computed in float32 and rounded once
(ops.util.composite_in_float32), forward and backward: their parts would each round (the depth
taps' sums, the bias added after conv_transpose2d).
"""
import numbers

from ..devices import get_array_module
from ..dtypes import is_floating
from .conv import _conv_args, _pair, _transposed_geometry, conv2d, conv_transpose2d
from .pool import (adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d, max_pool2d,
                   _window_output)
from .rearrange import col2im, im2col
from .shape import pad
from .util import check_kernel_float, check_tensor, composite_in_float32, shape_str


_AXES = {1: "L", 3: "D, H, W"}


def _check_input(op, x, w=None, nd=3):
    """x (N, C, *spatial) with nd spatial dims (nd = 1 for the 1-D pools), floating point."""
    check_tensor(x, "input", op)
    if x.ndim != nd + 2:
        raise ValueError(f"{op}: expected a {nd + 2}-D input (N, C, {_AXES[nd]}), but got input "
                         f"of size {shape_str(x.shape)}" + (
                             " (add a batch dimension with unsqueeze(0))" if x.ndim == nd + 1
                             else ""))
    if not is_floating(x.array.dtype):
        raise TypeError(f"{op}: expected a floating point input, got {x.dtype}")
    check_kernel_float(x, op)
    if w is None:
        return
    check_tensor(w, "weight", op)
    if w.ndim != 5:
        raise ValueError(f"{op}: expected a 5-D weight, but got weight of size "
                         f"{shape_str(w.shape)}")
    if x.dtype != w.dtype:
        raise TypeError(f"{op}: input ({x.dtype}) and weight ({w.dtype}) must have the same dtype")
    if any(k <= 0 for k in w.shape[2:]):
        raise ValueError(f"{op}: kernel size should be greater than zero, but got weight of size "
                         f"{shape_str(w.shape)}")


def _depth_columns(x, KD, SD, PD, DD):
    """(N, C, D, H, W) -> (N * OD, C * KD, H, W): the depth taps of each output depth."""
    N, C, D, H, W = x.shape
    cols = im2col(x.permute(0, 1, 3, 4, 2).reshape(N, C * H * W, D, 1),   # (N, CHW, D, 1)
                  (KD, 1), (DD, 1), (PD, 0), (SD, 1))                       # (N, CHW * KD, OD)
    OD = cols.shape[2]
    cols = cols.reshape(N, C, H, W, KD, OD).permute(0, 5, 1, 4, 2, 3)      # (N, OD, C, KD, H, W)
    return cols.reshape(N * OD, C * KD, H, W), OD


def _depth_fold(z, N, D, OD, KD, SD, PD, DD):
    """(N * D, K * KD, OH, OW) -> (N, K, OD, OH, OW): each depth tap added at the output depth
    it lands on (the adjoint of _depth_columns)."""
    _, KKD, OH, OW = z.shape
    K = KKD // KD
    z = z.reshape(N, D, K, KD, OH, OW).permute(0, 2, 4, 5, 3, 1)           # (N, K, OH, OW, KD, D)
    # fold onto every depth a tap reaches, then crop the padding (output padding may reach
    # past the last tap: zeros there)
    full = (D - 1) * SD + DD * (KD - 1) + 1
    y = col2im(z.reshape(N, K * OH * OW * KD, D), (full, 1), (KD, 1), (DD, 1), (0, 0), (SD, 1))
    y = y.reshape(N, K, OH, OW, full).permute(0, 1, 4, 2, 3)               # (N, K, full, OH, OW)
    y = y[:, :, PD:PD + OD]
    return pad(y, (0, 0, 0, 0, 0, OD - y.shape[2])) if y.shape[2] < OD else y


@composite_in_float32
def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """F.conv3d: input (N, C, D, H, W), weight (K, C/groups, KD, KH, KW), bias (K,) or None;
    padding an int, a triple, 'valid' or 'same'."""
    op = "conv3d"
    _check_input(op, input, weight)
    stride, padding, dilation, extra = _conv_args(op, 3, input, weight, bias, stride, padding,
                                                  dilation, groups)
    N = input.shape[0]
    K, Cg = weight.shape[:2]
    ksize = tuple(weight.shape[2:])
    if any(extra):   # 'same' with an even kernel: the odd pixel on the right
        input = pad(input, (0, extra[2], 0, extra[1], 0, extra[0]))
    cols, OD = _depth_columns(input, ksize[0], stride[0], padding[0], dilation[0])
    w2 = weight.reshape(K, Cg * ksize[0], *ksize[1:])                    # (K, Cg * KD, KH, KW)
    y = conv2d(cols, w2, bias, stride[1:], padding[1:], dilation[1:], groups)
    return y.reshape(N, OD, K, *y.shape[2:]).permute(0, 2, 1, 3, 4)       # (N, K, OD, OH, OW)


@composite_in_float32
def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """F.conv_transpose3d: input (N, Cin, D, H, W), weight (Cin, Cout/groups, KD, KH, KW); the
    gradient of conv3d with respect to its input."""
    op = "conv_transpose3d"
    _check_input(op, input, weight)
    stride, padding, dilation, output_padding, K, out = _transposed_geometry(
        op, 3, input, weight, bias, stride, padding, output_padding, groups, dilation)
    N, C, D = input.shape[:3]
    ksize = tuple(weight.shape[2:])
    planes = input.permute(0, 2, 1, 3, 4).reshape(N * D, C, *input.shape[3:])   # (N * D, C, H, W)
    w2 = weight.reshape(C, weight.shape[1] * ksize[0], *ksize[1:])   # (C, Cout/g * KD, KH, KW)
    z = conv_transpose2d(planes, w2, None, stride[1:], padding[1:], output_padding[1:], groups,
                         dilation[1:])
    y = _depth_fold(z, N, D, out[0], ksize[0], stride[0], padding[0], dilation[0])
    return y if bias is None else y + bias.reshape(1, K, 1, 1, 1)


# --- pools ---------------------------------------------------------------------------------------

def _pool_args(op, x, kernel_size, stride, padding, dilation, ceil_mode, nd=3):
    _check_input(op, x, nd=nd)
    k = _pair(kernel_size, nd, "kernel_size", op)
    s = k if stride is None or stride == () or stride == [] else _pair(stride, nd, "stride", op)
    p, d = _pair(padding, nd, "padding", op), _pair(dilation, nd, "dilation", op)
    _window_output(op, x, k, s, p, d, ceil_mode)
    return k, s, p, d


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """F.max_pool3d; with return_indices also the flat (d * H * W + h * W + w) argmax."""
    k, s, p, d = _pool_args("max_pool3d", input, kernel_size, stride, padding, dilation,
                              ceil_mode)
    N, C, D, H, W = input.shape
    y, plane_idx = max_pool2d(input.reshape(N, C * D, H, W), k[1:], s[1:], p[1:], d[1:],
                              ceil_mode, return_indices=True)           # (N, C * D, OH, OW)
    OH, OW = y.shape[2:]
    y, depth_idx = max_pool2d(y.reshape(N, C, D, OH * OW), (k[0], 1), (s[0], 1), (p[0], 0),
                              (d[0], 1), ceil_mode, return_indices=True)   # (N, C, OD, OH * OW)
    OD = y.shape[2]
    y = y.reshape(N, C, OD, OH, OW)
    if not return_indices:
        return y
    xp = get_array_module(plane_idx.array)
    depth = depth_idx.array // (OH * OW)                                  # the winning depth
    plane = xp.take_along_axis(plane_idx.array.reshape(N, C, D, OH * OW), depth, axis=2)
    return y, type(y)._wrap((depth * (H * W) + plane).reshape(N, C, OD, OH, OW))


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """F.avg_pool3d: the plane windows' means, then their mean over the window's depths (with
    divisor_override: the two sums, divided once)."""
    op = "avg_pool3d"
    k, s, p, _ = _pool_args(op, input, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None and (not isinstance(divisor_override, numbers.Integral)
                                         or divisor_override <= 0):
        raise ValueError(f"{op}: divisor must be a positive int, got {divisor_override!r}")
    N, C, D, H, W = input.shape
    if D < k[0] or H < k[1] or W < k[2]:      # PyTorch's 3-D average pool asks this too
        raise ValueError(f"{op}: input image (T: {D} H: {H} W: {W}) smaller than kernel size "
                         f"(kT: {k[0]} kH: {k[1]} kW: {k[2]})")
    each = None if divisor_override is None else 1      # the stages' divisor: counts, or sums
    y = avg_pool2d(input.reshape(N, C * D, H, W), k[1:], s[1:], p[1:], ceil_mode,
                   count_include_pad, each)                              # (N, C * D, OH, OW)
    OH, OW = y.shape[2:]
    y = avg_pool2d(y.reshape(N, C, D, OH * OW), (k[0], 1), (s[0], 1), (p[0], 0), ceil_mode,
                   count_include_pad, each)                              # (N, C, OD, OH * OW)
    y = y.reshape(N, C, y.shape[2], OH, OW)
    return y if divisor_override is None else y / divisor_override


def adaptive_avg_pool3d(input, output_size):
    """F.adaptive_avg_pool3d: PyTorch's adaptive windows per axis (output_size an int or a
    triple, None keeping that axis)."""
    op = "adaptive_avg_pool3d"
    _check_input(op, input)
    if isinstance(output_size, numbers.Integral) or output_size is None:
        output_size = (output_size,) * 3
    if not (isinstance(output_size, (tuple, list)) and len(output_size) == 3):
        raise TypeError(f"{op}: output_size must be an int or a triple, got {output_size!r}")
    N, C, D, H, W = input.shape
    OD, OH, OW = (i if o is None else int(o) for i, o in zip((D, H, W), output_size))
    if min(OD, OH, OW) <= 0:
        raise ValueError(f"{op}: output_size must be positive, got {output_size!r} for input "
                         f"{shape_str(input.shape)}")
    y = adaptive_avg_pool2d(input.reshape(N, C * D, H, W), (OH, OW))    # (N, C * D, OH, OW)
    y = adaptive_avg_pool2d(y.reshape(N, C, D, OH * OW), (OD, OH * OW))  # (N, C, OD, OH * OW)
    return y.reshape(N, C, OD, OH, OW)


# --- 1-D pools: the 2-D ones over (N, C, 1, L) ---------------------------------------------------

def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """F.max_pool1d over (N, C, L); with return_indices also the argmax positions."""
    k, s, p, d = _pool_args("max_pool1d", input, kernel_size, stride, padding, dilation,
                            ceil_mode, nd=1)
    y = max_pool2d(input.unsqueeze(2), (1,) + k, (1,) + s, (0,) + p, (1,) + d, ceil_mode,
                   return_indices)
    if return_indices:                       # h * W + w with h = 0: the position along L
        return y[0].squeeze(2), y[1].squeeze(2)
    return y.squeeze(2)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    """F.avg_pool1d over (N, C, L)."""
    k, s, p, _ = _pool_args("avg_pool1d", input, kernel_size, stride, padding, 1, ceil_mode,
                            nd=1)
    return avg_pool2d(input.unsqueeze(2), (1,) + k, (1,) + s, (0,) + p, ceil_mode,
                      count_include_pad).squeeze(2)


def _adaptive1d_size(op, x, output_size):
    _check_input(op, x, nd=1)
    if isinstance(output_size, (tuple, list)) and len(output_size) == 1:
        output_size = output_size[0]
    if not isinstance(output_size, numbers.Integral) or isinstance(output_size, bool):
        raise TypeError(f"{op}: output_size must be an int, got {output_size!r}")
    if output_size <= 0:
        raise ValueError(f"{op}: output_size must be positive, got {output_size} for input "
                         f"{shape_str(x.shape)}")
    return int(output_size)


def adaptive_avg_pool1d(input, output_size):
    """F.adaptive_avg_pool1d over (N, C, L): PyTorch's adaptive windows."""
    out = _adaptive1d_size("adaptive_avg_pool1d", input, output_size)
    return adaptive_avg_pool2d(input.unsqueeze(2), (1, out)).squeeze(2)


def adaptive_max_pool1d(input, output_size, return_indices=False):
    """F.adaptive_max_pool1d over (N, C, L); with return_indices also the argmax positions."""
    out = _adaptive1d_size("adaptive_max_pool1d", input, output_size)
    y, idx = adaptive_max_pool2d(input.unsqueeze(2), (1, out), return_indices=True)
    y = y.squeeze(2)
    return (y, idx.squeeze(2)) if return_indices else y
