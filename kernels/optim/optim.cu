// optim.cu -- fused optimizer updates over flat 1-D buffers (one launch per bucket and step).
//
// Math: exactly the per-element formulas of the Numba kernels (kernels/optim/cpu.py), which
// follow PyTorch's `_single_tensor_*` functions operation by operation; scalars that change per
// step (lr / bias corrections) are computed on the host and passed in the buffers' dtype T, as
// cpu.py does for Numba. Every multiply, add, divide and square root goes through the
// round-to-nearest intrinsics below (__fmul_rn, ...), which the compiler never contracts into an
// FMA: the GPU then computes bit for bit what NumPy, Numba and the CPU emulator compute. The max
// of AMSGrad and Adamax is NumPy's (np.maximum: a NaN propagates), as in the reference.
//
// Index mapping: p, g and the state buffers are 1-D arrays of n elements with the same
// alignment modulo 16 bytes (the launch layer checks; otherwise it passes head = n, nvec = 0).
// Elements [head, head + nvec * W) are processed as nvec 16-byte vectors (W = 16 / sizeof(T):
// 4 floats or 2 doubles), one 128-bit load per array per vector; the scalar head [0, head) and
// tail [head + nvec * W, n) are a few elements done one by one. Both parts are grid-stride loops
// (thread i takes vector i, i + stride, ...: consecutive threads, consecutive 16-byte vectors).
//
// Launch: 1-D blocks of 256 threads, grid min(ceil(max(nvec, head + tail) / 256), 8 * #SMs).
// Bound: memory. Bytes per element (T = float): SGD 12 (16 with momentum), Adam 28 (36 with
// amsgrad), RMSprop 16..24, Adagrad 20, Adadelta 28, Adamax 28, NAdam 28. Adam over 11.7 M
// float32 parameters moves 328 MB: ~0.11 ms at 3 TB/s (plus the gradient gather).
// Absent state buffers (no momentum, no amsgrad) are passed as empty arrays and never touched.
#include "../cuda/common.cuh"

// np.maximum: a NaN in either argument propagates
template <typename T>
__device__ __forceinline__ T max_(T a, T b) { return (a != a || a > b) ? a : b; }

template <typename T>
__device__ __forceinline__ T abs_(T a) { return a < T(0) ? -a : a; }

// PyTorch's lerp a + w (b - a), exact at both ends (1 - w is passed in).
template <typename T>
__device__ __forceinline__ T lerp_(T a, T b, T w, T one_minus_w) {
    if (w < T(0.5)) return add_rn(a, mul_rn(w, sub_rn(b, a)));
    return sub_rn(b, mul_rn(sub_rn(b, a), one_minus_w));
}

// The gradient with maximize and L2 weight decay applied (PyTorch's order).
template <typename T>
__device__ __forceinline__ T grad_(T g, T p, bool maximize, T weight_decay) {
    T gi = maximize ? -g : g;
    if (weight_decay != T(0)) gi = add_rn(gi, mul_rn(weight_decay, p));
    return gi;
}

// Adam-like rules: decoupled decay (AdamW) scales p by decay = 1 - lr * wd; else L2 in g.
template <typename T>
__device__ __forceinline__ T grad_param_(T g, T& p, bool maximize, T weight_decay,
                                         bool decoupled, T decay) {
    if (weight_decay != T(0) && decoupled) {
        p = mul_rn(p, decay);
        return maximize ? -g : g;
    }
    return grad_(g, p, maximize, weight_decay);
}

// 16 bytes of T: one 128-bit load or store.
template <typename T>
struct alignas(16) Vec {
    T v[16 / sizeof(T)];
};

template <typename T>
__device__ __forceinline__ Vec<T> ld_(const T* p) { return *reinterpret_cast<const Vec<T>*>(p); }

template <typename T>
__device__ __forceinline__ void st_(T* p, const Vec<T>& v) { *reinterpret_cast<Vec<T>*>(p) = v; }

