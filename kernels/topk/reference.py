"""Plain NumPy reference of the top-k kernel: the tests' oracle (xp-generic). Sort every row by
PyTorch's order (NaN largest, stable) and keep the first k."""
from minicnn.devices import get_array_module


def topk(x, k, largest=True):
    xp = get_array_module(x)
    nan = xp.isnan(x)
    key = xp.where(nan, -xp.inf, -x) if largest else xp.where(nan, xp.inf, x)
    if largest:
        idx = xp.argsort(key, axis=-1, kind="stable")
    else:   # +inf before NaN: sort by (nan, value)
        idx = xp.lexsort((key, nan), axis=-1)
    idx = idx[:, :k]
    return xp.take_along_axis(x, idx, axis=-1), idx.astype(xp.int64)
