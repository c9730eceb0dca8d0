// activation.cu -- activations and fused bias + activation (the activation kernel family).
//
// Activations (z is x, or x + b[c]); kernels/activation/cuda.py reads the codes from the
// ACT_* defines below:
//   0 identity  z                                        d = 1
//   1 relu      max(z, 0), NaN kept                      d = z > 0 (a select in the backward)
//   2 leaky     z > 0 ? z : s z                          d = z > 0 ? 1 : s
//   3 gelu      z Phi(z), Phi(z) = erfc(-z / sqrt 2) / 2 d = Phi(z) + z phi(z)
//   4 gelu_tanh z (1 + tanh u) / 2 = z sigmoid(2u), u = sqrt(2/pi) (z + 0.044715 z^3)
//                                                        d = s + 2 z s (1 - s) u', s = sigmoid(2u)
//   (erfc and sigmoid(2u) avoid the cancellation of 1 + erf and 1 + tanh for z << 0)
//   5 sigmoid   1 / (1 + e^-z) (stable for every z)      d = s (1 - s)
//   6 silu      z s                                      d = s (1 + z (1 - s))
//   7 tanh      t                                        d = 1 - t^2
//   8 mish      z tanh(sp), sp = softplus(z) (= z above 20) d = t + z s (1 - t^2), t = tanh(sp)
//   9 hardswish z min(max(z + 3, 0), 6) / 6            d = 0 up to -3, z / 3 + 1/2 below 3, else 1
// Each kernel switches on `act` once per thread and runs a loop specialised for it.
//
// Index mapping and launch shapes:
//  * act_fwd/act_bwd: flat, grid-stride; when every pointer is 16-byte aligned a thread moves
//    one 16-byte pack (4 floats / 2 doubles) per step, the tail element by element.
//    Block 256, grid min(ceil(packs / 256), 16 * #SMs).
//  * bias_act_fwd: x seen as rows of length L; channel c = r % C for the (N*C, I) view of an
//    (N, C, I) input (I > 1), c = column for the (N, C) view (I == 1). 2-D grid-stride: threads
//    x over columns (coalesced), y over rows; block (bx, 256 / bx), bx the power of two >= the
//    columns (32..256). Rows of a multiple of 16 bytes with aligned pointers move 16-byte packs
//    (a column is then a pack: L / V of them); other rows go element by element.
//  * bias_act_bwd (I > 1): block per (channel c = blockIdx.x, chunk = blockIdx.y); the block
//    walks the N*I elements of its channel (consecutive threads -> consecutive i: coalesced),
//    writes gx = gy * act'(x + b[c]) and one float64 partial sum of gx to part[chunk, c]; the
//    caller sums the (chunks, C) partials. No atomics: deterministic.
//  * bias_act_bwd_nc (I == 1, x (N, C)): block (32, 8): threadIdx.x -> channel (coalesced),
//    threadIdx.y + chunk -> rows; the 8 row partials are summed in shared memory.
// Expected bound: memory. Bytes per element (float32): act fwd 8, act bwd 12, bias_act fwd 8,
// bias_act bwd 16 (x, gy read, gx written; partials are C * chunks doubles); half those for
// float16 / bfloat16, whose instances (half.cuh) load half, compute in float and store half
// (a 16-byte pack is then 8 elements); the gb partials sum the unrounded float gx.
#include "../cuda/common.cuh"
#include "../cuda/half.cuh"

#define ACT_IDENTITY 0
#define ACT_RELU 1
#define ACT_LEAKY_RELU 2
#define ACT_GELU 3
#define ACT_GELU_TANH 4
#define ACT_SIGMOID 5
#define ACT_SILU 6
#define ACT_TANH 7
#define ACT_MISH 8
#define ACT_HARDSWISH 9

// --- math in T's own precision -------------------------------------------------------------
__device__ __forceinline__ float ew_erfc(float v) { return erfcf(v); }
__device__ __forceinline__ double ew_erfc(double v) { return erfc(v); }
__device__ __forceinline__ float ew_tanh(float v) { return tanhf(v); }
__device__ __forceinline__ double ew_tanh(double v) { return tanh(v); }
__device__ __forceinline__ float ew_abs(float v) { return fabsf(v); }
__device__ __forceinline__ double ew_abs(double v) { return fabs(v); }
__device__ __forceinline__ float ew_log1p(float v) { return log1pf(v); }
__device__ __forceinline__ double ew_log1p(double v) { return log1p(v); }

