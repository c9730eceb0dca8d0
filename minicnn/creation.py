"""Making tensors: mc.tensor, zeros, ones, full, arange, randn, rand, ... and from_dlpack."""
import numbers

import numpy

from . import devices, dtypes
from .kernels import fma
from .random import rng
from .tensor import Tensor


def _infer_dtype(data):
    """PyTorch's rule: Python floats -> the default float dtype, ints -> int64, bools -> bool;
    arrays keep their own dtype."""
    if hasattr(data, "dtype"):
        return None
    flat = data
    while isinstance(flat, (list, tuple)) and flat:
        flat = flat[0]
    if isinstance(flat, Tensor):
        return None
    if isinstance(flat, (bool, numpy.bool_)):
        return numpy.dtype(bool)
    if isinstance(flat, numbers.Integral):
        return numpy.dtype("int64")
    return dtypes.get_default_dtype()


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new Tensor holding a copy of `data` (list, scalar, NumPy/CuPy array or Tensor)."""
    dtype = dtypes.resolve(dtype)
    if isinstance(data, Tensor):
        data = data.array
    elif isinstance(data, (list, tuple)) and any(isinstance(d, Tensor) for d in data):
        data = [d.array if isinstance(d, Tensor) else d for d in data]
        data = devices.get_array_module(*data).stack([devices.get_array_module(d).asarray(d)
                                                      for d in data])
    if dtype is None:
        dtype = _infer_dtype(data)
    target = devices.normalize_device(device) if device is not None else devices.device_of(data)
    xp = devices.xp_for(target)
    if target == "cpu" and devices.is_cuda_array(data):
        data = data.get()
    try:
        array = xp.array(data, dtype=dtype, copy=True)
    except ValueError:
        ragged = _ragged(data)   # PyTorch's message, not NumPy's "inhomogeneous shape"
        if ragged:
            raise ValueError(f"tensor: {ragged}") from None
        raise
    if array.dtype == numpy.float64 and dtype is None and not hasattr(data, "dtype"):
        array = array.astype(dtypes.get_default_dtype())
    return Tensor(array, requires_grad=requires_grad)


def _ragged(data):
    """PyTorch's complaint about nested sequences that do not make a rectangle, or None."""
    level, dim = [data], 0
    while any(isinstance(d, (list, tuple)) for d in level):
        if not all(isinstance(d, (list, tuple)) for d in level):
            return f"a mix of numbers and sequences at dim {dim - 1}"
        n = len(level[0])
        for d in level:
            if len(d) != n:
                return f"expected sequence of length {n} at dim {dim} (got {len(d)})"
        level, dim = [e for d in level for e in d], dim + 1
    return None


def as_tensor(data, dtype=None, device=None):
    """Like tensor() but shares memory with an array of the right dtype and device."""
    if isinstance(data, Tensor) and dtype is None and device is None:
        return data
    if hasattr(data, "dtype") and (dtype is None or numpy.dtype(dtype) == data.dtype) and \
            (device is None or devices.normalize_device(device) == devices.device_of(data)):
        return Tensor(data)
    return tensor(data, dtype=dtype, device=device)


def from_numpy(array):
    """A Tensor sharing memory with the NumPy array (writes to either show in the other), as
    torch.from_numpy. One exception: building an optimizer over the tensor (as a parameter)
    moves its values into the optimizer's flat buffer, after which the optimizer's updates
    change the tensor but no longer the array (minicnn/optim/optimizer.py)."""
    return Tensor(numpy.asarray(array))


