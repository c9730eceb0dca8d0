// quant.cu -- int8 inference kernels: quantize, dequantize, the int8 GEMM, int8 im2col.
//
// Conventions (kernels/quant/__init__.py; results are bit-exact with kernels/quant/reference.py):
//   quantize:   q = clip(rint(float32(x) / scale) + zero_point, qmin, qmax) -> int8
//               (rintf rounds half to even, like np.rint; IEEE division __fdiv_rn)
//   dequantize: x = (float32(q) - zero_point) * scale -> float32
//   qgemm_nt:   out[m, n] = sum_k (a[m, k] - a_zp) * b[n, k], int8 x int8 -> int32
//               = sum_k a[m, k] b[n, k] - a_zp * sum_k b[n, k]: the first sum by __dp4a on
//               4-byte packed int8, the second (bzp[n]) by qgemm_bsum_kernel; both wrap modulo
//               2^32 like the reference's int64 result cast to int32.
//   im2col:     (N, C, H, W) int8 -> (N*OH*OW, C*KH*KW) int8, padding reads pad_value.
//
// Element-wise kernels: 1-D grid-stride loops, element i on thread i (coalesced), blocks of
// 256, grid min(ceil(n / 256), 8 * #SMs). Bound: memory; bytes per element: quantize 4 + 1
// (float32 in, int8 out), dequantize 1 + 4, im2col 1 written (+ cached reads of x).
//
// qgemm_nt_kernel: a block of 256 threads computes a 64 x 64 tile of out (blockIdx.x: rows of
// a, blockIdx.y: rows of b); thread (ty, tx) = (tid / 16, tid % 16) owns the 4 x 4 outputs at
// rows 4 ty .. 4 ty + 3 and columns 4 tx .. 4 tx + 3. K advances 64 bytes (16 packed words) at a
// time: both tiles are staged in shared memory k-word-major (As[kw][m], row stride 68 words to
// spread the banks while keeping 16-byte alignment), so each thread reads its 4 a-words and 4
// b-words of a k-word as two 16-byte loads and issues 16 dp4a. Loads: thread t fetches words
// (r, kw) = ((t + 256 i) / 16, (t + 256 i) % 16), i < 4 -- consecutive threads, consecutive
// words of a row; one 4-byte load when rows are 4-byte aligned (`words`: K % 4 == 0 and the
// bases aligned), else 4 byte loads packed (K not a multiple of 4). Out-of-range rows and k are
// zeros, which add nothing. Arithmetic per block and 64-byte k-step: 64*64*16 dp4a for 8 KiB
// of shared loads.
// Types: int8 is written `signed char` and int32 `int` (NVRTC has no <stdint.h>).
//
// float16 / bfloat16 (half.cuh): the two quantize kernels are HALF_STORAGE templates, reading
// half x and widening it exactly to float32 (so q is bit-equal to quantizing the float32 copy:
// no rounding is involved before the division). Half storage means nothing for the rest: their
// outputs are int8 / int32, and dequantize's is float32 by the family's convention (its inputs
// are int8). Scales and zero points are float32 (per-channel arrays widened on the host: C
// values, not the data).
#include "../cuda/common.cuh"
#include "../cuda/half.cuh"

__device__ __forceinline__ signed char quantize_(float x, float scale, float zp, float qmin,
                                            float qmax) {
    float q = add_rn(rintf(div_rn(x, scale)), zp);
    if (q < qmin) q = qmin;
    else if (q > qmax) q = qmax;
    return static_cast<signed char>(static_cast<int>(q));
}

template <typename T>
HALF_STORAGE __global__ void __launch_bounds__(256) quantize_per_tensor_kernel(
    const T* __restrict__ x, signed char* __restrict__ out, int n, float scale, float zp,
    float qmin, float qmax) {
    GRID_LOOP(i, n) {
        out[i] = quantize_(static_cast<float>(widen(x[i])), scale, zp, qmin, qmax);
    }
}

// x viewed as (P, C, Q): element i has channel (i / Q) % C.
template <typename T>
HALF_STORAGE __global__ void __launch_bounds__(256) quantize_per_channel_kernel(
    const T* __restrict__ x, const float* __restrict__ scale, const float* __restrict__ zp,
    signed char* __restrict__ out, int n, int C, int Q, float qmin, float qmax) {
    GRID_LOOP(i, n) {
        const int c = (i / Q) % C;
        out[i] = quantize_(static_cast<float>(widen(x[i])), scale[c], zp[c], qmin, qmax);
    }
}

extern "C" __global__ void __launch_bounds__(256) dequantize_kernel(
    const signed char* __restrict__ q, float* __restrict__ out, int n, float scale, float zp) {
    GRID_LOOP(i, n) { out[i] = mul_rn(sub_rn(static_cast<float>(q[i]), zp), scale); }
}

extern "C" __global__ void __launch_bounds__(256) dequantize_per_channel_kernel(
    const signed char* __restrict__ q, const float* __restrict__ scale,
    const float* __restrict__ zp, float* __restrict__ out, int n, int C, int Q) {
    GRID_LOOP(i, n) {
        const int c = (i / Q) % C;
        out[i] = mul_rn(sub_rn(static_cast<float>(q[i]), zp[c]), scale[c]);
    }
}

