// softmax.cu -- softmax, log-softmax and fused cross-entropy, forward and backward.
//
// Math. A row x_0..x_{L-1} (along the softmax axis):
//   softmax      y_i = exp(x_i - m) / s,   log-softmax y_i = (x_i - m) - log s,
//   m = max_i x_i, s = sum_i exp(x_i - m), found in ONE pass by the online rule of Milakov &
//   Gimelshein (2018): a running (m, s) takes x as  x > m ? (x, s exp(m - x) + 1) : (m, s +
//   exp(x - m)), and two partial states merge the same way, so each thread folds its slice and
//   the group merges by shuffles / shared memory. -inf elements add nothing (masked rows work).
//   backward: softmax gx = gy y - y sum(gy y); log-softmax gx = gy - exp(y) sum(gy).
//   cross-entropy (rows of logits x (M, C), class t_r, weights w (or 1), smoothing e):
//   loss_r = (1 - e) w_t (lse_r - x_rt) + e / C (wsum lse_r - sum_c w_c x_rc), 0 if t_r is
//   ignore_index; gx_rc = g_r (p_rc qsum_r - q_rc), p = exp(x - lse), q_rc = e / C w_c +
//   (1 - e) w_t [c == t_r], qsum_r = (1 - e) w_t + e / C wsum (all zero on ignored rows).
//
// Index mapping. An input of any shape is seen as (outer, L, inner), the softmax axis in the
// middle, C-contiguous, so element (o, i, j) is at (o L + i) inner + j: no transpose.
//  * *_rows_* kernels (inner == 1, and the cross-entropy rows): a GROUP of `group` threads owns
//    one row (group a power of two: 1..32 lanes of one warp, merged by xor shuffles, for rows up
//    to ~1024; or the whole block for long rows, merged through 32 shared slots). Lane k of the
//    group reads elements k, k + group, ... : consecutive lanes -> consecutive addresses.
//    Launch: block 256 (or `group` threads when group > 32), grid ceil(M / rows_per_block).
//  * *_cols_* kernels (inner > 1, e.g. softmax over the channels of NCHW): a 2-D block (bx, by);
//    threadIdx.x walks bx consecutive columns j (coalesced), threadIdx.y splits the axis L in
//    by interleaved slices whose states merge by a shared-memory tree over y (by = 1: one thread
//    per column when L is short). Launch: grid outer * ceil(inner / bx), dynamic shared memory
//    2 bx by sizeof(T) (forward) or bx by sizeof(T) (backward).
//  * ce_bwd is element-wise given lse: the rows mapping without a reduction.
//
// Expected bound: memory. Forward reads x twice (the second read of a row mostly from L1/L2)
// and writes y: 8-12 bytes per float element; backward reads y and gy twice, writes gx;
// cross-entropy forward reads x once (+ w from cache), backward reads x, writes gx.
// Blocks have up to 1024 threads (long rows, long axes): every kernel is __launch_bounds__(1024),
// so ptxas keeps it within 64 registers a thread (a 1024-thread block fits an SM's 64 K).
// Float rows keep (m, s) in float (softmax) or s in double (cross-entropy, whose lse and loss
// are float64 as in the CPU contract); exp/log are the accurate expf/logf, not __expf.
// float16 / bfloat16 (half.cuh): every kernel has half instances, which read and write T and
// keep every state, sum and product in float (acc_t<T>; F below), rounding each output once;
// the dynamic shared memory of the cols kernels holds F values.
#include "../cuda/common.cuh"
#include "../cuda/half.cuh"

__device__ __forceinline__ float sm_log(float v) { return logf(v); }
__device__ __forceinline__ double sm_log(double v) { return log(v); }

// Fold one element into the running state (m, s). NaN poisons s (the row comes out NaN), and so
// does +inf, as in the two-pass sum: its own term exp(v - m) is exp(inf - inf), not 1.
template <typename T, typename A>
__device__ __forceinline__ void ms_push(T& m, A& s, T v) {
    if (v > m) {
        s = s * A(exp_t(T(m - v))) + A(T(1) + (v - v));   // v - v: 0, or NaN for v = +inf
        m = v;
    } else if (v != neg_inf<T>()) {
        s += A(exp_t(T(v - m)));
    }
}

// Merge the state (m2, s2) into (m, s); bitwise symmetric, so every lane of a butterfly agrees.
template <typename T, typename A>
__device__ __forceinline__ void ms_merge(T& m, A& s, T m2, A s2) {
    if (m2 > m) {
        s = s * A(exp_t(T(m - m2))) + s2;
        m = m2;
    } else if (s2 != A(0)) {
        s = s + s2 * A(exp_t(T(m2 - m)));
    }
}

