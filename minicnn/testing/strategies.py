"""Hypothesis strategies for property-testing ops: shapes, broadcastable shapes, arrays, tensors.

Values are generated from a drawn seed with NumPy (fast, and shrinks well through the seed and
the shape) rather than element by element.
"""
import numpy
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ..devices import to_device
from ..tensor import Tensor
from .gradcheck import noncontiguous


def shapes(min_dims=0, max_dims=4, min_side=1, max_side=5):
    """Array shapes, size-1 dimensions included."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


def broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, min_side=1, max_side=5):
    """A tuple of `num_shapes` shapes that broadcast together (with size-1 and missing dims)."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=num_shapes, min_dims=min_dims, max_dims=max_dims, min_side=min_side,
        max_side=max_side).map(lambda b: b.input_shapes)


def random_array(seed, shape, dtype=numpy.float64, low=-2.0, high=2.0, min_abs=0.0):
    """Uniform values in [low, high]; |x| >= min_abs keeps them away from a kink at 0."""
    rng = numpy.random.default_rng(seed)
    dtype = numpy.dtype(dtype)
    if dtype.kind in "iu":
        return rng.integers(int(low), int(high) + 1, size=shape).astype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    a = rng.uniform(low, high, size=shape)
    if min_abs > 0:
        a = numpy.where(numpy.abs(a) < min_abs, numpy.copysign(min_abs, a) + a, a)
    return a.astype(dtype)


@st.composite
def arrays(draw, shape, dtype=numpy.float64, low=-2.0, high=2.0, min_abs=0.0,
           allow_noncontiguous=True):
    """A NumPy array of the given shape (or shape strategy), sometimes a non-contiguous view."""
    if isinstance(shape, st.SearchStrategy):
        shape = draw(shape)
    seed = draw(st.integers(0, 2 ** 32 - 1))
    a = random_array(seed, shape, dtype, low, high, min_abs)
    if allow_noncontiguous and a.ndim and draw(st.booleans()):
        a = noncontiguous(a)
    return a


@st.composite
def tensors(draw, shape, dtype=numpy.float64, low=-2.0, high=2.0, min_abs=0.0,
            requires_grad=True, device="cpu"):
    """A minicnn Tensor (float64 and requiring grad by default, ready for gradcheck)."""
    a = draw(arrays(shape, dtype, low, high, min_abs))
    return Tensor(to_device(a, device), requires_grad=requires_grad)
