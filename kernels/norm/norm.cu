// norm.cu -- batch, layer, instance and group norm (forward and backward) on the GPU.
//
// Layouts (as kernels/norm/reference.py): row norms x4 (N, G, S, I), statistics per row
// r = n*G + g over its M = S*I contiguous elements, affine w[g*S + s]; batch norm x3 (N, C, I),
// statistics per channel c over its N runs of I elements (run stride C*I).
//
// Short rows (M <= 8192, enough rows to fill the GPU: instance norm, layer norm over a few
// thousand features, group norm of small images): row_norm_fused_fwd_kernel keeps the row in
// registers, one block per row: x read once, y written once (8 B/elt for float32); its backward
// (row_norm_fused_bwd_kernel, one affine value per row) reads gy and x once (12 B/elt).
//
// Statistics of longer rows and of channels (norm_stats_kernel): a two-level reduction. A "group" (a row, or a channel) is
// split into B chunks, one block each (grid Q*B, B chosen by the launch layer so that there are
// a few waves of blocks even when there are few, long groups, e.g. layer norm over (C, H, W)).
// Each thread sums d = x - K and d^2 in float64, K = the group's first element (a shift that
// keeps the sums centred: no cancellation for data like 1000 + randn), turns its sums into
// (n, mean, M2) and the block merges those with Chan's parallel Welford formula, in float64.
// B == 1: the block writes mean and rstd (or the biased variance); else its (n, mean, M2) goes
// to `part` and norm_stats_final_kernel merges the B partials of each group (Chan again).
// The backward sums (sum gy*w, sum gy*w*(x - mean), float64) use the same split
// (norm_bwd_sums_kernel, norm_sums_final_kernel). No atomics; blocks never share an output.
//
// Apply: rows of 1024 or more elements reuse the statistics' grid (row_norm_chunk_kernel):
// block (q, b) applies its own chunk, walking it from the end, the part the reduction read last
// and most likely still in L2; row values are loaded once per block. Other applies are flat
// grid-stride loops over the elements (consecutive threads, consecutive addresses, UNROLL
// independent loads per thread); the row/channel of element e comes from 32-bit divisions by
// a magic multiplier (common.cuh fastdiv: q = (e * m) >> s, precomputed on the host).
// Arithmetic per element is float64 (H100: FP64 at half the FP32 rate, conversions 16/clk/SM:
// below the memory bound), so x - mean is exact for float32 inputs whatever the mean.
// The layer-norm backward with a per-element affine (I == 1) runs one thread per column (g, s)
// that walks the rows: it writes gx and sums gw, gb over its rows in registers (no atomics, no
// (N, S) temporary). Batch norm with short runs (BatchNorm1d) reduces per column likewise.
// The running statistics are updated in place by one small kernel.
//
// Expected bound (float32, bytes per element): statistics 4; forward apply 4 + 4 (x again,
// partly from L2); batch-norm backward sums 8, apply 8 + 4; layer-norm backward 8 (row sums)
// + 8 + 4 (columns). So forward ~12 B/elt against the algorithmic 8, forward+backward ~32
// against 20 when x does not fit in L2. Launch shapes: 256 threads (fewer for short groups).

#include "../cuda/common.cuh"
#include "../cuda/half.cuh"

#define UNROLL 4  // elements per thread and loop trip: independent loads in flight

// The element loops of the applies: a grid-stride loop in groups of UNROLL elements per thread
// (e = base + u * blockDim.x, consecutive threads on consecutive elements); each group loads
// a[e] (and b[e] when TWO) for all UNROLL elements first -- independent loads in flight --
// then calls f(e, a[e], b[e]) for each. REV numbers the elements from the end (total - 1 - e).
template <bool REV, bool TWO, typename T, typename F>
__device__ __forceinline__ void apply_elements(int total, const T* __restrict__ a,
                                               const T* __restrict__ b, F f) {
    for (long long base = static_cast<long long>(blockIdx.x) * blockDim.x * UNROLL + threadIdx.x;
         base < total; base += static_cast<long long>(gridDim.x) * blockDim.x * UNROLL) {
        T av[UNROLL], bv[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
            const long long i = base + u * blockDim.x;
            const long long e = REV ? total - 1 - i : i;
            av[u] = i < total ? a[e] : narrow<T>(0);
            bv[u] = TWO && i < total ? b[e] : narrow<T>(0);
        }
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
            const long long i = base + u * blockDim.x;
            if (i < total) f(static_cast<int>(REV ? total - 1 - i : i), av[u], bv[u]);
        }
    }
}

