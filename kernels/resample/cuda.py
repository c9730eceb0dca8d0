"""The resampling family on the GPU: the launch function of resample.cu, with the signature of
kernels/resample/cpu.py (the Taps as device arrays). CuPy arrays run on the GPU, NumPy arrays
under the CPU emulator. No synchronisation with the host. float16 / bfloat16 x take float32
weights (half.cuh's acc_t)."""
from ..cuda import module
from ..cuda.launch import blocks, emulator_cap, float_input

BLOCK = 256
WAVES = 8


def resample2d(x, rptr, ridx, rw, cptr, cidx, cw):
    xp, x = float_input("resample2d", x, 3, half=True)
    B, H, W = x.shape
    OH, OW = len(rptr) - 1, len(cptr) - 1
    module.check_size("resample2d", (B, OH, OW))
    y = module.empty(xp, (B, OH, OW), x.dtype)
    if y.size:
        grid = blocks(y.size, BLOCK, WAVES, like=x, cap=emulator_cap(x))
        module.kernel("resample", "resample2d_kernel", x.dtype)(
            grid, BLOCK, (x, rptr, ridx, rw, cptr, cidx, cw, y, y.size, H, W, OH, OW))
    return y
