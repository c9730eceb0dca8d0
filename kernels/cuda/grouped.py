"""Launch functions of the direct grouped / depthwise convolution kernels (grouped.cu).

Same signatures as the dispatchers in kernels/conv.py:

    depthwise_conv2d(x, w, SH, SW, PH, PW, DH, DW, OH, OW, b=None)      -> y  (N, K, OH, OW)
    depthwise_grad_input(gy, w, C, H, W, SH, SW, PH, PW, DH, DW)         -> gx (N, C, H, W)
    depthwise_grad_weight(x, gy, KH, KW, SH, SW, PH, PW, DH, DW)         -> gw (K, 1, KH, KW)
    grouped_conv2d(x, w, G, SH, SW, PH, PW, DH, DW, OH, OW, b=None)      -> y  (N, K, OH, OW)
    grouped_grad_input(gy, w, G, C, H, W, SH, SW, PH, PW, DH, DW)        -> gx (N, C, H, W)
    grouped_grad_weight(x, gy, G, KH, KW, SH, SW, PH, PW, DH, DW)        -> gw (K, C/G, KH, KW)

Depthwise (w (C*M, 1, KH, KW)) is the grouped case G = C. Any kernel size, stride, padding and
dilation; gy may be smaller than the full output (a transposed conv's output_padding), and the
grad-input gather handles any (H, W). No host synchronization anywhere.
"""
from minicnn.backend import get_array_module

from . import module

FAMILY = "grouped"
BLOCK = 256
MAX_BLOCKS = 132 * 32           # grid-stride loops: a few waves of an H100's 132 SMs
WG_TARGET_BLOCKS = 2048         # weight grad: about this many (pair, slice) blocks
WG_MIN_CHUNK = 1024             # ... but at least this many positions per slice


