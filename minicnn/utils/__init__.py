"""mc.utils: what PyTorch programs import from torch.utils and torchvision.utils.

    from minicnn.utils.data import DataLoader, Dataset     # torch.utils.data: minicnn.data itself
    mc.utils.make_grid(images, nrow=8)                      # torchvision.utils.make_grid
    mc.utils.save_image(images, "grid.png", normalize=True) # torchvision.utils.save_image (Pillow)
"""
import sys

from .. import data
from .image import make_grid, save_image

# `minicnn.utils.data` is minicnn.data, module for module (`import minicnn.utils.data.sampler`
# finds minicnn.data.sampler rather than loading a second copy).
for _name, _module in list(sys.modules.items()):
    if _name == data.__name__ or _name.startswith(data.__name__ + "."):
        sys.modules[__name__ + _name[len("minicnn"):]] = _module
del _name, _module

__all__ = ["data", "make_grid", "save_image"]
