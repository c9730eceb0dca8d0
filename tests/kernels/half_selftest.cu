// The half-precision conversions of kernels/cuda/half.cuh, for tests/kernels/test_half_kernels.py:
// y = narrow<T>(x) (float32 rounded to T, nearest even) and back = widen(y), element-wise.
#include "../../kernels/cuda/common.cuh"
#include "../../kernels/cuda/half.cuh"

template <typename T>
HALF_STORAGE __global__ void narrow_kernel(const float* __restrict__ x, T* __restrict__ y,
                                           float* __restrict__ back, int n) {
    GRID_LOOP(i, n) {
        y[i] = narrow<T>(x[i]);
        back[i] = static_cast<float>(widen(y[i]));
    }
}
