"""mc.functional: the same module as minicnn.nn.functional (PyTorch spells it
torch.nn.functional); `import minicnn.functional as F` and `import minicnn.nn.functional as F`
give one module object."""
import sys

from .nn import functional as _functional

sys.modules[__name__] = _functional
