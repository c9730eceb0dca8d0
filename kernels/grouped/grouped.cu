// grouped.cu -- direct grouped and depthwise convolution (few input channels per group).
//
// Layouts (as kernels/conv/reference.py): x (N, C, H, W), w (K, Cg, KH, KW), y (N, K, OH, OW);
// G groups, Cg = C / G input channels and Kg = K / G output channels per group. Output channel
// k belongs to group g = k / Kg and reads input channels g*Cg .. g*Cg + Cg - 1. Depthwise with a
// channel multiplier M is the case G = C, Cg = 1, Kg = M.
//
//   forward      y[n,k,oh,ow]  = b[k] + sum_{cg,kh,kw} w[k,cg,kh,kw] * x[n, g*Cg+cg, ih, iw]
//                with ih = oh*SH - PH + kh*DH, iw = ow*SW - PW + kw*DW (0 outside the image)
//   grad input   gx[n,c,ih,iw] = sum_{j<Kg,kh,kw} w[g*Kg+j, c%Cg, kh, kw] * gy[n, g*Kg+j, oh, ow]
//                over the (kh, kw) with (ih + PH - kh*DH) = oh*SH, 0 <= oh < OH (same for w):
//                a gather, each thread owns one gx element, no atomics
//   grad weight  gw[k,cg,kh,kw] = sum_{n,oh,ow} gy[n,k,oh,ow] * x[n, g*Cg+cg, ih, iw]
//                one block per ((k, cg), slice s of the N*OH*OW positions) computes partial sums
//                of up to WG_TAPS taps at once in registers (one gy load feeds all of them),
//                the input rows of its positions staged in shared memory (band kernel) or read
//                through L1 (fallback); a warp-shuffle + shared-memory reduction gives the
//                block's partial; the S partials of a pair are summed in slice order
//                (deterministic) by the pair's last block (band kernel: atomic counter) or by a
//                second tiny kernel (fallback). With S == 1 the block writes gw directly.
//
// Launch shapes (kernels/grouped/cuda.py):
// - forward, and grad input of stride-1 convs (the forward of gy with the weight rotated and the
//   group's channel roles swapped): grouped_band_fwd_kernel, one block per (n, group -- or GB
//   consecutive groups for small planes --, chunk of up to 8 output channels, band of output
//   rows, tile of columns) with its input in shared memory (<= 48 KiB);
// - fallbacks, when not even a band of one row and 4 columns fits in 48 KiB (huge dilations),
//   and the grad input of strided convs (the gather): 1-D grid-stride loops over the output
//   elements (blocks of 256, at most 32 * #SMs blocks), one thread per element: consecutive
//   threads own consecutive ow (or iw), so every x / gy / y access of a warp is coalesced
//   (stride SW), and the weight taps are the same for the whole warp (a broadcast from L1);
//   input reuse across the taps of neighbouring outputs is left to L1 (__ldg);
// - grad weight: grid (K*Cg, S), blocks of up to 256 threads, S chosen for about 2048 blocks;
//   grouped_weight_band_bwd_kernel where a band fits in 48 KiB, else grouped_weight_bwd_kernel
//   + grouped_weight_reduce_bwd_kernel.
//
// Expected bound (fp32, 3x3 stride 1, depthwise): every pass moves each of its tensors through
// DRAM once (forward: x read, y written, 8 B per output; the 9 taps of an input element come
// from shared memory), 18 flops per output = 2.25 flop/B: memory-bound at the 3 TB/s of an H100
// (about 6.7 TFLOP/s at best; band halos add (HB - RB) / RB re-reads, from L2). Grad input the
// same (gy read, gx written); grad weight reads x and gy (8 B per position) and, grouped, x is
// read by the Kg pairs of its group and gy by the Cg pairs of its channel (L2 hits).
// Index arithmetic is 32-bit: the launch layer refuses tensors of 2**31 elements or more.
//
// float16 / bfloat16 (half.cuh): every kernel is a HALF_STORAGE template. Values are loaded
// with widen(), multiplied and summed in acc_t<T> (float) and each output rounded once with
// narrow<T>(). The band kernels stage their shared-memory tiles as acc_t<T> (converted once
// when staged, so the inner loops are the float kernel's, and the launcher's pitch and size
// arithmetic is that of 4-byte words); the weight gradient's partial sums (`part`) are
// acc_t<T> too, rounded only in the final sum. (The float32 / float64 instances compute as
// before: widen / narrow are identities there.)
#include "../cuda/common.cuh"
#include "../cuda/half.cuh"