// The shift K of the sums: the group's first element, or 0 if that is inf or NaN (x - K would
// be NaN for every element, and the mean NaN where PyTorch's is inf).
__device__ __forceinline__ double finite_or_zero(double v) { return isfinite(v) ? v : 0.0; }

struct Wf {
    double n, m, M2;
};

__device__ __forceinline__ Wf wf_merge(Wf a, Wf b) {
    if (b.n == 0.0) return a;
    if (a.n == 0.0) return b;
    const double n = a.n + b.n, f = b.n / n, d = b.m - a.m;
    Wf r;
    r.n = n;
    // an infinite mean: the weighted average, inf as the sum's (Chan's form gives inf - inf)
    r.m = isfinite(d) ? a.m + d * f : (a.n * a.m + b.n * b.m) / n;
    r.M2 = a.M2 + b.M2 + d * d * a.n * f;
    return r;
}

__device__ __forceinline__ Wf wf_shfl_down(Wf v, int o) {
    Wf r;
    r.n = __shfl_down_sync(0xffffffffu, v.n, o);
    r.m = __shfl_down_sync(0xffffffffu, v.m, o);
    r.M2 = __shfl_down_sync(0xffffffffu, v.M2, o);
    return r;
}

// Merge over a 1-D block (blockDim.x a multiple of 32); the result is valid in thread 0.
// `sh` holds 96 doubles of shared memory. Every thread must call it.
__device__ __forceinline__ Wf block_welford(Wf v, double* sh) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    for (int o = 16; o > 0; o >>= 1) {
        const Wf u = wf_shfl_down(v, o);
        if (lane + o < 32) v = wf_merge(v, u);
    }
    if (lane == 0) {
        sh[warp] = v.n;
        sh[32 + warp] = v.m;
        sh[64 + warp] = v.M2;
    }
    __syncthreads();
    Wf t;
    t.n = lane < warps ? sh[lane] : 0.0;
    t.m = lane < warps ? sh[32 + lane] : 0.0;
    t.M2 = lane < warps ? sh[64 + lane] : 0.0;
    for (int o = 16; o > 0; o >>= 1) {
        const Wf u = wf_shfl_down(t, o);
        if (lane + o < 32) t = wf_merge(t, u);
    }
    __syncthreads();
    return t;
}

__device__ __forceinline__ void write_stats(Wf v, double eps, int mode, double* mean, double* out,
                                            int q) {
    // M2 < 0 (rounding) clamps to 0; a NaN M2 (an inf in the group: inf - inf) stays NaN
    const double var = v.n > 0.0 ? (v.M2 < 0.0 ? 0.0 : v.M2) / v.n : 0.0;
    mean[q] = v.m;
    out[q] = mode == 0 ? 1.0 / sqrt(var + eps) : var;
}

// Walks elements t = t0, t0 + step, ... of a group whose elements lie in runs of `irun`
// contiguous elements, `rstride` apart: element t is at (t / irun) * rstride + t % irun.
struct Walk {
    int r, i, dr, di;
    __device__ __forceinline__ Walk(int t0, int step, int irun) {
        r = t0 / irun;
        i = t0 - r * irun;
        dr = step / irun;
        di = step - dr * irun;
    }
    __device__ __forceinline__ int offset(int rstride) const { return r * rstride + i; }
    __device__ __forceinline__ void next(int irun) {
        i += di;
        r += dr;
        if (i >= irun) {
            i -= irun;
            ++r;
        }
    }
};

