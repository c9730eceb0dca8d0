"""Plain NumPy references of the scan kernels: the tests' oracle, element by element along the
axis (xp-generic), with the rules of kernels/scan/__init__.py."""
import numpy

from minicnn.devices import get_array_module


def _log_add_exp(xp, x, y):
    lo = xp.where(xp.isnan(y), y, xp.where(xp.isnan(x), x, xp.minimum(x, y)))
    hi = xp.where(xp.isnan(y), y, xp.where(xp.isnan(x), x, xp.maximum(x, y)))
    with numpy.errstate(invalid="ignore"):
        general = xp.log1p(xp.exp(lo - hi)) + hi
    return xp.where((lo != hi) | xp.isfinite(lo), general, x)


def scan(x, axis, op):
    xp = get_array_module(x)
    a = xp.moveaxis(x.astype(xp.float64), axis, 0)
    out = xp.empty_like(a)
    acc = xp.full(a.shape[1:], {"sum": 0.0, "prod": 1.0, "logsumexp": -xp.inf}[op])
    for k in range(a.shape[0]):
        acc = acc + a[k] if op == "sum" else acc * a[k] if op == "prod" else \
            _log_add_exp(xp, a[k], acc)
        out[k] = acc
    return xp.moveaxis(out, 0, axis).astype(x.dtype)


def scan_arg(x, axis, op):
    xp = get_array_module(x)
    a = xp.moveaxis(x, axis, 0)
    y, idx = xp.empty_like(a), xp.empty(a.shape, xp.int64)
    best, at = a[0].copy(), xp.zeros(a.shape[1:], xp.int64)
    for k in range(a.shape[0]):
        v = a[k]
        better = (v >= best) if op == "max" else (v <= best)
        take = xp.isnan(v) | (~xp.isnan(best) & better)
        best, at = xp.where(take, v, best), xp.where(take, k, at)
        y[k], idx[k] = best, at
    return xp.moveaxis(y, 0, axis), xp.moveaxis(idx, 0, axis)
