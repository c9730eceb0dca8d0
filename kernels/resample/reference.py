"""Plain NumPy reference of the resampling kernel: the tests' oracle (xp-generic). The Taps are
dense matrices here: y = R x C^T per (H, W) plane."""
from minicnn.devices import get_array_module


def resample2d(x, rows, cols):
    xp = get_array_module(x)
    r, c = xp.asarray(rows.dense()), xp.asarray(cols.dense())
    return xp.einsum("oh,bhw,pw->bop", r, x.astype(r.dtype), c).astype(x.dtype)
