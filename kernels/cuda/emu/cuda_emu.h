// cuda_emu.h -- just enough of CUDA C++ to run minicnn's kernels on the CPU, for the tests.
//
// A kernel file (kernels/cuda/*.cu) is compiled by g++ with this header forced in front of it.
// The runtime (runtime.cpp) runs one block at a time; each CUDA thread of the block is a fiber
// (ucontext) on the one OS thread, switched cooperatively at __syncthreads() and at warp
// primitives, in a random order each time (blocks too), so races of a missing barrier show. So threadIdx/blockIdx can be plain globals, __shared__ can be `static` (one block
// lives at a time), and atomics are plain read-modify-writes. A barrier that not every live
// thread of the block (or of the warp) reaches is reported as an error, as it is undefined on
// the GPU. Only full-warp masks (0xffffffff) are supported.
#pragma once
#include <math.h>
#include <stdint.h>
#include <stddef.h>
#include <string.h>

struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1)
        : x(x_), y(y_), z(z_) {}
};
typedef dim3 uint3;

namespace emu {
extern dim3 thread_idx, block_idx, block_dim, grid_dim;
extern unsigned char* dynamic_shared;
void syncthreads();
void syncwarp();
// Every lane writes `bits` to the warp's exchange slot; returns the bits written by `src_lane`.
unsigned long long exchange(unsigned long long bits, int src_lane);
void check_mask(unsigned int mask, const char* what);
}  // namespace emu

#define threadIdx (::emu::thread_idx)
#define blockIdx (::emu::block_idx)
#define blockDim (::emu::block_dim)
#define gridDim (::emu::grid_dim)
#define warpSize 32

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __shared__ static
// `__shared__ alignas(16) T a[...]` puts a standard attribute after `static`, which g++ refuses:
// write CUDA's own `__shared__ __align__(16) T a[...]`.
#define __align__(n) __attribute__((aligned(n)))
// Dynamic shared memory: `extern __shared__ T name[];` cannot be emulated with a macro on
// `__shared__`, so kernels write DYNAMIC_SHARED(T, name) (defined for nvcc in common.cuh).
#define DYNAMIC_SHARED(T, name) T* name = reinterpret_cast<T*>(::emu::dynamic_shared)

inline void __syncthreads() { emu::syncthreads(); }
inline void __syncwarp(unsigned int mask = 0xffffffffu) {
    emu::check_mask(mask, "__syncwarp");
    emu::syncwarp();
}
inline void __threadfence() {}
inline void __threadfence_block() {}

// --- warp primitives ------------------------------------------------------------------------
template <typename T>
inline unsigned long long emu_bits(T v) {
    static_assert(sizeof(T) <= 8, "shuffle of a type wider than 8 bytes");
    unsigned long long b = 0;
    memcpy(&b, &v, sizeof(T));
    return b;
}
template <typename T>
inline T emu_from_bits(unsigned long long b) {
    T v;
    memcpy(&v, &b, sizeof(T));
    return v;
}
inline int emu_lane() { return static_cast<int>(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)) % 32; }

template <typename T>
inline T __shfl_sync(unsigned int mask, T v, int src, int width = 32) {
    emu::check_mask(mask, "__shfl_sync");
    const int lane = emu_lane();
    const int s = (lane / width) * width + (src % width + width) % width;
    return emu_from_bits<T>(emu::exchange(emu_bits(v), s));
}
template <typename T>
inline T __shfl_xor_sync(unsigned int mask, T v, int lane_mask, int width = 32) {
    emu::check_mask(mask, "__shfl_xor_sync");
    const int lane = emu_lane();
    int s = lane ^ lane_mask;
    if (s / width != lane / width) s = lane;
    return emu_from_bits<T>(emu::exchange(emu_bits(v), s));
}
template <typename T>
inline T __shfl_down_sync(unsigned int mask, T v, unsigned int delta, int width = 32) {
    emu::check_mask(mask, "__shfl_down_sync");
    const int lane = emu_lane();
    int s = lane + static_cast<int>(delta);
    if (s / width != lane / width) s = lane;
    return emu_from_bits<T>(emu::exchange(emu_bits(v), s));
}
template <typename T>
inline T __shfl_up_sync(unsigned int mask, T v, unsigned int delta, int width = 32) {
    emu::check_mask(mask, "__shfl_up_sync");
    const int lane = emu_lane();
    int s = lane - static_cast<int>(delta);
    if (s < 0 || s / width != lane / width) s = lane;
    return emu_from_bits<T>(emu::exchange(emu_bits(v), s));
}
inline unsigned int __ballot_sync(unsigned int mask, int pred) {
    emu::check_mask(mask, "__ballot_sync");
    unsigned int r = 0;
    for (int l = 0; l < 32; ++l)  // 32 exchanges: slow, and only the tests run here
        r |= (emu::exchange(pred ? 1u : 0u, l) & 1u) << l;
    return r;
}
inline int __any_sync(unsigned int mask, int pred) { return __ballot_sync(mask, pred) != 0; }
inline int __all_sync(unsigned int mask, int pred) { return __ballot_sync(mask, pred) == 0xffffffffu; }

