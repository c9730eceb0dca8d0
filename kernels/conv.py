"""Dispatchers of the convolution kernels: Numba on NumPy arrays, the CUDA kernels of
kernels/cuda/conv.cu and grouped.cu on CuPy arrays (and inside backend.emulate_cuda()).

    im2col(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW) -> col (C, KH, KW, N, OH, OW)
    col2im(col, H, W, SH, SW, PH, PW, DH, DW)         -> img (N, C, H, W), overlaps accumulated
    depthwise_conv2d(x, w, SH, SW, PH, PW, DH, DW, OH, OW, b=None) -> y (N, K, OH, OW) (+ b)
    depthwise_grad_input(gy, w, C, H, W, SH, SW, PH, PW, DH, DW) -> gx (N, C, H, W)
    depthwise_grad_weight(x, gy, KH, KW, SH, SW, PH, PW, DH, DW) -> gw (K, 1, KH, KW)

Column buffers: `im2col(..., workspace=True)` writes into a per-thread reusable workspace
(`workspace(shape, dtype)`), as cuDNN's workspace: a fresh 50 MB buffer per call costs more in
page faults than the copy itself (measured 24 ms vs 6 ms for (8, 64, 56, 56) 3x3). The caller
must be done with one workspace array before asking for the next; the conv ops use at most one
column buffer at a time, so this is the only one alive. `workspace_bytes()` reports its size.
"""
import threading

import numpy

from minicnn.devices import on_cuda_kernels



def _cpu():
    from .cpu import conv  # noqa: PLC0415 -- numba loads on first use
    return conv


SMALL_WORK = 1 << 15  # below this many inner-loop steps a kernel runs on the calling thread


def run(kernel, work, *args):
    """Call a Numba kernel; small problems run single-threaded. Waking the thread pool costs
    more than a small kernel (and, on a loaded 2-core machine, measured 22 ms instead of 15 us
    for a (2, 3, 6, 6) max pool), which dominates gradient checks of small inputs."""
    if work < SMALL_WORK:
        import numba  # noqa: PLC0415
        prev = numba.get_num_threads()
        if prev > 1:
            numba.set_num_threads(1)
            try:
                return kernel(*args)
            finally:
                numba.set_num_threads(prev)
    return kernel(*args)


def _workspace(shape, dtype):
    return workspace(shape, dtype)


def _c(a):
    return numpy.ascontiguousarray(a)


_local = threading.local()


def workspace(shape, dtype):
    """A C-contiguous NumPy array of `shape` backed by this thread's reusable buffer."""
    dtype = numpy.dtype(dtype)
    nbytes = int(numpy.prod(shape)) * dtype.itemsize
    buf = getattr(_local, "buf", None)
    if buf is None or buf.size < nbytes:
        buf = _local.buf = numpy.empty(max(nbytes, 1), numpy.uint8)
    return buf[:nbytes].view(dtype).reshape(shape)


def workspace_bytes():
    buf = getattr(_local, "buf", None)
    return 0 if buf is None else int(buf.size)


def release_workspace():
    _local.buf = None


def im2col(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW, workspace=False):
    if on_cuda_kernels(x):
        return _cuda_conv().im2col(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)
    x = _c(x)
    N, C = x.shape[:2]
    shape = (C, KH, KW, N, OH, OW)
    col = _workspace(shape, x.dtype) if workspace else numpy.empty(shape, x.dtype)
    run(_cpu().im2col, col.size, x, KH, KW, SH, SW, PH, PW, DH, DW, col)
    return col


def col2im(col, H, W, SH, SW, PH, PW, DH, DW):
    if on_cuda_kernels(col):
        return _cuda_conv().col2im(col, H, W, SH, SW, PH, PW, DH, DW)
    col = _c(col)
    C, N = col.shape[0], col.shape[3]
    img = numpy.empty((N, C, H, W), col.dtype)
    run(_cpu().col2im, col.size, col, SH, SW, PH, PW, DH, DW, img)
    return img


