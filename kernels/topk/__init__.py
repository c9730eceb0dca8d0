"""The top-k family: the k largest (or smallest) elements of each row of a (R, L) array, and
PyTorch's sort order, which sort, argsort, kthvalue and median share.

    topk(x, k, largest) -> (values, indices)   sorted: largest first (smallest first when not
                                                largest); indices int64
    argsort(x, descending) -> indices           along the last axis, stable

PyTorch's order: NaN counts as larger than every number (first when descending, last when
ascending); equal elements keep their order (a stable sort; topk keeps the earlier index
first). topk of float rows with k <= MAX_KERNEL_K runs the kernels: one row per CPU iteration
or CUDA thread, each element inserted into the sorted k kept so far (O(L k) at worst, O(L) for
the usual few-of-many case, the classes of a classifier); larger k, and integer rows, take the
stable sort (array code, NumPy or CuPy).
"""
from minicnn.devices import get_array_module, on_cuda_kernels
from minicnn.dtypes import HALF_FLOATS

from .. import lazy
from .._half import in_float32

_cpu = lazy(__name__ + ".cpu")
_cuda = lazy(__name__ + ".cuda")

MAX_KERNEL_K = 64


def _key(xp, x, descending):
    """A key whose ascending stable order is PyTorch's order of x; for floats (key, tiebreak):
    NaN takes +inf's key (-inf's descending) and the tiebreak puts it after +inf ascending,
    before it descending."""
    if x.dtype.kind == "f":
        nan = xp.isnan(x)
        if descending:
            return xp.where(nan, -xp.inf, -x), ~nan
        return xp.where(nan, xp.inf, x), nan
    if x.dtype.kind == "b":
        return ~x if descending else x
    return ~x if descending else x     # ~ reverses the order of signed and unsigned ints


@in_float32
def argsort(x, descending=False):
    xp = get_array_module(x)
    key = _key(xp, x, descending)
    if isinstance(key, tuple):  # floats: stable by the tiebreak, then stable by the key
        key, tiebreak = key
        order = xp.argsort(tiebreak, axis=-1, kind="stable")
        order = xp.take_along_axis(order, xp.argsort(
            xp.take_along_axis(key, order, axis=-1), axis=-1, kind="stable"), axis=-1)
        return order.astype(xp.int64)
    return xp.argsort(key, axis=-1, kind="stable").astype(xp.int64)


@in_float32(half_kernels=True)
def topk(x, k, largest=True):
    if x.ndim != 2:
        raise ValueError(f"topk: expected a 2-D (rows, L) array, got shape {tuple(x.shape)}")
    if not 0 <= k <= x.shape[1]:
        raise ValueError(f"topk: k ({k}) out of range for rows of {x.shape[1]} elements")
    kernel_dtype = x.dtype.kind == "f" and x.dtype.itemsize in (4, 8) or \
        x.dtype in HALF_FLOATS   # half: only on the CUDA target (the CPU widens first)
    if kernel_dtype and 0 < k <= MAX_KERNEL_K:
        return (_cuda if on_cuda_kernels(x) else _cpu).topk(x, k, bool(largest))
    xp = get_array_module(x)
    idx = argsort(x, descending=largest)[:, :k]
    return xp.take_along_axis(x, idx, axis=-1), idx
