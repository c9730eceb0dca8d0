"""mc.functional (import as F): ops under torch.nn.functional's names and signatures.

Each op family adds its functions here with one import line.
"""
from .ops import pad  # noqa: F401
from .nn.linear import linear  # noqa: F401,E402
from .ops.conv import conv1d, conv2d, conv_transpose1d, conv_transpose2d  # noqa: F401,E402
from .ops.norm import batch_norm, group_norm, instance_norm, layer_norm  # noqa: F401,E402
from .ops.activation import bias_act  # noqa: F401,E402
from .ops.activation import (celu, elu, gelu, hardsigmoid, hardswish, hardtanh,  # noqa: F401,E402
                             leaky_relu, log_softmax, mish, prelu, relu, relu6, selu, sigmoid,
                             silu, softmax, softplus, softsign, tanh)
from .ops.dropout import (alpha_dropout, dropout, dropout1d, dropout2d,  # noqa: F401,E402
                          dropout3d, feature_alpha_dropout)
from .ops.loss import (binary_cross_entropy, binary_cross_entropy_with_logits,  # noqa: F401,E402
                       cross_entropy, huber_loss, kl_div, l1_loss, mse_loss,
                       multilabel_soft_margin_loss, nll_loss, smooth_l1_loss)
from .ops.pool import (adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d,  # noqa: F401,E402
                       global_avg_pool2d, max_pool2d, max_unpool2d)
