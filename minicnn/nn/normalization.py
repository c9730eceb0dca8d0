"""Normalization layers: BatchNorm1d/2d/3d, LayerNorm, InstanceNorm1d/2d/3d, GroupNorm.

Parameter and buffer names follow PyTorch (weight, bias, running_mean, running_var,
num_batches_tracked) so state_dicts load across.
"""
from ..ops import norm as N
from ..ops.util import shape_str
from ..tensor import Tensor
from ._affine import xp_and_dtype
from .module import Module
from .parameter import Parameter


def _tensor(xp, shape, value, dtype):
    return xp.full(shape, value, dtype=dtype)


def _add_affine(module, shape, weight, bias, xp, dtype):
    """module.weight = ones(shape) if weight, module.bias = zeros(shape) if weight and bias, as
    Parameters; None otherwise (PyTorch's names and initial values)."""
    if weight:
        module.weight = Parameter(_tensor(xp, shape, 1.0, dtype))
    else:
        module.register_parameter("weight", None)
    if weight and bias:
        module.bias = Parameter(_tensor(xp, shape, 0.0, dtype))
    else:
        module.register_parameter("bias", None)


class _NormBase(Module):
    _dims = None  # allowed input ndims

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, device=None, dtype=None):
        super().__init__()
        self.num_features = int(num_features)
        self.eps, self.momentum = eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        xp, dtype = xp_and_dtype(device, dtype)
        C = self.num_features
        _add_affine(self, (C,), affine, True, xp, dtype)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(_tensor(xp, (C,), 0.0, dtype)))
            self.register_buffer("running_var", Tensor(_tensor(xp, (C,), 1.0, dtype)))
            self.register_buffer("num_batches_tracked", Tensor(xp.zeros((), dtype=xp.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.array[...] = 0
            self.running_var.array[...] = 1
            self.num_batches_tracked.array[...] = 0

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            self.weight.array[...] = 1
            self.bias.array[...] = 0

    def _check_input(self, x):
        name = type(self).__name__
        if x.ndim not in self._dims:
            want = " or ".join(f"{d}D" for d in self._dims)
            raise ValueError(f"{name}: expected {want} input (got {x.ndim}D input of shape "
                             f"{shape_str(x.shape)})")

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class _BatchNorm(_NormBase):
    def forward(self, input):  # noqa: A002
        x = input
        self._check_input(x)
        if x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}: expected input with {self.num_features} "
                             f"channels (num_features), but got input of shape "
                             f"{shape_str(x.shape)} with {x.shape[1]} channels")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.array[...] += 1
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked.array)
        use_batch = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        return N.batch_norm(x, self.running_mean if track else None,
                            self.running_var if track else None, self.weight, self.bias,
                            use_batch, factor, self.eps)


class BatchNorm1d(_BatchNorm):
    """Over (N, C) or (N, C, L) inputs."""
    _dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Over (N, C, H, W) inputs."""
    _dims = (4,)


class BatchNorm3d(_BatchNorm):
    _dims = (5,)


class _InstanceNorm(_NormBase):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False,
                 track_running_stats=False, device=None, dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)

    def forward(self, input):  # noqa: A002
        x = input
        self._check_input(x)
        unbatched = x.ndim == self._dims[0]
        if unbatched:
            x = x.unsqueeze(0)
        if x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}: expected input's size at dim=1 to match "
                             f"num_features ({self.num_features}), but got input of shape "
                             f"{shape_str(input.shape)}")
        use_input_stats = self.training or not self.track_running_stats
        y = N.instance_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            use_input_stats, 0.0 if self.momentum is None else self.momentum,
                            self.eps)
        return y.squeeze(0) if unbatched else y


class InstanceNorm1d(_InstanceNorm):
    _dims = (2, 3)


class InstanceNorm2d(_InstanceNorm):
    _dims = (3, 4)


class InstanceNorm3d(_InstanceNorm):
    _dims = (4, 5)


class LayerNorm(Module):
    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True,
                 device=None, dtype=None):
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(int(s) for s in normalized_shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        _add_affine(self, self.normalized_shape, elementwise_affine, bias,
                    *xp_and_dtype(device, dtype))

    def forward(self, input):  # noqa: A002
        return N.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


class GroupNorm(Module):
    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, device=None, dtype=None):
        super().__init__()
        if num_groups <= 0 or num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by "
                             f"num_groups ({num_groups})")
        self.num_groups, self.num_channels = int(num_groups), int(num_channels)
        self.eps, self.affine = eps, affine
        _add_affine(self, (self.num_channels,), affine, True, *xp_and_dtype(device, dtype))

    def forward(self, input):  # noqa: A002
        x = input
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"GroupNorm: expected input with {self.num_channels} channels at "
                             f"dim 1, got input of shape {shape_str(x.shape)}")
        return N.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"

