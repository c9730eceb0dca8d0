// conv.cu -- the general convolution on the GPU: im2col / col2im for cuBLAS GEMMs, and an
// implicit-GEMM forward with no column buffer in device memory.
//
// Layouts (as kernels/conv/reference.py and kernels/conv/cpu.py):
//   x   (N, C, H, W)                  image, C-contiguous
//   col (C, KH, KW, N, OH, OW)        col[c, kh, kw, n, oh, ow] = x[n, c, oh*SH - PH + kh*DH,
//                                                                  ow*SW - PW + kw*DW] (0 outside)
//   w   (K, C/G, KH, KW)              viewed per group g as a (Kg, Cg*KH*KW) row-major matrix
//   y   (N, K, OH, OW)
//
// im2col_fwd_kernel: one thread per column element (grid-stride loop over C*KH*KW*N*OH*OW);
//   consecutive threads write consecutive col elements (coalesced) and read x along ow with
//   stride SW. Memory bound: 4 B written + ~4 B read (mostly L1/L2 hits: each x element is read
//   KH*KW times) per float column element.
// col2im_fwd_kernel: the adjoint, as a gather (no atomics): one thread per image element
//   (n, c, h, w) sums the at most KH*KW column entries (c, kh, kw, n, oh, ow) with
//   oh*SH - PH + kh*DH == h and ow*SW - PW + kw*DW == w. Coalesced writes of img; reads of col
//   are strided by SW along w. ~4 B written + KH*KW/(SH*SW) * 4 B read per image element.
// Launch shape of both: blocks of 256 threads, min(ceil(n / 256), 8 * #SMs) blocks. The index
//   decompositions use multiply-shift division by precomputed magic numbers (common.cuh fastdiv).
//
// conv_implicit_gemm_fwd_kernel: per group g, Y_g (Kg, N*OH*OW) = W_g (Kg, CKK) @ B_g (CKK,
//   N*OH*OW) where B_g is the virtual column matrix, B_g[k, n] with k = (c, kh, kw) and
//   n = (nb, oh, ow) gathered from x on the fly (im2col's index math), so no column buffer.
//   Block tile: 64 output channels (M) x 128 output positions (N), k-step 8 (BK); 128 threads,
//   each an 8x8 register micro-tile (rows 4*ty + {0..3} and 32 + 4*ty + {0..3}, columns
//   4*tx + {0..3} and 64 + 4*tx + {0..3}: four 16-byte shared loads per k feed 64 FFMAs, and
//   a warp's loads are broadcasts or 256 consecutive bytes, so no bank conflicts). The _m32
//   kernel is the same with 32 output channels (4x8 micro-tiles) for groups of <= 32 output
//   channels (grouped convs, narrow layers), which a 64-row tile would half waste. Shared tiles
//   double-buffered with the next k-tile prefetched into registers while the current one is
//   multiplied, one __syncthreads per k-tile. The B loader gives each thread one column
//   (its (nb, oh, ow) decoded once) and walks (c, kh, kw) incrementally; consecutive threads
//   read consecutive ow (coalesced for stride 1). The bias is fused into the store, and y is
//   written straight in NCHW. Grid: (ceil(N*OH*OW / 128), ceil(Kg / BM), G). Compute bound
//   for large Kg and CKK (64 FFMA per 4 vector shared loads per thread per k). nvcc -Xptxas -v
//   for sm_90: fp32 127 registers (3-4 blocks of 4 warps per SM), fp64 238, no spills; 12 KiB
//   (fp32) / 24 KiB (fp64) of static shared memory per block; _m32: fp32 80, fp64 156.
// All indices are 32-bit ints: the launch layer refuses tensors of 2**31 elements or more.
// float16 / bfloat16 (half.cuh): im2col and col2im have half instances (a copy; a float sum
// rounded once); the GEMMs between them are cuBLAS's (kernels/conv/__init__.py _mm), and the
// implicit GEMM is float32 / float64 only.
#include "../cuda/common.cuh"
#include "../cuda/half.cuh"

template <typename T> HALF_STORAGE
__global__ void im2col_fwd_kernel(const T* __restrict__ x, T* __restrict__ col, int N, int C,
                                  int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                                  int DH, int DW, int OH, int OW, int total,
                                  unsigned int mOW, unsigned int sOW, unsigned int mOH,
                                  unsigned int sOH, unsigned int mN, unsigned int sN,
                                  unsigned int mKW, unsigned int sKW, unsigned int mKH,
                                  unsigned int sKH) {
    GRID_LOOP(i, total) {
        int t = i, q;
        q = fastdiv(t, mOW, sOW); const int ow = t - q * OW; t = q;
        q = fastdiv(t, mOH, sOH); const int oh = t - q * OH; t = q;
        q = fastdiv(t, mN, sN);   const int n = t - q * N;   t = q;
        q = fastdiv(t, mKW, sKW); const int kw = t - q * KW; t = q;
        const int c = fastdiv(t, mKH, sKH);
        const int kh = t - c * KH;
        const int ih = oh * SH - PH + kh * DH;
        const int iw = ow * SW - PW + kw * DW;
        T v = narrow<T>(0);
        if (ih >= 0 && ih < H && iw >= 0 && iw < W) v = x[((n * C + c) * H + ih) * W + iw];
        col[i] = v;
    }
}