// Runs op(p, g, s0, s1, s2) on every element (see the header for the mapping). States with
// use_k false are neither loaded nor stored (op does not read them then).
template <typename T, typename Op>
__device__ __forceinline__ void for_each_(const Op& op, T* __restrict__ p,
                                          const T* __restrict__ g, T* __restrict__ s0,
                                          T* __restrict__ s1, T* __restrict__ s2, bool use0,
                                          bool use1, bool use2, int n, int head, int nvec) {
    constexpr int W = 16 / sizeof(T);
    const int tid = blockIdx.x * blockDim.x + threadIdx.x, stride = blockDim.x * gridDim.x;
    const int tail0 = head + nvec * W, nscalar = head + (n - tail0);
    for (int i = tid; i < nscalar; i += stride) {
        const int e = i < head ? i : tail0 + (i - head);
        T pe = p[e], a = T(0), b = T(0), c = T(0);
        if (use0) a = s0[e];
        if (use1) b = s1[e];
        if (use2) c = s2[e];
        op(pe, g[e], a, b, c);
        p[e] = pe;
        if (use0) s0[e] = a;
        if (use1) s1[e] = b;
        if (use2) s2[e] = c;
    }
    for (int i = tid; i < nvec; i += stride) {
        const int e = head + i * W;
        Vec<T> vp = ld_(p + e), a{}, b{}, c{};
        const Vec<T> vg = ld_(g + e);
        if (use0) a = ld_(s0 + e);
        if (use1) b = ld_(s1 + e);
        if (use2) c = ld_(s2 + e);
#pragma unroll
        for (int l = 0; l < W; ++l) op(vp.v[l], vg.v[l], a.v[l], b.v[l], c.v[l]);
        st_(p + e, vp);
        if (use0) st_(s0 + e, a);
        if (use1) st_(s1 + e, b);
        if (use2) st_(s2 + e, c);
    }
}

// ---- SGD: s0 = momentum buffer ---------------------------------------------------------------
template <typename T>
struct SgdOp {
    T lr, momentum, one_minus_dampening, weight_decay;
    bool nesterov, maximize, first;
    __device__ __forceinline__ void operator()(T& p, T g, T& buf, T&, T&) const {
        T gi = grad_(g, p, maximize, weight_decay);
        if (momentum != T(0)) {
            const T b = first ? gi : add_rn(mul_rn(buf, momentum), mul_rn(one_minus_dampening, gi));
            buf = b;
            gi = nesterov ? add_rn(gi, mul_rn(momentum, b)) : b;
        }
        p = sub_rn(p, mul_rn(lr, gi));
    }
};

template <typename T>
__global__ void __launch_bounds__(256) sgd_kernel(
    T* __restrict__ p, const T* __restrict__ g, T* __restrict__ buf, int n, int head, int nvec,
    T lr, T momentum, T one_minus_dampening, T weight_decay, bool nesterov, bool maximize,
    bool first) {
    const SgdOp<T> op{lr, momentum, one_minus_dampening, weight_decay, nesterov, maximize, first};
    for_each_(op, p, g, buf, buf, buf, momentum != T(0), false, false, n, head, nvec);
}

// ---- Adam / AdamW: s0 = exp_avg, s1 = exp_avg_sq, s2 = max_exp_avg_sq --------------------------
template <typename T>
struct AdamOp {
    T decay, beta1, one_minus_beta1, beta2, one_minus_beta2, eps, weight_decay;
    bool decoupled, amsgrad, maximize;
    T step_size, bc2_sqrt;
    __device__ __forceinline__ void operator()(T& p, T g, T& m, T& v, T& vmax) const {
        const T gi = grad_param_(g, p, maximize, weight_decay, decoupled, decay);
        m = lerp_(m, gi, one_minus_beta1, beta1);
        v = add_rn(mul_rn(v, beta2), mul_rn(mul_rn(one_minus_beta2, gi), gi));
        T vi = v;
        if (amsgrad) {
            vi = max_(vmax, vi);
            vmax = vi;
        }
        const T denom = add_rn(div_rn(sqrt_rn(vi), bc2_sqrt), eps);
        p = add_rn(p, div_rn(mul_rn(-step_size, m), denom));
    }
};