// Statistics of Q groups of `total` elements each; group q starts at q * qstride. Grid Q * B:
// block (q, b) covers elements [b * chunk, min(total, (b + 1) * chunk)) of group q.
// mode 0: writes mean and rstd = 1 / sqrt(var + eps); mode 1: mean and the biased variance.
template <typename T> HALF_STORAGE
__global__ void norm_stats_kernel(const T* __restrict__ x, int irun, int rstride, int qstride,
                                  int total, int B, int chunk, double eps, int mode,
                                  double* __restrict__ part, double* __restrict__ mean,
                                  double* __restrict__ out) {
    __shared__ double sh[96];
    const int q = blockIdx.x / B, b = blockIdx.x - q * B;
    const int start = b * chunk, end = start + min(chunk, total - start);
    const T* xq = x + static_cast<long long>(q) * qstride;
    const double K = finite_or_zero(to_f64(xq[0]));
    double s = 0.0, s2 = 0.0;
    int cnt = 0;
    const int nt = blockDim.x;
    Walk w(start + static_cast<int>(threadIdx.x), nt, irun);
    for (int t = start + threadIdx.x; t < end; t += UNROLL * nt) {
        double d[UNROLL];  // UNROLL independent loads in flight per thread
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
            const bool ok = t + u * nt < end;
            d[u] = ok ? to_f64(xq[w.offset(rstride)]) - K : 0.0;
            cnt += ok ? 1 : 0;
            w.next(irun);
        }
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
            s += d[u];
            s2 += d[u] * d[u];
        }
    }
    Wf v;
    v.n = static_cast<double>(cnt);
    v.m = cnt > 0 ? K + s / cnt : 0.0;
    v.M2 = cnt > 0 ? s2 - s * (s / cnt) : 0.0;
    if (v.M2 < 0.0) v.M2 = 0.0;
    v = block_welford(v, sh);
    if (threadIdx.x == 0) {
        if (B == 1) {
            write_stats(v, eps, mode, mean, out, q);
        } else {
            part[3 * blockIdx.x] = v.n;
            part[3 * blockIdx.x + 1] = v.m;
            part[3 * blockIdx.x + 2] = v.M2;
        }
    }
}

// Merges the B partials (n, mean, M2) of each group: one block per group.
extern "C" __global__ void norm_stats_final_kernel(const double* __restrict__ part, int B,
                                                   double eps, int mode,
                                                   double* __restrict__ mean,
                                                   double* __restrict__ out) {
    __shared__ double sh[96];
    const double* p = part + 3LL * blockIdx.x * B;
    Wf v;
    v.n = 0.0;
    v.m = 0.0;
    v.M2 = 0.0;
    for (int j = threadIdx.x; j < B; j += blockDim.x) {
        Wf u;
        u.n = p[3 * j];
        u.m = p[3 * j + 1];
        u.M2 = p[3 * j + 2];
        v = wf_merge(v, u);
    }
    v = block_welford(v, sh);
    if (threadIdx.x == 0) write_stats(v, eps, mode, mean, out, blockIdx.x);
}

// Backward sums per group q: a = sum gy * w, c = sum gy * w * (x - mean[q / msdiv]), float64,
// with w[(q % G) * irun + i] (has_w; only with one run per group) or 1. Grid Q * B as above.
template <typename T> HALF_STORAGE
__global__ void norm_bwd_sums_kernel(const T* __restrict__ gy, const T* __restrict__ x,
                                     const double* __restrict__ mean,
                                     const acc_t<T>* __restrict__ w,
                                     int has_w, int G, int msdiv, int irun, int rstride,
                                     int qstride, int total, int B, int chunk,
                                     double* __restrict__ part, double* __restrict__ out_a,
                                     double* __restrict__ out_c) {
    __shared__ double sh[32];
    const int q = blockIdx.x / B, b = blockIdx.x - q * B;
    const int start = b * chunk, end = start + min(chunk, total - start);
    const long long base = static_cast<long long>(q) * qstride;
    const T* xq = x + base;
    const T* gq = gy + base;
    const acc_t<T>* wq = w + (has_w ? (q % G) * irun : 0);
    const double m = mean[q / msdiv];
    double a = 0.0, c = 0.0;
    const int nt = blockDim.x;
    Walk wk(start + static_cast<int>(threadIdx.x), nt, irun);
    for (int t = start + threadIdx.x; t < end; t += UNROLL * nt) {
        double g[UNROLL], xm[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
            g[u] = 0.0;
            xm[u] = 0.0;
            if (t + u * nt < end) {
                const int o = wk.offset(rstride);
                g[u] = to_f64(gq[o]);
                if (has_w) g[u] *= to_f64(wq[wk.i]);
                xm[u] = to_f64(xq[o]) - m;
            }
            wk.next(irun);
        }
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
            a += g[u];
            c += g[u] * xm[u];
        }
    }
    a = block_sum(a, sh);
    c = block_sum(c, sh);
    if (threadIdx.x == 0) {
        if (B == 1) {
            out_a[q] = a;
            out_c[q] = c;
        } else {
            part[2 * blockIdx.x] = a;
            part[2 * blockIdx.x + 1] = c;
        }
    }
}

