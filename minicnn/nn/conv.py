"""Convolution layers: Conv1d, Conv2d, Conv3d, ConvTranspose1d/2d/3d (PyTorch's names,
parameter names, shapes and initialisation)."""
import numbers

from ..ops.conv import conv1d, conv2d, conv_transpose1d, conv_transpose2d
from ..ops.shape import pad as _pad
from ..ops.volume import conv3d, conv_transpose3d
from ._affine import add_weight_and_bias, reset_weight_and_bias
from .module import Module

_PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate",
              "circular": "circular"}


def _ntuple(v, n, name, cls):
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        return (int(v),) * n
    if isinstance(v, (tuple, list)) and len(v) == n:
        return tuple(int(e) for e in v)
    raise TypeError(f"{cls}: {name} must be an int or a tuple of {n} ints, got {v!r}")


class _ConvNd(Module):
    _nd = 2
    _transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                 bias, padding_mode, output_padding=0, device=None, dtype=None):
        super().__init__()
        cls, nd = type(self).__name__, self._nd
        if groups <= 0:
            raise ValueError(f"{cls}: groups must be a positive integer, got {groups}")
        if in_channels % groups:
            raise ValueError(f"{cls}: in_channels ({in_channels}) must be divisible by groups "
                             f"({groups})")
        if out_channels % groups:
            raise ValueError(f"{cls}: out_channels ({out_channels}) must be divisible by groups "
                             f"({groups})")
        if padding_mode not in _PAD_MODES:
            raise ValueError(f"{cls}: padding_mode must be one of {sorted(_PAD_MODES)}, got "
                             f"{padding_mode!r}")
        if self._transposed and padding_mode != "zeros":
            raise ValueError(f"{cls}: only 'zeros' padding mode is supported")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _ntuple(kernel_size, nd, "kernel_size", cls)
        self.stride = _ntuple(stride, nd, "stride", cls)
        self.dilation = _ntuple(dilation, nd, "dilation", cls)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{cls}: invalid padding string {padding!r}, expected 'same' "
                                 "or 'valid'")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(f"{cls}: padding='same' is not supported for strided "
                                 "convolutions")
            self.padding = padding
        else:
            self.padding = _ntuple(padding, nd, "padding", cls)
        self.output_padding = _ntuple(output_padding, nd, "output_padding", cls)
        self.padding_mode = padding_mode
        if self._transposed:
            shape = (in_channels, out_channels // groups) + self.kernel_size
        else:
            shape = (out_channels, in_channels // groups) + self.kernel_size
        add_weight_and_bias(self, shape, out_channels, bias, device, dtype)
        self.reset_parameters()

    def reset_parameters(self):
        reset_weight_and_bias(self.weight, self.bias)

    def _explicit_pad(self, x):
        """Non-zero padding modes: pad explicitly (PyTorch's order), then convolve unpadded."""
        if self.padding == "valid":
            return x
        if self.padding == "same":
            pairs = []
            for d, k in zip(self.dilation, self.kernel_size):
                total = d * (k - 1)
                pairs.append((total // 2, total - total // 2))
        else:
            pairs = [(q, q) for q in self.padding]
        flat = []
        for lo, hi in reversed(pairs):
            flat += [lo, hi]
        return _pad(x, tuple(flat), mode=_PAD_MODES[self.padding_mode])

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0,) * self._nd:
            s += f", padding={self.padding!r}" if isinstance(self.padding, str) \
                else f", padding={self.padding}"
        if self.dilation != (1,) * self._nd:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * self._nd:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class _Conv(_ConvNd):
    """Conv1d and Conv2d: PyTorch's constructor; the op (conv1d or conv2d) is _op."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, device=device, dtype=dtype)

    def forward(self, input):  # noqa: A002
        if self.padding_mode != "zeros":
            return self._op(self._explicit_pad(input), self.weight, self.bias, self.stride, 0,
                            self.dilation, self.groups)
        return self._op(input, self.weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups)


class Conv2d(_Conv):
    """2-D convolution over (N, C, H, W); weight (out, in // groups, kH, kW), bias (out,)."""
    _op = staticmethod(conv2d)


class Conv1d(_Conv):
    """1-D convolution over (N, C, L); weight (out, in // groups, kL), bias (out,)."""
    _nd = 1
    _op = staticmethod(conv1d)


class Conv3d(_Conv):
    """3-D convolution over (N, C, D, H, W); weight (out, in // groups, kD, kH, kW)."""
    _nd = 3
    _op = staticmethod(conv3d)


class _ConvTransposeNd(_ConvNd):
    """ConvTranspose1d and ConvTranspose2d: the op (conv_transpose1d or 2d) is _op."""
    _transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, output_padding, device=device, dtype=dtype)
        if isinstance(self.padding, str):
            raise ValueError(f"{type(self).__name__}: padding must be an int or a tuple")

    def _output_padding(self, input, output_size):
        if output_size is None:
            return self.output_padding
        nd = self._nd
        output_size = tuple(int(s) for s in output_size)[-nd:]
        out = []
        for i in range(nd):
            base = ((input.shape[2 + i] - 1) * self.stride[i] - 2 * self.padding[i]
                    + self.dilation[i] * (self.kernel_size[i] - 1) + 1)
            extra = output_size[i] - base
            if not 0 <= extra < max(self.stride[i], self.dilation[i]):
                raise ValueError(f"{type(self).__name__}: requested an output size of "
                                 f"{output_size}, but valid sizes range from {base} to "
                                 f"{base + max(self.stride[i], self.dilation[i]) - 1} "
                                 f"(for an input of {list(input.shape[2:])})")
            out.append(extra)
        return tuple(out)

    def forward(self, input, output_size=None):  # noqa: A002
        return self._op(input, self.weight, self.bias, self.stride, self.padding,
                        self._output_padding(input, output_size), self.groups, self.dilation)


class ConvTranspose2d(_ConvTransposeNd):
    """Transposed 2-D convolution; weight (in, out // groups, kH, kW), bias (out,)."""
    _op = staticmethod(conv_transpose2d)


class ConvTranspose1d(_ConvTransposeNd):
    """Transposed 1-D convolution; weight (in, out // groups, kL), bias (out,)."""
    _nd = 1
    _op = staticmethod(conv_transpose1d)


class ConvTranspose3d(_ConvTransposeNd):
    """Transposed 3-D convolution; weight (in, out // groups, kD, kH, kW), bias (out,)."""
    _nd = 3
    _op = staticmethod(conv_transpose3d)