template <typename T>
__device__ __forceinline__ T ew_sigmoid(T z) {
    const T e = exp_t(-ew_abs(z));  // in (0, 1]: no overflow
    const T r = T(1) / (T(1) + e);
    return z >= T(0) ? r : e * r;
}

// tanh(softplus(z)), softplus(z) = z above 20 as PyTorch's (log1p(e^z) is z there anyway)
template <typename T>
__device__ __forceinline__ T tanh_softplus(T z) {
    return ew_tanh(z > T(20) ? z : ew_log1p(exp_t(z)));
}

template <int ACT, typename T>
__device__ __forceinline__ T act_f(T z, T slope) {
    if constexpr (ACT == ACT_RELU) {
        return z <= T(0) ? T(0) : z;  // NaN stays NaN, as PyTorch's
    } else if constexpr (ACT == ACT_LEAKY_RELU) {
        return z > T(0) ? z : z * slope;
    } else if constexpr (ACT == ACT_GELU) {
        return T(0.5) * z * ew_erfc(z * T(-0.70710678118654752440));  // no 1 + erf cancellation
    } else if constexpr (ACT == ACT_GELU_TANH) {
        const T u = T(0.79788456080286535588) * (z + T(0.044715) * z * z * z);
        return z * ew_sigmoid(T(2) * u);  // (1 + tanh u) / 2 = sigmoid(2u): no cancellation
    } else if constexpr (ACT == ACT_SIGMOID) {
        return ew_sigmoid(z);
    } else if constexpr (ACT == ACT_SILU) {
        return z * ew_sigmoid(z);
    } else if constexpr (ACT == ACT_TANH) {
        return ew_tanh(z);
    } else if constexpr (ACT == ACT_MISH) {
        return z * tanh_softplus(z);
    } else if constexpr (ACT == ACT_HARDSWISH) {
        const T r = z + T(3);  // clamped to [0, 6]; NaN stays NaN (every comparison is false)
        return z * (r < T(0) ? T(0) : (r > T(6) ? T(6) : r)) / T(6);
    } else {
        return z;
    }
}

// The derivative act'(z) (for relu also right when given the output y, as y > 0 iff z > 0).
template <int ACT, typename T>
__device__ __forceinline__ T act_d(T z, T slope) {
    if constexpr (ACT == ACT_RELU) {
        return z <= T(0) ? T(0) : T(1);
    } else if constexpr (ACT == ACT_LEAKY_RELU) {
        return z > T(0) ? T(1) : slope;
    } else if constexpr (ACT == ACT_GELU) {
        return T(0.5) * ew_erfc(z * T(-0.70710678118654752440)) +
               z * T(0.39894228040143267794) * exp_t(T(-0.5) * z * z);
    } else if constexpr (ACT == ACT_GELU_TANH) {
        // s = sigmoid(2u) = (1 + t) / 2, 1 - t^2 = 4 s (1 - s)
        const T u = T(0.79788456080286535588) * (z + T(0.044715) * z * z * z);
        const T zc = ew_abs(z) < T(1e4) ? z : T(1e4);  // u' without overflow: s (1 - s) is 0
        const T du = T(0.79788456080286535588) * (T(1) + T(3.0 * 0.044715) * zc * zc);
        const T s = ew_sigmoid(T(2) * u);
        return s + T(2) * z * s * (T(1) - s) * du;
    } else if constexpr (ACT == ACT_SIGMOID) {
        const T s = ew_sigmoid(z);
        return s * (T(1) - s);
    } else if constexpr (ACT == ACT_SILU) {
        const T s = ew_sigmoid(z);
        return s * (T(1) + z * (T(1) - s));
    } else if constexpr (ACT == ACT_TANH) {
        const T t = ew_tanh(z);
        return T(1) - t * t;
    } else if constexpr (ACT == ACT_MISH) {
        const T t = tanh_softplus(z);
        return t + z * ew_sigmoid(z) * (T(1) - t * t);
    } else if constexpr (ACT == ACT_HARDSWISH) {  // PyTorch's pieces: (-inf, -3], [3, inf), and
        return z <= T(-3) ? T(0) : (z >= T(3) ? T(1) : z / T(3) + T(0.5));  // the rest (NaN too)
    } else {
        return T(1);
    }
}

