// pool.cu -- pooling kernels: max (with argmax) and average, forward and backward; adaptive max.
//
// Layout: x (N, C, H, W) and y (N, C, OH, OW), C-contiguous; a "plane" is one (n, c) pair, p =
// n * C + c. Max-pool indices are flat positions h * W + w inside the (H, W) plane (int64, as
// PyTorch's return_indices). Window of output (oh, ow): rows oh * SH - PH + kh * DH (kh < KH),
// columns likewise; taps outside the input are skipped (padding never wins a max and adds
// nothing to a sum). `inv` (OH, OW) is 1 / divisor of each average window (PyTorch's
// count_include_pad / divisor_override rules, computed on the host by avg_pool_inv).
//
// Index mapping and launch shape: one thread per OUTPUT element for the forwards (i -> p, oh, ow
// with ow fastest, so consecutive threads write consecutive outputs and read columns SW apart),
// one thread per INPUT element for the backwards, which are gathers (no atomics, deterministic,
// summed in the same (oh, ow) raster order as the CPU kernels: max-pool gradients are the CPU's
// bit for bit; average ones differ only where nvcc fuses gy * inv + s into one FMA):
//   avg_pool_bwd_kernel: gx[h, w] = sum over the windows covering (h, w) of gy * inv;
//   max_pool_bwd_kernel: gx[h, w] = sum over the windows covering (h, w) whose argmax is (h, w)
//                        of gy (needs the window geometry; each window is visited at most once).
// plane_scatter_kernel (max_unpool2d, adaptive max-pool backward, double backward: an index
// with no geometry) adds g into a zeroed plane with atomicAdd: results are exact when no two
// outputs share an index (non-overlapping windows), otherwise the float sum order (2-4 terms)
// depends on the schedule. 1-D grids of 256-thread blocks, grid-stride loops, a grid of at most
// 8 * #SMs blocks (launch.blocks; a few waves).
//
// Expected bound: memory. Forward max: reads each input ~ (KH/SH)(KW/SW) times from cache, one
// read from DRAM, writes sizeof(T) + 8 bytes per output (value and int64 index). Backward max:
// one read of gy and idx per covering window (about KH*KW/(SH*SW) per input), one write of gx.
// Average: the same without indices.
//
// Max rule (PyTorch's, and the CPU kernels'): scan the window's valid taps in row-major order,
// start from the first, and let a tap replace the running max when it is larger or NaN (so ties
// keep the first maximum, and a NaN wins -- the last NaN of the window). A window with no valid
// tap (possible only with dilation > padding) gives -inf and index -1, which the backward skips.
// Adaptive max keeps the first maximum and the FIRST NaN (its CPU kernel's and reference's rule).
//
// float16 / bfloat16 (half.cuh): every kernel but plane_scatter (atomics) has half instances,
// which compare and sum in float (acc_t<T>) and round once per output: max pooling and the
// gather are exact, sums and averages round their float result; `inv` is acc_t<T> (float).
#include "../cuda/common.cuh"
#include "../cuda/half.cuh"

// [lo, hi) of the undilated windows o < O (span [o * S, o * S + K) of the padded axis) that
// cover padded position t = h + P: o in [ceil((t - K + 1) / S), t / S] within [0, O).
__device__ __forceinline__ void cover_range(int t, int K, int S, int O, int& lo, int& hi) {
    lo = t >= K ? (t - K) / S + 1 : 0;
    hi = min(t / S + 1, O);
}

