// dropout.cu -- inverted, alpha and feature dropout with Philox masks (the dropout kernel family).
//
// Nothing is stored between forward and backward: the keep decision of each element (or row) is
// drawn again from (seed, offset, index).
//  * dropout: flat; thread step g draws Philox4x32-10(counter (g, 0, offset_lo, offset_hi),
//    key (seed_lo, seed_hi)) once and uses its 4 words for elements 4g..4g+3 (u = 24 random
//    bits / 2^24; keep iff u >= p). y = keep ? x * ka + kb : x * da + db, which covers inverted
//    dropout (ka = 1/(1-p)), alpha dropout (affine both ways) and, with the same seed/offset
//    and (a, 0, 0, 0), the backward: the mask is recomputed, never stored.
//  * feature_dropout: rows of length L (one draw per row r, word r & 3 of group r >> 2, i.e.
//    the draw element-wise dropout would make for index r); 2-D grid: threads x over columns
//    (coalesced), y over rows.
// Expected bound: memory, 8 bytes per float32 element. Philox is 10 rounds of 2 mul.hi + xors
// per 4 elements (dropout) or per row and thread (feature).
// float16 / bfloat16 (half.cuh): both kernels have half instances, which widen x, compute the
// affine map in float (the constants are floats) and round once; a Quad is then 8 bytes.
#include "../cuda/common.cuh"
#include "../cuda/half.cuh"

// --- dropout (Philox: nothing stored between forward and backward) -----------------------------
template <typename T>
struct alignas(4 * sizeof(T)) Quad {
    T v[4];
};

__device__ __forceinline__ Philox4 dropout_draw(unsigned int group, unsigned int seed_lo,
                                                unsigned int seed_hi, unsigned int offset_lo,
                                                unsigned int offset_hi) {
    return philox4x32_10(Philox4{group, 0u, offset_lo, offset_hi}, seed_lo, seed_hi);
}

// y = keep ? x * ka + kb : x * da + db, keep[i] = uniform01(word i & 3 of draw i >> 2) >= p.
template <typename T> HALF_STORAGE
__global__ void dropout_kernel(const T* __restrict__ x, T* __restrict__ y, int n,
                               unsigned int seed_lo, unsigned int seed_hi,
                               unsigned int offset_lo, unsigned int offset_hi, float p,
                               acc_t<T> ka, acc_t<T> kb, acc_t<T> da, acc_t<T> db) {
    const int groups = (n >> 2) + ((n & 3) != 0);
    const bool vec = aligned_to(x, 4 * sizeof(T)) && aligned_to(y, 4 * sizeof(T));
    GRID_LOOP(g, groups) {
        const Philox4 r = dropout_draw(static_cast<unsigned int>(g), seed_lo, seed_hi,
                                       offset_lo, offset_hi);
        const unsigned int bits[4] = {r.x, r.y, r.z, r.w};
        const int i0 = g * 4;
        if (vec && i0 <= n - 4) {  // not i0 + 4 <= n: that overflows for n > INT_MAX - 4
            Quad<T> a = reinterpret_cast<const Quad<T>*>(x)[g];
#pragma unroll
            for (int k = 0; k < 4; ++k) {
                const bool keep = uniform01(bits[k]) >= p;
                a.v[k] = narrow<T>(widen(a.v[k]) * (keep ? ka : da) + (keep ? kb : db));
            }
            reinterpret_cast<Quad<T>*>(y)[g] = a;
        } else {
#pragma unroll
            for (int k = 0; k < 4; ++k) {
                if (i0 + k < n) {
                    const bool keep = uniform01(bits[k]) >= p;
                    y[i0 + k] = narrow<T>(widen(x[i0 + k]) * (keep ? ka : da) +
                                          (keep ? kb : db));
                }
            }
        }
    }
}

// Feature (channel) dropout: x (R, L), one keep draw per row r (the draw of index r above).
template <typename T> HALF_STORAGE
__global__ void feature_dropout_kernel(const T* __restrict__ x, T* __restrict__ y, int R, int L,
                                       unsigned int seed_lo, unsigned int seed_hi,
                                       unsigned int offset_lo, unsigned int offset_hi, float p,
                                       acc_t<T> ka, acc_t<T> kb, acc_t<T> da, acc_t<T> db) {
    const int c0 = blockIdx.x * blockDim.x + threadIdx.x, cs = blockDim.x * gridDim.x;
    for (int r = blockIdx.y * blockDim.y + threadIdx.y; r < R; r += blockDim.y * gridDim.y) {
        if (c0 >= L) continue;  // no barrier in this kernel
        const Philox4 q = dropout_draw(static_cast<unsigned int>(r) >> 2, seed_lo, seed_hi,
                                       offset_lo, offset_hi);
        const int w = r & 3;
        const unsigned int bits = w == 0 ? q.x : (w == 1 ? q.y : (w == 2 ? q.z : q.w));
        const bool keep = uniform01(bits) >= p;
        const acc_t<T> a = keep ? ka : da, s = keep ? kb : db;
        const T* xr = x + static_cast<long long>(r) * L;
        T* yr = y + static_cast<long long>(r) * L;
        for (int col = c0; col < L; col += cs) yr[col] = narrow<T>(widen(xr[col]) * a + s);
    }
}