// gy * act'(z); ReLU and Hardswish select instead (PyTorch's backward: 0 where the slope is 0,
// even for a NaN gy).
template <int ACT, typename T>
__device__ __forceinline__ T act_grad(T z, T g, T slope) {
    if constexpr (ACT == ACT_RELU) {
        return z <= T(0) ? T(0) : g;
    } else if constexpr (ACT == ACT_HARDSWISH) {
        return z <= T(-3) ? T(0) : (z >= T(3) ? g : g * (z / T(3) + T(0.5)));
    } else {
        return g * act_d<ACT>(z, slope);
    }
}

// Run F<ACT>::run(args...) with ACT the runtime code `act` (a uniform value: no divergence).
#define DISPATCH_ACT(act, CALL)                              \
    switch (act) {                                           \
        case ACT_RELU: CALL(ACT_RELU); break;                \
        case ACT_LEAKY_RELU: CALL(ACT_LEAKY_RELU); break;    \
        case ACT_GELU: CALL(ACT_GELU); break;                \
        case ACT_GELU_TANH: CALL(ACT_GELU_TANH); break;      \
        case ACT_SIGMOID: CALL(ACT_SIGMOID); break;          \
        case ACT_SILU: CALL(ACT_SILU); break;                \
        case ACT_TANH: CALL(ACT_TANH); break;                 \
        case ACT_MISH: CALL(ACT_MISH); break;                 \
        case ACT_HARDSWISH: CALL(ACT_HARDSWISH); break;       \
        default: CALL(ACT_IDENTITY); break;                  \
    }

// --- 16-byte packs ----------------------------------------------------------------------------
template <typename T>
struct alignas(16) Pack {
    T v[16 / sizeof(T)];
};


// --- activation forward / backward (flat) ------------------------------------------------------
template <int ACT, typename T>
__device__ __forceinline__ void act_fwd_loop(const T* __restrict__ x, T* __restrict__ y, int n,
                                             acc_t<T> slope) {
    constexpr int V = 16 / sizeof(T);
    const int stride = blockDim.x * gridDim.x;
    int done = 0;
    if (aligned_to(x, 16) && aligned_to(y, 16)) {
        const int packs = n / V;
        const Pack<T>* xv = reinterpret_cast<const Pack<T>*>(x);
        Pack<T>* yv = reinterpret_cast<Pack<T>*>(y);
        GRID_LOOP(p, packs) {
            Pack<T> a = xv[p];
#pragma unroll
            for (int k = 0; k < V; ++k) a.v[k] = narrow<T>(act_f<ACT>(widen(a.v[k]), slope));
            yv[p] = a;
        }
        done = packs * V;
    }
    // the tail after the packs (all of it when unaligned), in 64 bits: done + tid, or i + stride
    // near n, could pass INT_MAX
    for (long long i = blockIdx.x * blockDim.x + threadIdx.x; i < n - done; i += stride)
        y[done + i] = narrow<T>(act_f<ACT>(widen(x[done + i]), slope));
}

template <int ACT, typename T>
__device__ __forceinline__ void act_bwd_loop(const T* __restrict__ x, const T* __restrict__ gy,
                                             T* __restrict__ gx, int n, acc_t<T> slope) {
    constexpr int V = 16 / sizeof(T);
    const int stride = blockDim.x * gridDim.x;
    int done = 0;
    if (aligned_to(x, 16) && aligned_to(gy, 16) && aligned_to(gx, 16)) {
        const int packs = n / V;
        const Pack<T>* xv = reinterpret_cast<const Pack<T>*>(x);
        const Pack<T>* gv = reinterpret_cast<const Pack<T>*>(gy);
        Pack<T>* ov = reinterpret_cast<Pack<T>*>(gx);
        GRID_LOOP(p, packs) {
            const Pack<T> a = xv[p];
            Pack<T> g = gv[p];
#pragma unroll
            for (int k = 0; k < V; ++k)
                g.v[k] = narrow<T>(act_grad<ACT>(widen(a.v[k]), widen(g.v[k]), slope));
            ov[p] = g;
        }
        done = packs * V;
    }
    for (long long i = blockIdx.x * blockDim.x + threadIdx.x; i < n - done; i += stride)
        gx[done + i] = narrow<T>(act_grad<ACT>(widen(x[done + i]), widen(gy[done + i]), slope));
}

