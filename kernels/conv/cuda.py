"""The convolution family on the GPU: launch functions of conv.cu.

    im2col(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)                 -> col (C, KH, KW, N, OH, OW)
    col2im(col, H, W, SH, SW, PH, PW, DH, DW)                         -> img (N, C, H, W)
    implicit_gemm_conv2d(x, w, SH, SW, PH, PW, DH, DW, OH, OW, groups=1, b=None, block_m=None)
                                                                      -> y (N, K, OH, OW) (+ b)

CuPy arrays run on the GPU, NumPy arrays under the CPU emulator (the tests).
No launch function synchronizes with the host. im2col and col2im take float16 / bfloat16 too
(half.cuh); the implicit GEMM float32 / float64 only.
"""
from minicnn.devices import get_array_module

from ..cuda import module
from ..cuda.launch import blocks, check_float, fastdivs

THREADS = 256
WAVES = 8                      # grid-stride loops: at most this many blocks per SM
IG_BN, IG_THREADS = 128, 128   # the implicit-GEMM tile's positions and threads (conv.cu IG_*)
# its output channels: 64, or 32 (the _m32 kernel) for groups of at most 32 output channels
IG_KERNELS = {64: "conv_implicit_gemm_fwd_kernel", 32: "conv_implicit_gemm_m32_fwd_kernel"}


def im2col(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW):
    xp = get_array_module(x)
    if x.ndim != 4:
        raise ValueError(f"im2col: expected a 4-D input (N, C, H, W), got shape {tuple(x.shape)}")
    check_float("im2col", x, half=True)
    x = xp.ascontiguousarray(x)
    N, C, H, W = x.shape
    shape = (C, KH, KW, N, OH, OW)
    module.check_size("im2col", x.shape, shape)
    col = module.empty(xp, shape, x.dtype)
    total = col.size
    if total:
        module.kernel("conv", "im2col_fwd_kernel", x.dtype)(
            blocks(total, THREADS, WAVES, like=x), THREADS,
            (x, col, N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW, total)
            + fastdivs(OW, OH, N, KW, KH))
    return col


def col2im(col, H, W, SH, SW, PH, PW, DH, DW):
    xp = get_array_module(col)
    if col.ndim != 6:
        raise ValueError(f"col2im: expected a 6-D column buffer (C, KH, KW, N, OH, OW), got "
                         f"shape {tuple(col.shape)}")
    check_float("col2im", col, half=True)
    col = xp.ascontiguousarray(col)
    C, KH, KW, N, OH, OW = col.shape
    module.check_size("col2im", col.shape, (N, C, H, W))
    img = module.empty(xp, (N, C, H, W), col.dtype)
    total = img.size
    if total:
        module.kernel("conv", "col2im_fwd_kernel", col.dtype)(
            blocks(total, THREADS, WAVES, like=col), THREADS,
            (col, img, N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW, total)
            + fastdivs(W, H, C, SH, SW))
    return img


def implicit_gemm_conv2d(x, w, SH, SW, PH, PW, DH, DW, OH, OW, groups=1, b=None, block_m=None):
    """y = conv2d(x, w, stride, padding, dilation, groups) (+ b), computing only the outputs
    (OH, OW) given (they may be fewer than the full output size), with no column buffer.
    block_m: the tile's output channels, 64 or 32 (default: 32 when a group has at most 32)."""
    xp = get_array_module(x)
    op = "implicit_gemm_conv2d"
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input and weight, got input "
                         f"{tuple(x.shape)} and weight {tuple(w.shape)}")
    check_float(op, x)
    if w.dtype != x.dtype or (b is not None and b.dtype != x.dtype):
        raise TypeError(f"{op}: input ({x.dtype}), weight ({w.dtype})"
                        + ("" if b is None else f" and bias ({b.dtype})")
                        + " must have the same dtype")
    N, C, H, W = x.shape
    K, Cg, KH, KW = w.shape
    G = int(groups)
    if G < 1 or K % G or Cg * G != C:
        raise ValueError(f"{op}: groups={groups}, weight {tuple(w.shape)} and input "
                         f"{tuple(x.shape)} do not match (need K % groups == 0 and "
                         f"C == weight.shape[1] * groups)")
    if b is not None and tuple(b.shape) != (K,):
        raise ValueError(f"{op}: expected bias of size ({K},), got {tuple(b.shape)}")
    if G > 65535:
        raise ValueError(f"{op}: at most 65535 groups (the grid's z dimension), got {G}")
    x, w = xp.ascontiguousarray(x), xp.ascontiguousarray(w)
    module.check_size(op, x.shape, w.shape, (N, K, OH, OW))
    y = module.empty(xp, (N, K, OH, OW), x.dtype)
    Kg, NL = K // G, N * OH * OW
    BM = block_m or (32 if Kg <= 32 else 64)
    if BM not in IG_KERNELS:
        raise ValueError(f"{op}: block_m must be 32 or 64, got {block_m}")
    if (Kg + BM - 1) // BM > 65535:
        raise ValueError(f"{op}: {Kg} output channels per group exceed the grid's y dimension "
                         f"(at most {65535 * BM} with block_m={BM})")
    if y.size:
        bias = w if b is None else xp.ascontiguousarray(b)   # any array of T when there is none
        grid = ((NL + IG_BN - 1) // IG_BN, (Kg + BM - 1) // BM, G)
        module.kernel("conv", IG_KERNELS[BM], x.dtype)(
            grid, IG_THREADS,
            (x, w, bias, y, N, C, H, W, K, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW, G,
             int(b is not None)))
    return y