template <typename T>
HALF_STORAGE __global__ void max_pool_fwd_kernel(const T* __restrict__ x, T* __restrict__ y,
                                                 long long* __restrict__ idx, int n, int H,
                                                 int W, int OH, int OW, int KH, int KW, int SH,
                                                 int SW, int PH, int PW, int DH, int DW) {
    GRID_LOOP(i, n) {
        int p, oh, ow;
        unravel(i, OH, OW, p, oh, ow);
        const int h0 = oh * SH - PH, w0 = ow * SW - PW;
        int khlo, khhi, kwlo, kwhi;
        tap_range(h0, H, DH, KH, khlo, khhi);
        tap_range(w0, W, DW, KW, kwlo, kwhi);
        const T* plane = x + static_cast<long long>(p) * H * W;
        acc_t<T> best = neg_inf<acc_t<T>>();
        int arg = -1;
        if (khlo < khhi && kwlo < kwhi) {
            arg = (h0 + khlo * DH) * W + w0 + kwlo * DW;
            best = widen(plane[arg]);
            for (int kh = khlo; kh < khhi; ++kh) {
                const int row = (h0 + kh * DH) * W;
                for (int kw = kwlo; kw < kwhi; ++kw) {
                    const int j = row + w0 + kw * DW;
                    const acc_t<T> v = widen(plane[j]);
                    if (v > best || v != v) {
                        best = v;
                        arg = j;
                    }
                }
            }
        }
        y[i] = narrow<T>(best);
        idx[i] = arg;
    }
}

// gx (one thread per input element), summed over the covering windows in the CPU scatter's
// (oh, ow) order. Without dilation they are a range (as in avg_pool_bwd_kernel); with it, the
// windows whose tap (kh, kw) lands on (h, w): oh = (h + PH - kh * DH) / SH when that divides,
// kh running downwards so that oh runs upwards.
template <typename T>
HALF_STORAGE __global__ void max_pool_bwd_kernel(const T* __restrict__ gy,
                                                 const long long* __restrict__ idx,
                                                 T* __restrict__ gx, int n, int H, int W, int OH,
                                                 int OW, int KH, int KW, int SH, int SW, int PH,
                                                 int PW, int DH, int DW) {
    GRID_LOOP(i, n) {
        int p, h, w;
        unravel(i, H, W, p, h, w);
        const long long me = static_cast<long long>(h) * W + w;
        const long long base = static_cast<long long>(p) * OH * OW;
        acc_t<T> s = 0;
        if (DH == 1 && DW == 1) {  // (uniform branch) the covering windows are a range, no %
            int oh0, oh1, ow0, ow1;
            cover_range(h + PH, KH, SH, OH, oh0, oh1);
            cover_range(w + PW, KW, SW, OW, ow0, ow1);
            for (int oh = oh0; oh < oh1; ++oh)
                for (int ow = ow0; ow < ow1; ++ow) {
                    const long long o = base + oh * OW + ow;
                    if (idx[o] == me) s += widen(gy[o]);
                }
        } else {
            for (int kh = KH - 1; kh >= 0; --kh) {
                const int th = h + PH - kh * DH;
                if (th < 0 || th % SH != 0) continue;
                const int oh = th / SH;
                if (oh >= OH) continue;
                for (int kw = KW - 1; kw >= 0; --kw) {
                    const int tw = w + PW - kw * DW;
                    if (tw < 0 || tw % SW != 0) continue;
                    const int ow = tw / SW;
                    if (ow >= OW) continue;
                    const long long o = base + oh * OW + ow;
                    if (idx[o] == me) s += widen(gy[o]);
                }
            }
        }
        gx[i] = narrow<T>(s);
    }
}

template <typename T>
HALF_STORAGE __global__ void avg_pool_fwd_kernel(const T* __restrict__ x,
                                                 const acc_t<T>* __restrict__ inv,
                                                 T* __restrict__ y, int n, int H, int W, int OH,
                                                 int OW, int KH, int KW, int SH, int SW, int PH,
                                                 int PW) {
    GRID_LOOP(i, n) {
        int p, oh, ow;
        unravel(i, OH, OW, p, oh, ow);
        const int hs = oh * SH - PH, ws = ow * SW - PW;
        const int h0 = max(hs, 0), h1 = min(hs + KH, H);
        const int w0 = max(ws, 0), w1 = min(ws + KW, W);
        const T* plane = x + static_cast<long long>(p) * H * W;
        acc_t<T> s = 0;
        for (int h = h0; h < h1; ++h)
            for (int w = w0; w < w1; ++w) s += widen(plane[h * W + w]);
        y[i] = narrow<T>(s * inv[oh * OW + ow]);
    }
}