// y = act(x), n elements.
template <typename T>
HALF_STORAGE __global__ void act_fwd_kernel(const T* __restrict__ x, T* __restrict__ y, int n,
                                            int act, acc_t<T> slope) {
#define CALL(A) act_fwd_loop<A, T>(x, y, n, slope)
    DISPATCH_ACT(act, CALL)
#undef CALL
}

// gx = gy * act'(x) (relu: x may be the forward's output).
template <typename T>
HALF_STORAGE __global__ void act_bwd_kernel(const T* __restrict__ x, const T* __restrict__ gy,
                                            T* __restrict__ gx, int n, int act,
                                            acc_t<T> slope) {
#define CALL(A) act_bwd_loop<A, T>(x, gy, gx, n, slope)
    DISPATCH_ACT(act, CALL)
#undef CALL
}

// --- fused bias + activation -------------------------------------------------------------------
template <int ACT, typename T>
__device__ __forceinline__ void bias_act_fwd_loop(const T* __restrict__ x,
                                                  const T* __restrict__ b, T* __restrict__ y,
                                                  int R, int L, int C, int chan_is_col,
                                                  acc_t<T> slope) {
    typedef acc_t<T> A;
    constexpr int V = 16 / sizeof(T);
    // 16-byte packs when every row starts aligned (rows of a multiple of V elements)
    const bool vec = L % V == 0 && aligned_to(x, 16) && aligned_to(y, 16) &&
                     (!chan_is_col || aligned_to(b, 16));
    const int c0 = blockIdx.x * blockDim.x + threadIdx.x, cs = blockDim.x * gridDim.x;
    for (int r = blockIdx.y * blockDim.y + threadIdx.y; r < R; r += blockDim.y * gridDim.y) {
        const A br = chan_is_col ? A(0) : widen(b[r % C]);
        const T* xr = x + static_cast<long long>(r) * L;
        T* yr = y + static_cast<long long>(r) * L;
        if (vec) {
            const Pack<T>* xv = reinterpret_cast<const Pack<T>*>(xr);
            const Pack<T>* bv = reinterpret_cast<const Pack<T>*>(b);
            Pack<T>* yv = reinterpret_cast<Pack<T>*>(yr);
            for (int col = c0; col < L / V; col += cs) {
                Pack<T> a = xv[col];
                if (chan_is_col) {
                    const Pack<T> bb = bv[col];
#pragma unroll
                    for (int k = 0; k < V; ++k)
                        a.v[k] = narrow<T>(act_f<ACT>(widen(a.v[k]) + widen(bb.v[k]), slope));
                } else {
#pragma unroll
                    for (int k = 0; k < V; ++k)
                        a.v[k] = narrow<T>(act_f<ACT>(widen(a.v[k]) + br, slope));
                }
                yv[col] = a;
            }
        } else {
            for (int col = c0; col < L; col += cs)
                yr[col] = narrow<T>(act_f<ACT>(widen(xr[col]) + (chan_is_col ? widen(b[col]) : br),
                                               slope));
        }
    }
}

// y = act(x + b[c]); x (R, L) with c = r % C (chan_is_col = 0) or c = col (chan_is_col = 1).
template <typename T>
HALF_STORAGE __global__ void bias_act_fwd_kernel(const T* __restrict__ x,
                                                 const T* __restrict__ b, T* __restrict__ y,
                                                 int R, int L, int C, int chan_is_col, int act,
                                                 acc_t<T> slope) {
#define CALL(A) bias_act_fwd_loop<A, T>(x, b, y, R, L, C, chan_is_col, slope)
    DISPATCH_ACT(act, CALL)
#undef CALL
}