#define WG_TAPS 9   // taps of the weight-grad kernel accumulated per pass (a 3x3 in one pass)

template <typename T>
HALF_STORAGE __global__ void grouped_fwd_kernel(const T* __restrict__ x, const T* __restrict__ w,
                                                const T* __restrict__ b, T* __restrict__ y,
                                                int has_bias, int C, int H, int W, int K, int Cg,
                                                int Kg, int KH, int KW, int SH, int SW, int PH,
                                                int PW, int DH, int DW, int OH, int OW,
                                                int total) {
    GRID_LOOP(i, total) {
        int p, oh, ow;
        unravel(i, OH, OW, p, oh, ow);
        const int k = p % K, n = p / K;
        const int ih0 = oh * SH - PH, iw0 = ow * SW - PW;
        int kh0, kh1, kw0, kw1;
        tap_range(ih0, H, DH, KH, kh0, kh1);
        tap_range(iw0, W, DW, KW, kw0, kw1);
        acc_t<T> acc = has_bias ? widen(__ldg(b + k)) : acc_t<T>(0);
        const T* xc = x + (n * C + (k / Kg) * Cg) * H * W;
        const T* wk = w + k * Cg * KH * KW;
        for (int cg = 0; cg < Cg; ++cg) {
            for (int kh = kh0; kh < kh1; ++kh) {
                const int r = (ih0 + kh * DH) * W + iw0;   // r + kw*DW >= 0 for kw >= kw0
                const T* wr = wk + kh * KW;
                for (int kw = kw0; kw < kw1; ++kw)
                    acc += widen(__ldg(wr + kw)) * widen(__ldg(xc + r + kw * DW));
            }
            xc += H * W;
            wk += KH * KW;
        }
        y[i] = narrow<T>(acc);
    }
}

// The band kernel: the same forward, one block per (n, g, chunk of KB output channels, band of RB
// output rows, tile of CB output columns: blockIdx.z; one tile = the full width unless that does
// not fit). The input the band reads (HB = (RB-1)*SH + (KH-1)*DH + 1 rows,
// WB = (CB-1)*SW + (KW-1)*DW + 1 columns, zero outside the image: no bounds checks later) of the
// group's Cig channels, and the KB*Cig*KH*KW weights, are staged in shared memory with coalesced
// loads (each input element leaves DRAM / L2 once per block, not KH*KW*KB times); rows of the
// tile are `pitch` elements apart (chosen by the launcher against bank conflicts).
// Threads: TX (a power of two) lanes along ow, blockDim.x / TX "rows" over the (kb, output row)
// pairs; each thread accumulates RX outputs ow = c0 + i*TX in registers, so one broadcast weight
// read feeds RX FMAs, and every lane of a warp reads neighbouring words of shared memory.
// flip = 1 makes it the input gradient of a stride-1 conv: x is gy (Cin = K channels, Cig = Kg
// per group), y is gx (Cout = C, Cog = Cg), padding (K-1)*D - P (may be negative), and the weight
// w[g*Cig + ci, co, :, :] rotated by 180 degrees.
#define BAND_RX 4

