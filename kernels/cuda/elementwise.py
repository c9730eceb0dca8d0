"""Launch layer of kernels/cuda/elementwise.cu: activations, fused bias + activation, dropout.

The activation functions have the signatures of their dispatchers in kernels/norm.py (relu_fwd,
relu_bwd, gelu_aux, gelu_fwd, gelu_bwd, sigmoid, silu_fwd, silu_bwd). On the GPU nothing is
saved between forward and backward beyond the input: recomputing sigmoid/erf costs less than
reading a saved array, so the optional `s`/`aux` arguments are accepted and ignored.

`bias_act_fwd/bias_act_bwd` fuse y = act(x + b[c]) (c the index along `dim`) and its gradients
(gx, and gb as a per-channel float64 reduction without atomics). `dropout` applies
y = keep ? x * ka + kb : x * da + db with the keep-mask drawn by Philox4x32-10 from
(seed, offset, element or row index) -- the backward calls it again with the same seed and
offset, so no mask is ever stored (kernels/reference/philox.py is its NumPy twin).

Every function takes CuPy arrays (the GPU) or NumPy arrays (the CPU emulator, for the tests).
"""
from minicnn.devices import get_array_module

from . import launch, module

FAMILY = "elementwise"
BLOCK = 256
WAVES = 16              # the loops are grid-stride: at most this many blocks per SM in all
MAX_BLOCKS = None       # a fixed cap on the blocks instead (the tests' small grids)
MAX_GRID_Y = 65535

ACTS = {"identity": 0, "relu": 1, "leaky_relu": 2, "gelu": 3, "gelu_tanh": 4, "sigmoid": 5,
        "silu": 6, "tanh": 7}


def _k(name, dtype):
    return module.kernel(FAMILY, name, dtype)


def _max_blocks(like):
    return MAX_BLOCKS or WAVES * launch.sm_count(like)


def _blocks(units, like):
    return launch.blocks(units, BLOCK, like=like, cap=_max_blocks(like))


