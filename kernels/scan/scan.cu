// scan.cu -- cumulative sum / product / log-sum-exp and running max / min along one axis.
//
// x viewed as (O, L, I), C-contiguous: line (o, i) is x[o, 0..L-1, i], elements I apart. One
// thread per line (grid-stride over the O * I lines, consecutive threads on consecutive i, so
// each step's loads are coalesced when I > 1), scanning k = 0..L-1 in order, as PyTorch's CPU
// kernels and minicnn's: sums, products and log-sum-exps accumulate in double (PyTorch's CPU
// acc_type of float) and round each output to T; log_add_exp is PyTorch's
// _log_add_exp_helper; a running max / min is replaced by a later tie or NaN, and a NaN only by
// a later NaN. op: 0 sum, 1 prod, 2 logsumexp (scan_kernel); 0 max, 1 min (scan_arg_kernel).
//
// Expected bound: memory (one read and one write per element; the O * I lines give the
// parallelism, so a scan over the whole of a 1-D array is one thread: slow, but exact).
// float16 / bfloat16 (half.cuh): the same in double (and float for max / min), each output
// rounded to float32 and then to the format, as the widened path rounds.
#include "../cuda/common.cuh"
#include "../cuda/half.cuh"

__device__ __forceinline__ double log_add_exp(double x, double y) {
    double lo, hi;
    if (isnan(y)) {
        lo = hi = y;
    } else if (isnan(x)) {       // std::min / std::max keep their first argument, x
        lo = hi = x;
    } else {
        lo = fmin(x, y);
        hi = fmax(x, y);
    }
    if (lo != hi || isfinite(lo)) return log1p(exp(lo - hi)) + hi;
    return x;
}

template <typename T> HALF_STORAGE
__global__ void scan_kernel(const T* __restrict__ x, T* __restrict__ y, int lines, int L, int I,
                            int op) {
    GRID_LOOP(line, lines) {
        const int o = line / I, i = line - o * I;
        const long long base = static_cast<long long>(o) * L * I + i;
        double acc = op == 0 ? 0.0 : (op == 1 ? 1.0 : neg_inf<double>());
        for (int k = 0; k < L; ++k) {
            const double v = to_f64(x[base + static_cast<long long>(k) * I]);
            acc = op == 0 ? acc + v : (op == 1 ? acc * v : log_add_exp(v, acc));
            y[base + static_cast<long long>(k) * I] = from_f64<T>(acc);
        }
    }
}

template <typename T> HALF_STORAGE
__global__ void scan_arg_kernel(const T* __restrict__ x, T* __restrict__ y,
                                long long* __restrict__ idx, int lines, int L, int I, int op) {
    GRID_LOOP(line, lines) {
        const int o = line / I, i = line - o * I;
        const long long base = static_cast<long long>(o) * L * I + i;
        acc_t<T> best = widen(x[base]);
        long long at = 0;
        for (int k = 0; k < L; ++k) {
            const long long j = base + static_cast<long long>(k) * I;
            const acc_t<T> v = widen(x[j]);
            if (v != v || (best == best && (op == 0 ? v >= best : v <= best))) {
                best = v;
                at = k;
            }
            y[j] = narrow<T>(best);
            idx[j] = at;
        }
    }
}
