"""dtypes: NumPy dtype objects under PyTorch's names.

bfloat16 is ml_dtypes' (NumPy has none). Its dtype's `kind` is "V", not "f", so code that asks
whether an array holds floats asks `is_floating` (or `kind`), which count it as one.
"""
import builtins

import ml_dtypes
import numpy

float16 = half = numpy.dtype("float16")
bfloat16 = numpy.dtype(ml_dtypes.bfloat16)
float32 = float = numpy.dtype("float32")  # noqa: A001 -- PyTorch's names
float64 = double = numpy.dtype("float64")
int8 = numpy.dtype("int8")
uint8 = numpy.dtype("uint8")
int16 = short = numpy.dtype("int16")
int32 = int = numpy.dtype("int32")  # noqa: A001
int64 = long = numpy.dtype("int64")
bool = numpy.dtype("bool")  # noqa: A001

_default_float = float32


def get_default_dtype():
    return _default_float


def set_default_dtype(dtype):
    global _default_float
    dtype = numpy.dtype(dtype)
    if not is_floating(dtype):
        raise TypeError(f"set_default_dtype: only floating point dtypes are allowed, got {dtype}")
    _default_float = dtype


def resolve(dtype):
    """None stays None; anything NumPy understands (mc.float32, 'float64', numpy types) -> dtype."""
    if dtype is None:
        return None
    try:
        return numpy.dtype(dtype)
    except TypeError:
        raise TypeError(f"unknown dtype {dtype!r}") from None


# the storage-only floats: the kernels compute them in float32 and round the results back
HALF_FLOATS = (float16, bfloat16)


def kind(dtype):
    """numpy's dtype.kind, with "f" for bfloat16."""
    k = dtype.kind
    return "f" if k == "V" and dtype == bfloat16 else k


def is_floating(dtype):
    dtype = numpy.dtype(dtype)
    return dtype.kind == "f" or dtype == bfloat16


def is_half(dtype):
    return dtype in HALF_FLOATS


def finfo(dtype):
    """numpy.finfo, bfloat16 included (ml_dtypes.finfo)."""
    return ml_dtypes.finfo(numpy.dtype(dtype))


def eps(dtype):
    """The distance from 1 to the next representable number (torch.finfo(dtype).eps)."""
    return builtins.float(ml_dtypes.finfo(numpy.dtype(dtype)).eps)