extern "C" __global__ void norm_sums_final_kernel(const double* __restrict__ part, int B,
                                                  double* __restrict__ out_a,
                                                  double* __restrict__ out_c) {
    __shared__ double sh[32];
    const double* p = part + 2LL * blockIdx.x * B;
    double a = 0.0, c = 0.0;
    for (int j = threadIdx.x; j < B; j += blockDim.x) {
        a += p[2 * j];
        c += p[2 * j + 1];
    }
    a = block_sum(a, sh);
    c = block_sum(c, sh);
    if (threadIdx.x == 0) {
        out_a[blockIdx.x] = a;
        out_c[blockIdx.x] = c;
    }
}

// Row norms, forward apply: y = (x - mean[r]) * rstd[r] * w[g*S + s] + b[g*S + s], with
// r = e / M, s = (e % M) / I, g = r % G.
// The row apply loops walk the elements from the end: the statistics (or backward sums)
// kernel just read them from the start, so the most recently read part is still in L2.
template <typename T> HALF_STORAGE
__global__ void row_norm_apply_kernel(const T* __restrict__ x, const double* __restrict__ mean,
                                      const double* __restrict__ rstd,
                                      const acc_t<T>* __restrict__ w,
                                      const acc_t<T>* __restrict__ b, int has_w, int has_b,
                                      int total,
                                      int M, unsigned int mM, unsigned int sM, int I,
                                      unsigned int mI, unsigned int sI, int S, int G,
                                      unsigned int mG, unsigned int sG, T* __restrict__ y) {
    apply_elements<true, false>(total, x, x, [&](int e, T xe, T) {
        const int r = fastdiv(e, mM, sM);
        double v = (to_f64(xe) - mean[r]) * rstd[r];
        if (has_w || has_b) {
            const int s = fastdiv(e - r * M, mI, sI);
            const int k = (r - fastdiv(r, mG, sG) * G) * S + s;
            if (has_w) v *= to_f64(w[k]);
            if (has_b) v += to_f64(b[k]);
        }
        y[e] = from_f64<T>(v);
    });
}

// Row norms, backward apply with the row sums a[r] = sum gy*w, c[r] = sum gy*w*(x - mean):
// gx = rstd * (gy*w - a/M - xhat * rstd * c/M), xhat = (x - mean) * rstd.
template <typename T> HALF_STORAGE
__global__ void row_norm_bwd_apply_kernel(const T* __restrict__ gy, const T* __restrict__ x,
                                          const double* __restrict__ mean,
                                          const double* __restrict__ rstd,
                                          const double* __restrict__ ra,
                                          const double* __restrict__ rc,
                                          const acc_t<T>* __restrict__ w,
                                          int has_w, double invM, int total, int M,
                                          unsigned int mM, unsigned int sM, int I,
                                          unsigned int mI, unsigned int sI, int S, int G,
                                          unsigned int mG, unsigned int sG,
                                          T* __restrict__ gx) {
    apply_elements<true, true>(total, gy, x, [&](int e, T ge, T xe) {
        const int r = fastdiv(e, mM, sM);
        double g = to_f64(ge);
        if (has_w) {
            const int s = fastdiv(e - r * M, mI, sI);
            g *= to_f64(w[(r - fastdiv(r, mG, sG) * G) * S + s]);
        }
        const double rs = rstd[r];
        const double xhat = (to_f64(xe) - mean[r]) * rs;
        gx[e] = from_f64<T>(rs * (g - ra[r] * invM - xhat * (rs * rc[r] * invM)));
    });
}