// Butterfly merge over aligned groups of `width` lanes (a power of two <= 32); all 32 lanes call.
template <typename T, typename A>
__device__ __forceinline__ void warp_merge(T& m, A& s, int width) {
    for (int o = width >> 1; o > 0; o >>= 1) {
        const T m2 = __shfl_xor_sync(0xffffffffu, m, o);
        const A s2 = __shfl_xor_sync(0xffffffffu, s, o);
        ms_merge(m, s, m2, s2);
    }
}

template <typename A>
__device__ __forceinline__ A group_sum(A v, int width) {
    for (int o = width >> 1; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Merge over the whole block (blockDim.x a multiple of 32); every thread gets the result.
// Ends with a barrier, so the 32-slot scratch arrays may be reused.
template <typename T, typename A>
__device__ __forceinline__ void block_merge(T& m, A& s, T* sm, A* ss) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    warp_merge(m, s, 32);
    if (lane == 0) {
        sm[warp] = m;
        ss[warp] = s;
    }
    __syncthreads();
    m = lane < warps ? sm[lane] : neg_inf<T>();
    s = lane < warps ? ss[lane] : A(0);
    warp_merge(m, s, 32);
    __syncthreads();
}

// Merge (m, s) over a row's group: its lanes of one warp, or the whole block (group > 32).
template <typename T, typename A>
__device__ __forceinline__ void group_merge(T& m, A& s, int group, T* sm, A* ss) {
    if (group > 32) block_merge(m, s, sm, ss);
    else warp_merge(m, s, group);
}

// The (m, s) state of one row of X (its elements widened to T), merged over its group (see the
// header).
template <typename X, typename T, typename A>
__device__ __forceinline__ void row_state(const X* __restrict__ xr, int n, int k, int group,
                                          T& m, A& s, T* sm, A* ss) {
    m = neg_inf<T>();
    s = A(0);
    for (int i = k; i < n; i += group) ms_push(m, s, static_cast<T>(widen(xr[i])));
    group_merge(m, s, group, sm, ss);
}

// Sum over a row's group (see row_state); every thread of the group gets it.
template <typename A>
__device__ __forceinline__ A row_sum(A v, int group, A* scratch) {
    return group > 32 ? block_sum(v, scratch) : group_sum(v, group);
}

// The row of a rows-kernel thread and its lane k in the row's group; n = L elements from
// `base`, or n = 0 past the last row (those threads still reach every barrier and shuffle).
struct RowSlice {
    int row, k, n;
    bool valid;
    long long base;
};

__device__ __forceinline__ RowSlice row_slice(int M, int L, int group) {
    RowSlice r;
    r.row = blockIdx.x * (blockDim.x / group) + threadIdx.x / group;
    r.k = threadIdx.x & (group - 1);
    r.valid = r.row < M;
    r.n = r.valid ? L : 0;
    r.base = r.valid ? static_cast<long long>(r.row) * L : 0;
    return r;
}

// The column j of a cols-kernel thread: n = L elements `inner` apart from `base` (n = 0 past
// the end, as for the rows).
struct ColSlice {
    int n;
    long long base;
};

__device__ __forceinline__ ColSlice col_slice(int outer, int L, int inner) {
    const int tiles = (inner + blockDim.x - 1) / blockDim.x;
    const int o = blockIdx.x / tiles;
    const int j = (blockIdx.x - o * tiles) * blockDim.x + threadIdx.x;
    const bool valid = o < outer && j < inner;
    return ColSlice{valid ? L : 0, valid ? static_cast<long long>(o) * L * inner + j : 0};
}

// A tree over threadIdx.y (blockDim.y a power of two) of per-thread states kept in shared
// memory at slot threadIdx.y * blockDim.x + threadIdx.x: at each level the lower half calls
// fold(me, other), which merges slot `other` into the thread's state and stores it at `me`.
// Afterwards slot threadIdx.x holds the column's total. Starts and ends with a barrier.
template <typename F>
__device__ __forceinline__ void tree_over_y(F fold) {
    const int me = threadIdx.y * blockDim.x + threadIdx.x;
    __syncthreads();
    for (int h = blockDim.y >> 1; h > 0; h >>= 1) {
        if (static_cast<int>(threadIdx.y) < h) fold(me, me + h * blockDim.x);
        __syncthreads();
    }
}

// ----------------------------------------------------------------------------------------------
// softmax / log-softmax over the last axis: x, y (M, L).
template <typename T>
HALF_STORAGE __global__ void __launch_bounds__(1024, 1)
softmax_rows_fwd_kernel(const T* __restrict__ x, T* __restrict__ y, int M, int L, int group,
                        int log_mode) {
    typedef acc_t<T> F;
    __shared__ F red_m[32];
    __shared__ F red_s[32];
    const RowSlice r = row_slice(M, L, group);
    const int k = r.k, n = r.n;
    const T* xr = x + r.base;
    T* yr = y + r.base;
    F m, s;
    row_state(xr, n, k, group, m, s, red_m, red_s);
    if (log_mode) {
        const F ls = sm_log(s);
        for (int i = k; i < n; i += group) yr[i] = narrow<T>((widen(xr[i]) - m) - ls);
    } else {
        for (int i = k; i < n; i += group) yr[i] = narrow<T>(exp_t(widen(xr[i]) - m) / s);
    }
}

// softmax / log-softmax over a middle axis: x, y (outer, L, inner), inner > 1.
template <typename T>
HALF_STORAGE __global__ void __launch_bounds__(1024, 1)
softmax_cols_fwd_kernel(const T* __restrict__ x, T* __restrict__ y, int outer, int L, int inner,
                        int log_mode) {
    typedef acc_t<T> F;
    DYNAMIC_SHARED(F, red);
    const int bx = blockDim.x, by = blockDim.y;
    const ColSlice c = col_slice(outer, L, inner);
    const int n = c.n;
    const T* xc = x + c.base;
    T* yc = y + c.base;
    F m = neg_inf<F>(), s = F(0);
    for (int i = threadIdx.y; i < n; i += by)
        ms_push(m, s, widen(xc[static_cast<long long>(i) * inner]));
    if (by > 1) {
        F* rm = red;
        F* rs = red + bx * by;
        rm[threadIdx.y * bx + threadIdx.x] = m;
        rs[threadIdx.y * bx + threadIdx.x] = s;
        tree_over_y([&](int me, int other) {
            ms_merge(m, s, rm[other], rs[other]);
            rm[me] = m;
            rs[me] = s;
        });
        m = rm[threadIdx.x];
        s = rs[threadIdx.x];
    }
    if (log_mode) {
        const F ls = sm_log(s);
        for (int i = threadIdx.y; i < n; i += by) {
            const long long e = static_cast<long long>(i) * inner;
            yc[e] = narrow<T>((widen(xc[e]) - m) - ls);
        }
    } else {
        for (int i = threadIdx.y; i < n; i += by) {
            const long long e = static_cast<long long>(i) * inner;
            yc[e] = narrow<T>(exp_t(widen(xc[e]) - m) / s);
        }
    }
}

// Backward over the last axis: y (the forward's output), gy, gx (M, L).
template <typename T>
HALF_STORAGE __global__ void __launch_bounds__(1024, 1)
softmax_rows_bwd_kernel(const T* __restrict__ y, const T* __restrict__ gy, T* __restrict__ gx,
                        int M, int L, int group, int log_mode) {
    typedef acc_t<T> F;
    __shared__ F scratch[32];
    const RowSlice r = row_slice(M, L, group);
    const int k = r.k, n = r.n;
    const T* yr = y + r.base;
    const T* gr = gy + r.base;
    T* gxr = gx + r.base;
    F acc = F(0);
    if (log_mode) {
        for (int i = k; i < n; i += group) acc += widen(gr[i]);
    } else {
        for (int i = k; i < n; i += group) acc += widen(gr[i]) * widen(yr[i]);
    }
    acc = row_sum(acc, group, scratch);
    if (log_mode) {
        for (int i = k; i < n; i += group)
            gxr[i] = narrow<T>(widen(gr[i]) - exp_t(widen(yr[i])) * acc);
    } else {
        for (int i = k; i < n; i += group) {
            const F yi = widen(yr[i]);
            gxr[i] = narrow<T>(widen(gr[i]) * yi - yi * acc);
        }
    }
}

// Backward over a middle axis: (outer, L, inner), inner > 1.
template <typename T>
HALF_STORAGE __global__ void __launch_bounds__(1024, 1)
softmax_cols_bwd_kernel(const T* __restrict__ y, const T* __restrict__ gy, T* __restrict__ gx,
                        int outer, int L, int inner, int log_mode) {
    typedef acc_t<T> F;
    DYNAMIC_SHARED(F, red);
    const int bx = blockDim.x, by = blockDim.y;
    const ColSlice c = col_slice(outer, L, inner);
    const int n = c.n;
    const T* yc = y + c.base;
    const T* gc = gy + c.base;
    T* gxc = gx + c.base;
    F acc = F(0);
    for (int i = threadIdx.y; i < n; i += by) {
        const long long e = static_cast<long long>(i) * inner;
        acc += log_mode ? widen(gc[e]) : widen(gc[e]) * widen(yc[e]);
    }
    if (by > 1) {
        red[threadIdx.y * bx + threadIdx.x] = acc;
        tree_over_y([&](int me, int other) {
            acc += red[other];
            red[me] = acc;
        });
        acc = red[threadIdx.x];
    }
    for (int i = threadIdx.y; i < n; i += by) {
        const long long e = static_cast<long long>(i) * inner;
        const F yi = widen(yc[e]), gi = widen(gc[e]);
        gxc[e] = narrow<T>(log_mode ? gi - exp_t(yi) * acc : gi * yi - yi * acc);
    }
}

// ----------------------------------------------------------------------------------------------
// Fused cross-entropy forward: x (M, C), t (M,), w (C,) float64 (read only when has_w), wsum (1,)
// = sum_c w_c (read only when has_w) -> loss (M,), lse (M,) float64. Rows mapping as above.
template <typename T>
HALF_STORAGE __global__ void __launch_bounds__(1024, 1)
ce_fwd_kernel(const T* __restrict__ x, const long long* __restrict__ t,
              const double* __restrict__ w, const double* __restrict__ wsum,
              double* __restrict__ loss, double* __restrict__ lse, int M, int C,
              long long ignore_index, double smooth, int has_w, int group) {
    typedef acc_t<T> F;
    __shared__ F red_m[32];
    __shared__ double red_s[32];
    const RowSlice r = row_slice(M, C, group);
    const int row = r.row, k = r.k, n = r.n;
    const T* xr = x + r.base;
    // one pass over the row: the online (m, s) and, with smoothing, wx = sum_c w_c x_c
    F m = neg_inf<F>();
    double s = 0.0, wx = 0.0;
    const bool smoothed = smooth != 0.0;
    for (int i = k; i < n; i += group) {
        const F v = widen(xr[i]);
        ms_push(m, s, v);
        if (smoothed) wx += (has_w ? w[i] : 1.0) * static_cast<double>(v);
    }
    group_merge(m, s, group, red_m, red_s);
    if (smoothed) wx = row_sum(wx, group, red_s);
    if (r.valid && k == 0) {
        const double l = static_cast<double>(m) + log(s);
        const long long tr = t[row];
        double out = 0.0;
        if (tr != ignore_index) {
            const double wt = has_w ? w[tr] : 1.0;
            out = (1.0 - smooth) * wt * (l - static_cast<double>(widen(xr[tr])));
            if (smooth != 0.0) {
                const double ws = has_w ? wsum[0] : static_cast<double>(C);
                out += smooth / C * (ws * l - wx);
            }
        }
        loss[row] = out;
        lse[row] = l;
    }
}

// Fused cross-entropy backward: gx (M, C) from x, t, w, wsum (as in ce_fwd_kernel), the
// forward's lse (M,) and the row grads g (M,), both float64. Element-wise (no reduction).
template <typename T>
HALF_STORAGE __global__ void __launch_bounds__(1024, 1)
ce_bwd_kernel(const T* __restrict__ x, const long long* __restrict__ t,
              const double* __restrict__ w, const double* __restrict__ wsum,
              const double* __restrict__ lse, const double* __restrict__ g, T* __restrict__ gx,
              int M, int C, long long ignore_index, double smooth, int has_w, int group) {
    typedef acc_t<T> F;
    const RowSlice r = row_slice(M, C, group);
    if (!r.valid) return;  // no barriers nor shuffles below
    const int row = r.row, k = r.k;
    const T* xr = x + r.base;
    T* gr = gx + r.base;
    // An ignored row has g = 0 but is still computed, p * 0: NaN where its p is NaN, as the
    // CPU's and PyTorch's (the log-softmax backward multiplies by the zero gradient).
    const bool ignored = t[row] == ignore_index;
    const long long tr = ignored ? 0 : t[row];
    const double gv = ignored ? 0.0 : g[row], l = lse[row], e = smooth / C;
    const double wt = (1.0 - smooth) * (has_w ? w[tr] : 1.0);
    const double scale = gv * (wt + e * (has_w ? wsum[0] : static_cast<double>(C)));
    const double ge = gv * e;
    for (int i = k; i < C; i += group) {
        const F p = exp_t(static_cast<F>(static_cast<double>(widen(xr[i])) - l));
        double v = static_cast<double>(p) * scale - ge * (has_w ? w[i] : 1.0);
        if (i == tr) v -= gv * wt;
        gr[i] = narrow<T>(static_cast<F>(v));   // half: through float, as the float32 path
    }
}