template <typename T> HALF_STORAGE
__global__ void col2im_fwd_kernel(const T* __restrict__ col, T* __restrict__ img, int N, int C,
                                  int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                                  int DH, int DW, int OH, int OW, int total,
                                  unsigned int mW, unsigned int sW, unsigned int mH,
                                  unsigned int sH, unsigned int mC, unsigned int sC,
                                  unsigned int mSH, unsigned int sSH, unsigned int mSW,
                                  unsigned int sSW) {
    const int L = OH * OW;
    GRID_LOOP(i, total) {
        int t = i, q;
        q = fastdiv(t, mW, sW); const int w = t - q * W; t = q;
        q = fastdiv(t, mH, sH); const int h = t - q * H; t = q;
        const int n = fastdiv(t, mC, sC);
        const int c = t - n * C;
        acc_t<T> s = 0;
        for (int kh = 0; kh < KH; ++kh) {
            const int hp = h + PH - kh * DH;  // = oh * SH
            if (hp < 0) break;                // decreasing in kh
            const int oh = fastdiv(hp, mSH, sSH);
            if (oh * SH != hp || oh >= OH) continue;
            const T* crow = col + ((c * KH + kh) * KW * N + n) * L + oh * OW;
            for (int kw = 0; kw < KW; ++kw) {
                const int wp = w + PW - kw * DW;
                if (wp < 0) break;
                const int ow = fastdiv(wp, mSW, sSW);
                if (ow * SW != wp || ow >= OW) continue;
                s += widen(crow[kw * N * L + ow]);
            }
        }
        img[i] = narrow<T>(s);
    }
}

#define IG_BN 128
#define IG_BK 8
#define IG_THREADS 128

// Four consecutive elements of a shared tile, read as one 16-byte load (two for double).
template <typename T>
struct alignas(16) Quad {
    T v[4];
};