template <int ACT, typename T>
__device__ __forceinline__ void bias_act_bwd_loop(const T* __restrict__ x,
                                                  const T* __restrict__ b,
                                                  const T* __restrict__ gy, T* __restrict__ gx,
                                                  double* __restrict__ part, int N, int C,
                                                  int I, acc_t<T> slope, double* scratch) {
    const int M = N * I;                                // elements of one channel
    const int stride = blockDim.x * gridDim.y;
    const int step_n = stride / I, step_i = stride - step_n * I;
    const int j0 = blockIdx.y * blockDim.x + threadIdx.x;
    for (int c = blockIdx.x; c < C; c += gridDim.x) {  // uniform per block: barriers are safe
        const acc_t<T> bc = widen(b[c]);
        double acc = 0.0;
        int n = j0 / I, i = j0 - (j0 / I) * I;
        for (int j = j0; j < M; j += stride) {
            const int idx = (n * C + c) * I + i;
            const acc_t<T> g = act_grad<ACT>(widen(x[idx]) + bc, widen(gy[idx]), slope);
            gx[idx] = narrow<T>(g);
            acc += static_cast<double>(g);
            n += step_n;
            i += step_i;
            if (i >= I) {
                i -= I;
                ++n;
            }
        }
        acc = block_sum(acc, scratch);
        if (threadIdx.x == 0) part[blockIdx.y * C + c] = acc;
    }
}

// x, gy, gx (N, C, I); gx = gy * act'(x + b[c]); part (gridDim.y, C) float64 partial sums of gx.
template <typename T>
HALF_STORAGE __global__ void bias_act_bwd_kernel(const T* __restrict__ x,
                                                 const T* __restrict__ b,
                                                 const T* __restrict__ gy, T* __restrict__ gx,
                                                 double* __restrict__ part, int N, int C, int I,
                                                 int act, acc_t<T> slope) {
    __shared__ double scratch[32];
#define CALL(A) bias_act_bwd_loop<A, T>(x, b, gy, gx, part, N, C, I, slope, scratch)
    DISPATCH_ACT(act, CALL)
#undef CALL
}

#define NC_ROWS 8  // blockDim.y of bias_act_bwd_nc_kernel (blockDim.x is 32)

template <int ACT, typename T>
__device__ __forceinline__ void bias_act_bwd_nc_loop(const T* __restrict__ x,
                                                     const T* __restrict__ b,
                                                     const T* __restrict__ gy,
                                                     T* __restrict__ gx,
                                                     double* __restrict__ part, int N, int C,
                                                     acc_t<T> slope, double (*tile)[33]) {
    for (int cb = blockIdx.x * 32; cb < C; cb += gridDim.x * 32) {  // uniform per block
        const int c = cb + threadIdx.x;
        const bool valid = c < C;
        double acc = 0.0;
        if (valid) {
            const acc_t<T> bc = widen(b[c]);
            for (int n = blockIdx.y * NC_ROWS + threadIdx.y; n < N; n += gridDim.y * NC_ROWS) {
                const int idx = n * C + c;
                const acc_t<T> g = act_grad<ACT>(widen(x[idx]) + bc, widen(gy[idx]), slope);
                gx[idx] = narrow<T>(g);
                acc += static_cast<double>(g);
            }
        }
        tile[threadIdx.y][threadIdx.x] = acc;
        __syncthreads();
        if (threadIdx.y == 0 && valid) {
            double s = 0.0;
#pragma unroll
            for (int k = 0; k < NC_ROWS; ++k) s += tile[k][threadIdx.x];
            part[blockIdx.y * C + c] = s;
        }
        __syncthreads();
    }
}

// x, gy, gx (N, C); launch with block (32, NC_ROWS); part (gridDim.y, C) float64.
template <typename T>
HALF_STORAGE __global__ void bias_act_bwd_nc_kernel(const T* __restrict__ x,
                                                    const T* __restrict__ b,
                                                    const T* __restrict__ gy, T* __restrict__ gx,
                                                    double* __restrict__ part, int N, int C,
                                                    int act, acc_t<T> slope) {
    __shared__ double tile[NC_ROWS][33];
#define CALL(A) bias_act_bwd_nc_loop<A, T>(x, b, gy, gx, part, N, C, slope, tile)
    DISPATCH_ACT(act, CALL)
#undef CALL
}
