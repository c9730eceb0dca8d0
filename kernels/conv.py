"""Dispatchers of the convolution kernels: Numba on NumPy arrays, the xp-generic reference on
CuPy arrays (correct; dedicated CUDA kernels are another issue).

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

from minicnn.backend import is_cuda_array

from .reference import conv as _ref


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
    if is_cuda_array(x):
        return _ref.im2col(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)
    x = _c(x)
    N, C = x.shape[:2]
    shape = (C, KH, KW, N, OH, OW)
    col = _workspace(shape, x.dtype) if workspace else numpy.empty(shape, x.dtype)
    run(_cpu().im2col, col.size, x, KH, KW, SH, SW, PH, PW, DH, DW, col)
    return col


def col2im(col, H, W, SH, SW, PH, PW, DH, DW):
    if is_cuda_array(col):
        return _ref.col2im(col, H, W, SH, SW, PH, PW, DH, DW)
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


def depthwise_conv2d(x, w, SH, SW, PH, PW, DH, DW, OH, OW, b=None):
    """b: an optional (K,) bias, added here (fused into the 3x3 stride-1 kernel)."""
    if is_cuda_array(x):
        y = _ref.depthwise_conv2d(x, w, SH, SW, PH, PW, DH, DW, OH, OW)
        return y if b is None else y + b.reshape(1, -1, 1, 1)
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
    if is_cuda_array(gy):
        return _ref.depthwise_grad_input(gy, w, C, H, W, SH, SW, PH, PW, DH, DW)
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
    if is_cuda_array(x):
        return _ref.depthwise_grad_weight(x, gy, KH, KW, SH, SW, PH, PW, DH, DW)
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