def _fast3x3(w_shape, SH, SW):
    """3x3 stride-1 depthwise: the register-blocked kernels (kernels/cpu/conv.py)."""
    return w_shape[-2] == 3 and w_shape[-1] == 3 and SH == 1 and SW == 1


def _bias(b, K, dtype):
    return numpy.zeros(K, dtype) if b is None else _c(b)


def _cuda_grouped():
    from .cuda import grouped  # noqa: PLC0415 -- CuPy / the kernels load on first use
    return grouped


def depthwise_conv2d(x, w, SH, SW, PH, PW, DH, DW, OH, OW, b=None):
    """b: an optional (K,) bias, added here (fused into the 3x3 stride-1 kernel)."""
    if on_cuda_kernels(x):
        return _cuda_grouped().depthwise_conv2d(x, w, SH, SW, PH, PW, DH, DW, OH, OW, b)
    x, w = _c(x), _c(w)
    y = numpy.empty((x.shape[0], w.shape[0], OH, OW), x.dtype)
    if _fast3x3(w.shape, SH, SW):
        run(_cpu().grouped3x3s1_fwd, y.size * 9, x, w, _bias(b, w.shape[0], x.dtype),
            x.shape[1], PH, PW, DH, DW, y)
        return y
    run(_cpu().depthwise_fwd, y.size * w.shape[2] * w.shape[3], x, w, SH, SW, PH, PW, DH, DW,
        y)
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


def depthwise_grad_input(gy, w, C, H, W, SH, SW, PH, PW, DH, DW):
    if on_cuda_kernels(gy):
        return _cuda_grouped().depthwise_grad_input(gy, w, C, H, W, SH, SW, PH, PW, DH, DW)
    gy, w = _c(gy), _c(w)
    gx = numpy.empty((gy.shape[0], C, H, W), gy.dtype)
    if (_fast3x3(w.shape, SH, SW) and w.shape[0] == C and PH <= 2 * DH and PW <= 2 * DW
            and gy.shape[2:] == (H + 2 * PH - 2 * DH, W + 2 * PW - 2 * DW)):
        # stride 1, one output channel per input channel: the adjoint is the forward on gy with
        # the kernel flipped and padding D*(3-1) - P (covers every (h, w) exactly as col2im)
        wf = numpy.ascontiguousarray(w[:, :, ::-1, ::-1])
        run(_cpu().grouped3x3s1_fwd, gx.size * 9, gy, wf, numpy.zeros(C, gy.dtype), C,
            2 * DH - PH, 2 * DW - PW, DH, DW, gx)
        return gx
    run(_cpu().depthwise_grad_input, gy.size * w.shape[2] * w.shape[3], gy, w, SH, SW, PH, PW,
        DH, DW, gx)
    return gx


def depthwise_grad_weight(x, gy, KH, KW, SH, SW, PH, PW, DH, DW):
    if on_cuda_kernels(x):
        return _cuda_grouped().depthwise_grad_weight(x, gy, KH, KW, SH, SW, PH, PW, DH, DW)
    x, gy = _c(x), _c(gy)
    gw = numpy.empty((gy.shape[1], 1, KH, KW), x.dtype)
    if _fast3x3((KH, KW), SH, SW):
        run(_cpu().grouped3x3s1_grad_weight, gy.size * 9, x, gy, x.shape[1], PH, PW, DH, DW,
            gw)
        return gw
    run(_cpu().depthwise_grad_weight, gy.size * KH * KW, x, gy, SH, SW, PH, PW, DH, DW, gw)
    return gw


# --- grouped 3x3 stride-1 convolution with few channels per group (CPU only) --------------------
# A direct kernel: with Cg = 4 channels per group, im2col + a batched GEMM of (Kg, 36) @ (36, N*L)
# matrices is bound by the column copy and tiny GEMMs. The ops layer takes this path on NumPy
# arrays when `grouped3x3_ok` says so.

GROUPED_MAX_CG = 8


def grouped3x3_ok(x_shape, w_shape, G, SH, SW, PH, PW, DH, DW):
    return (G > 1 and _fast3x3(w_shape, SH, SW) and w_shape[1] <= GROUPED_MAX_CG
            and PH <= 2 * DH and PW <= 2 * DW)


