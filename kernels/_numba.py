"""What every CPU kernel family shares: calling a parallel kernel, window index ranges, and a
vectorisable float32 exp (the BLAS's threads and GEMMs: _blas.py)."""
import threading

import numba
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from ._blas import _blas_libs, _blas_width, matmuls  # noqa: F401 -- the families' import

# fastmath flags of the reductions: 'reassoc' lets LLVM vectorise sums, 'contract' allows FMAs
FASTMATH = {"reassoc", "contract"}

SMALL_WORK = 1 << 15  # below this many inner-loop steps a kernel runs on the calling thread


def run(kernel, work, *args):
    """Call a parallel Numba kernel; small problems run single-threaded. Waking the thread pool
    costs more than a small kernel (on a loaded 2-core machine, measured 22 ms instead of 15 us
    for a (2, 3, 6, 6) max pool), which dominates gradient checks of small inputs.

    Safe from several Python threads at once: Numba's thread count is per thread (what
    set_num_threads changes here is the caller's only), and where Numba runs on its
    `workqueue` layer, which aborts the process when two threads enter a parallel kernel at
    once, the calls take turns (the `omp` and `tbb` layers take concurrent calls)."""
    if not _threadsafe_layer():
        with _ONE_AT_A_TIME:
            return _run(kernel, work, args)
    return _run(kernel, work, args)


def _run(kernel, work, args):
    if work < SMALL_WORK:
        prev = _num_threads()
        if prev > 1:
            numba.set_num_threads(1)
            try:
                return kernel(*args)
            finally:
                numba.set_num_threads(prev)
    return kernel(*args)


CHUNKS_PER_THREAD = 4   # prange chunks per thread of the kernels that reuse their buffers


def chunks(items):
    """How many prange iterations a kernel that makes its scratch buffers once per iteration
    (not once per item) cuts `items` into: a few per thread, so a late thread delays little."""
    return max(1, min(items, CHUNKS_PER_THREAD * _num_threads()))


def _num_threads():
    """numba.get_num_threads(): this Python thread's width. Once Numba's threading layer has
    started, read straight from the layer's own per-thread value; the public function first
    takes Numba's two initialisation locks on every call (0.7 us; a small step asks ~20
    times)."""
    get = _layer_get_num_threads[0]
    if get is None:
        from numba.np.ufunc import parallel  # noqa: PLC0415
        if not getattr(parallel, "_is_initialized", False):
            return numba.get_num_threads()   # starts the layer
        get = _layer_get_num_threads[0] = getattr(parallel, "_get_num_threads",
                                                 numba.get_num_threads)
    n = get()
    return n if n > 0 else numba.get_num_threads()   # (<= 0: Numba's own error)


_layer_get_num_threads = [None]
_ONE_AT_A_TIME = threading.Lock()
_layer = []   # [whether Numba's threading layer takes concurrent calls], once it has started


def _threadsafe_layer():
    if not _layer:
        try:
            _layer.append(numba.threading_layer() != "workqueue")
        except ValueError:   # no parallel kernel has run yet, so no layer is chosen: take turns
            return False
    return _layer[0]


@njit(inline="always")
def valid_range(off, S, size, O):
    """[lo, hi) of output positions o with 0 <= o*S + off < size: the outputs whose window tap at
    offset `off` lands inside the input, so inner loops need no bounds test."""
    lo = 0
    if off < 0:
        lo = (-off + S - 1) // S
    last = size - 1 - off
    if last < 0:
        return 0, 0
    hi = last // S + 1
    if hi > O:
        hi = O
    if lo > hi:
        lo = hi
    return lo, hi


# --- a vectorisable float32 exp ------------------------------------------------------------------
# Numba's math.exp is a scalar libm call that LLVM cannot vectorise (no SVML here), so the
# exp-bound float32 kernels use this one: x = n ln2 + r, |r| <= ln2 / 2, e^r by the Cephes expf
# polynomial (<= 1 ulp against the correctly rounded exp over [-104, 89], subnormals included),
# 2^n built from its bits. Branch-free (selects), so a plain `prange` loop vectorises
# (measured 1.0 ms for 1.6 M floats on one thread against 8 ms with math.exp).
F32 = np.float32


@intrinsic
def _pow2_f32(typingctx, nf):
    """2**nf for an integral float32 nf in [-126, 127], from the bits (nf + 127) << 23."""
    if nf != types.float32:
        return None

    def codegen(context, builder, sig, args):
        # The kernels that call this (inlined into the prange body) are arithmetic-bound: let
        # LLVM use 512-bit vectors where the CPU has them (it prefers 256 bits by default on
        # AVX-512 CPUs; measured GELU forward 1.0 -> 0.7 ms on 2 threads). A plain string
        # attribute, which llvmlite's FunctionAttributes does not list, hence set.add; harmless
        # without AVX-512.
        try:
            set.add(builder.function.attributes, '"prefer-vector-width"="512"')
        except Exception:  # noqa: BLE001 - only a tuning hint
            pass
        i32 = ir.IntType(32)
        n = builder.fptosi(args[0], i32)
        bits = builder.shl(builder.add(n, ir.Constant(i32, 127)), ir.Constant(i32, 23))
        return builder.bitcast(bits, ir.FloatType())
    return types.float32(types.float32), codegen


@njit(inline="always", fastmath={"contract"})
def _exp_parts(x, xc):
    """n = round(xc / ln2) and p = e**(x - n ln2) by the Cephes expf polynomial, with ln2 in two
    parts (Cody-Waite) so the reduced argument keeps its precision."""
    n = np.floor(xc * F32(1.4426950408889634) + F32(0.5))
    r = x - n * F32(0.693359375)
    r = r + n * F32(2.12194440e-4)
    p = F32(1.9875691500e-4)
    p = p * r + F32(1.3981999507e-3)
    p = p * r + F32(8.3334519073e-3)
    p = p * r + F32(4.1665795894e-2)
    p = p * r + F32(1.6666665459e-1)
    p = p * r + F32(5.0000001201e-1)
    p = p * (r * r) + r + F32(1.0)
    return n, p


@njit(inline="always", fastmath={"contract"})
def exp_f32(x):
    """e**x for a float32 x: inf above 88.72..., 0 below -103.97..., NaN stays NaN."""
    xc = x if x > F32(-104.0) else F32(-104.0)  # NaN -> -104: the integer part stays defined
    xc = xc if xc < F32(89.0) else F32(89.0)
    n, p = _exp_parts(x, xc)  # r from x itself, so a NaN propagates
    n1 = np.floor(n * F32(0.5))  # 2^n = 2^n1 2^(n - n1): both normal for n in [-150, 129]
    y = p * _pow2_f32(n1) * _pow2_f32(n - n1)
    y = F32(np.inf) if x > F32(88.72283935546875) else y
    return F32(0.0) if x < F32(-103.97208404541016) else y


@njit(inline="always", fastmath={"contract"})
def exp_f32_neg_clamped(x):
    """e**max(x, -87) for x <= 0 (NaN -> e**-87): exp_f32 without the subnormal range, for
    GELU's exp(-v^2 / 2), where any value below 1.7e-38 gives the same float32 result."""
    xc = x if x > F32(-87.0) else F32(-87.0)
    n, p = _exp_parts(xc, xc)
    return p * _pow2_f32(n)