// The band kernel's compute: thread (tx, ty) takes the (output channel kk, row) pairs
// q = ty + j*NTY and the columns c0 + i*TX (i < BAND_RX) of the tile; yb points at (n, first
// output channel of the block, oh0, ow0); output channel kk reads the staged input channels of
// its group, kk / kpg (kpg output channels per group in the block). KWC > 0: KW == KWC and DW == 1 known at compile time, so the kw loop unrolls and
// its shared-memory reads take immediate offsets (one read + one FMA per output and tap).
template <typename T, int KWC>
__device__ __forceinline__ void band_rows(const acc_t<T>* xs, const acc_t<T>* ws,
                                          const T* __restrict__ b,
                                          T* __restrict__ yb, int has_bias, int co_first,
                                          int kbn, int kpg, int rows, int cols, int Cig, int HB,
                                          int KH,
                                          int KW_, int SH, int SW, int DH, int DW_, int OH,
                                          int OW, int pitch, int TX, int tx, int ty, int NTY) {
    const int KW = KWC ? KWC : KW_, DW = KWC ? 1 : DW_;
    const int taps = KH * KW;
    for (int q = ty; q < kbn * rows; q += NTY) {
        const int kb = q / rows, r = q - kb * rows;
        const acc_t<T>* wk = ws + kb * Cig * taps;
        const acc_t<T>* xg = xs + (kb / kpg) * Cig * HB * pitch;
        T* yr = yb + (kb * OH + r) * OW;
        const acc_t<T> bias = has_bias ? widen(__ldg(b + co_first + kb)) : acc_t<T>(0);
        for (int c0 = tx; c0 < cols; c0 += TX * BAND_RX) {
            int off[BAND_RX];
            acc_t<T> acc[BAND_RX];
#pragma unroll
            for (int i = 0; i < BAND_RX; ++i) {
                off[i] = min(c0 + i * TX, cols - 1) * SW;   // past the tile: computed, not stored
                acc[i] = bias;
            }
            for (int ci = 0; ci < Cig; ++ci) {
                for (int kh = 0; kh < KH; ++kh) {
                    const acc_t<T>* xr = xg + (ci * HB + r * SH + kh * DH) * pitch;
                    const acc_t<T>* wr = wk + (ci * KH + kh) * KW;
                    if (KWC > 0) {
#pragma unroll
                        for (int kw = 0; kw < KWC; ++kw) {
                            const acc_t<T> wv = wr[kw];
#pragma unroll
                            for (int i = 0; i < BAND_RX; ++i) acc[i] += wv * xr[off[i] + kw];
                        }
                    } else {
                        for (int kw = 0; kw < KW; ++kw) {
                            const acc_t<T> wv = wr[kw];
                            const acc_t<T>* xp = xr + kw * DW;
#pragma unroll
                            for (int i = 0; i < BAND_RX; ++i) acc[i] += wv * xp[off[i]];
                        }
                    }
                }
            }
#pragma unroll
            for (int i = 0; i < BAND_RX; ++i)
                if (c0 + i * TX < cols) yr[c0 + i * TX] = narrow<T>(acc[i]);
        }
    }
}