// bzp[n] = a_zp * sum_k b[n, k] (mod 2^32): one warp per row of b, lanes striding over k.
extern "C" __global__ void __launch_bounds__(256) qgemm_bsum_kernel(
    const signed char* __restrict__ b, int* __restrict__ bzp, int N, int K, int a_zp) {
    const int lane = threadIdx.x & 31;
    const int warps = (blockDim.x >> 5) * gridDim.x;
    for (int row = (blockIdx.x * blockDim.x + threadIdx.x) >> 5; row < N; row += warps) {
        int s = 0;
        for (int k = lane; k < K; k += 32) s += b[static_cast<long long>(row) * K + k];
        s = warp_sum(s);
        if (lane == 0)
            bzp[row] = static_cast<int>(static_cast<unsigned int>(a_zp) *
                                        static_cast<unsigned int>(s));
    }
}

#define QG_BM 64
#define QG_BN 64
#define QG_BKW 16  // packed 4-byte words of K per step (64 bytes)
#define QG_LD (QG_BM + 4)

struct alignas(16) Int4_ {
    int x, y, z, w;
};

// Word kw of row `row` of an (R, K) int8 matrix, k bytes from k0 + 4 kw; zeros outside.
__device__ __forceinline__ int load_word_(const signed char* __restrict__ m, int R, int K, int row,
                                          int k, bool words) {
    if (row >= R || k >= K) return 0;
    const signed char* p = m + static_cast<long long>(row) * K + k;
    if (words) return *reinterpret_cast<const int*>(p);
    unsigned int w = 0;
    for (int j = 0; j < 4; ++j)
        if (k + j < K) w |= static_cast<unsigned int>(static_cast<unsigned char>(p[j])) << (8 * j);
    return static_cast<int>(w);
}

extern "C" __global__ void __launch_bounds__(256) qgemm_nt_kernel(
    const signed char* __restrict__ a, const signed char* __restrict__ b,
    const int* __restrict__ bzp, int* __restrict__ out, int M, int N, int K, bool words,
    bool has_zp) {
    // 16-byte aligned through the element type (Int4_), used as int [QG_BKW][QG_LD]
    __shared__ Int4_ As_[QG_BKW * QG_LD / 4], Bs_[QG_BKW * QG_LD / 4];
    int(*As)[QG_LD] = reinterpret_cast<int(*)[QG_LD]>(As_);
    int(*Bs)[QG_LD] = reinterpret_cast<int(*)[QG_LD]>(Bs_);
    const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
    const int m0 = blockIdx.x * QG_BM, n0 = blockIdx.y * QG_BN;
    int acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = 0;

    for (int k0 = 0; k0 < K; k0 += 4 * QG_BKW) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int idx = tid + 256 * i, r = idx >> 4, kw = idx & 15;
            const int k = k0 + 4 * kw;
            As[kw][r] = load_word_(a, M, K, m0 + r, k, words);
            Bs[kw][r] = load_word_(b, N, K, n0 + r, k, words);
        }
        __syncthreads();
#pragma unroll 4
        for (int kw = 0; kw < QG_BKW; ++kw) {
            const Int4_ av = *reinterpret_cast<const Int4_*>(&As[kw][4 * ty]);
            const Int4_ bv = *reinterpret_cast<const Int4_*>(&Bs[kw][4 * tx]);
            const int ar[4] = {av.x, av.y, av.z, av.w};
            const int br[4] = {bv.x, bv.y, bv.z, bv.w};
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) acc[i][j] = __dp4a(ar[i], br[j], acc[i][j]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const int row = m0 + 4 * ty + i;
        if (row >= M) continue;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int col = n0 + 4 * tx + j;
            if (col < N) {
                const unsigned int z = has_zp ? static_cast<unsigned int>(bzp[col]) : 0u;
                out[static_cast<long long>(row) * N + col] =
                    static_cast<int>(static_cast<unsigned int>(acc[i][j]) - z);
            }
        }
    }
}

// out[r, col]: r = (n OH + oh) OW + ow, col = (c KH + i) KW + j; one element per thread.
extern "C" __global__ void __launch_bounds__(256) im2col_int8_kernel(
    const signed char* __restrict__ x, signed char* __restrict__ out, int total, int C, int H,
    int W, int KH, int KW, int SH, int SW, int PH, int PW, int DH, int DW, int OH, int OW,
    int pad_value) {
    const int CK = C * KH * KW;
    GRID_LOOP(e, total) {
        const int col = e % CK, r = e / CK;
        const int j = col % KW, i = (col / KW) % KH, c = col / (KW * KH);
        const int ow = r % OW, oh = (r / OW) % OH, n = r / (OW * OH);
        const int h = oh * SH - PH + i * DH, w = ow * SW - PW + j * DW;
        signed char v = static_cast<signed char>(pad_value);
        if (h >= 0 && h < H && w >= 0 && w < W)
            v = x[((static_cast<long long>(n) * C + c) * H + h) * W + w];
        out[e] = v;
    }
}
