"""dtypes: NumPy dtype objects under PyTorch's names."""
import numpy

float16 = half = numpy.dtype("float16")
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
    if dtype.kind != "f":
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


def is_floating(dtype):
    return numpy.dtype(dtype).kind == "f"
