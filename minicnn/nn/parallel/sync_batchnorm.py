"""SyncBatchNorm: batch normalization with the statistics of the global batch (every rank's).

In training each rank sums its part, an allreduce makes the global sums, and the normalization
uses them: mean = sum(x) / count, then var = sum((x - mean)^2) / count (two passes, as stable as
one process's). The allreduces are recorded in the graph (mc.distributed.AllReduceSum, whose
backward is the allreduce of the gradients), so the backward exchanges the gradient sums as
PyTorch's does and second derivatives come for free. A world of one, or eval mode, is
BatchNorm's own code.
"""
from ... import devices, distributed as dist
from ...autograd.mode import no_grad
from ...autograd import version as _version
from ..normalization import _BatchNorm
from ..module import Module
from ...ops.shape import concatenate
from ...ops.util import shape_str


class SyncBatchNorm(_BatchNorm):
    """PyTorch's nn.SyncBatchNorm over the ranks of mc.distributed (see the module docstring);
    inputs (N, C, ...) of 2 to 5 dims."""
    _dims = (2, 3, 4, 5)

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, process_group=None, device=None, dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device,
                         dtype)
        self.process_group = process_group

    def forward(self, input):  # noqa: A002
        if not self.training or dist.get_world_size() == 1:
            return super().forward(input)
        x = input
        self._check_input(x)
        C = self.num_features
        if x.shape[1] != C:
            raise ValueError(f"SyncBatchNorm: expected input with {C} channels "
                             f"(num_features), but got input of shape {shape_str(x.shape)}")
        dims = (0,) + tuple(range(2, x.ndim))
        local_count = x.array.size // max(C, 1)
        shape = (1, C) + (1,) * (x.ndim - 2)
        # one message: the per-channel sums and this rank's count
        xp = devices.get_array_module(x.array)
        count_col = x._wrap(xp.full(1, local_count, dtype=x.array.dtype))
        sums = dist.all_reduce_sum(concatenate([x.sum(dim=dims), count_col]))
        count = float(sums.array[C])
        if count <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input "
                             f"size {shape_str(x.shape)} on this rank and {int(count)} values "
                             "per channel over all ranks")
        mean = sums[:C] / count
        centered = x - mean.reshape(shape)
        var = dist.all_reduce_sum((centered * centered).sum(dim=dims)) / count
        y = centered * (var.reshape(shape) + self.eps).rsqrt()
        if self.affine:
            y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
        if self.track_running_stats:
            self._update_running(mean, var, count)
        return y

    def _update_running(self, mean, var, count):
        self.num_batches_tracked.array[...] += 1
        if self.momentum is None:
            m = 1.0 / float(self.num_batches_tracked.array)
        else:
            m = self.momentum
        with no_grad():
            rm, rv = self.running_mean.array, self.running_var.array
            rm[...] = (1 - m) * rm + m * mean.array.astype(rm.dtype)
            rv[...] = (1 - m) * rv + m * (var.array * (count / (count - 1))).astype(rv.dtype)
        _version.bump(rm)
        _version.bump(rv)

    @classmethod
    def convert_sync_batchnorm(cls, module, process_group=None):
        """module with every BatchNorm1d/2d/3d replaced by a SyncBatchNorm holding the same
        parameters and buffers (module itself is returned when it is one)."""
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            new = cls(module.num_features, module.eps, module.momentum, module.affine,
                      module.track_running_stats, process_group)
            for name in ("weight", "bias"):
                if module.affine:
                    setattr(new, name, getattr(module, name))
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                new._buffers[name] = module._buffers.get(name)
            new.train(module.training)
            return new
        if isinstance(module, Module):
            for name, child in list(module.named_children()):
                converted = cls.convert_sync_batchnorm(child, process_group)
                if converted is not child:
                    module._modules[name] = converted
        return module

