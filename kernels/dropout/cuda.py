"""The dropout family on the GPU: the launch layer of dropout.cu.

`dropout` applies y = keep ? x * ka + kb : x * da + db with the keep mask drawn by Philox4x32-10
from (seed, offset, element or row index) -- the backward calls it again with the same seed and
offset, so no mask is ever stored (kernels/dropout/reference.py is its NumPy twin). CuPy arrays
run on the GPU, NumPy arrays under the CPU emulator (the tests); float16 / bfloat16 arrays too
(computed in float32 with float32 constants, half.cuh).
"""
from ..cuda import launch, module

BLOCK = 256
WAVES = 16              # the loops are grid-stride: at most this many blocks per SM in all
MAX_BLOCKS = None       # a fixed cap on the blocks instead (the tests' small grids)


def _k(name, dtype):
    return module.kernel("dropout", name, dtype)


def _max_blocks(like):
    return MAX_BLOCKS or WAVES * launch.sm_count(like)


def _split64(v):
    """A Python int as (low 32 bits, high 32 bits) of its two's-complement 64-bit form."""
    v = int(v) & 0xFFFFFFFFFFFFFFFF
    return v & 0xFFFFFFFF, v >> 32


def dropout(x, seed, offset, p, ka, kb=0.0, da=0.0, db=0.0, rows=None):
    """y = keep ? x * ka + kb : x * da + db; keep drawn per element, or per row of
    x.reshape(rows, -1) (feature dropout) when `rows` is given. seed, offset: Python ints
    (the Philox key and the counter's high words); the same pair gives the same mask."""
    xp, x = launch.float_input("dropout", x, half=True)
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
        grid = launch.blocks(groups, BLOCK, like=x, cap=_max_blocks(x))
        _k("dropout_kernel", x.dtype)((grid,), (BLOCK,), (x, y, n, s0, s1, o0, o1, *consts))
        return y
    R = int(rows)
    if R <= 0 or n % R:
        raise ValueError(f"dropout: {n} elements do not split into {R} rows")
    L = n // R
    bx, by = launch.rows_block(L, BLOCK)
    _k("feature_dropout_kernel", x.dtype)(launch.rows_grid(R, L, bx, by, _max_blocks(x)),
                                          (bx, by), (x, y, R, L, s0, s1, o0, o1, *consts))
    return y
