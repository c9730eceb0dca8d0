"""mc.functional (import as F): ops under torch.nn.functional's names and signatures.

Each op family adds its functions here with one import line.
"""
from .ops import pad  # noqa: F401
from .nn.linear import linear  # noqa: F401,E402