// Row norms with I == 1 (layer norm with a per-element affine, group norm of (N, C)): one
// thread per column j = g*S + s of x viewed as (N, G*S), rows [p*rpg, min(N, (p+1)*rpg)) for
// blockIdx = p * ncb + column block. Writes gx and the partial sums over its rows
// gw[p, j] = sum gy * xhat, gb[p, j] = sum gy.
template <typename T> HALF_STORAGE
__global__ void row_norm_bwd_cols_kernel(const T* __restrict__ gy, const T* __restrict__ x,
                                         const double* __restrict__ mean,
                                         const double* __restrict__ rstd,
                                         const double* __restrict__ ra,
                                         const double* __restrict__ rc,
                                         const acc_t<T>* __restrict__ w,
                                         int has_w, double invM, int N, int G, int S, int ncb,
                                         int rpg, T* __restrict__ gx, double* __restrict__ gw,
                                         double* __restrict__ gb) {
    const int p = blockIdx.x / ncb, cb = blockIdx.x - p * ncb;
    const int GS = G * S;
    const int j = cb * blockDim.x + threadIdx.x;
    if (j < GS) {
        const int g = j / S;
        const double wv = has_w ? to_f64(w[j]) : 1.0;
        const int n1 = min(N, (p + 1) * rpg);
        double sw = 0.0, sb = 0.0;
#pragma unroll 4
        for (int n = p * rpg; n < n1; ++n) {
            const int r = n * G + g, e = n * GS + j;
            const double rs = rstd[r];
            const double gv = to_f64(gy[e]);
            const double xhat = (to_f64(x[e]) - mean[r]) * rs;
            gx[e] = from_f64<T>(rs * (gv * wv - ra[r] * invM - xhat * (rs * rc[r] * invM)));
            sw += gv * xhat;
            sb += gv;
        }
        gw[p * GS + j] = sw;
        gb[p * GS + j] = sb;
    }
}

// Group/instance norm backward (I > 1): from the per-(n, g, s) sums a = sum_i gy and
// c = sum_i gy * (x - mean), the row sums ra[r] = sum_s w*a, rc[r] = sum_s w*c and the weight
// grad partials gw[r*S + s] = rstd[r] * c. One thread per row r = n*G + g.
template <typename T> HALF_STORAGE
__global__ void norm_seg_rows_kernel(const double* __restrict__ a, const double* __restrict__ c,
                                     const double* __restrict__ rstd,
                                     const acc_t<T>* __restrict__ w,
                                     int has_w, int S, int G, int R, double* __restrict__ ra,
                                     double* __restrict__ rc, double* __restrict__ gw) {
    GRID_LOOP(r, R) {
        const acc_t<T>* wr = w + (has_w ? (r % G) * S : 0);
        const double rs = rstd[r];
        double sa = 0.0, sc = 0.0;
        for (int s = 0; s < S; ++s) {
            const double wv = has_w ? to_f64(wr[s]) : 1.0;
            const double cv = c[r * S + s];
            sa += wv * a[r * S + s];
            sc += wv * cv;
            gw[r * S + s] = rs * cv;
        }
        ra[r] = sa;
        rc[r] = sc;
    }
}

// Batch norm, forward affine: y = x * scale[c] + shift[c], c = (e / I) % C.
template <typename T> HALF_STORAGE
__global__ void chan_affine_kernel(const T* __restrict__ x, const double* __restrict__ scale,
                                   const double* __restrict__ shift, int total, unsigned int mI,
                                   unsigned int sI, int C, unsigned int mC, unsigned int sC,
                                   T* __restrict__ y) {
    apply_elements<false, false>(total, x, x, [&](int e, T xe, T) {
        const int q = fastdiv(e, mI, sI);
        const int c = q - fastdiv(q, mC, sC) * C;
        y[e] = from_f64<T>(to_f64(xe) * scale[c] + shift[c]);
    });
}

// Batch norm, backward apply: gx = w*rstd * (gy - a/M - (x - mean) * rstd^2 * cc/M).
template <typename T> HALF_STORAGE
__global__ void chan_bwd_apply_kernel(const T* __restrict__ gy, const T* __restrict__ x,
                                      const double* __restrict__ mean,
                                      const double* __restrict__ rstd,
                                      const acc_t<T>* __restrict__ w,
                                      int has_w, const double* __restrict__ sa,
                                      const double* __restrict__ sc, double invM, int total,
                                      unsigned int mI, unsigned int sI, int C, unsigned int mC,
                                      unsigned int sC, T* __restrict__ gx) {
    apply_elements<false, true>(total, gy, x, [&](int e, T ge, T xe) {
        const int q = fastdiv(e, mI, sI);
        const int c = q - fastdiv(q, mC, sC) * C;
        const double rs = rstd[c];
        const double k = has_w ? to_f64(w[c]) * rs : rs;
        const double xmu = to_f64(xe) - mean[c];
        gx[e] = from_f64<T>(k * (to_f64(ge) - sa[c] * invM -
                                    xmu * (rs * rs * sc[c] * invM)));
    });
}

