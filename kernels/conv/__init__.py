"""The convolution family: conv2d and its two gradients as GEMMs over column buffers, the
im2col / col2im kernels, the GPU's implicit-GEMM forward, and the choice between them.

    conv2d(x, w, p, b=None, out_hw=None)        -> y  (N, K, OH, OW) (+ b)
    conv2d_grad_input(w, gy, x_shape, p)        -> gx (N, C, H, W)   (conv_transpose2d too)
    conv2d_grad_weight(x, gy, w_shape, p)       -> gw (K, C/G, KH, KW)
    im2col(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW, workspace=False) -> col (C, KH, KW, N, OH, OW)
    col2im(col, H, W, SH, SW, PH, PW, DH, DW)   -> img (N, C, H, W), overlaps accumulated

`p` is a ConvParams (stride, padding, dilation, groups). x (N, C, H, W), w (K, C/G, KH, KW),
col (C, KH, KW, N, OH, OW) = (G, Cg*KH*KW, N*OH*OW): channel-major with the batch inside, so each
pass is ONE GEMM per group over all N * OH * OW positions (batched over groups in one matmul).

Which algorithm computes a pass (`_algorithm`, reported per thread by `last_algorithm()`):
  'depthwise', 'grouped'  the direct kernels of kernels/grouped (few channels per group);
  'gemm_1x1'       1x1 kernels without padding: a GEMM on the (strided) input, no im2col;
  'dense'          CPU, one group, no padding, the kernel as large as the input (so one output
                   position: DCGAN's last discriminator conv and first generator layer): a
                   fully-connected layer, each pass one GEMM on the arrays as they lie (no
                   im2col, no col2im);
  'direct'         CPU, one group, stride 1, few output channels (see _direct_ok): cpu.py's
                   direct kernel, one output channel of one image per iteration, each kernel
                   tap one vectorised multiply-add over the shifted input (forward, and the
                   stride-1 input gradient run as a forward conv of gy); no columns;
  'im2col_gemm'    im2col kernel + one GEMM batched over the groups (+ col2im backward;
                   on the CPU a stride-1 input gradient is a forward conv of gy instead);
  'implicit_gemm'  GPU forward only: conv.cu's tiled kernel gathers the column matrix into
                   shared memory on the fly, so no column buffer exists in device memory.
  'winograd'       CPU, 3x3 stride 1 with at least WINOGRAD_MIN_CHANNELS channels in and out
                   and WINOGRAD_MIN_TILES output tiles: F(2x2, 3x3), 16 GEMMs (K, C) @ (C, T)
                   over the transformed 2x2 tiles, 2.25x fewer multiplications and no columns
                   (forward, the stride-1 input gradient run as a forward conv of gy, and
                   the weight gradient, the adjoint of the forward's transforms). Dilated
                   3x3 convs whose padding is a multiple of the dilation too, as the
                   undilated conv of their phase planes batched (cpu.phase_images).
  'winograd4x4'    the same with 4x4 output tiles, F(4x4, 3x3): 36 GEMMs, 4x fewer
                   multiplications; forward and input gradient where that pass's output is at
                   least WINOGRAD4_MIN_SIZE high and wide (the weight gradient stays F(2x2)).
On the GPU `choose_algorithm` picks between the last two by a PROVISIONAL RULE (written without
a GPU to measure on; change the two constants after benchmarking with set_algorithm): the
implicit GEMM when the GEMM would be memory-bound on its column operand (Kg <=
IMPLICIT_GEMM_MAX_KG: 2*Kg flops per 8 bytes of column traffic) or the column buffer would be
huge (>= IMPLICIT_GEMM_MIN_COL_BYTES, also a peak-memory saving); im2col + cuBLAS otherwise.
On the CPU a forward asked to (`keep_columns`, when its weight will get a gradient) keeps its
im2col columns for the weight gradient (kept.py).
`set_algorithm(name)` (or $MINICNN_CONV_ALGORITHM) forces one for benchmarks.

float16 / bfloat16 on the GPU (and under the emulator): the three passes take half arrays as
they are (im2col / col2im's half instances, `_half_mm`'s GEMMs accumulating in float32, the
direct kernels widening for themselves); the implicit GEMM is then replaced by im2col_gemm.

Column buffers on the CPU: `im2col(..., workspace=True)` writes into a per-thread reusable buffer
(`workspace(shape, dtype)`), as cuDNN's workspace: a fresh 50 MB buffer per call costs more in
page faults than the copy itself (measured 24 ms vs 6 ms for (8, 64, 56, 56) 3x3). A pass uses
at most one column workspace at a time, and im2col one more for its zero-bordered copy of the
input. On the GPU CuPy's memory pool makes a fresh buffer as
cheap as a reused one.
"""
import functools
import operator
import os
import threading

import numpy

from minicnn.devices import get_array_module, is_cuda_array, on_cuda_kernels, syncs_on_read
from minicnn.dtypes import HALF_FLOATS, float16

from .. import conv_out_size, grouped, lazy
from .._half import in_float32
from .._blas import SPREAD_GEMM_MACS, _blas_width, spread
from .._blas import gemm as _gemm
from .kept import POOL as _kept_pool
from .kept import KeptColumns