def grouped3x3_conv2d(x, w, G, PH, PW, DH, DW, OH, OW, b=None):
    x, w = _c(x), _c(w)
    y = numpy.empty((x.shape[0], w.shape[0], OH, OW), x.dtype)
    run(_cpu().grouped3x3s1_fwd, y.size * 9 * w.shape[1], x, w, _bias(b, w.shape[0], x.dtype),
        G, PH, PW, DH, DW, y)
    return y


def grouped3x3_grad_input(gy, w, G, C, H, W, PH, PW, DH, DW):
    """The adjoint as a forward on gy: per group the weight transposed (Kg <-> Cg) and flipped,
    padding D*(3-1) - P. gy must have the full output size of (H, W)."""
    if gy.shape[2:] != (H + 2 * PH - 2 * DH, W + 2 * PW - 2 * DW):
        raise ValueError(f"grouped3x3_grad_input: gy {gy.shape} is not the full output of "
                         f"({H}, {W})")
    gy = _c(gy)
    K, Cg = w.shape[0], w.shape[1]
    Kg = K // G
    wt = numpy.ascontiguousarray(
        w.reshape(G, Kg, Cg, 3, 3).transpose(0, 2, 1, 3, 4)[..., ::-1, ::-1]).reshape(C, Kg, 3, 3)
    gx = numpy.empty((gy.shape[0], C, H, W), gy.dtype)
    run(_cpu().grouped3x3s1_fwd, gx.size * 9 * Kg, gy, wt, numpy.zeros(C, gy.dtype), G,
        2 * DH - PH, 2 * DW - PW, DH, DW, gx)
    return gx


def grouped3x3_grad_weight(x, gy, G, Cg, PH, PW, DH, DW):
    x, gy = _c(x), _c(gy)
    gw = numpy.empty((gy.shape[1], Cg, 3, 3), x.dtype)
    run(_cpu().grouped3x3s1_grad_weight, gy.size * 9 * Cg, x, gy, G, PH, PW, DH, DW, gw)
    return gw


# --- the general convolution on the GPU: which algorithm -----------------------------------------
# Three algorithms compute a convolution that is neither depthwise nor a direct grouped kernel:
#   'gemm_1x1'       1x1 kernels without padding: one (batched over groups) GEMM on the (strided)
#                    input, no im2col -- the CPU path's "pointwise" case, shared with it;
#   'im2col_gemm'    im2col kernel + one cuBLAS GEMM batched over the groups (+ col2im backward);
#   'implicit_gemm'  forward only: conv.cu's tiled kernel that gathers the column matrix into
#                    shared memory on the fly, so no column buffer exists in device memory.
# `choose_algorithm` is the rule; `set_algorithm(name)` forces one (for benchmarks; None goes
# back to the rule); `last_algorithm` records what the last conv ran, per pass:
# {'forward': ..., 'grad_input': ..., 'grad_weight': ...} (the depthwise / grouped direct
# kernels show up under their path's name).
#
# PROVISIONAL RULE (written without a GPU to measure on; change the two constants after
# benchmarking with set_algorithm): the implicit GEMM for the forward pass when the GEMM is
# memory-bound on its column operand -- few output channels per group (Kg <= IMPLICIT_GEMM_MAX_KG:
# 2*Kg flops per 8 bytes of column traffic) -- or when the column buffer would be huge
# (>= IMPLICIT_GEMM_MIN_COL_BYTES, also a peak-memory saving); im2col + cuBLAS otherwise, whose
# GEMM is faster than the hand-written tile for large Kg and C*KH*KW.

ALGORITHMS = ("im2col_gemm", "implicit_gemm", "gemm_1x1")
IMPLICIT_GEMM_MAX_KG = 32
IMPLICIT_GEMM_MIN_COL_BYTES = 512 << 20
last_algorithm = {}
_forced = None


