"""mc.functional (import as F): ops under PyTorch's torch.nn.functional names and signatures."""
from .ops import pad  # noqa: F401