template <typename T>
__global__ void __launch_bounds__(256) adam_kernel(
    T* __restrict__ p, const T* __restrict__ g, T* __restrict__ m, T* __restrict__ v,
    T* __restrict__ vmax, int n, int head, int nvec, T decay, T beta1, T one_minus_beta1,
    T beta2, T one_minus_beta2, T eps, T weight_decay, bool decoupled, bool amsgrad,
    bool maximize, T step_size, T bc2_sqrt) {
    const AdamOp<T> op{decay, beta1, one_minus_beta1, beta2, one_minus_beta2, eps, weight_decay,
                       decoupled, amsgrad, maximize, step_size, bc2_sqrt};
    for_each_(op, p, g, m, v, vmax, true, true, amsgrad, n, head, nvec);
}

// ---- RMSprop: s0 = square_avg, s1 = grad_avg (centered), s2 = momentum_buffer -----------------
template <typename T>
struct RmspropOp {
    T lr, alpha, one_minus_alpha, eps, weight_decay, momentum;
    bool centered, maximize;
    __device__ __forceinline__ void operator()(T& p, T g, T& sq, T& gavg, T& buf) const {
        const T gi = grad_(g, p, maximize, weight_decay);
        const T s = add_rn(mul_rn(sq, alpha), mul_rn(mul_rn(one_minus_alpha, gi), gi));
        sq = s;
        T avg;
        if (centered) {
            const T ga = lerp_(gavg, gi, one_minus_alpha, alpha);
            gavg = ga;
            avg = sqrt_rn(sub_rn(s, mul_rn(ga, ga)));
        } else {
            avg = sqrt_rn(s);
        }
        avg = add_rn(avg, eps);
        if (momentum > T(0)) {
            const T b = add_rn(mul_rn(buf, momentum), div_rn(gi, avg));
            buf = b;
            p = sub_rn(p, mul_rn(lr, b));
        } else {
            p = add_rn(p, div_rn(mul_rn(-lr, gi), avg));
        }
    }
};

template <typename T>
__global__ void __launch_bounds__(256) rmsprop_kernel(
    T* __restrict__ p, const T* __restrict__ g, T* __restrict__ sq, T* __restrict__ gavg,
    T* __restrict__ buf, int n, int head, int nvec, T lr, T alpha, T one_minus_alpha, T eps,
    T weight_decay, T momentum, bool centered, bool maximize) {
    const RmspropOp<T> op{lr, alpha, one_minus_alpha, eps, weight_decay, momentum, centered,
                          maximize};
    for_each_(op, p, g, sq, gavg, buf, true, centered, momentum > T(0), n, head, nvec);
}

// ---- Adagrad: s0 = sum ----------------------------------------------------------------------
template <typename T>
struct AdagradOp {
    T clr, eps, weight_decay;
    bool maximize;
    __device__ __forceinline__ void operator()(T& p, T g, T& acc, T&, T&) const {
        const T gi = grad_(g, p, maximize, weight_decay);
        const T a = add_rn(acc, mul_rn(gi, gi));
        acc = a;
        p = add_rn(p, div_rn(mul_rn(-clr, gi), add_rn(sqrt_rn(a), eps)));
    }
};

template <typename T>
__global__ void __launch_bounds__(256) adagrad_kernel(
    T* __restrict__ p, const T* __restrict__ g, T* __restrict__ acc, int n, int head, int nvec,
    T clr, T eps, T weight_decay, bool maximize) {
    const AdagradOp<T> op{clr, eps, weight_decay, maximize};
    for_each_(op, p, g, acc, acc, acc, true, false, false, n, head, nvec);
}

// ---- Adadelta: s0 = square_avg, s1 = acc_delta -------------------------------------------------
template <typename T>
struct AdadeltaOp {
    T lr, rho, one_minus_rho, eps, weight_decay;
    bool maximize;
    __device__ __forceinline__ void operator()(T& p, T g, T& sq, T& acc_delta, T&) const {
        const T gi = grad_(g, p, maximize, weight_decay);
        const T s = add_rn(mul_rn(sq, rho), mul_rn(mul_rn(one_minus_rho, gi), gi));
        sq = s;
        const T std_ = sqrt_rn(add_rn(s, eps));
        const T delta = mul_rn(div_rn(sqrt_rn(add_rn(acc_delta, eps)), std_), gi);
        acc_delta = add_rn(mul_rn(acc_delta, rho), mul_rn(mul_rn(one_minus_rho, delta), delta));
        p = sub_rn(p, mul_rn(lr, delta));
    }
};

