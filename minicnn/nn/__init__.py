"""mc.nn: Module, Parameter, layers, containers and init."""
from .module import Module
from .parameter import Parameter
from . import init, utils  # noqa: E402
from .containers import ModuleDict, ModuleList, Sequential
from .linear import Identity, Linear