def _grid(n):
    return max(1, min(-(-n // BLOCK), MAX_BLOCKS))


def _check(op, x, w, G, names=("input", "weight")):
    """4-D, both float32 or both float64, w.shape[1] (output channels) a multiple of G."""
    a, b = names
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D {a} and a 4-D {b}, got {a} "
                         f"{tuple(x.shape)} and {b} {tuple(w.shape)}")
    if x.dtype != w.dtype or x.dtype.kind != "f" or x.dtype.itemsize not in (4, 8):
        raise TypeError(f"{op}: {a} ({x.dtype}) and {b} ({w.dtype}) must both be "
                        f"float32 or both float64")
    k = w.shape[1] if b == "grad_output" else w.shape[0]
    if G < 1 or k % G:
        raise ValueError(f"{op}: {b} {tuple(w.shape)} has {k} output channels, "
                         f"not a multiple of groups={G}")


def grouped_conv2d(x, w, G, SH, SW, PH, PW, DH, DW, OH, OW, b=None):
    op = "grouped_conv2d"
    _check(op, x, w, G)
    N, C, H, W = x.shape
    K, Cg, KH, KW = w.shape
    if C != G * Cg:
        raise ValueError(f"{op}: input {tuple(x.shape)} has {C} channels; weight "
                         f"{tuple(w.shape)} with groups={G} expects {G * Cg}")
    xp = get_array_module(x)
    has_bias = b is not None
    if has_bias:
        if tuple(b.shape) != (K,):
            raise ValueError(f"{op}: bias {tuple(b.shape)} must have shape ({K},)")
    module.check_size(op, x.shape, w.shape, (N, K, OH, OW))
    y = module.empty(xp, (N, K, OH, OW), x.dtype)
    if y.size == 0:
        return y
    x, w = xp.ascontiguousarray(x), xp.ascontiguousarray(w)
    b = xp.ascontiguousarray(b, dtype=x.dtype) if has_bias else w   # w: an unread stand-in
    module.kernel(FAMILY, "grouped_fwd_kernel", x.dtype)(
        _grid(y.size), BLOCK,
        (x, w, b, y, int(has_bias), C, H, W, K, Cg, K // G, KH, KW, SH, SW, PH, PW, DH, DW,
         OH, OW, y.size))
    return y


def grouped_grad_input(gy, w, G, C, H, W, SH, SW, PH, PW, DH, DW):
    op = "grouped_grad_input"
    _check(op, gy, w, G, ("grad_output", "weight"))
    N, K, OH, OW = gy.shape
    _, Cg, KH, KW = w.shape
    if K != w.shape[0] or C != G * Cg:
        raise ValueError(f"{op}: grad_output {tuple(gy.shape)} and weight {tuple(w.shape)} "
                         f"do not match {C} input channels in {G} groups")
    xp = get_array_module(gy)
    module.check_size(op, gy.shape, w.shape, (N, C, H, W))
    gx = module.empty(xp, (N, C, H, W), gy.dtype)
    if gx.size == 0:
        return gx
    if gy.size == 0:
        gx[...] = 0
        return gx
    gy, w = xp.ascontiguousarray(gy), xp.ascontiguousarray(w)
    module.kernel(FAMILY, "grouped_input_bwd_kernel", gy.dtype)(
        _grid(gx.size), BLOCK,
        (gy, w, gx, C, H, W, K, Cg, K // G, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW, gx.size))
    return gx


def _wg_split(P, pairs):
    """(S, chunk, block): S slices of `chunk` positions each for every (k, cg) pair."""
    S = max(1, min(-(-WG_TARGET_BLOCKS // pairs), -(-P // WG_MIN_CHUNK)))
    chunk = -(-P // S)
    S = -(-P // chunk)
    block = min(BLOCK, 32 * -(-chunk // 32))
    return S, chunk, block


def grouped_grad_weight(x, gy, G, KH, KW, SH, SW, PH, PW, DH, DW):
    op = "grouped_grad_weight"
    _check(op, x, gy, G, ("input", "grad_output"))
    N, C, H, W = x.shape
    _, K, OH, OW = gy.shape
    if gy.shape[0] != N or C % G:
        raise ValueError(f"{op}: input {tuple(x.shape)} and grad_output {tuple(gy.shape)} do "
                         f"not match (groups={G})")
    Cg = C // G
    xp = get_array_module(x)
    module.check_size(op, x.shape, gy.shape)
    shape = (K, Cg, KH, KW)
    P, pairs, taps = N * OH * OW, K * Cg, KH * KW
    if pairs * taps == 0:
        return module.empty(xp, shape, x.dtype)
    if P == 0:
        return xp.zeros(shape, x.dtype)
    x, gy = xp.ascontiguousarray(x), xp.ascontiguousarray(gy)
    S, chunk, block = _wg_split(P, pairs)
    gw = module.empty(xp, shape, x.dtype)
    part = gw if S == 1 else module.empty(xp, (pairs, S, taps), x.dtype)
    module.kernel(FAMILY, "grouped_weight_bwd_kernel", x.dtype)(
        (pairs, S), block,
        (x, gy, part, C, H, W, K, Cg, K // G, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW, P, chunk))
    if S > 1:
        n = pairs * taps
        module.kernel(FAMILY, "grouped_weight_reduce_bwd_kernel", x.dtype)(
            _grid(n), BLOCK, (part, gw, S, taps, n))
    return gw


# --- depthwise: the grouped kernels with G = C ------------------------------------------------

def _depthwise_check(op, C, w):
    if w.ndim != 4 or w.shape[1] != 1 or w.shape[0] % max(C, 1):
        raise ValueError(f"{op}: depthwise weight must be (C*M, 1, KH, KW) for C={C} "
                         f"channels, got {tuple(w.shape)}")


def depthwise_conv2d(x, w, SH, SW, PH, PW, DH, DW, OH, OW, b=None):
    C = x.shape[1] if x.ndim == 4 else 0
    _depthwise_check("depthwise_conv2d", C, w)
    return grouped_conv2d(x, w, C, SH, SW, PH, PW, DH, DW, OH, OW, b)


def depthwise_grad_input(gy, w, C, H, W, SH, SW, PH, PW, DH, DW):
    _depthwise_check("depthwise_grad_input", C, w)
    return grouped_grad_input(gy, w, C, C, H, W, SH, SW, PH, PW, DH, DW)


def depthwise_grad_weight(x, gy, KH, KW, SH, SW, PH, PW, DH, DW):
    C = x.shape[1] if x.ndim == 4 else 0
    if gy.ndim != 4 or C == 0 or gy.shape[1] % C:
        raise ValueError(f"depthwise_grad_weight: grad_output {tuple(gy.shape)} must have a "
                         f"multiple of the input's channels (input {tuple(x.shape)})")
    return grouped_grad_weight(x, gy, C, KH, KW, SH, SW, PH, PW, DH, DW)
