"""Turning op-table samples into minicnn and torch arguments."""
import numpy as np

import minicnn as mc
from minicnn.devices import to_device, to_numpy


def _convert(obj, fn):
    if isinstance(obj, np.ndarray):
        return fn(obj)
    if isinstance(obj, tuple):
        return tuple(_convert(o, fn) for o in obj)
    if isinstance(obj, list) and obj and isinstance(obj[0], np.ndarray):
        return [_convert(o, fn) for o in obj]
    if isinstance(obj, dict):
        return {k: _convert(v, fn) for k, v in obj.items()}
    return obj


def _cast(a, dtype):
    return a.astype(dtype) if dtype is not None and a.dtype.kind == "f" else a


def mc_args(sample, device="cpu", dtype=None, requires_grad=True):
    """Tensors on `device` for the sample's arrays; float args require grad unless constant."""
    args = []
    for i, a in enumerate(sample.args):
        if isinstance(a, np.ndarray):
            t = mc.Tensor(to_device(_cast(a, dtype), device))
            if requires_grad and a.dtype.kind == "f" and i not in sample.constant:
                t.requires_grad_()
            args.append(t)
        else:
            args.append(_convert(a, lambda x: mc.Tensor(to_device(x, device))))
    kwargs = _convert(sample.kwargs, lambda x: mc.Tensor(to_device(_cast(x, dtype), device)))
    return args, kwargs


def torch_args(torch, sample, dtype=None, requires_grad=True):
    args = []
    for i, a in enumerate(sample.args):
        if isinstance(a, np.ndarray):
            t = torch.from_numpy(np.array(copy=True, order="C", object=_cast(a, dtype)))
            if requires_grad and a.dtype.kind == "f" and i not in sample.constant:
                t.requires_grad_()
            args.append(t)
        else:
            args.append(_convert(a, lambda x: torch.from_numpy(np.array(copy=True, order="C", object=x))))
    kwargs = _convert(sample.kwargs, lambda x: torch.from_numpy(np.array(copy=True, order="C", object=_cast(x, dtype))))
    return args, kwargs


def float_outputs(out):
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [o for o in outs if o is not None and str(o.dtype).endswith(("float32", "float64"))]


def exact_outputs(out):
    """The integer and bool outputs (indices, masks), compared exactly."""
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [o for o in outs if o is not None and hasattr(o, "dtype")
            and not str(o.dtype).endswith(("float16", "float32", "float64"))]


def as_numpy(t):
    if hasattr(t, "detach") and hasattr(t, "numpy") and not isinstance(t, mc.Tensor):
        return t.detach().numpy()
    return to_numpy(t.array)
