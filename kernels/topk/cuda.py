"""The top-k family on the GPU: the launch function of topk.cu, with the signature of
kernels/topk/cpu.py. CuPy arrays run on the GPU, NumPy arrays under the CPU emulator. No
synchronisation with the host."""
import numpy

from ..cuda import module
from ..cuda.launch import blocks, emulator_cap, float_input

BLOCK = 128
WAVES = 8


def topk(x, k, largest):
    xp, x = float_input("topk", x, 2, half=True)
    R, L = x.shape
    module.check_size("topk", (R, k))
    values = module.empty(xp, (R, k), x.dtype)
    idx = module.empty(xp, (R, k), numpy.int64)
    if R and k:
        grid = blocks(R, BLOCK, WAVES, like=x, cap=emulator_cap(x))
        module.kernel("topk", "topk_kernel", x.dtype)(
            grid, BLOCK, (x, values, idx, R, L, k, int(largest)))
    return values, idx
