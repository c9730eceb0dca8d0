"""Hand-written kernels (installed as minicnn.kernels): Numba on the CPU, CUDA C on the GPU.

Each kernel is called as `minicnn.kernels.<name>(...)` and dispatches on the array type; each has
a plain NumPy reference in `reference.py` that the tests compare against.
"""