template <typename T>
HALF_STORAGE __global__ void grouped_band_fwd_kernel(const T* __restrict__ x,
                                                     const T* __restrict__ w,
                                                     const T* __restrict__ b, T* __restrict__ y,
                                                     int has_bias, int flip, int Cin, int H,
                                                     int W, int Cout, int G, int Cig, int Cog,
                                                     int KH, int KW, int SH, int SW, int PH,
                                                     int PW, int DH, int DW, int OH, int OW,
                                                     int KB, int RB, int HB, int WB, int pitch,
                                                     int TX, int CB, int GB) {
    // GB > 1 (small planes, all Cog output channels of a group in the block: KB == Cog): GB
    // consecutive groups per block, whose input and output channels are consecutive too.
    // staged widened (acc_t<T>): a half T is converted once per staged value, not per FMA,
    // and the pitch's bank arithmetic (4-byte words) holds as for float
    DYNAMIC_SHARED(acc_t<T>, smem);
    const int taps = KH * KW;
    acc_t<T>* ws = smem;                            // GB * KB * Cig * taps
    acc_t<T>* xs = smem + GB * KB * Cig * taps;     // GB * Cig * HB * pitch
    const int nkc = (Cog + KB - 1) / KB, ngc = (G + GB - 1) / GB;
    int bid = blockIdx.x;
    const int kc = bid % nkc;
    bid /= nkc;
    const int g0 = (bid % ngc) * GB, n = bid / ngc, gbn = min(GB, G - g0);
    const int co0 = kc * KB, kbn = min(KB, Cog - co0), nout = gbn * kbn;
    const int oh0 = blockIdx.y * RB, rows = min(RB, OH - oh0);
    const int ow0 = blockIdx.z * CB, cols = min(CB, OW - ow0);
    const int tx = threadIdx.x % TX, ty = threadIdx.x / TX, NTY = blockDim.x / TX;

    for (int e = threadIdx.x; e < nout * Cig * taps; e += blockDim.x) {
        const int tap = e % taps, q = e / taps;
        const int ci = q % Cig, kk = q / Cig, gb = kk / kbn;
        const int g = g0 + gb, co = co0 + kk - gb * kbn;
        ws[e] = widen(flip ? __ldg(w + ((g * Cig + ci) * Cog + co) * taps + (taps - 1 - tap))
                           : __ldg(w + ((g * Cog + co) * Cig + ci) * taps + tap));
    }
    const T* xg = x + (n * Cin + g0 * Cig) * H * W;
    const int ih0 = oh0 * SH - PH, iw0 = ow0 * SW - PW;
    for (int q = ty; q < gbn * Cig * HB; q += NTY) {
        const int ci = q / HB, r = q - ci * HB;
        const int ih = ih0 + r;
        const bool row_ok = static_cast<unsigned>(ih) < static_cast<unsigned>(H);
        const int rbase = (ci * H + ih) * W;
        acc_t<T>* sr = xs + q * pitch;
        for (int c = tx; c < WB; c += TX) {
            const int iw = iw0 + c;
            sr[c] = row_ok && static_cast<unsigned>(iw) < static_cast<unsigned>(W)
                        ? widen(__ldg(xg + rbase + iw)) : acc_t<T>(0);
        }
    }
    __syncthreads();

    // the compute loop, with the kw loop unrolled for the common 3/5/7-wide undilated kernels
    const int cf = g0 * Cog + co0;          // output channel cf + kk, kk < nout
    T* yb = y + (n * Cout + cf) * OH * OW + oh0 * OW + ow0;
    if (KW == 3 && DW == 1)
        band_rows<T, 3>(xs, ws, b, yb, has_bias, cf, nout, kbn, rows, cols, Cig, HB, KH, KW,
                        SH, SW, DH, DW, OH, OW, pitch, TX, tx, ty, NTY);
    else if (KW == 5 && DW == 1)
        band_rows<T, 5>(xs, ws, b, yb, has_bias, cf, nout, kbn, rows, cols, Cig, HB, KH, KW,
                        SH, SW, DH, DW, OH, OW, pitch, TX, tx, ty, NTY);
    else if (KW == 7 && DW == 1)
        band_rows<T, 7>(xs, ws, b, yb, has_bias, cf, nout, kbn, rows, cols, Cig, HB, KH, KW,
                        SH, SW, DH, DW, OH, OW, pitch, TX, tx, ty, NTY);
    else
        band_rows<T, 0>(xs, ws, b, yb, has_bias, cf, nout, kbn, rows, cols, Cig, HB, KH, KW,
                        SH, SW, DH, DW, OH, OW, pitch, TX, tx, ty, NTY);
}

