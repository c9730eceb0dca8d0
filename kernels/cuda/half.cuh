// half.cuh -- float16 / bfloat16 storage for the template kernels (inlined by the loader).
//
// `template <typename T> HALF_STORAGE __global__ void name(...)` declares a kernel with four
// instances: float, double, __half and __nv_bfloat16 (the loader reads the marker). Its code
// reads and writes T and computes in acc_t<T> (float, or double for double): widen(v) loads,
// narrow<T>(a) stores, rounding to nearest even once per result, as NumPy's astype does. A
// scalar parameter declared `acc_t<T>` is a float for the half instances.
//
// The CUDA headers' implicit conversions and operators on the half types are switched off, so
// arithmetic on a half T does not compile -- under nvcc, NVRTC and the emulator alike (whose
// stand-in types, emu/cuda_emu.h, have none either): a kernel computes in acc_t<T> or fails to
// build, it never silently rounds an intermediate to half.
#pragma once

#ifdef __CUDACC__   // nvcc and NVRTC; the emulator's g++ has the stand-ins of emu/cuda_emu.h
#define __CUDA_NO_HALF_OPERATORS__
#define __CUDA_NO_HALF_CONVERSIONS__
#define __CUDA_NO_HALF2_OPERATORS__
#define __CUDA_NO_BFLOAT16_OPERATORS__
#define __CUDA_NO_BFLOAT16_CONVERSIONS__
#define __CUDA_NO_BFLOAT162_OPERATORS__
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#endif

#define HALF_STORAGE   // a marker for the loader (kernels/cuda/source.py); no code

template <typename T> struct acc_type { typedef float type; };
template <> struct acc_type<double> { typedef double type; };
template <typename T> using acc_t = typename acc_type<T>::type;

__device__ __forceinline__ float widen(float v) { return v; }
__device__ __forceinline__ double widen(double v) { return v; }
__device__ __forceinline__ float widen(__half v) { return __half2float(v); }
__device__ __forceinline__ float widen(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __device__ __forceinline__ T narrow(acc_t<T> a);
template <> __device__ __forceinline__ float narrow<float>(float a) { return a; }
template <> __device__ __forceinline__ double narrow<double>(double a) { return a; }
template <> __device__ __forceinline__ __half narrow<__half>(float a) {
    return __float2half_rn(a);
}
template <> __device__ __forceinline__ __nv_bfloat16 narrow<__nv_bfloat16>(float a) {
    return __float2bfloat16_rn(a);
}

// For kernels that compute in double (the norms): a T value as double, and a double result
// stored as T through acc_t<T> -- for a half T the float32 kernel's rounding followed by the
// widened path's rounding to half, so both paths give the same values.
template <typename T> __device__ __forceinline__ double to_f64(T v) {
    return static_cast<double>(widen(v));
}
template <typename T> __device__ __forceinline__ T from_f64(double v) {
    return narrow<T>(static_cast<acc_t<T>>(v));
}