def _pack_blocks(x):
    """Blocks for one thread per 16-byte pack of x (the activation kernels' vector loads)."""
    return _blocks(-(-x.size // (16 // x.itemsize)), x)


def _act_code(op, act):
    code = ACTS.get(act)
    if code is None:
        raise ValueError(f"{op}: unknown activation {act!r}; expected one of {sorted(ACTS)}")
    return code


# --- activations -------------------------------------------------------------------------------

def act_fwd(x, act, slope=0.0):
    """y = act(x) for an activation name of ACTS."""
    code = _act_code("act_fwd", act)
    xp, x = launch.float_input(act, x)
    y = module.empty(xp, x.shape, x.dtype)
    if x.size:
        _k("act_fwd_kernel", x.dtype)((_pack_blocks(x),), (BLOCK,), (x, y, x.size, code, slope))
    return y


def act_bwd(x, gy, act, slope=0.0):
    """gx = gy * act'(x) (relu: x may be the forward's output y)."""
    code = _act_code("act_bwd", act)
    xp, x = launch.float_input(act, x)
    if tuple(gy.shape) != tuple(x.shape):
        raise ValueError(f"{act} backward: grad shape {tuple(gy.shape)} does not match the "
                         f"input shape {tuple(x.shape)}")
    gy = xp.ascontiguousarray(gy.astype(x.dtype, copy=False)).reshape(x.shape)
    gx = module.empty(xp, x.shape, x.dtype)
    if x.size:
        _k("act_bwd_kernel", x.dtype)((_pack_blocks(x),), (BLOCK,),
                                      (x, gy, gx, x.size, code, slope))
    return gx


def relu_fwd(x):
    return act_fwd(x, "relu")


def relu_bwd(y, gy):
    """Gradient through ReLU from its output: gy where y > 0."""
    return act_bwd(y, gy, "relu")


def gelu_aux(x, tanh_approx=False):  # noqa: ARG001 -- the dispatcher contract
    """Nothing to keep between the passes: the kernels recompute exp(-x^2 / 2)."""
    return None


def gelu_fwd(x, tanh_approx=False, aux=None):  # noqa: ARG001
    return act_fwd(x, "gelu_tanh" if tanh_approx else "gelu")


def gelu_bwd(x, gy, tanh_approx=False, aux=None):  # noqa: ARG001
    return act_bwd(x, gy, "gelu_tanh" if tanh_approx else "gelu")


def sigmoid(x):
    return act_fwd(x, "sigmoid")


def silu_fwd(x, s=None):  # noqa: ARG001 -- s is not needed: the kernel computes it
    return act_fwd(x, "silu")


def silu_bwd(x, gy, s=None):  # noqa: ARG001
    return act_bwd(x, gy, "silu")


def tanh_fwd(x):
    return act_fwd(x, "tanh")


# --- fused bias + activation -------------------------------------------------------------------

def _rows_block(L):
    """Block (bx, 256 // bx) for a kernel whose threads x walk rows of length L."""
    bx = min(BLOCK, max(32, launch.pow2ceil(L)))
    return bx, BLOCK // bx


def _rows_grid(R, L, bx, by, like):
    cap = _max_blocks(like)
    gx = max(1, min((L + bx - 1) // bx, cap))
    gy = max(1, min((R + by - 1) // by, max(1, cap // gx), MAX_GRID_Y))
    return gx, gy


def _bias_checks(op, x, b, dim):
    launch.check_float(op, x, b)
    if x.dtype != b.dtype:
        raise TypeError(f"{op}: bias dtype {b.dtype} differs from the input's {x.dtype}")
    if not 0 <= dim < x.ndim:
        raise IndexError(f"{op}: dim {dim} out of range for an input of {x.ndim} dims")
    if b.ndim != 1 or b.shape[0] != x.shape[dim]:
        raise ValueError(f"{op}: bias of shape {list(b.shape)} must be 1-D with "
                         f"{x.shape[dim]} elements for the input of shape {list(x.shape)} "
                         f"(dim {dim})")


def bias_act_fwd(x, b, act="relu", dim=1, slope=0.0):
    """y = act(x + b[c]), c the index along `dim` (0 <= dim < x.ndim), b (x.shape[dim],)."""
    code = _act_code("bias_act", act)
    _bias_checks("bias_act", x, b, dim)
    xp = get_array_module(x)
    x, b = xp.ascontiguousarray(x), xp.ascontiguousarray(b)
    module.check_size("bias_act", x.shape)
    y = module.empty(xp, x.shape, x.dtype)
    if x.size == 0:
        return y
    N, C, I = launch.split_axis(x.shape, dim)  # noqa: E741
    R, L, col = (N, C, 1) if I == 1 else (N * C, I, 0)
    V = 16 // x.itemsize  # the kernel moves 16-byte packs when L % V == 0 (and aligned)
    cols = L // V if L % V == 0 else L
    bx, by = _rows_block(cols)
    _k("bias_act_fwd_kernel", x.dtype)(_rows_grid(R, cols, bx, by, x), (bx, by),
                                       (x, b, y, R, L, C, col, code, slope))
    return y


NC_ROWS = 8  # blockDim.y of bias_act_bwd_nc_kernel


def bias_act_bwd(x, b, gy, act="relu", dim=1, slope=0.0):
    """-> gx = gy * act'(x + b[c]) and gb[c] = sum of gx over every axis but `dim`."""
    code = _act_code("bias_act", act)
    _bias_checks("bias_act backward", x, b, dim)
    if tuple(gy.shape) != tuple(x.shape):
        raise ValueError(f"bias_act backward: grad shape {tuple(gy.shape)} does not match the "
                         f"input shape {tuple(x.shape)}")
    xp = get_array_module(x)
    x, b = xp.ascontiguousarray(x), xp.ascontiguousarray(b)
    gy = xp.ascontiguousarray(gy.astype(x.dtype, copy=False))
    module.check_size("bias_act", x.shape)
    gx = module.empty(xp, x.shape, x.dtype)
    N, C, I = launch.split_axis(x.shape, dim)  # noqa: E741
    if x.size == 0:
        return gx, xp.zeros(C, x.dtype)
    cap = _max_blocks(x)
    if I == 1:  # (N, C): threads over channels, rows over chunks
        gcx = min((C + 31) // 32, cap)
        chunks = max(1, min((N + NC_ROWS - 1) // NC_ROWS, max(1, cap // gcx), MAX_GRID_Y))
        part = module.empty(xp, (chunks, C), xp.float64)
        _k("bias_act_bwd_nc_kernel", x.dtype)((gcx, chunks), (32, NC_ROWS),
                                              (x, b, gy, gx, part, N, C, code, slope))
    else:       # (N, C, I): a block per (channel, chunk of the N*I elements)
        gcx = min(C, 1 << 30)
        chunks = max(1, min((N * I + BLOCK - 1) // BLOCK, max(1, cap // C), MAX_GRID_Y))
        part = module.empty(xp, (chunks, C), xp.float64)
        _k("bias_act_bwd_kernel", x.dtype)((gcx, chunks), (BLOCK,),
                                           (x, b, gy, gx, part, N, C, I, code, slope))
    gb = part.sum(axis=0).astype(x.dtype)
    return gx, gb


# --- dropout -----------------------------------------------------------------------------------

def _split64(v):
    v = int(v) & 0xFFFFFFFFFFFFFFFF
    return v & 0xFFFFFFFF, v >> 32


def dropout(x, seed, offset, p, ka, kb=0.0, da=0.0, db=0.0, rows=None):
    """y = keep ? x * ka + kb : x * da + db; keep drawn per element, or per row of
    x.reshape(rows, -1) (feature dropout) when `rows` is given. seed, offset: Python ints
    (the Philox key and the counter's high words); the same pair gives the same mask."""
    xp, x = launch.float_input("dropout", x)
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"dropout: dropout probability has to be between 0 and 1, but got {p}")
    y = module.empty(xp, x.shape, x.dtype)
    n = x.size
    if n == 0:
        return y
    s0, s1 = _split64(seed)
    o0, o1 = _split64(offset)
    consts = (float(p), ka, kb, da, db)
    if rows is None:
        groups = (n + 3) // 4
        _k("dropout_kernel", x.dtype)((_blocks(groups, x),), (BLOCK,),
                                      (x, y, n, s0, s1, o0, o1, *consts))
        return y
    R = int(rows)
    if R <= 0 or n % R:
        raise ValueError(f"dropout: {n} elements do not split into {R} rows")
    L = n // R
    bx, by = _rows_block(L)
    _k("feature_dropout_kernel", x.dtype)(_rows_grid(R, L, bx, by, x), (bx, by),
                                          (x, y, R, L, s0, s1, o0, o1, *consts))
    return y