template <typename T>
HALF_STORAGE __global__ void grouped_input_bwd_kernel(const T* __restrict__ gy,
                                                      const T* __restrict__ w,
                                                      T* __restrict__ gx, int C, int H, int W,
                                                      int K, int Cg, int Kg, int KH, int KW,
                                                      int SH, int SW, int PH, int PW, int DH,
                                                      int DW, int OH, int OW, int total) {
    // th = ih + PH - kh*DH is kept as (oh, rem) with th = oh*SH + rem, 0 <= rem < SH, and
    // stepped by -DH = -(dqh*SH + drh) per kh: no integer division per tap (same along w).
    const int dqh = DH / SH, drh = DH - dqh * SH, dqw = DW / SW, drw = DW - dqw * SW;
    GRID_LOOP(i, total) {
        int p, ih, iw;
        unravel(i, H, W, p, ih, iw);
        const int c = p % C, n = p / C;
        const int g = c / Cg, cg = c - g * Cg;
        const int taps = KH * KW, wstride = Cg * taps;   // w step from k to k + 1
        const T* gyn = gy + (n * K + g * Kg) * OH * OW;
        const T* wc = w + (g * Kg * Cg + cg) * taps;
        const int oh0 = (ih + PH) / SH, rh0 = ih + PH - oh0 * SH;
        const int ow0 = (iw + PW) / SW, rw0 = iw + PW - ow0 * SW;
        acc_t<T> acc = 0;
        int oh = oh0, rh = rh0;
        for (int kh = 0; kh < KH; ++kh) {
            if (oh < 0) break;                 // th < 0 from here on: th only decreases
            if (rh == 0 && oh < OH) {
                int ow = ow0, rw = rw0;
                for (int kw = 0; kw < KW; ++kw) {
                    if (ow < 0) break;
                    if (rw == 0 && ow < OW) {
                        const T* gp = gyn + oh * OW + ow;
                        const T* wp = wc + kh * KW + kw;
                        for (int j = 0; j < Kg; ++j)
                            acc += widen(__ldg(wp + j * wstride)) * widen(__ldg(gp + j * OH * OW));
                    }
                    ow -= dqw;
                    rw -= drw;
                    if (rw < 0) { rw += SW; --ow; }
                }
            }
            oh -= dqh;
            rh -= drh;
            if (rh < 0) { rh += SH; --oh; }
        }
        gx[i] = narrow<T>(acc);
    }
}

// The weight-grad kernels' end of a pass: sums each of the WG_TAPS accumulators (type A, the
// acc_t of the storage type) over the block (warp shuffles, then across the warps through
// `red`) and writes those of taps t0.. < taps to out[t0 + j], rounded to O (a float partial
// sum, or the result in the storage type). Every thread calls it; it ends with a barrier, so
// `red` may be reused.
template <typename A, typename O>
__device__ __forceinline__ void store_tap_sums(const A (&acc)[WG_TAPS], A (*red)[32], int t0,
                                               int taps, O* __restrict__ out) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
#pragma unroll
    for (int j = 0; j < WG_TAPS; ++j) {
        const A v = warp_sum(acc[j]);
        if (lane == 0) red[j][warp] = v;
    }
    __syncthreads();
    if (threadIdx.x < WG_TAPS && t0 + static_cast<int>(threadIdx.x) < taps) {
        A v = A(0);
        for (int q = 0; q < warps; ++q) v += red[threadIdx.x][q];
        out[t0 + threadIdx.x] = narrow<O>(v);
    }
    __syncthreads();
}

// part[(kc * S + s) * taps + tap], kc = k * Cg + cg: the sum over positions
// [s * chunk, min(P, (s + 1) * chunk)) of the N*OH*OW output positions (P of them), kept in
// acc_t<T>; with S == 1 the sum is the result, written to gw[kc * taps + tap] (part unread).
template <typename T>
__device__ __forceinline__ void store_wg_pass(const acc_t<T> (&acc)[WG_TAPS],
                                              acc_t<T> (*red)[32], int t0, int taps, int kc,
                                              int s, int S, acc_t<T>* __restrict__ part,
                                              T* __restrict__ gw) {
    if (S == 1)   // uniform over the grid
        store_tap_sums(acc, red, t0, taps, gw + kc * taps);
    else
        store_tap_sums(acc, red, t0, taps, part + (kc * S + s) * taps);
}

