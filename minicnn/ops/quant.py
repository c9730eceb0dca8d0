"""Fake quantization (quantization-aware training): rounding onto the int8 grid and back, with a
straight-through gradient (the STE of Bengio et al. 2013, as in PyTorch's FakeQuantize)."""
from ..autograd import Function
from ..devices import get_array_module
from ..tensor import Tensor


class FakeQuantizeOp(Function):
    """y = (clip(rint(x / s) + zp, qmin, qmax) - zp) * s; per tensor (scale a number) or per
    channel along `axis` (scale, zero_point arrays). dy/dx = 1 where rint(x/s) + zp lies in
    [qmin, qmax], else 0 (straight-through estimator)."""
    saves = ()  # a mask made in the forward

    def __init__(self, scale, zero_point=0, qmin=-128, qmax=127, axis=None):
        self.scale, self.zero_point, self.qmin, self.qmax, self.axis = \
            scale, zero_point, qmin, qmax, axis

    def forward(self, x):
        xp = get_array_module(x)
        s, zp = self.scale, self.zero_point
        if self.axis is not None:
            shape = [1] * x.ndim
            shape[self.axis] = -1
            s = xp.asarray(s, dtype=x.dtype).reshape(shape)
            zp = xp.asarray(zp, dtype=x.dtype).reshape(shape)
        else:
            s, zp = x.dtype.type(s), x.dtype.type(zp)
        q = xp.rint(x / s) + zp
        self.mask = (q >= self.qmin) & (q <= self.qmax)
        return ((xp.clip(q, self.qmin, self.qmax) - zp) * s).astype(x.dtype, copy=False)

    def backward(self, gy):
        return gy * Tensor._wrap(self.mask.astype(gy.array.dtype))


def fake_quantize(x, scale, zero_point=0, qmin=-128, qmax=127, axis=None):
    """(clip(rint(x / scale) + zero_point, qmin, qmax) - zero_point) * scale, with the
    straight-through gradient (1 where the value was not clamped)."""
    return FakeQuantizeOp(scale, zero_point, qmin, qmax, axis)(x)
