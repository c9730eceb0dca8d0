"""Kernel tests, one file per kernel family: each kernel against its NumPy reference on random
inputs (odd sizes, non-contiguous views, float32 and float64), on every device: cpu (the Numba
kernels), emu (the CUDA kernels under the CPU emulator) and cuda (a GPU; skipped without one)."""
