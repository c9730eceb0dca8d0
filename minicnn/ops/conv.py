"""Convolution: conv2d, conv1d, conv_transpose2d/1d, and the Functions behind them.

Three Functions share one set of hyperparameters (stride, padding, dilation, groups) and are each
other's gradients, so derivatives of any order exist (Chainer's Convolution2D /
Convolution2DGradW / Deconvolution2D):

    Conv2d(x, w, b)              y  = conv(x, w) + b
    Conv2dGradInput(w, gy)       gx = conv^T(gy, w)      (= conv_transpose2d)
    Conv2dGradWeight(x, gy)      gw = corr(x, gy)

All three are bilinear: <conv(x, w), gy> = <x, GradInput(w, gy)> = <w, GradWeight(x, gy)>, which
gives each one's backward in terms of the other two.

Each picks one of four paths (`_path`): depthwise (groups == C, one input channel per group)
runs direct Numba kernels; on the CPU, grouped 3x3 stride-1 convs with at most
kernels.conv.GROUPED_MAX_CG channels per group run direct Numba kernels too (im2col + tiny
per-group GEMMs were 2x slower than PyTorch there); 1x1 without padding is a GEMM on the
(strided) input with no im2col; everything else is im2col + one batched GEMM over
(N, groups) + col2im. On the GPU the general case is chosen per shape among those GEMMs and an
implicit-GEMM forward kernel (kernels.conv.choose_algorithm / set_algorithm), and the algorithm
of each pass is recorded in kernels.conv.last_algorithm. Arrays layout:
x (N, C, H, W), w (K, C/G, KH, KW), col (N, C, KH, KW, OH, OW) = (N, G, Cg*KH*KW, OH*OW).
"""
import numbers

from .. import kernels
from ..autograd import Function
from ..devices import get_array_module, is_cuda_array, on_cuda_kernels
from .shape import pad as _pad
from .util import shape_str


class ConvParams:
    __slots__ = ("SH", "SW", "PH", "PW", "DH", "DW", "G")

    def __init__(self, stride, padding, dilation, groups):
        (self.SH, self.SW), (self.PH, self.PW), (self.DH, self.DW) = stride, padding, dilation
        self.G = groups

    def out_size(self, H, W, KH, KW):
        OH = (H + 2 * self.PH - self.DH * (KH - 1) - 1) // self.SH + 1
        OW = (W + 2 * self.PW - self.DW * (KW - 1) - 1) // self.SW + 1
        return OH, OW


def _path(p, C, w_shape, a=None):
    K, Cg, KH, KW = w_shape
    if p.G == C and p.G > 1 and Cg == 1:
        return "depthwise"
    if a is not None and on_cuda_kernels(a) and kernels.conv.grouped_direct_ok(w_shape, p.G):
        return "grouped_direct"   # GPU, G > 1 with few channels per group: direct CUDA kernels
    if KH == 1 and KW == 1 and p.PH == 0 and p.PW == 0:
        return "pointwise"
    if a is not None and not on_cuda_kernels(a) and kernels.conv.grouped3x3_ok(
            None, w_shape, p.G, p.SH, p.SW, p.PH, p.PW, p.DH, p.DW):
        return "grouped3x3"   # few channels per group, 3x3 stride 1: a direct Numba kernel
    return "im2col"


def _algorithm(pass_, p, a, x_shape, w_shape, out_hw=None):
    """`_path` with the general case resolved to an algorithm: 'gemm_1x1' (pointwise),
    'im2col_gemm', or on the GPU possibly 'implicit_gemm' (forward only), by
    kernels.conv.choose_algorithm's rule or kernels.conv.set_algorithm's override; recorded in
    kernels.conv.last_algorithm[pass_]. Direct kernels' paths come back unchanged."""
    return kernels.conv.select_algorithm(pass_, _path(p, x_shape[1], w_shape, a), a, x_shape,
                                         w_shape, p.SH, p.SW, p.PH, p.PW, p.DH, p.DW, p.G,
                                         out_hw)


# --- array-level implementations ---------------------------------------------------------------
# Each conv is ONE GEMM per group over all N * OH * OW positions (batched over groups in a single
# matmul call): the column buffer is channel-major (C, KH, KW, N, OH, OW) and activations are
# moved to (C, N * L) order and back with one copy of x / y / gy (no copy at all when N == 1).

