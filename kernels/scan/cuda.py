"""The scan family on the GPU: launch functions of scan.cu, with the signatures of
kernels/scan/cpu.py. CuPy arrays run on the GPU, NumPy arrays under the CPU emulator. No
synchronisation with the host."""
import numpy

from ..cuda import module
from ..cuda.launch import blocks, emulator_cap, float_input
from .. import split_axis

BLOCK = 256
WAVES = 8


def _launch(name, x, args, n_lines):
    if n_lines:
        grid = blocks(n_lines, BLOCK, WAVES, like=x, cap=emulator_cap(x))
        module.kernel("scan", name, x.dtype)(grid, BLOCK, args)


def scan(x, axis, op):
    xp, x = float_input("scan", x, half=True)
    O, L, I = split_axis(x.shape, axis) if x.ndim else (1, 1, 1)
    y = module.empty(xp, x.shape, x.dtype)
    if L:
        _launch("scan_kernel", x, (x, y, O * I, L, I, op), O * I)
    return y


def scan_arg(x, axis, op):
    xp, x = float_input("scan_arg", x, half=True)
    O, L, I = split_axis(x.shape, axis) if x.ndim else (1, 1, 1)
    y = module.empty(xp, x.shape, x.dtype)
    idx = module.empty(xp, x.shape, numpy.int64)
    if L:
        _launch("scan_arg_kernel", x, (x, y, idx, O * I, L, I, op), O * I)
    return y, idx