template <typename T>
HALF_STORAGE __global__ void grouped_weight_bwd_kernel(const T* __restrict__ x,
                                                       const T* __restrict__ gy,
                                                       acc_t<T>* __restrict__ part,
                                                       T* __restrict__ gw, int C, int H, int W,
                                                       int K, int Cg, int Kg, int KH, int KW,
                                                       int SH, int SW, int PH, int PW, int DH,
                                                       int DW, int OH, int OW, int P, int chunk) {
    __shared__ acc_t<T> red[WG_TAPS][32];
    const int kc = blockIdx.x, s = blockIdx.y, S = gridDim.y;
    const int k = kc / Cg, cg = kc - k * Cg;
    const int c = (k / Kg) * Cg + cg;
    const int taps = KH * KW, L = OH * OW;
    const int p0 = s * chunk, p1 = min(P, p0 + chunk);
    for (int t0 = 0; t0 < taps; t0 += WG_TAPS) {
        int dh[WG_TAPS], dw[WG_TAPS];
        acc_t<T> acc[WG_TAPS];
#pragma unroll
        for (int j = 0; j < WG_TAPS; ++j) {
            const int tap = min(t0 + j, taps - 1);  // taps past the end: computed, not stored
            dh[j] = (tap / KW) * DH;
            dw[j] = (tap % KW) * DW;
            acc[j] = 0;
        }
        // position p = (n, oh, ow), advanced by blockDim.x with carries (no division per step)
        const int p = p0 + threadIdx.x;
        int n = p / L, oh = (p - n * L) / OW, ow = p - n * L - oh * OW;
        const int sn = blockDim.x / L, soh = (blockDim.x - sn * L) / OW;
        const int sow = blockDim.x - sn * L - soh * OW;
        for (int q = p; q < p1; q += blockDim.x) {
            const acc_t<T> g = widen(__ldg(gy + ((n * K + k) * OH + oh) * OW + ow));
            const int ih0 = oh * SH - PH, iw0 = ow * SW - PW;
            const T* xc = x + (n * C + c) * H * W;
#pragma unroll
            for (int j = 0; j < WG_TAPS; ++j) {
                const int ih = ih0 + dh[j], iw = iw0 + dw[j];
                if (static_cast<unsigned>(ih) < static_cast<unsigned>(H) &&
                    static_cast<unsigned>(iw) < static_cast<unsigned>(W))
                    acc[j] += g * widen(__ldg(xc + ih * W + iw));
            }
            ow += sow;
            oh += soh;
            n += sn;
            if (ow >= OW) { ow -= OW; ++oh; }
            if (oh >= OH) { oh -= OH; ++n; }
        }
        store_wg_pass(acc, red, t0, taps, kc, s, S, part, gw);
    }
}