def _cuda_conv():
    from .cuda import conv  # noqa: PLC0415 -- CuPy / the emulator load on first use
    return conv


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
    import os  # noqa: PLC0415
    name = (os.environ if environ is None else environ).get("MINICNN_CONV_ALGORITHM") or None
    if name is not None:
        set_algorithm(name)
    return name


def choose_algorithm(x_shape, w_shape, stride=(1, 1), padding=(0, 0), dilation=(1, 1),
                     groups=1, itemsize=4, pass_="forward", out_hw=None):
    """The GPU algorithm for a general (not depthwise / direct grouped) conv2d of an input
    `x_shape` (N, C, H, W) with a weight `w_shape` (K, C/groups, KH, KW); see the rule above.
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
    OH, OW = out_hw or ((H + 2 * PH - DH * (KH - 1) - 1) // SH + 1,
                        (W + 2 * PW - DW * (KW - 1) - 1) // SW + 1)
    col_bytes = C * KH * KW * N * OH * OW * itemsize
    if K // groups <= IMPLICIT_GEMM_MAX_KG or col_bytes >= IMPLICIT_GEMM_MIN_COL_BYTES:
        return "implicit_gemm"
    return "im2col_gemm"


def select_algorithm(pass_, path, a, x_shape, w_shape, SH, SW, PH, PW, DH, DW, G,
                     out_hw=None):
    """For the conv ops: the algorithm of one pass, recorded in `last_algorithm[pass_]`.
    `path` is the ops' path ('pointwise', 'im2col', or a direct kernel's name, returned as it
    is); `a` the array that decides the device. On the CPU the general case stays as it was
    ('gemm_1x1' for pointwise, 'im2col_gemm' otherwise); on the GPU `choose_algorithm` picks."""
    if path not in ("pointwise", "im2col"):
        algo = path
    elif not on_cuda_kernels(a):
        algo = "gemm_1x1" if path == "pointwise" else "im2col_gemm"
    else:
        algo = choose_algorithm(x_shape, w_shape, (SH, SW), (PH, PW), (DH, DW), G,
                                a.dtype.itemsize, pass_, out_hw)
    last_algorithm[pass_] = algo
    return algo


# --- paths the conv ops choose only for arrays on the CUDA kernels ------------------------------
# The implicit GEMM (the rule above) and the direct grouped kernels of kernels/cuda/grouped.cu
# (`grouped_direct_ok`: few channels per group, where cuBLAS would get GEMMs with an inner
# dimension of only Cg*KH*KW; any kernel / stride / padding / dilation). The CPU ops keep their
# own paths, so these have no NumPy version.

def implicit_gemm_conv2d(x, w, SH, SW, PH, PW, DH, DW, OH, OW, groups=1, b=None):
    """conv2d (+ b) with no column buffer."""
    return _cuda_conv().implicit_gemm_conv2d(x, w, SH, SW, PH, PW, DH, DW, OH, OW, groups, b)


def grouped_direct_ok(w_shape, G):
    return G > 1 and w_shape[1] <= GROUPED_MAX_CG


def grouped_conv2d(x, w, G, SH, SW, PH, PW, DH, DW, OH, OW, b=None):
    """y (N, K, OH, OW) of a grouped conv (+ an optional (K,) bias, fused)."""
    return _cuda_grouped().grouped_conv2d(x, w, G, SH, SW, PH, PW, DH, DW, OH, OW, b)


def grouped_grad_input(gy, w, G, C, H, W, SH, SW, PH, PW, DH, DW):
    """gx (N, C, H, W) = conv^T(gy, w), for any (H, W) whose output covers gy."""
    return _cuda_grouped().grouped_grad_input(gy, w, G, C, H, W, SH, SW, PH, PW, DH, DW)


def grouped_grad_weight(x, gy, G, KH, KW, SH, SW, PH, PW, DH, DW):
    """gw (K, C/G, KH, KW) = sum over the batch and output positions of gy * shifted x."""
    return _cuda_grouped().grouped_grad_weight(x, gy, G, KH, KW, SH, SW, PH, PW, DH, DW)


algorithm_from_env()
