"""mc.nn: Module, Parameter, layers, containers and init."""
from .module import Module
from .parameter import Parameter