_cpu = lazy(__name__ + ".cpu")
_cuda = lazy(__name__ + ".cuda")


class ConvParams:
    """The hyperparameters shared by a conv and its two gradients."""
    __slots__ = ("SH", "SW", "PH", "PW", "DH", "DW", "G")

    def __init__(self, stride, padding, dilation, groups):
        (self.SH, self.SW), (self.PH, self.PW), (self.DH, self.DW) = stride, padding, dilation
        self.G = groups

    def out_size(self, H, W, KH, KW):
        return (conv_out_size(H, KH, self.SH, self.PH, self.DH),
                conv_out_size(W, KW, self.SW, self.PW, self.DW))

    def geometry(self):
        return self.SH, self.SW, self.PH, self.PW, self.DH, self.DW


# --- im2col / col2im --------------------------------------------------------------------------

def im2col(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW, workspace=False):
    if on_cuda_kernels(x):
        return _cuda.im2col(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)
    N, C = x.shape[:2]
    out = _workspace((C, KH, KW, N, OH, OW), x.dtype) if workspace else None
    return _cpu.im2col(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW, out=out, padded=_padded)


def col2im(col, H, W, SH, SW, PH, PW, DH, DW):
    if on_cuda_kernels(col):
        return _cuda.col2im(col, H, W, SH, SW, PH, PW, DH, DW)
    return _cpu.col2im(col, H, W, SH, SW, PH, PW, DH, DW, padded=_padded)


_local = threading.local()   # this thread's column workspace and last algorithms


# A GEMM operand whose rows are a multiple of 4 KiB long gets ROW_PAD more elements of stride:
# rows a power-of-two multiple of 4 KiB apart share cache sets, and the BLAS reading down a
# column of them thrashes. Winograd's v and m (36 GEMMs at 64 channels, T = 1024 tiles: 2.63 ->
# 2.04 ms; the forward of (16, 64, 32, 32) 5.0 -> 4.5 ms, A/B at 2 threads). im2col's columns
# gained nothing so (the ResNet stem at batch 4, (32, 64, 32, 32) -> 128 stride 2: within 3%).
ROW_PAD = 16


def _row_stride(n, itemsize):
    """The elements between GEMM rows of n: n, or n + ROW_PAD where n is a multiple of 4 KiB."""
    return n + ROW_PAD if n * itemsize % 4096 == 0 else n