def _to_cn(a, G):
    """(N, C, L) -> (G, C/G, N*L), batch folded into the GEMM's columns."""
    xp = get_array_module(a)
    N, C, L = a.shape
    if N > 1:
        a = a.transpose(1, 0, 2)                          # (N, C, L) -> (C, N, L)
    return xp.ascontiguousarray(a).reshape(G, C // G, N * L)


def _from_cn(a, N, OH, OW):
    """(G, K/G, N*L) -> (N, K, OH, OW), C-contiguous."""
    xp = get_array_module(a)
    K = a.shape[0] * a.shape[1]
    a = a.reshape(K, N, OH, OW)
    if N > 1:
        a = xp.ascontiguousarray(a.transpose(1, 0, 2, 3))  # (K, N, OH, OW) -> (N, K, OH, OW)
    return a.reshape(N, K, OH, OW)


def _mm(a, b, out=None):
    """Batched (G, m, k) @ (G, k, n). NumPy's stacked matmul calls BLAS only for C-contiguous
    operands (a transposed view took 10x longer here), while its 2-D matmul passes transposes to
    BLAS as flags: so G == 1 goes through 2-D matmul, and G > 1 gets contiguous operands."""
    xp = get_array_module(a)
    if a.shape[0] == 1:
        return xp.matmul(a[0], b[0], out=None if out is None else out[0])[None]
    return xp.matmul(xp.ascontiguousarray(a), xp.ascontiguousarray(b), out=out)


def _conv_fwd(x, w, p, out_hw=None, b=None):
    """out_hw: compute only the first (OH, OW) outputs (the adjoint of a transposed conv whose
    output_padding added rows that no output reads). b: optional bias, added (fused into the
    direct depthwise / grouped kernels)."""
    xp = get_array_module(x)
    N, C, H, W = x.shape
    K, Cg, KH, KW = w.shape
    G, Kg = p.G, K // p.G
    OH, OW = out_hw or p.out_size(H, W, KH, KW)
    path = _algorithm("forward", p, x, x.shape, w.shape, (OH, OW))
    if path == "depthwise":
        return kernels.depthwise_conv2d(x, w, p.SH, p.SW, p.PH, p.PW, p.DH, p.DW, OH, OW, b)
    if path == "grouped_direct":
        return kernels.conv.grouped_conv2d(x, w, G, p.SH, p.SW, p.PH, p.PW, p.DH, p.DW, OH, OW, b)
    if path == "grouped3x3":
        return kernels.conv.grouped3x3_conv2d(x, w, G, p.PH, p.PW, p.DH, p.DW, OH, OW, b)
    if path == "implicit_gemm":   # GPU: no column buffer, bias fused
        return kernels.conv.implicit_gemm_conv2d(x, w, p.SH, p.SW, p.PH, p.PW, p.DH, p.DW, OH,
                                                 OW, G, b)
    wr = xp.ascontiguousarray(w).reshape(G, Kg, Cg * KH * KW)
    if path == "gemm_1x1":
        xs = x[:, :, :OH * p.SH:p.SH, :OW * p.SW:p.SW]
        cols = _to_cn(xs.reshape(N, C, OH * OW), G)                     # (G, Cg, N*L)
    else:
        col = kernels.im2col(x, KH, KW, p.SH, p.SW, p.PH, p.PW, p.DH, p.DW, OH, OW,
                             workspace=True)
        cols = col.reshape(G, Cg * KH * KW, N * OH * OW)  # (C, KH, KW, N, OH, OW) -> (G, CKK, NL)
    y = _from_cn(_mm(wr, cols), N, OH, OW)                             # (G, Kg, NL) -> NCHW
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


def _conv_grad_input(w, gy, x_shape, p):
    xp = get_array_module(gy)
    N, C, H, W = x_shape
    K, Cg, KH, KW = w.shape
    G, Kg = p.G, K // p.G
    _, _, OH, OW = gy.shape
    path = _algorithm("grad_input", p, gy, x_shape, w.shape)
    if path == "depthwise":
        return kernels.depthwise_grad_input(gy, w, C, H, W, p.SH, p.SW, p.PH, p.PW, p.DH, p.DW)
    if path == "grouped_direct":
        return kernels.conv.grouped_grad_input(gy, w, G, C, H, W, p.SH, p.SW, p.PH, p.PW, p.DH,
                                               p.DW)
    if path == "grouped3x3" and (OH, OW) == (H + 2 * p.PH - 2 * p.DH, W + 2 * p.PW - 2 * p.DW):
        return kernels.conv.grouped3x3_grad_input(gy, w, G, C, H, W, p.PH, p.PW, p.DH, p.DW)
    if path == "grouped3x3":
        path = "im2col"
    gyt = _to_cn(gy.reshape(N, K, OH * OW), G)                          # (G, Kg, N*L)
    wt = xp.ascontiguousarray(w).reshape(G, Kg, Cg * KH * KW).transpose(0, 2, 1)  # (G, CKK, Kg)
    if path == "gemm_1x1":
        gxs = _from_cn(_mm(wt, gyt), N, OH, OW)                         # (N, C, OH, OW)
        if (OH, OW) == (H, W):
            return gxs
        gx = xp.zeros(x_shape, gy.dtype)
        gx[:, :, :OH * p.SH:p.SH, :OW * p.SW:p.SW] = gxs
        return gx
    shape = (G, Cg * KH * KW, N * OH * OW)
    if is_cuda_array(gy):
        gcol = _mm(wt, gyt)
    else:
        gcol = _mm(wt, gyt, out=kernels.conv_workspace(shape, gy.dtype))
    gcol = gcol.reshape(C, KH, KW, N, OH, OW)            # (G, CKK, NL) -> (C, KH, KW, N, OH, OW)
    return kernels.col2im(gcol, H, W, p.SH, p.SW, p.PH, p.PW, p.DH, p.DW)


def _conv_grad_weight(x, gy, w_shape, p):
    xp = get_array_module(x)
    N, C, H, W = x.shape
    K, Cg, KH, KW = w_shape
    G = p.G
    _, _, OH, OW = gy.shape
    path = _algorithm("grad_weight", p, x, x.shape, w_shape)
    if path == "depthwise":
        return kernels.depthwise_grad_weight(x, gy, KH, KW, p.SH, p.SW, p.PH, p.PW, p.DH, p.DW)
    if path == "grouped_direct":
        return kernels.conv.grouped_grad_weight(x, gy, G, KH, KW, p.SH, p.SW, p.PH, p.PW, p.DH,
                                                p.DW)
    if path == "grouped3x3" and (OH, OW) == (H + 2 * p.PH - 2 * p.DH, W + 2 * p.PW - 2 * p.DW):
        return kernels.conv.grouped3x3_grad_weight(x, gy, G, Cg, p.PH, p.PW, p.DH, p.DW)
    if path == "grouped3x3":
        path = "im2col"
    gyt = _to_cn(gy.reshape(N, K, OH * OW), G)                          # (G, Kg, N*L)
    if path == "gemm_1x1":
        xs = x[:, :, :OH * p.SH:p.SH, :OW * p.SW:p.SW]
        cols = _to_cn(xs.reshape(N, C, OH * OW), G)                     # (G, Cg, N*L)
    else:
        col = kernels.im2col(x, KH, KW, p.SH, p.SW, p.PH, p.PW, p.DH, p.DW, OH, OW,
                             workspace=True)
        cols = col.reshape(G, Cg * KH * KW, N * OH * OW)                # (G, CKK, N*L)
    # gw^T = cols @ gy^T: (G, CKK, NL) @ (G, NL, Kg), the big operand contiguous and in the
    # GEMM's M position (measured faster here than gy @ cols^T for most suite shapes)
    gw = _mm(cols, gyt.transpose(0, 2, 1)).transpose(0, 2, 1)           # (G, Kg, CKK)
    return xp.ascontiguousarray(gw).reshape(w_shape)


# --- Functions -----------------------------------------------------------------------------------

class Conv2d(Function):
    def __init__(self, params, out_hw=None):
        self.p, self.out_hw = params, out_hw

    def forward(self, x, w, b=None):
        return _conv_fwd(x, w, self.p, self.out_hw, b)

    def backward(self, gy):
        x, w, b = self.inputs
        gx = Conv2dGradInput(self.p, x.shape)(w, gy) if x.requires_grad else None
        gw = Conv2dGradWeight(self.p, w.shape)(x, gy) if w.requires_grad else None
        gb = gy.sum(dim=(0, 2, 3)) if b is not None and b.requires_grad else None
        return gx, gw, gb


class Conv2dGradInput(Function):
    """gx = conv^T(gy, w): the input-gradient of conv2d, and conv_transpose2d's forward."""

    def __init__(self, params, x_shape):
        self.p, self.x_shape = params, tuple(x_shape)

    def forward(self, w, gy):
        return _conv_grad_input(w, gy, self.x_shape, self.p)

    def backward(self, ggx):
        w, gy = self.inputs
        gw = Conv2dGradWeight(self.p, w.shape)(ggx, gy) if w.requires_grad else None
        ggy = Conv2d(self.p, gy.shape[2:])(ggx, w, None) if gy.requires_grad else None
        return gw, ggy


class Conv2dGradWeight(Function):
    """gw = sum over the batch and output positions of gy * shifted x."""

    def __init__(self, params, w_shape):
        self.p, self.w_shape = params, tuple(w_shape)

    def forward(self, x, gy):
        return _conv_grad_weight(x, gy, self.w_shape, self.p)

    def backward(self, ggw):
        x, gy = self.inputs
        gx = Conv2dGradInput(self.p, x.shape)(ggw, gy) if x.requires_grad else None
        ggy = Conv2d(self.p, gy.shape[2:])(x, ggw, None) if gy.requires_grad else None
        return gx, ggy


# --- argument checking ---------------------------------------------------------------------------

def _pair(v, n, name, op):
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        return (int(v),) * n
    if isinstance(v, (tuple, list)) and len(v) == n and all(
            isinstance(e, numbers.Integral) and not isinstance(e, bool) for e in v):
        return tuple(int(e) for e in v)
    raise TypeError(f"{op}: {name} must be an int or a tuple of {n} ints, got {v!r}")


def _check_tensor_dims(op, x, w, nd):
    if x.ndim != nd + 2:
        raise ValueError(
            f"{op}: expected a {nd + 2}-D input (batch, channels, {'H, W' if nd == 2 else 'L'}), "
            f"but got input of size {shape_str(x.shape)}"
            + (" (add a batch dimension with unsqueeze(0))" if x.ndim == nd + 1 else ""))
    if w.ndim != nd + 2:
        raise ValueError(f"{op}: expected a {nd + 2}-D weight, but got weight of size "
                         f"{shape_str(w.shape)}")
    if x.dtype != w.dtype:
        raise TypeError(f"{op}: input ({x.dtype}) and weight ({w.dtype}) must have the same dtype")
    if x.data.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating point input, got {x.dtype}")


def _check_hyper(op, stride, dilation, padding, groups):
    if any(s <= 0 for s in stride):
        raise ValueError(f"{op}: non-positive stride is not supported, got stride={stride}")
    if any(d <= 0 for d in dilation):
        raise ValueError(f"{op}: dilation should be greater than zero, got dilation={dilation}")
    if any(q < 0 for q in padding):
        raise ValueError(f"{op}: negative padding is not supported, got padding={padding}")
    if not isinstance(groups, numbers.Integral) or isinstance(groups, bool) or groups <= 0:
        raise ValueError(f"{op}: non-positive groups is not supported, got groups={groups!r}")


def _check_bias(op, b, n, dtype):
    if b is None:
        return
    if tuple(b.shape) != (n,):
        raise ValueError(f"{op}: expected bias of size [{n}], but got bias of size "
                         f"{shape_str(b.shape)}")
    if b.dtype != dtype:
        raise TypeError(f"{op}: bias ({b.dtype}) must have the input's dtype ({dtype})")


def _same_padding(op, K, stride, dilation):
    """padding='same': (left, extra right) per spatial dim; the odd one goes on the right."""
    if any(s != 1 for s in stride):
        raise ValueError(f"{op}: padding='same' is not supported for strided convolutions "
                         f"(stride={stride})")
    total = [d * (k - 1) for d, k in zip(dilation, K)]
    return tuple(t // 2 for t in total), tuple(t - t // 2 - t // 2 for t in total)


def _conv_nd(op, nd, input, weight, bias, stride, padding, dilation, groups):
    _check_tensor_dims(op, input, weight, nd)
    stride = _pair(stride, nd, "stride", op)
    dilation = _pair(dilation, nd, "dilation", op)
    ksize = tuple(weight.shape[2:])
    extra = (0,) * nd
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0,) * nd
        elif padding == "same":
            _check_hyper(op, stride, dilation, (0,) * nd, groups)
            padding, extra = _same_padding(op, ksize, stride, dilation)
        else:
            raise ValueError(f"{op}: invalid padding string {padding!r}, expected 'valid' or "
                             "'same'")
    else:
        padding = _pair(padding, nd, "padding", op)
    _check_hyper(op, stride, dilation, padding, groups)
    C = input.shape[1]
    K = weight.shape[0]
    if K % groups:
        raise ValueError(f"{op}: Given groups={groups}, expected weight to be divisible by "
                         f"{groups} at dimension 0, but got weight of size "
                         f"{shape_str(weight.shape)} instead")
    if C != weight.shape[1] * groups:
        raise ValueError(f"{op}: Given groups={groups}, weight of size {shape_str(weight.shape)}, "
                         f"expected input{shape_str(input.shape)} to have "
                         f"{weight.shape[1] * groups} channels, but got {C} channels instead")
    _check_bias(op, bias, K, input.dtype)
    spatial = input.shape[2:]
    padded = tuple(s + 2 * q + e for s, q, e in zip(spatial, padding, extra))
    eff = tuple(d * (k - 1) + 1 for d, k in zip(dilation, ksize))
    if any(e > s for e, s in zip(eff, padded)):
        raise ValueError(
            f"{op}: Calculated padded input size per channel: ({' x '.join(map(str, padded))}). "
            f"Kernel size: ({' x '.join(map(str, eff))}). Kernel size can't be greater than "
            f"actual input size (input {shape_str(input.shape)}, weight "
            f"{shape_str(weight.shape)})")
    if any(extra):
        pads = []
        for e in reversed(extra):
            pads += [0, e]
        input = _pad(input, tuple(pads))
    if nd == 1:
        y = Conv2d(ConvParams((1,) + stride, (0,) + padding, (1,) + dilation, groups))(
            input.unsqueeze(2), weight.unsqueeze(2), bias)
        return y.squeeze(2)
    return Conv2d(ConvParams(stride, padding, dilation, groups))(input, weight, bias)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """F.conv2d: input (N, C, H, W), weight (K, C/groups, KH, KW), bias (K,) or None.
    padding: int, pair, 'valid' or 'same' (stride 1; an odd total pads one more on the right)."""
    return _conv_nd("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """F.conv1d: input (N, C, L), weight (K, C/groups, KL)."""
    return _conv_nd("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


def _conv_transpose_nd(op, nd, input, weight, bias, stride, padding, output_padding, groups,
                       dilation):
    _check_tensor_dims(op, input, weight, nd)
    stride = _pair(stride, nd, "stride", op)
    padding = _pair(padding, nd, "padding", op)
    dilation = _pair(dilation, nd, "dilation", op)
    output_padding = _pair(output_padding, nd, "output_padding", op)
    _check_hyper(op, stride, dilation, padding, groups)
    C = input.shape[1]
    if weight.shape[0] != C:
        raise ValueError(f"{op}: Given transposed=1, weight of size {shape_str(weight.shape)}, "
                         f"expected input{shape_str(input.shape)} to have {weight.shape[0]} "
                         f"channels, but got {C} channels instead")
    if C % groups:
        raise ValueError(f"{op}: groups={groups} must divide the input channels ({C}); "
                         f"input {shape_str(input.shape)}")
    for op_, s, d in zip(output_padding, stride, dilation):
        if op_ < 0 or op_ >= max(s, d):
            raise ValueError(f"{op}: output padding must be smaller than either stride or "
                             f"dilation, but got output_padding={output_padding}, "
                             f"stride={stride}, dilation={dilation}")
    K = weight.shape[1] * groups
    _check_bias(op, bias, K, input.dtype)
    ksize = tuple(weight.shape[2:])
    out = tuple((i - 1) * s - 2 * q + d * (k - 1) + o + 1 for i, s, q, d, k, o in zip(
        input.shape[2:], stride, padding, dilation, ksize, output_padding))
    if any(o <= 0 for o in out):
        raise ValueError(f"{op}: the output size {out} is too small (input "
                         f"{shape_str(input.shape)}, weight {shape_str(weight.shape)}, "
                         f"stride={stride}, padding={padding})")
    if nd == 1:
        params = ConvParams((1,) + stride, (0,) + padding, (1,) + dilation, groups)
        y = Conv2dGradInput(params, (input.shape[0], K, 1) + out)(
            weight.unsqueeze(2), input.unsqueeze(2)).squeeze(2)
    else:
        params = ConvParams(stride, padding, dilation, groups)
        y = Conv2dGradInput(params, (input.shape[0], K) + out)(weight, input)
    if bias is not None:
        y = y + bias.reshape((1, K) + (1,) * nd)
    return y


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """F.conv_transpose2d: input (N, Cin, H, W), weight (Cin, Cout/groups, KH, KW); the gradient
    of conv2d with respect to its input (they share kernels)."""
    return _conv_transpose_nd("conv_transpose2d", 2, input, weight, bias, stride, padding,
                              output_padding, groups, dilation)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    return _conv_transpose_nd("conv_transpose1d", 1, input, weight, bias, stride, padding,
                              output_padding, groups, dilation)
