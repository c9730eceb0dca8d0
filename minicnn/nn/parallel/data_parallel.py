"""nn.DataParallel and nn.parallel.data_parallel, PyTorch's, for minicnn's one device.

PyTorch splits a batch across the GPUs in device_ids; minicnn drives one device (the CPU or one
GPU), so these run the module on the whole batch where it is. They exist so that PyTorch programs
that wrap a model (`net = nn.DataParallel(net)`, whose state_dict keys gain the prefix
`module.`, as PyTorch's) run unchanged.
"""
from ..module import Module


def _one_device(device_ids):
    ids = list(device_ids) if device_ids is not None else []
    if len(ids) > 1:
        raise ValueError(f"DataParallel: minicnn runs on one device; device_ids={ids} asks for "
                         f"{len(ids)}")
    return ids


class DataParallel(Module):
    """Runs `module` on the whole batch (see the module docstring)."""

    def __init__(self, module, device_ids=None, output_device=None, dim=0):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DataParallel: expected an nn.Module, got {type(module).__name__}")
        self.module = module
        self.device_ids = _one_device(device_ids)
        self.output_device, self.dim = output_device, dim

    def forward(self, *inputs, **kwargs):
        return self.module(*inputs, **kwargs)


def data_parallel(module, inputs, device_ids=None, output_device=None, dim=0,
                  module_kwargs=None):
    """module(*inputs, **module_kwargs) on the one device (PyTorch's functional DataParallel)."""
    _one_device(device_ids)
    if not isinstance(inputs, tuple):
        inputs = (inputs,)
    return module(*inputs, **(module_kwargs or {}))