def _workspace(shape, dtype, slot=0, row_len=None):
    """A NumPy array of `shape` backed by this thread's reusable buffer number `slot`
    (im2col_gemm uses 0 for the columns and 3 for im2col's padded image, winograd 0-2):
    C-contiguous, or, given `row_len`, a GEMM operand whose rows of that many trailing elements
    are padded as _row_stride says."""
    dtype = numpy.dtype(dtype)
    size = int(numpy.prod(shape))
    stride = _row_stride(row_len, dtype.itemsize) if row_len else None
    nbytes = max((size // row_len * stride if row_len else size) * dtype.itemsize, 1)
    bufs = getattr(_local, "bufs", None)
    if bufs is None:
        bufs = _local.bufs = {}
    buf = bufs.get(slot)
    if buf is None or buf.size < nbytes:
        buf = bufs[slot] = numpy.empty(nbytes, numpy.uint8)
    if not row_len:
        return buf[:nbytes].view(dtype).reshape(shape)
    rows = buf[:nbytes].view(dtype).reshape(size // row_len, stride)[:, :row_len].view()
    rows.shape = shape        # raises, where reshape would copy: a view of the buffer
    return rows


def _padded(shape, dtype):
    """The workspace of im2col's zero-bordered image (kernels/conv/cpu.py)."""
    return _workspace(shape, dtype, 3)


def workspace_bytes():
    return sum(int(b.size) for b in getattr(_local, "bufs", {}).values())


def release_workspace():
    """Free this thread's workspace, and the pool of kept column buffers (kept.py)."""
    _local.bufs = {}
    _kept_pool.release()


# --- which algorithm --------------------------------------------------------------------------

ALGORITHMS = ("im2col_gemm", "implicit_gemm", "gemm_1x1")
IMPLICIT_GEMM_MAX_KG = 32
IMPLICIT_GEMM_MIN_COL_BYTES = 512 << 20
_forced = None   # a setting (set_algorithm), read on every GPU conv


def set_algorithm(name):
    """Force the general convolution's algorithm on the GPU ('im2col_gemm', 'implicit_gemm',
    'gemm_1x1'), or go back to `choose_algorithm`'s rule with None. A forced algorithm that
    cannot run a given conv or pass ('gemm_1x1' for a kernel larger than 1x1 or with padding,
    'implicit_gemm' for the backward passes) falls back to the rule there."""
    global _forced
    if name is not None and name not in ALGORITHMS:
        raise ValueError(f"set_algorithm: unknown algorithm {name!r}; expected one of "
                         f"{', '.join(ALGORITHMS)} or None")
    _forced = name


def get_algorithm():
    """The forced algorithm, or None when the rule chooses."""
    return _forced


def algorithm_from_env(environ=None):
    """set_algorithm($MINICNN_CONV_ALGORITHM) when it is set (read once at import), so a whole
    benchmark run can be forced: MINICNN_CONV_ALGORITHM=implicit_gemm python -m bench ..."""
    name = (os.environ if environ is None else environ).get("MINICNN_CONV_ALGORITHM") or None
    if name is not None:
        set_algorithm(name)
    return name


def choose_algorithm(x_shape, w_shape, stride=(1, 1), padding=(0, 0), dilation=(1, 1),
                     groups=1, itemsize=4, pass_="forward", out_hw=None):
    """The GPU algorithm for a general (not depthwise / grouped) conv2d of an input `x_shape`
    (N, C, H, W) with a weight `w_shape` (K, C/groups, KH, KW); see the rule above.
    `pass_`: 'forward', 'grad_input' or 'grad_weight'."""
    N, C, H, W = x_shape
    K, Cg, KH, KW = w_shape
    (SH, SW), (PH, PW), (DH, DW) = stride, padding, dilation
    pointwise = KH == 1 and KW == 1 and PH == 0 and PW == 0
    forced = _forced
    if forced == "gemm_1x1" and not pointwise or forced == "implicit_gemm" and pass_ != "forward":
        forced = None
    if forced is not None:
        return forced
    if pointwise:
        return "gemm_1x1"
    if pass_ != "forward":
        return "im2col_gemm"
    OH, OW = out_hw or (conv_out_size(H, KH, SH, PH, DH), conv_out_size(W, KW, SW, PW, DW))
    col_bytes = C * KH * KW * N * OH * OW * itemsize
    if K // groups <= IMPLICIT_GEMM_MAX_KG or col_bytes >= IMPLICIT_GEMM_MIN_COL_BYTES:
        return "implicit_gemm"
    return "im2col_gemm"


def last_algorithm():
    """{'forward': ..., 'grad_input': ..., 'grad_weight': ...}: the algorithm of each pass of the
    last convolution this thread ran."""
    return dict(getattr(_local, "algorithms", {}))


def _algorithm(pass_, p, a, x_shape, w_shape, out_hw, meets_padding=None):
    """The algorithm of one pass for array `a`, recorded for this thread. `meets_padding`: the
    operand that the definition multiplies by the zero padding (see _skips_nonfinite)."""
    C = x_shape[1]
    direct = grouped.is_depthwise(C, w_shape, p.G) or \
        grouped.grouped_ok(a, pass_, x_shape, w_shape, p.G, *p.geometry(), out_hw)
    if direct and _skips_nonfinite(pass_, p, meets_padding, w_shape, x_shape, out_hw):
        algo = "im2col_gemm"
    elif grouped.is_depthwise(C, w_shape, p.G):
        algo = "depthwise"
    elif direct:
        algo = "grouped"
    elif on_cuda_kernels(a):
        algo = choose_algorithm(x_shape, w_shape, (p.SH, p.SW), (p.PH, p.PW), (p.DH, p.DW),
                                p.G, a.dtype.itemsize, pass_, out_hw)
        if algo == "implicit_gemm" and a.dtype in HALF_FLOATS:
            algo = "im2col_gemm"   # the implicit GEMM has no half instances; cuBLAS's GEMM does
    elif w_shape[2] == 1 and w_shape[3] == 1 and p.PH == 0 and p.PW == 0:
        algo = "gemm_1x1"
    elif p.G == 1 and p.PH == 0 and p.PW == 0 and tuple(x_shape[2:]) == tuple(w_shape[2:]):
        algo = "dense"        # one window covering the input: a fully-connected layer
    else:
        algo = _cpu_algorithm(pass_, p, x_shape, w_shape, out_hw)
    return _record(pass_, algo)


def _cpu_algorithm(pass_, p, x_shape, w_shape, out_hw):
    """'direct', 'winograd', 'winograd4x4' or 'im2col_gemm' for a CPU pass of one group. The
    input gradient counts as a forward conv of gy: K channels in, C out, x's size out."""
    c_in, c_out, hw = x_shape[1], w_shape[0], out_hw
    if pass_ == "grad_input":
        c_in, c_out, hw = w_shape[0], x_shape[1], x_shape[2:]
    if _winograd_ok(p, c_in, c_out, w_shape, x_shape[0], hw):
        return "winograd4x4" if pass_ != "grad_weight" and \
            min(_phase_hw(p, hw)) >= WINOGRAD4_MIN_SIZE else "winograd"
    if pass_ != "grad_weight" and _direct_ok(p, c_in * w_shape[2] * w_shape[3], c_out):
        return "direct"
    return "im2col_gemm"


def _record(pass_, algo):
    if not hasattr(_local, "algorithms"):
        _local.algorithms = {}
    _local.algorithms[pass_] = algo
    return algo


WINOGRAD_MIN_CHANNELS = 16   # fewer: the 16 GEMMs are too thin to gain (the 3-channel stem)
WINOGRAD_MIN_TILES = 64      # fewer: transforming the weight costs more than the GEMMs save
# outputs at least this high and wide: F(4x4, 3x3) instead of F(2x2, 3x3) (forward and input
# gradient). Measured at one thread, time F4 / F2: 0.72-0.85 at 64-128 channels from 16x16 to
# 56x56; 1.05 at (32, 256, 8, 8), 1.28 at (4, 256, 14, 14) (partial tiles), 1.7-2.7 at 4x4
WINOGRAD4_MIN_SIZE = 16


DIRECT_MAX_OUT = 16          # output channels up to which the direct kernel takes a conv
DIRECT_MAX_OUT_FEW_TAPS = 32  # ... and up to which it does when the sum is short:
DIRECT_FEW_TAPS = 32          # C_in * KH * KW at most this


def _direct_ok(p, taps, c_out):
    """Whether the direct kernel takes a stride-1 CPU conv of one group with c_out output
    channels, each a sum of `taps` products. Few output channels make thin GEMMs (M = c_out)
    that OpenBLAS runs at a fraction of its rate, and a short sum makes im2col's copy as costly
    as the GEMM. Measured at 2 threads, time direct / im2col_gemm: LeNet-5's convs
    (64, 1, 28, 28) -> 6 5x5 0.33, (64, 6, 14, 14) -> 16 0.7, their input gradients
    (64, 16, 18, 18) -> 6 0.3; (64, 1, 28, 28) -> 32 3x3 0.4, (64, 16, 28, 28) -> 8 3x3 0.33,
    (8, 256, 14, 14) -> 10 3x3 0.64; but (64, 16, 14, 14) -> 32 3x3 0.8-1.25 and
    (64, 32, 26, 26) -> 64 3x3 1.5. Winograd, where it applies, comes first: direct / winograd
    1.2-2.3 at 16 channels out of 16-64 in ((32, 64, 8, 8), (32, 16, 32, 32))."""
    return p.G == 1 and p.SH == p.SW == 1 and (
        c_out <= DIRECT_MAX_OUT or c_out <= DIRECT_MAX_OUT_FEW_TAPS and taps <= DIRECT_FEW_TAPS)


def _winograd_ok(p, C_in, K, w_shape, N, out_hw):
    """Whether winograd takes a CPU conv of C_in channels into K with w_shape's kernel, with
    N * out_hw outputs (measured against im2col_gemm: 0.5-0.7x forward from (8, 128, 16, 16) to
    (32, 512, 4, 4), about 1x at (8, 512, 4, 4), whose 32 tiles are below the minimum). A
    dilated conv goes as the undilated conv of its phase planes (cpu.phase_images) when its
    padding is a multiple of the dilation (as 'same' padding, D, is)."""
    KH, KW = w_shape[2:]
    OH, OW = _phase_hw(p, out_hw)
    return KH == 3 and KW == 3 and p.SH == p.SW == p.G == 1 and \
        p.PH % p.DH == 0 and p.PW % p.DW == 0 and min(C_in, K) >= WINOGRAD_MIN_CHANNELS and \
        N * p.DH * p.DW * ((OH + 1) // 2) * ((OW + 1) // 2) >= WINOGRAD_MIN_TILES


def _phase_hw(p, hw):
    """The size of one dilation phase plane of an (H, W) image: hw itself when undilated."""
    return -(-hw[0] // p.DH), -(-hw[1] // p.DW)


def _undilated(p):
    """The conv of each phase plane of a conv dilated by p (stride 1, padding a multiple of the
    dilation): padding over the dilation, no dilation."""
    return ConvParams((1, 1), (p.PH // p.DH, p.PW // p.DW), (1, 1), p.G)


def _skips_nonfinite(pass_, p, operand, w_shape, x_shape, out_hw):
    """Whether the direct kernels would miss a NaN: they skip the taps that fall in the zero
    padding, where the definition of a padded convolution (and PyTorch's float64 and GEMM paths,
    and im2col_gemm here) multiplies: 0 * NaN or 0 * inf is NaN. That matters only where the
    operand meeting the padding is not finite: the weight in the forward (and, on the GPU's
    direct kernels, in grad_input), the output gradient's border in grad_weight; then the pass
    takes im2col_gemm. The check reads values, so on a GPU (where that waits for the device) it
    is left out."""
    if operand is None or syncs_on_read(operand):
        return False
    xp = get_array_module(operand)
    if pass_ == "grad_input":
        return not bool(xp.isfinite(operand).all())
    if p.PH == 0 and p.PW == 0:
        return False
    if pass_ == "forward":
        return not bool(xp.isfinite(operand).all())
    return not all(bool(xp.isfinite(strip).all())
                   for strip in _padded_border(operand, p, w_shape, x_shape[2:]))


def _padded_border(gy, p, w_shape, hw):
    """The strips of gy (N, K, OH, OW) at the outputs whose window reaches into the padding."""
    (OH, OW), (KH, KW) = gy.shape[2:], w_shape[2:]
    strips = []
    for axis, O, S, P, D, K, size in ((2, OH, p.SH, p.PH, p.DH, KH, hw[0]),
                                      (3, OW, p.SW, p.PW, p.DW, KW, hw[1])):
        lo = min(O, -(-P // S))                                  # o * S < P
        hi = max(lo, min(O, -(-(size + P - (K - 1) * D) // S)))  # o*S - P + (K-1)*D >= size
        index = [slice(None)] * 4
        for part in (slice(0, lo), slice(hi, O)):
            index[axis] = part
            strips.append(gy[tuple(index)])
    return strips


# --- the three passes as GEMMs ----------------------------------------------------------------
# Activations move to (C, N * L) order and back with one copy of x / y / gy (none when N == 1).

def _to_cn(a, G):
    """(N, C, L) -> (G, C/G, N*L), batch folded into the GEMM's columns."""
    xp = get_array_module(a)
    N, C, L = a.shape
    if N > 1:
        a = a.transpose(1, 0, 2)                          # (N, C, L) -> (C, N, L)
    return xp.ascontiguousarray(a).reshape(G, C // G, N * L)


def _from_cn(a, N, OH, OW):
    """(G, K/G, N*L) -> (N, K, OH, OW), C-contiguous."""
    xp = get_array_module(a)
    K = a.shape[0] * a.shape[1]
    a = a.reshape(K, N, OH, OW)
    if N > 1:
        a = xp.ascontiguousarray(a.transpose(1, 0, 2, 3))  # (K, N, OH, OW) -> (N, K, OH, OW)
    return a.reshape(N, K, OH, OW)


def _mm(a, b, out=None):
    """Batched (G, m, k) @ (G, k, n). NumPy's stacked matmul calls BLAS only for C-contiguous
    operands (a transposed view took 10x longer here), while its 2-D matmul passes transposes to
    BLAS as flags: so G == 1 goes through 2-D matmul, and G > 1 gets contiguous operands."""
    xp = get_array_module(a)
    if a.dtype in HALF_FLOATS:
        return _half_mm(xp, a, b, out)
    if a.shape[0] == 1:
        return _gemm(a[0], b[0], None if out is None else out[0])[None]
    return _gemm(xp.ascontiguousarray(a), xp.ascontiguousarray(b), out)


LONG_SUM_CHUNK = 2048   # columns per partial product of _small_long_product
SMALL_OUTPUT = 512      # outputs (K * Cg*KH*KW) up to which a long weight-gradient sum is cut


def _small_long_product(a, b):
    """a @ b.T for a (m, L) and b (n, L) with a small m * n output and a long sum, as partial
    products over LONG_SUM_CHUNK columns: OpenBLAS runs the whole product at 13-20 GFLOP/s.
    Measured on one thread: LeNet-5's first conv weight gradient, (6, 50176) by (25, 50176),
    0.52 -> 0.24 ms; MNIST's (32, 9) by 43264 0.99 -> 0.33 ms; the tutorial's (6, 75) by 3136
    0.088 -> 0.036 ms. (At (16, 150) by 6400, 2400 outputs, it was 1.8x slower.)"""
    starts = range(0, a.shape[1], LONG_SUM_CHUNK)
    parts = [None] * len(starts)

    def part(i):
        chunk = slice(starts[i], starts[i] + LONG_SUM_CHUNK)
        parts[i] = numpy.matmul(a[:, chunk], b[:, chunk].T)
    spread(len(starts), part)    # over the BLAS's width, each product on one BLAS thread
    return functools.reduce(operator.iadd, parts)


def _half_mm(xp, a, b, out=None):
    """_mm of float16 / bfloat16 operands (the CUDA target: the CPU widens before), accumulated
    in float32 and rounded once: one 2-D GEMM per group, as a 2-D float16 matmul of CuPy is
    cuBLAS's GemmEx with float32 accumulation (tensor cores) while a stacked one is silently
    widened. bfloat16 on the GPU (CuPy's bfloat16 GEMM is not confirmed) and both formats under
    the emulator (NumPy's float16 matmul rounds every partial sum, and is ~180x slower than
    sgemm) multiply the widened operands in float32: the same values. Not timed on a GPU."""
    G, m, n = a.shape[0], a.shape[1], b.shape[2]
    out = xp.empty((G, m, n), a.dtype) if out is None else out
    native = is_cuda_array(a) and a.dtype == float16
    for g in range(G):
        if native:
            xp.matmul(a[g], b[g], out=out[g])
        else:
            with numpy.errstate(over="ignore"):   # beyond the half range: inf, as IEEE rounds
                out[g] = xp.matmul(a[g].astype(numpy.float32), b[g].astype(numpy.float32))
    return out


def _columns(x, p, KH, KW, OH, OW, algo, kept=None):
    """The GEMM's column operand (G, Cg*KH*KW, N*OH*OW) of x: strided input for 1x1, im2col
    otherwise (on the CPU into `kept`'s array, or else into the workspace)."""
    N, C = x.shape[:2]
    if algo == "gemm_1x1":
        xs = x[:, :, :OH * p.SH:p.SH, :OW * p.SW:p.SW]
        return _to_cn(xs.reshape(N, C, OH * OW), p.G)                  # (G, Cg, N*L)
    if kept is not None:
        _cpu.im2col(x, KH, KW, *p.geometry(), OH, OW,
                    out=kept.array.reshape(C, KH, KW, N, OH, OW), padded=_padded)
        return kept.array
    col = im2col(x, KH, KW, *p.geometry(), OH, OW, workspace=True)
    return col.reshape(p.G, C // p.G * KH * KW, N * OH * OW)  # (C, KH, KW, N, OH, OW) -> GEMM


@in_float32(half_kernels=True)
def conv2d(x, w, p, b=None, out_hw=None, keep_columns=False):
    """out_hw: compute only the first (OH, OW) outputs (the adjoint of a transposed conv whose
    output_padding added rows that no output reads). b: an optional bias, added (fused into the
    direct and implicit-GEMM kernels). keep_columns: return (y, columns), columns being the
    forward's im2col columns kept for conv2d_grad_weight (a KeptColumns), or None where it made
    none (another algorithm, the GPU, or the budget of kept.py spent)."""
    N, C, H, W = x.shape
    K, Cg, KH, KW = w.shape
    OH, OW = out_hw or p.out_size(H, W, KH, KW)
    algo = _algorithm("forward", p, x, x.shape, w.shape, (OH, OW), meets_padding=w)
    kept = None
    if keep_columns and algo == "im2col_gemm" and not on_cuda_kernels(x):
        kept = KeptColumns.take((p.G, C // p.G * KH * KW, N * OH * OW), x.dtype)
    y = _forward(x, w, p, b, OH, OW, algo, kept)
    return (y, kept) if keep_columns else y


def _forward(x, w, p, b, OH, OW, algo, kept=None, pass_="forward"):
    if algo == "depthwise":
        return grouped.depthwise_conv2d(x, w, *p.geometry(), OH, OW, b)
    if algo == "grouped":
        return grouped.grouped_conv2d(x, w, p.G, *p.geometry(), OH, OW, b)
    if algo == "implicit_gemm":
        return _cuda.implicit_gemm_conv2d(x, w, *p.geometry(), OH, OW, p.G, b)
    if algo == "direct":
        return _cpu.direct_conv2d(x, w, b, p.PH, p.PW, p.DH, p.DW, OH, OW, padded=_padded)
    if algo == "dense":      # (N, CKK) @ (CKK, K)
        N, K = x.shape[0], w.shape[0]
        y = _gemm(_flat(x, N), _flat(w, K).T).reshape(N, K, 1, 1)
    else:
        y = _gemm_conv2d(x, w, p, OH, OW, algo, pass_, kept)
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


def _flat(a, rows):
    """a as a C-contiguous (rows, -1) matrix."""
    return numpy.ascontiguousarray(a).reshape(rows, -1)


def _gemm_conv2d(x, w, p, OH, OW, algo, pass_="forward", kept=None):
    """The forward as GEMMs: 'winograd' / 'winograd4x4', or one GEMM per group over the columns
    of x ('gemm_1x1', 'im2col_gemm'; im2col into `kept`'s array when given)."""
    if algo in ("winograd", "winograd4x4"):
        y = _winograd_conv2d(x, w, p, OH, OW, 2 if algo == "winograd" else 4)
        if y is not None:
            return y
        # a NaN or inf: the transforms spread it over whole tiles (inf - inf), so the outputs
        # take the definition's values, and PyTorch's, from im2col_gemm
        algo = _record(pass_, "im2col_gemm")
    xp = get_array_module(x)
    N = x.shape[0]
    K, Cg, KH, KW = w.shape
    wr = xp.ascontiguousarray(w).reshape(p.G, K // p.G, Cg * KH * KW)
    if _per_image(x, p, wr, N, OH * OW):
        if algo == "gemm_1x1" and p.SH == p.SW == 1 and x.shape[2:] == (OH, OW):
            # x's planes are the columns
            x3 = numpy.ascontiguousarray(x).reshape(N, Cg, OH * OW)
            return _gemm_per_image(wr[0], lambda n: x3[n], N, OH, OW)
        L = OH * OW
        cols = _columns(x, p, KH, KW, OH, OW, algo, kept)[0]                # (CKK, N*L)
        return _gemm_per_image(wr[0], lambda n: cols[:, n * L:(n + 1) * L], N, OH, OW)
    return _from_cn(_mm(wr, _columns(x, p, KH, KW, OH, OW, algo, kept)), N, OH, OW)


def _winograd_conv2d(x, w, p, OH, OW, tile):
    """y (N, K, OH, OW) by Winograd F(tile x tile, 3x3), a dilated conv over its phase planes;
    None where an output is not finite."""
    K, N = w.shape[0], x.shape[0]
    DH, DW = p.DH, p.DW
    if DH * DW > 1:
        y = numpy.empty((N, K, OH, OW), x.dtype)
        x, (OH, OW), p = _cpu.phase_images(x, DH, DW), _phase_hw(p, (OH, OW)), _undilated(p)
        N = x.shape[0]
    C = x.shape[1]
    n, T = (tile + 2) ** 2, N * -(-OH // tile) * -(-OW // tile)
    u = _workspace((n, K, C), x.dtype, 2)
    v = _workspace((n, C, T), x.dtype, 0, row_len=T)
    m = _workspace((n, K, T), x.dtype, 1, row_len=T)
    ys = numpy.empty((N, K, OH, OW), x.dtype)
    if not _cpu.winograd_conv2d(x, w, p.PH, p.PW, OH, OW, u, v, m, ys, tile):
        return None
    return _cpu.from_phase_images(ys, DH, DW, y) if DH * DW > 1 else ys


PER_IMAGE_MIN_COLUMNS = 256       # output positions per image from which _gemm_per_image pays


PER_IMAGE_MIN_MACS_THREADED = 40 << 20   # with the BLAS on several threads, per image at least


def _per_image(x, p, wr, N, L):
    """Whether the forward GEMM goes image by image into y (CPU, one group, a float32 / float64
    product of SPREAD_GEMM_MACS or more, images of PER_IMAGE_MIN_COLUMNS outputs or more: with
    fewer, each image's product would stream the whole weight for a few columns). With the BLAS
    on several threads, only where each image's product is PER_IMAGE_MIN_MACS_THREADED or more:
    a smaller one pays the threads' start for each image. A/B in one process, forward, per image
    / batched: at one thread 0.76-0.98 ((64, 3, 64, 64) -> 64 4x4 stride 2, DCGAN's first conv,
    8.3 / 11.0 ms; its (64, 64, 32, 32) -> 128 66.0 / 66.7 ms); at two 1.07-1.54 for images of
    3-34 M multiply-adds (DCGAN's 10.2 / 7.5 and 39.1 / 35.8 ms, ResNet's (32, 64, 32, 32) -> 128
    1x1 stride 2 2.3 / 1.5 ms), while the 7x7 stem (118 M) and the bottleneck 1x1 (51 M) gained
    (see _gemm_per_image)."""
    if not (p.G == 1 and N > 1 and L >= PER_IMAGE_MIN_COLUMNS and not on_cuda_kernels(x) and
            x.dtype not in HALF_FLOATS and wr.size * N * L >= SPREAD_GEMM_MACS):
        return False
    return wr.size * L >= PER_IMAGE_MIN_MACS_THREADED or _blas_width() <= 1


def _gemm_per_image(w2, image_columns, N, OH, OW):
    """y (N, K, OH, OW) = w2 (K, CKK) @ image_columns(n) (CKK, OH*OW) for each image, each
    product (`gemm`: on the BLAS's threads when large) written straight into y's NCHW layout
    instead of one (K, N*L) product and a transposing copy. A/B in one process, 2 threads,
    forward (and forward + backward): the 7x7 stem at batch 4 12.5 -> 10.3 ms (38.8 -> 37.5),
    ResNet's 1x1 (4, 256, 56, 56) -> 64 5.2 -> 3.2 ms (16.3 -> 14.4), a dilated 3x3 and a
    stride-2 3x3 unchanged. (Sharing the images over Python threads with `spread` instead was
    1.2-1.6x slower than the one product.)"""
    K, L = w2.shape[0], OH * OW
    y = numpy.empty((N, K, L), w2.dtype)
    for n in range(N):
        _gemm(w2, image_columns(n), out=y[n])
    return y.reshape(N, K, OH, OW)


@in_float32(half_kernels=True)
def conv2d_grad_input(w, gy, x_shape, p):
    """gx = conv^T(gy, w) for an input of x_shape; gy may be smaller than the full output."""
    xp = get_array_module(gy)
    N, C, H, W = x_shape
    K, Cg, KH, KW = w.shape
    OH, OW = gy.shape[2:]
    algo = _algorithm("grad_input", p, gy, x_shape, w.shape, (OH, OW), meets_padding=w)
    if algo == "depthwise":
        return grouped.depthwise_grad_input(gy, w, C, H, W, *p.geometry())
    if algo == "grouped":
        return grouped.grouped_grad_input(gy, w, p.G, C, H, W, *p.geometry())
    if algo == "dense":      # (N, K) @ (K, CKK)
        return _gemm(_flat(gy, N), _flat(w, K)).reshape(x_shape)
    if algo != "gemm_1x1" and _grad_input_as_conv(p, w, gy, x_shape, algo):
        # the correlation of the zero-padded gy with the flipped, transposed weight: im2col on
        # gy costs less than col2im on the columns (7.6 vs 12.9 ms at (32, 64, 32, 32), 3x3)
        wf = w.reshape(p.G, K // p.G, Cg, KH, KW).transpose(0, 2, 1, 3, 4)[..., ::-1, ::-1]
        pf = ConvParams((1, 1), ((KH - 1) * p.DH - p.PH, (KW - 1) * p.DW - p.PW),
                        (p.DH, p.DW), p.G)
        return _forward(gy, wf.reshape(C, K // p.G, KH, KW), pf, None, H, W, algo,
                        pass_="grad_input")
    gyt = _to_cn(gy.reshape(N, K, OH * OW), p.G)                        # (G, Kg, N*L)
    wt = xp.ascontiguousarray(w).reshape(p.G, K // p.G, Cg * KH * KW).transpose(0, 2, 1)
    if algo == "gemm_1x1":
        gxs = _from_cn(_mm(wt, gyt), N, OH, OW)                         # (N, C, OH, OW)
        if (OH, OW) == (H, W):
            return gxs
        gx = xp.zeros(x_shape, gy.dtype)
        gx[:, :, :OH * p.SH:p.SH, :OW * p.SW:p.SW] = gxs
        return gx
    _record("grad_input", "im2col_gemm")     # where winograd was chosen but gy cannot go
    shape = (p.G, Cg * KH * KW, N * OH * OW)
    out = None if on_cuda_kernels(gy) else _workspace(shape, gy.dtype)
    gcol = _mm(wt, gyt, out=out).reshape(C, KH, KW, N, OH, OW)  # (G, CKK, NL) -> col layout
    return col2im(gcol, H, W, *p.geometry())


def _grad_input_as_conv(p, w, gy, x_shape, algo):
    """Whether the input gradient runs as a forward conv of gy (on the CPU, stride 1, gy the
    whole output, padding within the kernel's reach; for im2col_gemm gy's columns no larger
    than the forward's: LeNet's second conv, 6 -> 16 channels at 14x14 -> 10x10, would im2col
    5x more, 13 ms instead of GEMM + col2im; and a weight no larger than gy's columns' width, as
    the conv copies the flipped weight: ResNet-18's layer 4 at batch 8, 512 channels at 4x4, took
    16.2 ms so against 10.4 ms through GEMM + col2im). The padded gy's zeros meet every weight
    there, so a weight with NaN or inf takes the GEMM + col2im path, which never multiplies it by
    a position outside gy, as PyTorch."""
    (K, Cg, KH, KW), (N, C, H, W), (OH, OW) = w.shape, x_shape, gy.shape[2:]
    if p.SH != 1 or p.SW != 1 or on_cuda_kernels(gy) or \
            algo == "im2col_gemm" and (K * H * W > C * OH * OW or
                                       Cg * KH * KW > N * OH * OW) or \
            p.PH > (KH - 1) * p.DH or p.PW > (KW - 1) * p.DW or \
            gy.shape[2:] != (H + 2 * p.PH - (KH - 1) * p.DH, W + 2 * p.PW - (KW - 1) * p.DW):
        return False
    return bool(get_array_module(w).isfinite(w).all())


@in_float32(half_kernels=True)
def conv2d_grad_weight(x, gy, w_shape, p, columns=None):
    """gw = the sum over the batch and output positions of gy * shifted x. columns: x's columns
    kept by conv2d(..., keep_columns=True) for this conv, used instead of a second im2col."""
    xp = get_array_module(x)
    N, C, H, W = x.shape
    K, Cg, KH, KW = w_shape
    OH, OW = gy.shape[2:]
    algo = _algorithm("grad_weight", p, x, x.shape, w_shape, (OH, OW), meets_padding=gy)
    if algo == "depthwise":
        return grouped.depthwise_grad_weight(x, gy, KH, KW, *p.geometry())
    if algo == "grouped":
        return grouped.grouped_grad_weight(x, gy, p.G, KH, KW, *p.geometry())
    if algo == "dense":      # (K, N) @ (N, CKK)
        return _gemm(_flat(gy, N).T, _flat(x, N)).reshape(w_shape)
    if algo == "winograd":
        xs, gys, ps = x, gy, p
        if p.DH * p.DW > 1:     # the sum over the phase planes' undilated weight gradients
            xs, gys = (_cpu.phase_images(a, p.DH, p.DW) for a in (x, gy))
            ps = _undilated(p)
        Ns, (OHs, OWs) = xs.shape[0], gys.shape[2:]
        T = Ns * ((OHs + 1) // 2) * ((OWs + 1) // 2)
        gw = _cpu.winograd_grad_weight(
            xs, gys, ps.PH, ps.PW, _workspace((16, C, T), x.dtype, 0),
            _workspace((16, K, T), x.dtype, 1), _workspace((16, K, C), x.dtype, 2))
        if gw is not None:
            return gw
        algo = _record("grad_weight", "im2col_gemm")   # NaN or inf: as in _gemm_conv2d
    gyt = _to_cn(gy.reshape(N, K, OH * OW), p.G)                        # (G, Kg, N*L)
    CKK, NL = Cg * KH * KW, N * OH * OW
    if columns is not None and algo == "im2col_gemm" and columns.matches((p.G, CKK, NL), x.dtype):
        cols = columns.array
    else:
        cols = _columns(x, p, KH, KW, OH, OW, algo)                     # (G, CKK, N*L)
    if p.G == 1 and not on_cuda_kernels(x):
        if K * CKK <= SMALL_OUTPUT and NL > 2 * LONG_SUM_CHUNK:
            return _small_long_product(gyt[0], cols[0]).reshape(w_shape)
        if _grad_weight_direct(K, CKK, NL):
            return _gemm(gyt[0], cols[0].T).reshape(w_shape)            # (K, NL) @ (NL, CKK)
    # gw^T = cols @ gy^T: (G, CKK, NL) @ (G, NL, Kg), the big operand contiguous and in the
    # GEMM's M position, then one transposing copy
    gw = _mm(cols, gyt.transpose(0, 2, 1)).transpose(0, 2, 1)           # (G, Kg, CKK)
    return xp.ascontiguousarray(gw).reshape(w_shape)


def _grad_weight_direct(K, CKK, NL):
    """Whether the CPU weight gradient is better as gy @ cols^T (K, CKK) straight into the
    weight's layout than as cols @ gy^T and a transposing copy. Measured (OpenBLAS SkylakeX, 1
    and 2 threads; time direct / transposed): with a short sum, NL <= 4K, 0.22-0.85 (ResNet-18's
    layer 4 at batch 8, CKK 4608, NL 128, K 512: 3.7 vs 17.2 ms); with few columns, CKK <= 128,
    0.59-0.97; with a long sum over a wide CKK (576 x 8192 for K 128) 1.1-1.3; for a few output
    channels (K 6 or 16: LeNet) 1.4-2.5."""
    return K >= 64 and (NL <= 4 * K or CKK <= 128)


algorithm_from_env()
