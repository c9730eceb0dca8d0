"""Plain NumPy reference of the top-k kernel: the tests' oracle (xp-generic). Sort every row by
PyTorch's order (NaN largest, stable) and keep the first k."""
from minicnn.devices import get_array_module


def topk(x, k, largest=True):
    xp = get_array_module(x)
    nan = xp.isnan(x)
    key = xp.where(nan, -xp.inf, -x) if largest else xp.where(nan, xp.inf, x)
    # NaN and +inf share a key: sort by (key, NaN last ascending / first when largest)
    idx = xp.lexsort((~nan if largest else nan, key), axis=-1)
    idx = idx[:, :k]
    return xp.take_along_axis(x, idx, axis=-1), idx.astype(xp.int64)
