// resample.cu -- separable sparse resampling (F.interpolate's linear, bicubic and area modes,
// and their gradients, which are the same kernel with the transposed matrices).
//
// x (B, H, W) and y (B, OH, OW), C-contiguous. The row map is an (OH, H) sparse matrix in CSR
// form: row o's taps are rptr[o] .. rptr[o + 1] - 1 of ridx (input rows) and rw (weights); the
// column map (OW, W) likewise. y[b, o, p] = sum_a rw[a] * (sum_c cw[c] * x[b, ridx[a], cidx[c]])
// summed in that order (row taps outside, column taps inside), as the CPU kernel and PyTorch.
//
// One thread per output element (i -> b, o, p with p fastest: consecutive threads write
// consecutive outputs and read nearby columns), grid-stride loop, no atomics: the gradient is a
// gather too (the transposed maps), so results are deterministic.
//
// Expected bound: memory (2 x 2 taps per output for bilinear, 4 x 4 for bicubic, mostly from
// cache; one write per output).
// float16 / bfloat16 (half.cuh): half x and y, float weights and sums, one rounding per output.
#include "../cuda/common.cuh"
#include "../cuda/half.cuh"

template <typename T> HALF_STORAGE
__global__ void resample2d_kernel(const T* __restrict__ x, const int* __restrict__ rptr,
                                  const int* __restrict__ ridx, const acc_t<T>* __restrict__ rw,
                                  const int* __restrict__ cptr, const int* __restrict__ cidx,
                                  const acc_t<T>* __restrict__ cw, T* __restrict__ y, int n,
                                  int H, int W, int OH, int OW) {
    GRID_LOOP(i, n) {
        int b, o, p;
        unravel(i, OH, OW, b, o, p);
        const T* plane = x + static_cast<long long>(b) * H * W;
        const int c0 = cptr[p], c1 = cptr[p + 1];
        acc_t<T> acc = 0;
        for (int a = rptr[o]; a < rptr[o + 1]; ++a) {
            const T* row = plane + static_cast<long long>(ridx[a]) * W;
            acc_t<T> s = 0;
            for (int c = c0; c < c1; ++c) s += cw[c] * widen(row[cidx[c]]);
            acc += rw[a] * s;
        }
        y[i] = narrow<T>(acc);
    }
}
