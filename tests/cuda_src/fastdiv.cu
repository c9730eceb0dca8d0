// common.cuh's fastdiv on an array of numerators (tests/kernels/test_cuda_launch.py).
#include "../../kernels/cuda/common.cuh"

extern "C" __global__ void fastdiv_kernel(const int* __restrict__ n, int* __restrict__ q,
                                          int count, unsigned int mul, unsigned int shift) {
    GRID_LOOP(i, count) q[i] = fastdiv(n[i], mul, shift);
}
