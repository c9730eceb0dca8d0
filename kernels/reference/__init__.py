"""Plain-NumPy reference implementations of every kernel, small and obviously right.

Tests compare each Numba / CUDA kernel with its reference here on random inputs. One module per
kernel family (conv, pool, norm, ...).
"""
