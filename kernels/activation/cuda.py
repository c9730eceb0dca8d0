"""The activation family on the GPU: the launch layer of activation.cu.

`act_fwd` / `act_bwd` run one activation (by name) over a flat array, moving 16-byte packs where
the pointers are aligned; `bias_act_fwd` / `bias_act_bwd` fuse y = act(x + b[c]) (c the index
along `dim`) and its gradients (gx, and gb as a per-channel float64 reduction without atomics).
The activation codes are the ACT_* defines of activation.cu (the family's `codes()`). CuPy
arrays run on the GPU, NumPy arrays under the CPU emulator (the tests). Every kernel takes
float16 and bfloat16 arrays too (loaded and stored as such, computed in float32: half.cuh).
"""
from minicnn.devices import get_array_module

from ..cuda import launch, module
from . import codes

FAMILY = "activation"
BLOCK = 256
WAVES = 16              # the loops are grid-stride: at most this many blocks per SM in all
MAX_BLOCKS = None       # a fixed cap on the blocks instead (the tests' small grids)
MAX_GRID_Y = launch.MAX_GRID_Y


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
    code = codes().get(act)
    if code is None:
        raise ValueError(f"{op}: unknown activation {act!r}; expected one of {sorted(codes())}")
    return code


# --- activations -------------------------------------------------------------------------------

def act_fwd(x, act, slope=0.0):
    """y = act(x) for an activation name of codes()."""
    code = _act_code("act_fwd", act)
    xp, x = launch.float_input(act, x, half=True)
    y = module.empty(xp, x.shape, x.dtype)
    if x.size:
        _k("act_fwd_kernel", x.dtype)((_pack_blocks(x),), (BLOCK,), (x, y, x.size, code, slope))
    return y


def act_bwd(x, gy, act, slope=0.0):
    """gx = gy * act'(x) (relu: x may be the forward's output y)."""
    code = _act_code("act_bwd", act)
    xp, x = launch.float_input(act, x, half=True)
    if tuple(gy.shape) != tuple(x.shape):
        raise ValueError(f"{act} backward: grad shape {tuple(gy.shape)} does not match the "
                         f"input shape {tuple(x.shape)}")
    gy = xp.ascontiguousarray(gy.astype(x.dtype, copy=False)).reshape(x.shape)
    gx = module.empty(xp, x.shape, x.dtype)
    if x.size:
        _k("act_bwd_kernel", x.dtype)((_pack_blocks(x),), (BLOCK,),
                                      (x, gy, gx, x.size, code, slope))
    return gx


# --- fused bias + activation -------------------------------------------------------------------

def _bias_checks(op, x, b, dim):
    launch.check_float(op, x, b, half=True)
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
    bx, by = launch.rows_block(cols, BLOCK)
    _k("bias_act_fwd_kernel", x.dtype)(launch.rows_grid(R, cols, bx, by, _max_blocks(x)),
                                       (bx, by),
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
