// topk.cu -- the k largest (or smallest) elements of each row of a (R, L) array, sorted.
//
// One thread per row (grid-stride over rows): each element in turn is inserted into the sorted
// k kept so far, in the output arrays themselves (values[r, 0..k-1], idx[r, 0..k-1]); an
// element that does not go strictly before the k-th is skipped, so equal elements keep the
// earlier index first. NaN counts as larger than every number, as in PyTorch. The kernel
// family uses it for k <= 64 (the classes of a classifier); larger k take a sort.
//
// Expected bound: one read of each element per row, O(L k) compares at worst (an ascending
// row with largest), O(L) for the usual row; parallel over rows only.
// float16 / bfloat16 (half.cuh): values are compared widened and copied as they are.
#include "../cuda/common.cuh"
#include "../cuda/half.cuh"

template <typename T>
__device__ __forceinline__ bool goes_before(T a, T b, int largest) {
    return largest ? (a > b || (a != a && b == b)) : (a < b || (b != b && a == a));
}

template <typename T> HALF_STORAGE
__global__ void topk_kernel(const T* __restrict__ x, T* __restrict__ values,
                            long long* __restrict__ idx, int R, int L, int k, int largest) {
    GRID_LOOP(r, R) {
        const T* row = x + static_cast<long long>(r) * L;
        T* val = values + static_cast<long long>(r) * k;
        long long* ind = idx + static_cast<long long>(r) * k;
        int n = 0;
        for (int j = 0; j < L; ++j) {
            const T v = row[j];
            const acc_t<T> a = widen(v);
            if (n == k && !goes_before(a, widen(val[k - 1]), largest)) continue;
            int p = n < k ? n : k - 1;
            if (n < k) ++n;
            while (p > 0 && goes_before(a, widen(val[p - 1]), largest)) {
                val[p] = val[p - 1];
                ind[p] = ind[p - 1];
                --p;
            }
            val[p] = v;
            ind[p] = j;
        }
    }
}