// --- atomics: one OS thread runs every fiber, and fibers switch only at barriers ---------------
template <typename T>
inline T atomicAdd(T* p, T v) { T old = *p; *p = old + v; return old; }
template <typename T>
inline T atomicMax(T* p, T v) { T old = *p; *p = old > v ? old : v; return old; }
template <typename T>
inline T atomicMin(T* p, T v) { T old = *p; *p = old < v ? old : v; return old; }
template <typename T>
inline T atomicExch(T* p, T v) { T old = *p; *p = v; return old; }
template <typename T>
inline T atomicCAS(T* p, T cmp, T v) { T old = *p; if (old == cmp) *p = v; return old; }

// --- intrinsics and math ---------------------------------------------------------------------
template <typename T> inline T __ldg(const T* p) { return *p; }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __saturatef(float x) { return x < 0.f ? 0.f : (x > 1.f ? 1.f : x); }
inline int __float_as_int(float x) { int i; memcpy(&i, &x, 4); return i; }
inline float __int_as_float(int i) { float x; memcpy(&x, &i, 4); return x; }
inline unsigned int __float_as_uint(float x) { unsigned int i; memcpy(&i, &x, 4); return i; }
inline float __uint_as_float(unsigned int i) { float x; memcpy(&x, &i, 4); return x; }
inline long long __double_as_longlong(double x) { long long i; memcpy(&i, &x, 8); return i; }
inline double __longlong_as_double(long long i) { double x; memcpy(&x, &i, 8); return x; }
inline unsigned int __umulhi(unsigned int a, unsigned int b) {
    return static_cast<unsigned int>((static_cast<unsigned long long>(a) * b) >> 32);
}
inline int __popc(unsigned int x) { return __builtin_popcount(x); }
inline int __float2int_rn(float x) { return static_cast<int>(nearbyintf(x)); }
inline int __dp4a(int a, int b, int c) {  // four int8 products summed into c
    for (int k = 0; k < 4; ++k)
        c += static_cast<int>(static_cast<signed char>(a >> (8 * k))) *
             static_cast<int>(static_cast<signed char>(b >> (8 * k)));
    return c;
}
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned int min(unsigned int a, unsigned int b) { return a < b ? a : b; }
inline unsigned int max(unsigned int a, unsigned int b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }

// --- half-precision storage (kernels/cuda/half.cuh): the types and their conversions only ----
// g++ has _Float16 (IEEE binary16, conversions rounded to nearest even) but no bfloat16: the
// bfloat16 rounding is written out, bit-equal to ml_dtypes' (a NaN is its sign and 0x7fc0).
struct __half {
    unsigned short bits;
};
struct __nv_bfloat16 {
    unsigned short bits;
};
inline float __half2float(__half h) {
    _Float16 f;
    memcpy(&f, &h.bits, 2);
    return static_cast<float>(f);
}
inline __half __float2half_rn(float v) {
    const _Float16 f = static_cast<_Float16>(v);
    __half h;
    memcpy(&h.bits, &f, 2);
    return h;
}
inline float __bfloat162float(__nv_bfloat16 h) {
    return __uint_as_float(static_cast<unsigned int>(h.bits) << 16);
}
inline __nv_bfloat16 __float2bfloat16_rn(float v) {
    unsigned int u = __float_as_uint(v);
    if ((u & 0x7fffffffu) > 0x7f800000u)  // NaN: the canonical quiet one, with its sign
        return __nv_bfloat16{static_cast<unsigned short>(((u >> 16) & 0x8000u) | 0x7fc0u)};
    u += 0x7fffu + ((u >> 16) & 1u);      // to nearest, ties to even (a carry may reach inf)
    return __nv_bfloat16{static_cast<unsigned short>(u >> 16)};
}
