"""nn.Parameter: a Tensor that a Module registers as learnable."""
from ..autograd.version import bump as bump_version
from ..tensor import Tensor


class Parameter(Tensor):
    __slots__ = ()

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            import numpy  # noqa: PLC0415
            data = numpy.empty(0, numpy.float32)
        super().__init__(data.array if isinstance(data, Tensor) else data)
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


def zero_grads(params, set_to_none=True):
    """Drop (set_to_none) or zero in place the .grad of each tensor in params: the body of
    Module.zero_grad and Optimizer.zero_grad."""
    for p in params:
        if p.grad is None:
            continue
        if set_to_none:
            p.grad = None
        else:
            p.grad.array[...] = 0
            bump_version(p.grad.array)