// gx[h, w] = sum of gy[oh, ow] * inv[oh, ow] over the windows covering (h, w) (cover_range).
template <typename T>
HALF_STORAGE __global__ void avg_pool_bwd_kernel(const T* __restrict__ gy,
                                                 const acc_t<T>* __restrict__ inv,
                                                 T* __restrict__ gx, int n, int H, int W, int OH,
                                                 int OW, int KH, int KW, int SH, int SW, int PH,
                                                 int PW) {
    GRID_LOOP(i, n) {
        int p, h, w;
        unravel(i, H, W, p, h, w);
        int oh0, oh1, ow0, ow1;
        cover_range(h + PH, KH, SH, OH, oh0, oh1);
        cover_range(w + PW, KW, SW, OW, ow0, ow1);
        const T* g = gy + static_cast<long long>(p) * OH * OW;
        acc_t<T> s = 0;
        for (int oh = oh0; oh < oh1; ++oh)
            for (int ow = ow0; ow < ow1; ++ow) s += widen(g[oh * OW + ow]) * inv[oh * OW + ow];
        gx[i] = narrow<T>(s);
    }
}

// out[p * HW + idx[i]] += g[i], p = i / L (L outputs per plane); out zeroed by the caller.
// Indices outside [0, HW) (-1: a window with no input) are skipped.
template <typename T>
__global__ void plane_scatter_kernel(const T* __restrict__ g, const long long* __restrict__ idx,
                                     T* __restrict__ out, int n, int L, int HW) {
    GRID_LOOP(i, n) {
        const long long j = idx[i];
        if (j >= 0 && j < HW) atomicAdd(out + static_cast<long long>(i / L) * HW + j, g[i]);
    }
}

// out[i] = x[p * HW + idx[i]], p = i / L; 0 for an index outside [0, HW) (the adjoint of the
// scatter, which skips those).
template <typename T>
HALF_STORAGE __global__ void plane_gather_kernel(const T* __restrict__ x,
                                                 const long long* __restrict__ idx,
                                                 T* __restrict__ out, int n, int L, int HW) {
    GRID_LOOP(i, n) {
        const long long j = idx[i];
        out[i] = (j >= 0 && j < HW) ? x[static_cast<long long>(i / L) * HW + j] : narrow<T>(0);
    }
}

// Adaptive windows: rows [oh * H / OH, ceil((oh + 1) * H / OH)), columns likewise (never empty).
template <typename T>
HALF_STORAGE __global__ void adaptive_max_fwd_kernel(const T* __restrict__ x, T* __restrict__ y,
                                                     long long* __restrict__ idx, int n, int H,
                                                     int W, int OH, int OW) {
    GRID_LOOP(i, n) {
        int p, oh, ow;
        unravel(i, OH, OW, p, oh, ow);
        // 64-bit products: (oh + 1) * H passes 2**31 for sides of ~46341 (the result fits 32)
        const int h0 = static_cast<int>(static_cast<long long>(oh) * H / OH);
        const int h1 = static_cast<int>((static_cast<long long>(oh + 1) * H + OH - 1) / OH);
        const int w0 = static_cast<int>(static_cast<long long>(ow) * W / OW);
        const int w1 = static_cast<int>((static_cast<long long>(ow + 1) * W + OW - 1) / OW);
        const T* plane = x + static_cast<long long>(p) * H * W;
        int arg = h0 * W + w0;
        acc_t<T> best = widen(plane[arg]);
        for (int h = h0; h < h1; ++h)
            for (int w = w0; w < w1; ++w) {
                const acc_t<T> v = widen(plane[h * W + w]);
                if (v > best || v != v) {   // the last NaN, as PyTorch's CPU kernel
                    best = v;
                    arg = h * W + w;
                }
            }
        y[i] = narrow<T>(best);
        idx[i] = arg;
    }
}