// The same partial sums with the input staged in shared memory: block (kc, s) walks the items
// [s * ips, min(N * nb, (s + 1) * ips)), item = (n, band of RB output rows; nb bands per image),
// staging for each the zero-padded input rows of channel c that the band reads (HB rows, WB
// columns, `pitch` apart) with coalesced loads; then thread (tx, ty) takes the positions
// (oh0 + ty + i*NTY, tx + j*TX), reads gy once (coalesced) and adds g * xs[...] to WG_TAPS
// register accumulators, one shared-memory read + FMA per tap, no bounds checks (the padding is
// in the tile; x staged widened to acc_t<T>, as in the forward band kernel). With S > 1 the
// last block of each pair also does the final sum (no second launch); `counters` (K*Cg zeros)
// is left all zeros again.
template <typename T>
HALF_STORAGE __global__ void grouped_weight_band_bwd_kernel(
    const T* __restrict__ x, const T* __restrict__ gy, acc_t<T>* __restrict__ part,
    T* __restrict__ gw, unsigned int* __restrict__ counters, int N, int C, int H, int W, int K,
    int Cg, int Kg, int KH, int KW, int SH, int SW, int PH, int PW, int DH, int DW, int OH,
    int OW, int RB, int HB, int WB, int pitch, int TX, int ips) {
    DYNAMIC_SHARED(acc_t<T>, xs);
    __shared__ acc_t<T> red[WG_TAPS][32];
    const int kc = blockIdx.x, s = blockIdx.y, S = gridDim.y;
    const int k = kc / Cg, cg = kc - k * Cg;
    const int c = (k / Kg) * Cg + cg;
    const int taps = KH * KW, nb = (OH + RB - 1) / RB;
    const int it0 = s * ips, it1 = min(N * nb, it0 + ips);
    const int tx = threadIdx.x % TX, ty = threadIdx.x / TX, NTY = blockDim.x / TX;
    for (int t0 = 0; t0 < taps; t0 += WG_TAPS) {
        int toff[WG_TAPS];
        acc_t<T> acc[WG_TAPS];
#pragma unroll
        for (int j = 0; j < WG_TAPS; ++j) {
            const int tap = min(t0 + j, taps - 1);  // taps past the end: computed, not stored
            toff[j] = (tap / KW) * DH * pitch + (tap % KW) * DW;
            acc[j] = 0;
        }
        for (int it = it0; it < it1; ++it) {
            const int n = it / nb, oh0 = (it - n * nb) * RB, rows = min(RB, OH - oh0);
            const int ih0 = oh0 * SH - PH;
            const T* xc = x + (n * C + c) * H * W;
            __syncthreads();                 // the previous item's reads of xs are done
            for (int q = ty; q < HB; q += NTY) {
                const int ih = ih0 + q;
                const bool row_ok = static_cast<unsigned>(ih) < static_cast<unsigned>(H);
                for (int cc = tx; cc < WB; cc += TX) {
                    const int iw = cc - PW;
                    xs[q * pitch + cc] = row_ok && static_cast<unsigned>(iw) <
                                                       static_cast<unsigned>(W)
                                             ? widen(__ldg(xc + ih * W + iw))
                                             : acc_t<T>(0);
                }
            }
            __syncthreads();
            for (int r = ty; r < rows; r += NTY) {
                const T* gr = gy + ((n * K + k) * OH + oh0 + r) * OW;
                const acc_t<T>* xr = xs + r * SH * pitch;
                for (int ow = tx; ow < OW; ow += TX) {
                    const acc_t<T> g = widen(__ldg(gr + ow));
                    const acc_t<T>* xp = xr + ow * SW;
#pragma unroll
                    for (int j = 0; j < WG_TAPS; ++j) acc[j] += g * xp[toff[j]];
                }
            }
        }
        store_wg_pass(acc, red, t0, taps, kc, s, S, part, gw);
    }
    if (S > 1) {
        // The last of the S blocks of pair kc (counted with an atomic) sums the S partials in
        // slice order (deterministic) and resets its counter to 0 for the next launch.
        __shared__ bool last;
        __threadfence();   // this block's partials are visible device-wide before the count
        __syncthreads();
        if (threadIdx.x == 0) last = atomicAdd(counters + kc, 1u) == static_cast<unsigned>(S - 1);
        __syncthreads();
        if (last) {
            for (int t = threadIdx.x; t < taps; t += blockDim.x) {
                const volatile acc_t<T>* p = part + kc * S * taps + t;   // not through L1
                acc_t<T> v = 0;
                for (int q = 0; q < S; ++q) v += p[q * taps];
                gw[kc * taps + t] = narrow<T>(v);
            }
            if (threadIdx.x == 0) counters[kc] = 0u;
        }
    }
}

// gw[i] = sum_s part[(kc * S + s) * taps + tap], i = kc * taps + tap, in a fixed order.
template <typename T>
HALF_STORAGE __global__ void grouped_weight_reduce_bwd_kernel(
    const acc_t<T>* __restrict__ part, T* __restrict__ gw, int S, int taps, int total) {
    GRID_LOOP(i, total) {
        const int kc = i / taps, tap = i - kc * taps;
        const acc_t<T>* p = part + kc * S * taps + tap;
        acc_t<T> acc = 0;
        for (int s = 0; s < S; ++s) acc += p[s * taps];
        gw[i] = narrow<T>(acc);
    }
}
