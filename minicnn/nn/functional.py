"""minicnn.nn.functional (import as F): the ops under torch.nn.functional's names and signatures.

`mc.functional` is the same module. Each op family adds its functions here with one import line.
"""
from ..ops.activation import bias_act  # noqa: F401
from ..ops.activation import (celu, elu, gelu, hardsigmoid, hardswish, hardtanh,  # noqa: F401
                              leaky_relu, log_softmax, mish, prelu, relu, relu6, selu, sigmoid,
                              silu, softmax, softplus, softsign, tanh)
from ..ops.conv import conv1d, conv2d, conv_transpose1d, conv_transpose2d  # noqa: F401
from ..ops.dropout import (alpha_dropout, dropout, dropout1d, dropout2d,  # noqa: F401
                           dropout3d, feature_alpha_dropout)
from ..ops.linalg import linear  # noqa: F401
from ..ops.loss import (binary_cross_entropy, binary_cross_entropy_with_logits,  # noqa: F401
                        cross_entropy, huber_loss, kl_div, l1_loss, mse_loss,
                        multilabel_soft_margin_loss, nll_loss, smooth_l1_loss)
from ..ops.norm import batch_norm, group_norm, instance_norm, layer_norm  # noqa: F401
from ..ops.pool import (adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d,  # noqa: F401
                        global_avg_pool2d, max_pool2d, max_unpool2d)
from ..ops.shape import pad  # noqa: F401
from ..ops.rearrange import col2im as fold  # noqa: F401
from ..ops.rearrange import im2col as unfold  # noqa: F401
from ..ops.resample import (interpolate, upsample, upsample_bilinear,  # noqa: F401
                            upsample_nearest)
from ..ops.attention import scaled_dot_product_attention  # noqa: F401
from ..ops.composed import logsigmoid, pixel_shuffle, pixel_unshuffle, softmin  # noqa: F401
from ..ops.distance import cosine_similarity, normalize, pairwise_distance  # noqa: F401
from ..ops.embedding import embedding, one_hot  # noqa: F401
from ..ops.volume import (adaptive_avg_pool1d, adaptive_avg_pool3d,  # noqa: F401
                          adaptive_max_pool1d, avg_pool1d, avg_pool3d, conv3d, conv_transpose3d,
                          max_pool1d, max_pool3d)
