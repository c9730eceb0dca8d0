// Kernels that exercise the CPU emulator itself (tests/kernels/test_cuda_emulator.py;
// tests/test_cuda_dropout.py uses philox_kernel).
#include "../../kernels/cuda/common.cuh"

extern "C" __global__ void block_sum_kernel(const float* __restrict__ x, float* __restrict__ out,
                                            int n) {
    __shared__ float scratch[32];
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const float total = block_sum(i < n ? x[i] : 0.0f, scratch);
    if (threadIdx.x == 0) out[blockIdx.x] = total;
}

// Reverses each block's slice through dynamic shared memory (needs the barrier to be right).
extern "C" __global__ void reverse_block_kernel(const int* __restrict__ x, int* __restrict__ y) {
    DYNAMIC_SHARED(int, buf);
    const int t = threadIdx.x, base = blockIdx.x * blockDim.x;
    buf[t] = x[base + t];
    __syncthreads();
    y[base + t] = buf[blockDim.x - 1 - t];
}

extern "C" __global__ void shuffle_kernel(const int* __restrict__ x, int* __restrict__ down,
                                          int* __restrict__ up, int* __restrict__ xr,
                                          int* __restrict__ bcast, unsigned int* __restrict__ ballot) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const int v = x[i];
    down[i] = __shfl_down_sync(0xffffffffu, v, 3);
    up[i] = __shfl_up_sync(0xffffffffu, v, 5);
    xr[i] = __shfl_xor_sync(0xffffffffu, v, 6);
    bcast[i] = __shfl_sync(0xffffffffu, v, 7);
    ballot[i] = __ballot_sync(0xffffffffu, v > 0);
}

extern "C" __global__ void histogram_kernel(const int* __restrict__ x, int* __restrict__ hist,
                                            int n) {
    GRID_LOOP(i, n) { atomicAdd(&hist[x[i]], 1); }
}

template <typename T>
__global__ void axpy_kernel(const T* __restrict__ x, T* __restrict__ y, T a, long long n) {
    GRID_LOOP(i, n) { y[i] += a * x[i]; }
}

extern "C" __global__ void early_exit_barrier_kernel(float* __restrict__ y) {
    if (threadIdx.x < 16) return;
    __syncthreads();
    y[threadIdx.x] = 1.0f;
}

extern "C" __global__ void out_of_bounds_kernel(float* __restrict__ y, int n) {
    GRID_LOOP(i, n + 1) { y[i] = 2.0f; }  // one element too many
}

extern "C" __global__ void philox_kernel(unsigned int* __restrict__ out,
                                         const unsigned int* __restrict__ ctr,
                                         unsigned int k0, unsigned int k1) {
    const Philox4 r = philox4x32_10(Philox4{ctr[0], ctr[1], ctr[2], ctr[3]}, k0, k1);
    out[0] = r.x; out[1] = r.y; out[2] = r.z; out[3] = r.w;
}

// Records the order the blocks ran in: order[k] = the k-th block to reach the counter.
extern "C" __global__ void block_order_kernel(int* __restrict__ order, int* __restrict__ counter) {
    if (threadIdx.x == 0) order[atomicAdd(counter, 1)] = blockIdx.x;
}

// A race: thread t reads what thread t+1 writes in the same phase (no __syncthreads between).
extern "C" __global__ void missing_barrier_kernel(const int* __restrict__ x, int* __restrict__ y) {
    __shared__ int s[64];
    const int t = threadIdx.x;
    s[t] = x[t];
    y[t] = s[(t + 1) % 64];
}

// Reads s[k] of a 32-element __shared__ tile (k = 40 in the test: past its end).
extern "C" __global__ void shared_overrun_kernel(const float* __restrict__ x, float* __restrict__ y,
                                                 int k) {
    __shared__ float s[32];
    s[threadIdx.x] = x[threadIdx.x];
    __syncthreads();
    if (threadIdx.x == 0) y[0] = s[k];
}