// Running statistics, in place (one launch instead of a chain of small array ops):
// rm = (1 - m) * rm + m * mean, rv = (1 - m) * rv + m * var * var_scale.
template <typename T>
__global__ void running_update_kernel(T* __restrict__ rm, T* __restrict__ rv,
                                      const double* __restrict__ mean,
                                      const double* __restrict__ var, double m, double var_scale,
                                      int C) {
    GRID_LOOP(c, C) {
        rm[c] = from_f64<T>((1.0 - m) * to_f64(rm[c]) + m * mean[c]);
        rv[c] = from_f64<T>((1.0 - m) * to_f64(rv[c]) + m * (var[c] * var_scale));
    }
}

// Batch norm with short runs (I < CHAN_COLS_MAX_I of the launch layer, e.g. BatchNorm1d's
// I == 1), where a block per channel would read one element per run, uncoalesced: one thread per
// column j = c*I + i of x viewed as (N, C*I) walks the rows [p*rpg, min(N, (p+1)*rpg)) of its
// row group p (blockIdx = p * ncb + column block), coalesced across the threads; partial
// (n, mean, M2) or (sum gy, sum gy*(x - mean)) per (p, j), merged per channel by the final kernels.
template <typename T> HALF_STORAGE
__global__ void chan_cols_stats_kernel(const T* __restrict__ x, int N, int CI, int ncb, int rpg,
                                       double* __restrict__ part) {
    const int p = blockIdx.x / ncb, cb = blockIdx.x - p * ncb;
    const int j = cb * blockDim.x + threadIdx.x;
    if (j < CI) {
        const int n0 = p * rpg, n1 = min(N, n0 + rpg);
        const double K =
            finite_or_zero(to_f64(x[static_cast<long long>(n0) * CI + j]));
        double s = 0.0, s2 = 0.0;
#pragma unroll 4
        for (int n = n0; n < n1; ++n) {
            const double d = to_f64(x[n * CI + j]) - K;
            s += d;
            s2 += d * d;
        }
        const double cnt = static_cast<double>(n1 - n0);
        const double M2 = s2 - s * (s / cnt);
        double* o = part + 3LL * (static_cast<long long>(p) * CI + j);
        o[0] = cnt;
        o[1] = K + s / cnt;
        o[2] = M2 < 0.0 ? 0.0 : M2;   // NaN stays NaN (see write_stats)
    }
}

extern "C" __global__ void chan_cols_stats_final_kernel(const double* __restrict__ part, int P,
                                                        int I, int CI, double eps, int mode,
                                                        double* __restrict__ mean,
                                                        double* __restrict__ out) {
    __shared__ double sh[96];
    const int c = blockIdx.x;
    Wf v;
    v.n = 0.0;
    v.m = 0.0;
    v.M2 = 0.0;
    for (int k = threadIdx.x; k < P * I; k += blockDim.x) {
        const int p = k / I;
        const double* o = part + 3LL * (static_cast<long long>(p) * CI + c * I + (k - p * I));
        Wf u;
        u.n = o[0];
        u.m = o[1];
        u.M2 = o[2];
        v = wf_merge(v, u);
    }
    v = block_welford(v, sh);
    if (threadIdx.x == 0) write_stats(v, eps, mode, mean, out, c);
}

template <typename T> HALF_STORAGE
__global__ void chan_cols_sums_kernel(const T* __restrict__ gy, const T* __restrict__ x,
                                      const double* __restrict__ mean, int N, int CI, int I,
                                      int ncb, int rpg, double* __restrict__ part) {
    const int p = blockIdx.x / ncb, cb = blockIdx.x - p * ncb;
    const int j = cb * blockDim.x + threadIdx.x;
    if (j < CI) {
        const int n0 = p * rpg, n1 = min(N, n0 + rpg);
        const double m = mean[j / I];
        double a = 0.0, c = 0.0;
#pragma unroll 4
        for (int n = n0; n < n1; ++n) {
            const double g = to_f64(gy[n * CI + j]);
            a += g;
            c += g * (to_f64(x[n * CI + j]) - m);
        }
        double* o = part + 2LL * (static_cast<long long>(p) * CI + j);
        o[0] = a;
        o[1] = c;
    }
}