template <typename T>
__global__ void __launch_bounds__(256) adadelta_kernel(
    T* __restrict__ p, const T* __restrict__ g, T* __restrict__ sq, T* __restrict__ acc_delta,
    int n, int head, int nvec, T lr, T rho, T one_minus_rho, T eps, T weight_decay,
    bool maximize) {
    const AdadeltaOp<T> op{lr, rho, one_minus_rho, eps, weight_decay, maximize};
    for_each_(op, p, g, sq, acc_delta, acc_delta, true, true, false, n, head, nvec);
}

// ---- Adamax: s0 = exp_avg, s1 = exp_inf -------------------------------------------------------
template <typename T>
struct AdamaxOp {
    T beta1, one_minus_beta1, beta2, eps, weight_decay;
    bool maximize;
    T clr;
    __device__ __forceinline__ void operator()(T& p, T g, T& m, T& u, T&) const {
        const T gi = grad_(g, p, maximize, weight_decay);
        const T mi = lerp_(m, gi, one_minus_beta1, beta1);
        m = mi;
        const T ui = max_(mul_rn(u, beta2), add_rn(abs_(gi), eps));
        u = ui;
        p = add_rn(p, div_rn(mul_rn(-clr, mi), ui));
    }
};

template <typename T>
__global__ void __launch_bounds__(256) adamax_kernel(
    T* __restrict__ p, const T* __restrict__ g, T* __restrict__ m, T* __restrict__ u, int n,
    int head, int nvec, T beta1, T one_minus_beta1, T beta2, T eps, T weight_decay,
    bool maximize, T clr) {
    const AdamaxOp<T> op{beta1, one_minus_beta1, beta2, eps, weight_decay, maximize, clr};
    for_each_(op, p, g, m, u, u, true, true, false, n, head, nvec);
}

// ---- NAdam: s0 = exp_avg, s1 = exp_avg_sq ------------------------------------------------------
template <typename T>
struct NadamOp {
    T decay, beta1, one_minus_beta1, beta2, one_minus_beta2, eps, weight_decay;
    bool decoupled, maximize;
    T bc2, c_grad, c_avg;
    __device__ __forceinline__ void operator()(T& p, T g, T& m, T& v, T&) const {
        const T gi = grad_param_(g, p, maximize, weight_decay, decoupled, decay);
        m = lerp_(m, gi, one_minus_beta1, beta1);
        v = add_rn(mul_rn(v, beta2), mul_rn(mul_rn(one_minus_beta2, gi), gi));
        const T denom = add_rn(sqrt_rn(div_rn(v, bc2)), eps);
        const T pi = add_rn(p, div_rn(mul_rn(c_grad, gi), denom));
        p = add_rn(pi, div_rn(mul_rn(c_avg, m), denom));
    }
};

template <typename T>
__global__ void __launch_bounds__(256) nadam_kernel(
    T* __restrict__ p, const T* __restrict__ g, T* __restrict__ m, T* __restrict__ v, int n,
    int head, int nvec, T decay, T beta1, T one_minus_beta1, T beta2, T one_minus_beta2, T eps,
    T weight_decay, bool decoupled, bool maximize, T bc2, T c_grad, T c_avg) {
    const NadamOp<T> op{decay,        beta1,     one_minus_beta1, beta2, one_minus_beta2, eps,
                        weight_decay, decoupled, maximize,        bc2,   c_grad,          c_avg};
    for_each_(op, p, g, m, v, v, true, true, false, n, head, nvec);
}

// ---- GradScaler's unscale: g *= inv_scale in place, *found = 1 if an element is inf or NaN -----
// One thread per element (grid-stride); every thread that saw a non-finite value writes the same
// 1, so the race on *found is benign. The product is rounded as the CPU's (T arithmetic).
template <typename T>
__global__ void __launch_bounds__(256) unscale_kernel(T* __restrict__ g, int n, T inv_scale,
                                                      int* __restrict__ found) {
    const int tid = blockIdx.x * blockDim.x + threadIdx.x, stride = blockDim.x * gridDim.x;
    bool bad = false;
    for (int i = tid; i < n; i += stride) {
        const T x = g[i];
        bad |= !isfinite(x);
        g[i] = mul_rn(x, inv_scale);
    }
    if (bad) *found = 1;
}
