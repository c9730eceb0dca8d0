"""mc.nn: Module, Parameter, layers, containers, init, and the functional API (nn.functional)."""
from .module import Module
from .parameter import Parameter
from . import functional, init, utils  # noqa: E402
from .containers import ModuleDict, ModuleList, Sequential
from .linear import Identity, Linear
from .normalization import (BatchNorm1d, BatchNorm2d, BatchNorm3d, GroupNorm,  # noqa: E402
                            InstanceNorm1d, InstanceNorm2d, InstanceNorm3d, LayerNorm)
from .activation import (CELU, ELU, GELU, SELU, Hardsigmoid, Hardswish, Hardtanh,  # noqa: E402
                         LeakyReLU, LogSigmoid, LogSoftmax, Mish, PReLU, ReLU, ReLU6, Sigmoid,
                         SiLU, Softmax, Softmin, Softplus, Softsign, Swish, Tanh)
from .dropout import (AlphaDropout, Dropout, Dropout1d, Dropout2d, Dropout3d,  # noqa: E402
                      FeatureAlphaDropout)
from .loss import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, KLDivLoss,  # noqa: E402
                   L1Loss, MSELoss, MultiLabelSoftMarginLoss, NLLLoss, SmoothL1Loss)
from .conv import (Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d,  # noqa: E402
                   ConvTranspose3d)
from .pooling import (AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveAvgPool3d,  # noqa: E402
                      AdaptiveMaxPool1d, AdaptiveMaxPool2d, AvgPool1d, AvgPool2d, AvgPool3d,
                      GlobalAvgPool2d, MaxPool1d, MaxPool2d, MaxPool3d, MaxUnpool2d)
from .flatten import Flatten, Unflatten  # noqa: E402
from . import parallel  # noqa: E402
from .parallel import DataParallel, SyncBatchNorm  # noqa: E402
from .upsampling import Upsample, UpsamplingBilinear2d, UpsamplingNearest2d  # noqa: E402
from .distance import CosineSimilarity, PairwiseDistance  # noqa: E402
from .pixelshuffle import PixelShuffle, PixelUnshuffle  # noqa: E402
from .sparse import Embedding  # noqa: E402