extern "C" __global__ void chan_cols_sums_final_kernel(const double* __restrict__ part, int P,
                                                       int I, int CI, double* __restrict__ out_a,
                                                       double* __restrict__ out_c) {
    __shared__ double sh[32];
    const int c = blockIdx.x;
    double a = 0.0, s = 0.0;
    for (int k = threadIdx.x; k < P * I; k += blockDim.x) {
        const int p = k / I;
        const double* o = part + 2LL * (static_cast<long long>(p) * CI + c * I + (k - p * I));
        a += o[0];
        s += o[1];
    }
    a = block_sum(a, sh);
    s = block_sum(s, sh);
    if (threadIdx.x == 0) {
        out_a[c] = a;
        out_c[c] = s;
    }
}

// Row norms, apply by chunks: the grid of the statistics kernel (block (q, b) of a Q * B grid
// covers elements [b * chunk, min(M, (b + 1) * chunk)) of row q), each thread walking its
// chunk from the end -- the part of the chunk that the statistics (or backward sums) pass read
// last, still in L2 when x is larger than L2. Row values (mean, rstd, row sums) once per block.
// Forward: y = (x - mean) * rstd * w + b; backward (bwd != 0, ra/rc the row sums, gy given):
// gx = rstd * (gy*w - ra/M - xhat * rstd * rc/M).
template <typename T> HALF_STORAGE
__global__ void row_norm_chunk_kernel(const T* __restrict__ x, const T* __restrict__ gy,
                                      const double* __restrict__ mean,
                                      const double* __restrict__ rstd,
                                      const double* __restrict__ ra,
                                      const double* __restrict__ rc, const acc_t<T>* __restrict__ w,
                                      const acc_t<T>* __restrict__ b, int has_w, int has_b, int bwd,
                                      double invM, int M, int B, int chunk, unsigned int mI,
                                      unsigned int sI, int S, int G, T* __restrict__ out) {
    const int q = blockIdx.x / B, bb = blockIdx.x - q * B;
    const int start = bb * chunk, end = start + min(chunk, M - start);
    const long long base = static_cast<long long>(q) * M;
    const T* xq = x + base;
    const T* gq = gy + (bwd ? base : 0);
    T* oq = out + base;
    const acc_t<T>* wq = w + (has_w ? (q % G) * S : 0);
    const acc_t<T>* bq = b + (has_b ? (q % G) * S : 0);
    const double mu = mean[q], rs = rstd[q];
    const double a1 = bwd ? ra[q] * invM : 0.0, c1 = bwd ? rs * rc[q] * invM : 0.0;
    const int nt = blockDim.x;
    for (int t = end - 1 - static_cast<int>(threadIdx.x); t >= start; t -= UNROLL * nt) {
        T xv[UNROLL], gv[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
            const int p = t - u * nt;
            xv[u] = p >= start ? xq[p] : narrow<T>(0);
            gv[u] = bwd && p >= start ? gq[p] : narrow<T>(0);
        }
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
            const int p = t - u * nt;
            if (p >= start) {
                const int k = (has_w || has_b) ? fastdiv(p, mI, sI) : 0;
                const double xhat = (to_f64(xv[u]) - mu) * rs;
                double v;
                if (bwd) {
                    double g = to_f64(gv[u]);
                    if (has_w) g *= to_f64(wq[k]);
                    v = rs * (g - a1 - xhat * c1);
                } else {
                    v = xhat;
                    if (has_w) v *= to_f64(wq[k]);
                    if (has_b) v += to_f64(bq[k]);
                }
                oq[p] = from_f64<T>(v);
            }
        }
    }
}

// Row norms with short rows (M <= FUSED_V * 1024): one block per row keeps the row in
// registers (FUSED_V values per thread, element p = threadIdx.x + k * blockDim.x), so x is read
// once: exact two-pass statistics from the registers (sum, then sum of squared deviations, in
// float64), then the affine. Grid R, blockDim.x >= M / FUSED_V.
#define FUSED_V 8

