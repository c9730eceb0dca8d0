// common.cuh -- helpers shared by minicnn's kernel files (inlined by the loader).
#pragma once

#ifndef DYNAMIC_SHARED
// Dynamic shared memory of any element type (one raw buffer, so templates don't clash).
#define DYNAMIC_SHARED(T, name)                                       \
    extern __shared__ __align__(16) unsigned char name##_raw_[];      \
    T* name = reinterpret_cast<T*>(name##_raw_)
#endif

// A grid-stride loop over [0, n).
// n <= INT_MAX; the step never overflows: within one stride of the end it jumps to n (a plain
// `i += stride` wraps negative for n near 2**31 and writes out of bounds).
#define GRID_LOOP(i, n)                                                                  \
    for (int i = blockIdx.x * blockDim.x + threadIdx.x, i##_stride_ = blockDim.x * gridDim.x; \
         i < (n); i = (n) - i > i##_stride_ ? i + i##_stride_ : (n))

// n / d for 0 <= n < 2**31 and a runtime divisor 1 <= d < 2**31, without the ~20-instruction
// integer division: (n * mul) >> shift, one 32x32->64-bit multiply and a shift, with
// shift = 31 + ceil(log2 d) and mul = ceil(2**shift / d) < 2**32 from the launch layer
// (kernels/cuda/launch.py `fastdiv`, which proves it exact; Granlund & Montgomery, PLDI'94).
__device__ __forceinline__ int fastdiv(int n, unsigned int mul, unsigned int shift) {
    return static_cast<int>((static_cast<unsigned long long>(static_cast<unsigned int>(n)) * mul)
                            >> shift);
}

// i = (p * A + a) * B + b -> (p, a, b): the plane and position of a flat (planes, A, B) index.
__device__ __forceinline__ void unravel(int i, int A, int B, int& p, int& a, int& b) {
    b = i % B;
    a = (i / B) % A;
    p = i / (B * A);
}

// [lo, hi): the taps t < KT of a window whose tap t reads position base + t*D, with
// 0 <= base + t*D < n (lo == hi when there are none). D == 1 skips the divisions.
__device__ __forceinline__ void tap_range(int base, int n, int D, int KT, int& lo, int& hi) {
    lo = base >= 0 ? 0 : (D == 1 ? -base : (-base + D - 1) / D);
    hi = base >= n ? 0 : min(KT, D == 1 ? n - base : (n - base + D - 1) / D);
    if (lo > hi) lo = hi;
}

// -inf of T (NVRTC has no <limits>).
template <typename T>
__device__ __forceinline__ T neg_inf();
template <>
__device__ __forceinline__ float neg_inf<float>() { return __int_as_float(-8388608); }  // 0xff800000
template <>
__device__ __forceinline__ double neg_inf<double>() {
    return __longlong_as_double(static_cast<long long>(0xfff0000000000000ull));
}

// The accurate exp of T's own precision (expf for float), for template kernels.
__device__ __forceinline__ float exp_t(float v) { return expf(v); }
__device__ __forceinline__ double exp_t(double v) { return exp(v); }

// IEEE round-to-nearest arithmetic that nvcc never contracts into an FMA, where results must be
// bit-exact with the NumPy references (optim.cu, quant.cu). The CPU emulator uses the plain
// operators (g++ does not contract them without FMA hardware). One overload per type, as on
// the GPU, so calls resolve the same way under both.
#ifdef __CUDACC__
__device__ __forceinline__ float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double add_rn(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ float sub_rn(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ double sub_rn(double a, double b) { return __dsub_rn(a, b); }
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float div_rn(float a, float b) { return __fdiv_rn(a, b); }
__device__ __forceinline__ double div_rn(double a, double b) { return __ddiv_rn(a, b); }
__device__ __forceinline__ float sqrt_rn(float a) { return __fsqrt_rn(a); }
__device__ __forceinline__ double sqrt_rn(double a) { return __dsqrt_rn(a); }
#else
inline float add_rn(float a, float b) { return a + b; }
inline double add_rn(double a, double b) { return a + b; }
inline float sub_rn(float a, float b) { return a - b; }
inline double sub_rn(double a, double b) { return a - b; }
inline float mul_rn(float a, float b) { return a * b; }
inline double mul_rn(double a, double b) { return a * b; }
inline float div_rn(float a, float b) { return a / b; }
inline double div_rn(double a, double b) { return a / b; }
inline float sqrt_rn(float a) { return sqrtf(a); }
inline double sqrt_rn(double a) { return sqrt(a); }
#endif

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

template <typename T>
__device__ __forceinline__ T warp_max(T v) {
    for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over a 1-D block (blockDim.x a multiple of 32, at most 1024); every thread gets the total.
// `scratch` holds 32 values of shared memory; the call ends with a barrier so it can be reused.
template <typename T>
__device__ __forceinline__ T block_sum(T v, T* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_sum(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    const int warps = blockDim.x >> 5;
    T t = lane < warps ? scratch[lane] : T(0);
    t = warp_sum(t);
    __syncthreads();
    return t;
}

// Whether a pointer is aligned to `bytes` (a power of two): vector loads need it.
__device__ __forceinline__ bool aligned_to(const void* p, unsigned long long bytes) {
    return (reinterpret_cast<unsigned long long>(p) & (bytes - 1ull)) == 0ull;
}

// Philox4x32-10 (Salmon et al., SC'11): counter-based, so thread i draws its own numbers from
// (seed, counter) with no state in memory. The NumPy reference is kernels/dropout/reference.py.
struct Philox4 {
    unsigned int x, y, z, w;
};

__device__ __forceinline__ Philox4 philox4x32_10(Philox4 c, unsigned int k0, unsigned int k1) {
    for (int r = 0; r < 10; ++r) {
        const unsigned int hi0 = __umulhi(0xD2511F53u, c.x), lo0 = 0xD2511F53u * c.x;
        const unsigned int hi1 = __umulhi(0xCD9E8D57u, c.z), lo1 = 0xCD9E8D57u * c.z;
        c = Philox4{hi1 ^ c.y ^ k0, lo1, hi0 ^ c.w ^ k1, lo0};
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return c;
}

// A uniform float in [0, 1) from 24 random bits.
__device__ __forceinline__ float uniform01(unsigned int bits) {
    return (bits >> 8) * (1.0f / 16777216.0f);
}
