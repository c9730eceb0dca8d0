"""The op table (PyTorch's OpInfo pattern): one entry per differentiable op.

Each entry names the minicnn op and its PyTorch reference, a hypothesis strategy for valid
samples, the invalid inputs with the error each must raise, and tolerances. The generic tests in
test_op_table.py run every entry through gradcheck, PyTorch parity, every device and the bad-input
cases, so adding an op here adds it to all of them.

Families live in their own modules (core, conv, norm, ...); every module of this package is
collected into ALL_OPS, so a new family is a new file here.
"""
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from hypothesis import strategies as st


@dataclass
class Sample:
    args: tuple                      # NumPy arrays (float ones differentiable) or plain values
    kwargs: dict = field(default_factory=dict)
    constant: tuple = ()             # indices of float array args that do not require grad


@dataclass
class ErrorCase:
    args: tuple
    kwargs: dict
    exc: type
    match: str                       # a regex the message must contain
    id: str = ""


@dataclass
class OpInfo:
    name: str
    op: Callable                     # op(*args, **kwargs) with minicnn Tensors
    ref: Any                         # ref(torch, *args, **kwargs) with torch tensors, or None
    samples: st.SearchStrategy       # draws Sample
    errors: list = field(default_factory=list)
    grad_tol: tuple = (1e-5, 1e-3)   # gradcheck (atol, rtol) in float64
    tol: dict = field(default_factory=lambda: {np.float64: (1e-9, 1e-7),
                                               np.float32: (2e-5, 2e-4)})
    gradcheck: bool = True
    double_backward: bool = True
    directional: Any = None          # None: gradcheck picks by input size
    nan_args: Any = None             # the args test_nan_inf_parity fills with NaN and +-inf at
                                     # drawn positions (None: every float array argument)
    setting: Any = None              # a context manager factory the generic tests enter around
                                     # each sample's forward and backward: the op under another
                                     # kernel rule (conv2d without its direct kernel)
    index_ties: bool = False         # the integer outputs index args[0] along kwargs' dim
                                     # (sort, topk, ...): among equal elements (the NaNs and
                                     # infs test_nan_inf_parity puts in) PyTorch says not which
                                     # it picks, unless stable=True


def _collect():
    """The OPS of every module of this package (one per op family: core, conv, norm, ...)."""
    import importlib  # noqa: PLC0415
    import pkgutil  # noqa: PLC0415
    ops = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: (i.name != "core", i.name)):
        ops.extend(importlib.import_module(f"{__name__}.{info.name}").OPS)
    return ops


ALL_OPS = _collect()