template <typename T> HALF_STORAGE
__global__ void __launch_bounds__(1024) row_norm_fused_fwd_kernel(const T* __restrict__ x,
                                          const acc_t<T>* __restrict__ w,
                                          const acc_t<T>* __restrict__ b, int has_w, int has_b,
                                          int M,
                                          unsigned int mI, unsigned int sI, int S, int G,
                                          double eps,
                                          T* __restrict__ y, double* __restrict__ mean,
                                          double* __restrict__ rstd) {
    __shared__ double sh[32];
    const int q = blockIdx.x, nt = blockDim.x;
    const long long base = static_cast<long long>(q) * M;
    T xv[FUSED_V];
    double s = 0.0;
#pragma unroll
    for (int k = 0; k < FUSED_V; ++k) {
        const int p = static_cast<int>(threadIdx.x) + k * nt;
        xv[k] = p < M ? x[base + p] : narrow<T>(0);
        s += to_f64(xv[k]);
    }
    const double mu = block_sum(s, sh) / M;
    double s2 = 0.0;
#pragma unroll
    for (int k = 0; k < FUSED_V; ++k) {
        const int p = static_cast<int>(threadIdx.x) + k * nt;
        const double d = to_f64(xv[k]) - mu;
        s2 += p < M ? d * d : 0.0;
    }
    const double rs = 1.0 / sqrt(block_sum(s2, sh) / M + eps);
    if (threadIdx.x == 0) {
        mean[q] = mu;
        rstd[q] = rs;
    }
    const acc_t<T>* wq = w + (has_w ? (q % G) * S : 0);
    const acc_t<T>* bq = b + (has_b ? (q % G) * S : 0);
#pragma unroll
    for (int k = 0; k < FUSED_V; ++k) {
        const int p = static_cast<int>(threadIdx.x) + k * nt;
        if (p < M) {
            double v = (to_f64(xv[k]) - mu) * rs;
            if (has_w || has_b) {
                const int kk = fastdiv(p, mI, sI);
                if (has_w) v *= to_f64(wq[kk]);
                if (has_b) v += to_f64(bq[kk]);
            }
            y[base + p] = from_f64<T>(v);
        }
    }
}

// Backward of the above for rows with one affine value each (S == 1: instance norm, layer norm
// without affine): gy and x read once, gx written once; gw[q] = rstd * sum gy*(x - mean),
// gb[q] = sum gy (the per-(n, g) partials the caller sums over n).
template <typename T> HALF_STORAGE
__global__ void __launch_bounds__(1024) row_norm_fused_bwd_kernel(const T* __restrict__ gy, const T* __restrict__ x,
                                          const double* __restrict__ mean,
                                          const double* __restrict__ rstd,
                                          const acc_t<T>* __restrict__ w, int has_w, int M, int G,
                                          T* __restrict__ gx, double* __restrict__ gw,
                                          double* __restrict__ gb) {
    __shared__ double sh[32];
    const int q = blockIdx.x, nt = blockDim.x;
    const long long base = static_cast<long long>(q) * M;
    const double mu = mean[q], rs = rstd[q];
    T xv[FUSED_V], gv[FUSED_V];
    double a = 0.0, c = 0.0;
#pragma unroll
    for (int k = 0; k < FUSED_V; ++k) {
        const int p = static_cast<int>(threadIdx.x) + k * nt;
        xv[k] = p < M ? x[base + p] : narrow<T>(0);
        gv[k] = p < M ? gy[base + p] : narrow<T>(0);
    }
#pragma unroll
    for (int k = 0; k < FUSED_V; ++k) {
        const double g = to_f64(gv[k]);
        a += g;
        c += g * (to_f64(xv[k]) - mu);  // g == 0 past the row's end
    }
    a = block_sum(a, sh);
    c = block_sum(c, sh);
    const double wv = has_w ? to_f64(w[q % G]) : 1.0;
    const double a1 = wv * a / M, c1 = rs * (wv * c) / M;
    if (threadIdx.x == 0) {
        gw[q] = rs * c;
        gb[q] = a;
    }
#pragma unroll
    for (int k = 0; k < FUSED_V; ++k) {
        const int p = static_cast<int>(threadIdx.x) + k * nt;
        if (p < M) {
            const double xhat = (to_f64(xv[k]) - mu) * rs;
            gx[base + p] = from_f64<T>(rs * (to_f64(gv[k]) * wv - a1 - xhat * c1));
        }
    }
}
