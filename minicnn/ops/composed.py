"""Small nn functions under PyTorch's names, built on the other ops: logsigmoid, softmin,
pixel_shuffle and pixel_unshuffle."""
import numbers

import numpy

from ..autograd import Function
from ..devices import get_array_module
from ..dtypes import is_floating
from .activation import sigmoid, softmax
from .util import check_tensor, shape_str


class LogSigmoid(Function):
    """log(sigmoid(x)) = min(x, 0) - log1p(exp(-|x|)) (no overflow either side); its slope is
    sigmoid(-x), a Tensor expression, so it has a backward too."""
    saves = (0,)

    def forward(self, x):
        xp = get_array_module(x)
        with numpy.errstate(all="ignore"):
            return xp.minimum(x, 0) - xp.log1p(xp.exp(-xp.abs(x)))

    def backward(self, gy):
        return gy * sigmoid(-self.inputs[0])


def logsigmoid(input):
    """F.logsigmoid: log(1 / (1 + exp(-x))), element-wise."""
    check_tensor(input, "input", "logsigmoid")
    if not is_floating(input.array.dtype):
        raise TypeError(f"logsigmoid: expected a floating point input, got {input.dtype}")
    return LogSigmoid()(input)


def softmin(input, dim=None, dtype=None):
    """F.softmin: softmax(-input) along dim."""
    check_tensor(input, "input", "softmin")
    if dtype is not None:
        input = input.to(dtype)
    return softmax(-input, dim=dim)


def _factor(op, name, r):
    if not isinstance(r, numbers.Integral) or isinstance(r, bool) or r <= 0:
        raise ValueError(f"{op}: expected a positive {name}, but got {r!r}")
    return int(r)


def pixel_shuffle(input, upscale_factor):
    """F.pixel_shuffle: (*, C r^2, H, W) -> (*, C, H r, W r), each r x r block from r^2
    channels."""
    op = "pixel_shuffle"
    check_tensor(input, "input", op)
    r = _factor(op, "upscale_factor", upscale_factor)
    if input.ndim < 3:
        raise ValueError(f"{op}: expected an input of at least 3 dimensions (*, C, H, W), but "
                         f"got {shape_str(input.shape)}")
    *lead, C, H, W = input.shape
    if C % (r * r):
        raise ValueError(f"{op}: expected the channel dimension of the input to be divisible "
                         f"by upscale_factor^2 = {r * r}, but input.size(-3)={C} (input "
                         f"{shape_str(input.shape)})")
    n = len(lead)
    x = input.reshape(*lead, C // (r * r), r, r, H, W)
    x = x.permute(*range(n), n, n + 3, n + 1, n + 4, n + 2)      # (*, C, H, r, W, r)
    return x.reshape(*lead, C // (r * r), H * r, W * r)


def pixel_unshuffle(input, downscale_factor):
    """F.pixel_unshuffle, the inverse: (*, C, H r, W r) -> (*, C r^2, H, W)."""
    op = "pixel_unshuffle"
    check_tensor(input, "input", op)
    r = _factor(op, "downscale_factor", downscale_factor)
    if input.ndim < 3:
        raise ValueError(f"{op}: expected an input of at least 3 dimensions (*, C, H, W), but "
                         f"got {shape_str(input.shape)}")
    *lead, C, H, W = input.shape
    if H % r or W % r:
        raise ValueError(f"{op}: expected the height and width of the input to be divisible "
                         f"by downscale_factor={r}, but got input {shape_str(input.shape)}")
    n = len(lead)
    x = input.reshape(*lead, C, H // r, r, W // r, r)
    x = x.permute(*range(n), n, n + 2, n + 4, n + 1, n + 3)      # (*, C, r, r, H/r, W/r)
    return x.reshape(*lead, C * r * r, H // r, W // r)
