"""Reverse-mode automatic differentiation (torch.autograd's names).

    mode.py        no_grad / enable_grad / set_grad_enabled / is_grad_enabled / inference_mode
                   (per thread)
    function.py    Function, the op contract; Variable, what the engine sees of a Tensor
    engine.py      backward() and grad(): the backward pass over the recorded graph
    functional.py  vjp, jvp, hvp, vhp, jacobian, hessian (torch.autograd.functional): a client of
                   the ops, loaded on first use, so the engine itself imports no op
"""
from .engine import backward, grad
from .function import Function, Variable
from .mode import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled

_FUNCTIONAL = ("vjp", "jvp", "hvp", "vhp", "jacobian", "hessian")


def __getattr__(name):
    if name == "functional" or name in _FUNCTIONAL:
        import importlib  # noqa: PLC0415
        functional = importlib.import_module(".functional", __name__)
        return functional if name == "functional" else getattr(functional, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