def _size(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    size = tuple(int(s) for s in size)
    if any(s < 0 for s in size):
        raise ValueError(f"negative dimension in size {list(size)}")
    return size


def _make(array, requires_grad):
    return Tensor(array, requires_grad=requires_grad)


def _float_dtype(dtype):
    return dtypes.resolve(dtype) or dtypes.get_default_dtype()


def _new(xp_factory, size, dtype, device, requires_grad):
    """zeros / ones / empty: xp.<xp_factory>(size) in dtype (default float) on the device."""
    xp = devices.xp_for(device)
    return _make(getattr(xp, xp_factory)(_size(size), _float_dtype(dtype)), requires_grad)


def zeros(*size, dtype=None, device=None, requires_grad=False):
    return _new("zeros", size, dtype, device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False):
    return _new("ones", size, dtype, device, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False):
    return _new("empty", size, dtype, device, requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    xp = devices.xp_for(device)
    if dtype is None:
        dtype = _infer_dtype(fill_value)
    return _make(xp.full(_size((size,)), fill_value, dtypes.resolve(dtype)), requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    xp = devices.xp_for(device)
    return _make(xp.eye(n, m, dtype=_float_dtype(dtype)), requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    if dtype is None:
        ints = all(isinstance(v, numbers.Integral) for v in (start, end, step))
        dtype = numpy.dtype("int64") if ints else dtypes.get_default_dtype()
    xp = devices.xp_for(device)
    return _make(xp.arange(start, end, step, dtype=dtypes.resolve(dtype)), requires_grad)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    """PyTorch's linspace, value for value: the first half counted up from start, the second
    down from end (both ends exact), each as start + step * i in one rounding (PyTorch's kernel
    compiles to a fused multiply-add: kernels.fma); in double for an integer dtype, whose start
    and end are converted first and whose values are truncated toward zero."""
    dtype = _float_dtype(dtype)
    if dtype.kind == "b":
        raise TypeError("linspace: not implemented for dtype bool")
    steps = int(steps)
    if steps < 0:
        raise ValueError(f"linspace: number of steps must be non-negative, got {steps}")
    if dtype.kind in "iu":
        start, end = int(start), int(end)    # C++'s conversion: toward zero
    ct = numpy.dtype(numpy.float64) if dtype.kind in "iu" else dtype
    start, end = ct.type(start), ct.type(end)
    step = (end - start) / ct.type(steps - 1) if steps > 1 else ct.type(0)
    i = numpy.arange(steps)
    first = i < (steps // 2 if steps > 1 else 1)          # one step: start
    k = numpy.where(first, i, i - (steps - 1)).astype(ct)  # end - step * (steps - 1 - i)
    values = fma(numpy.full(steps, step, ct), k, numpy.where(first, start, end).astype(ct))
    return _make(devices.xp_for(device).asarray(values.astype(dtype)), requires_grad)


def _like(factory, t, dtype, device, requires_grad, *args):
    """factory(t.shape, *args) with t's dtype and device unless given: the *_like functions."""
    return factory(t.shape, *args, dtype=dtype if dtype is not None else t.dtype,
                   device=device if device is not None else t.device,
                   requires_grad=requires_grad)


def zeros_like(t, dtype=None, device=None, requires_grad=False):
    return _like(zeros, t, dtype, device, requires_grad)


def ones_like(t, dtype=None, device=None, requires_grad=False):
    return _like(ones, t, dtype, device, requires_grad)


def full_like(t, fill_value, dtype=None, device=None, requires_grad=False):
    return _like(full, t, dtype, device, requires_grad, fill_value)


def _sample(method, size, dtype, device, requires_grad, generator):
    """Draw in float64 from the framework's seeded generator, then cast (same stream for any
    dtype, so a seed gives the same values in float32 and float64 up to rounding)."""
    g = rng(device or "cpu", generator)
    array = getattr(g, method)(_size(size), dtype=numpy.float64).astype(_float_dtype(dtype))
    return _make(array, requires_grad)


def randn(*size, dtype=None, device=None, requires_grad=False, generator=None):
    """Standard normal samples."""
    return _sample("standard_normal", size, dtype, device, requires_grad, generator)


def rand(*size, dtype=None, device=None, requires_grad=False, generator=None):
    """Uniform samples on [0, 1)."""
    return _sample("random", size, dtype, device, requires_grad, generator)


def randint(low, high=None, size=(), dtype=None, device=None, generator=None):
    if high is None:
        low, high = 0, low
    g = rng(device or "cpu", generator)
    array = g.integers(low, high, size=_size((size,)) if size else ()).astype(
        dtypes.resolve(dtype) or numpy.int64)
    return Tensor(array)


def randperm(n, device=None, generator=None):
    g = rng(device or "cpu", generator)
    if hasattr(g, "permutation"):
        return Tensor(g.permutation(n).astype(numpy.int64))
    # CuPy's Generator has no permutation: the argsort of uniform draws is a uniform permutation
    return Tensor(g.random(n).argsort().astype(numpy.int64))


def randn_like(t, dtype=None, device=None, requires_grad=False):
    return _like(randn, t, dtype, device, requires_grad)


def rand_like(t, dtype=None, device=None, requires_grad=False):
    return _like(rand, t, dtype, device, requires_grad)


_DLPACK_CPU, _DLPACK_CUDA = 1, 2


def from_dlpack(obj):
    """Zero-copy Tensor from any DLPack producer (NumPy, CuPy, PyTorch, another minicnn Tensor)."""
    if not hasattr(obj, "__dlpack_device__"):
        raise TypeError(f"from_dlpack: {type(obj).__name__} does not support the DLPack protocol")
    device_type = int(obj.__dlpack_device__()[0])
    if device_type == _DLPACK_CPU:
        return Tensor(numpy.from_dlpack(obj))
    if device_type == _DLPACK_CUDA:
        return Tensor(devices.cupy().from_dlpack(obj))
    raise ValueError(f"from_dlpack: unsupported DLPack device type {device_type}")
