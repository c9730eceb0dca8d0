"""mc.nn: Module, Parameter, layers, containers and init."""
from .module import Module
from .parameter import Parameter
from . import init, utils  # noqa: E402
from .containers import ModuleDict, ModuleList, Sequential
from .linear import Identity, Linear
from .conv import Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d  # noqa: E402
from .pooling import (AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d,  # noqa: E402
                      GlobalAvgPool2d, MaxPool2d, MaxUnpool2d)
from .flatten import Flatten, Unflatten  # noqa: E402