// One block tile of BM (64 or 32) output channels x IG_BN output positions; each thread an
// (BM / 8) x 8 micro-tile: rows 4*ty + 32*h + {0..3} (h < BM / 32), columns 4*tx + 64*h +
// {0..3} (h < 2).
template <typename T, int BM>
__device__ __forceinline__ void implicit_gemm_tile(
        const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
        T* __restrict__ y, int N, int C, int H, int W, int K, int KH, int KW, int SH, int SW,
        int PH, int PW, int DH, int DW, int OH, int OW, int G, int has_bias) {
    constexpr int MQ = BM / 32;                      // quads of rows per thread
    constexpr int MI = 4 * MQ;                       // rows per thread
    constexpr int NA = BM * IG_BK / IG_THREADS;      // weight elements loaded per thread
    constexpr int KSTEP = IG_THREADS / BM;
    // Shared tiles as arrays of 16-byte-aligned quads (element m of a row is [m / 4].v[m % 4]).
    __shared__ Quad<T> As[2][IG_BK][BM / 4];
    __shared__ Quad<T> Bs[2][IG_BK][IG_BN / 4];
    const int t = threadIdx.x;
    const int g = blockIdx.z;
    const int Cg = C / G, Kg = K / G;
    const int KHW = KH * KW, CKK = Cg * KHW;
    const int L = OH * OW, NL = N * L, HW = H * W;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * IG_BN;

    // A loader: row mA of the weight tile, k offsets kA + KSTEP * i (i < NA).
    const int mA = t % BM, kA = t / BM;
    const bool row_ok = m0 + mA < Kg;
    const T* wrow = w + (g * Kg + (row_ok ? m0 + mA : 0)) * CKK;
    // B loader: column n0 + t of the virtual column matrix, all IG_BK rows of each k-tile.
    const int nB = n0 + t;
    const bool col_ok = nB < NL;
    int ih0 = 0, iw0 = 0;
    const T* xb = x;
    if (col_ok) {
        const int nb = nB / L, l = nB - nb * L;
        const int oh = l / OW, ow = l - oh * OW;
        ih0 = oh * SH - PH;
        iw0 = ow * SW - PW;
        xb = x + (nb * C + g * Cg) * HW;
    }
    // The (c, kh, kw) of the next row this thread loads (rows are loaded in order).
    int rc = 0, rkh = 0, rkw = 0;

    T ra[NA], rb[IG_BK];
    auto load = [&](int k0) {
#pragma unroll
        for (int i = 0; i < NA; ++i) {
            const int k = k0 + kA + KSTEP * i;
            ra[i] = (row_ok && k < CKK) ? wrow[k] : T(0);
        }
#pragma unroll
        for (int r = 0; r < IG_BK; ++r) {
            T v = T(0);
            if (col_ok && k0 + r < CKK) {
                const int ih = ih0 + rkh * DH, iw = iw0 + rkw * DW;
                if (ih >= 0 && ih < H && iw >= 0 && iw < W) v = xb[rc * HW + ih * W + iw];
            }
            rb[r] = v;
            if (++rkw == KW) {
                rkw = 0;
                if (++rkh == KH) {
                    rkh = 0;
                    ++rc;
                }
            }
        }
    };
    auto store = [&](int buf) {
#pragma unroll
        for (int i = 0; i < NA; ++i) As[buf][kA + KSTEP * i][mA >> 2].v[mA & 3] = ra[i];
#pragma unroll
        for (int r = 0; r < IG_BK; ++r) Bs[buf][r][t >> 2].v[t & 3] = rb[r];
    };

    const int tx = t % 16, ty = t / 16;
    T acc[MI][8];
#pragma unroll
    for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = T(0);

    const int ntiles = (CKK + IG_BK - 1) / IG_BK;
    load(0);
    store(0);
    __syncthreads();
    for (int kt = 0; kt < ntiles; ++kt) {
        const int cur = kt & 1;
        const bool more = kt + 1 < ntiles;  // the same for every thread of the block
        if (more) load((kt + 1) * IG_BK);
#pragma unroll
        for (int kk = 0; kk < IG_BK; ++kk) {
            // MQ + 2 vector loads (LDS.128) per 8 * MI FMAs
            T a[MI], bv[8];
#pragma unroll
            for (int h = 0; h < MQ; ++h) {
                const Quad<T> q = As[cur][kk][ty + 8 * h];
#pragma unroll
                for (int r = 0; r < 4; ++r) a[4 * h + r] = q.v[r];
            }
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const Quad<T> q = Bs[cur][kk][tx + 16 * h];
#pragma unroll
                for (int r = 0; r < 4; ++r) bv[4 * h + r] = q.v[r];
            }
#pragma unroll
            for (int i = 0; i < MI; ++i)
#pragma unroll
                for (int j = 0; j < 8; ++j) acc[i][j] += a[i] * bv[j];
        }
        if (more) store(cur ^ 1);
        __syncthreads();
    }

    int off[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) {
        const int n = n0 + 4 * tx + 64 * (j / 4) + j % 4;
        const int nb = n / L;
        off[j] = n < NL ? nb * K * L + (n - nb * L) : -1;
    }
#pragma unroll
    for (int i = 0; i < MI; ++i) {
        const int m = m0 + 4 * ty + 32 * (i / 4) + i % 4;
        if (m < Kg) {
            const int k = g * Kg + m;
            const T bias = has_bias ? b[k] : T(0);
#pragma unroll
            for (int j = 0; j < 8; ++j)
                if (off[j] >= 0) y[off[j] + k * L] = acc[i][j] + bias;
        }
    }
}

// 64 output channels per block tile (8x8 micro-tiles); grid (ceil(N*OH*OW / 128),
// ceil(Kg / 64), G).
template <typename T>
__global__ void __launch_bounds__(128) conv_implicit_gemm_fwd_kernel(
        const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
        T* __restrict__ y, int N, int C, int H, int W, int K, int KH, int KW, int SH, int SW,
        int PH, int PW, int DH, int DW, int OH, int OW, int G, int has_bias) {
    implicit_gemm_tile<T, 64>(x, w, b, y, N, C, H, W, K, KH, KW, SH, SW, PH, PW, DH, DW, OH,
                              OW, G, has_bias);
}

// 32 output channels per block tile (4x8 micro-tiles), for groups of at most 32 output
// channels, where the 64-row tile would compute at least half of its rows for nothing;
// grid (ceil(N*OH*OW / 128), ceil(Kg / 32), G).
template <typename T>
__global__ void __launch_bounds__(128) conv_implicit_gemm_m32_fwd_kernel(
        const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
        T* __restrict__ y, int N, int C, int H, int W, int K, int KH, int KW, int SH, int SW,
        int PH, int PW, int DH, int DW, int OH, int OW, int G, int has_bias) {
    implicit_gemm_tile<T, 32>(x, w, b, y, N, C, H, W, K, KH, KW, SH, SW, PH, PW, DH, DW, OH,
                              OW, G, has_bias);
}
