"""mc.functional (import as F): ops under torch.nn.functional's names and signatures.

Each op family adds its functions here with one import line.
"""
from .ops import pad  # noqa: F401
from .nn.linear import linear  # noqa: F401,E402
from .ops.conv import conv1d, conv2d, conv_transpose1d, conv_transpose2d  # noqa: F401,E402
from .ops.pool import (adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d,  # noqa: F401,E402
                       global_avg_pool2d, max_pool2d, max_unpool2d)
