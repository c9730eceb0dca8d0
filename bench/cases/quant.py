"""int8 inference kernels against PyTorch's float32 on the same shapes (CPU only: the CuPy path
of minicnn.kernels.quant is untested).

- int8 GEMM (int8 x int8 -> int32, minicnn.kernels.quant.qgemm_nt) vs torch.mm in float32 on the same
  integer values: with K < 1032 every float32 partial sum is an exact integer, so both sides must
  agree exactly. The shapes are the im2col GEMMs of LeNet-5's second conv and of the ResNet
  layer-1 3x3 conv.
- QuantizedConv2d (int8 im2col + int8 GEMM + dequantizing epilogue) vs torch conv2d in float32
  on the dequantized input and weights (the same quantized values, so they agree to float
  rounding). FLOPs: 2 * N*OH*OW * K * C*KH*KW (integer ops for minicnn).
"""
import numpy as np

from ..registry import Workload, case


def _gemm_case(ctx, M, K, N):
    rng = np.random.default_rng(0)
    a = rng.integers(-128, 128, (M, K)).astype(np.int8)
    b = rng.integers(-127, 128, (N, K)).astype(np.int8)
    from minicnn.kernels import quant as kernels
    torch = ctx.torch
    at, bt = torch.from_numpy(a.astype(np.float32)), torch.from_numpy(b.astype(np.float32))
    return Workload(mc_fwd=lambda: kernels.qgemm_nt(a, b).astype(np.float32),
                    torch_fwd=lambda: torch.mm(at, bt.T), flops=2.0 * M * N * K,
                    atol=0, rtol=0, extra={"shape": f"{M}x{K} @ {K}x{N}", "mc": "int8->int32",
                                           "torch": "fp32"})


@case("quant", "int8_gemm_lenet_c2", tags=("cpu",))
def gemm_lenet(ctx):
    n = ctx.by_device(cpu=64, quick=8)
    return _gemm_case(ctx, n * 10 * 10, 150, 16)


@case("quant", "int8_gemm_resnet_l1_3x3", tags=("cpu",))
def gemm_resnet(ctx):
    n = ctx.by_device(cpu=4, quick=1)
    return _gemm_case(ctx, n * 56 * 56, 576, 64)


@case("quant", "qconv_cifar_3x3", tags=("cpu",))
def qconv(ctx):
    import minicnn as mc
    from minicnn import compress, nn
    from minicnn.kernels.quant import reference as ref
    n = ctx.by_device(cpu=16, quick=2)
    C = K = 64
    a = ctx.randn((n, C, 32, 32))
    conv = nn.Conv2d(C, K, 3, padding=1)
    s, zp = compress.choose_qparams(float(a.min()), float(a.max()))
    q = compress.QuantizedConv2d(conv, s, zp)
    x = mc.tensor(a)
    xd = ref.dequantize(ref.quantize_per_tensor(a, s, zp), s, zp)
    wd = q.dequantized_weight()
    torch = ctx.torch
    xt, wt = torch.from_numpy(xd), torch.from_numpy(np.ascontiguousarray(wd))
    bt = torch.from_numpy(conv.bias.numpy())
    return Workload(mc_fwd=lambda: q(x),
                    torch_fwd=lambda: torch.nn.functional.conv2d(xt, wt, bt, padding=1),
                    flops=2.0 * n * 32 * 32 * K * C * 9, atol=1e-3, rtol=1e-4,
                    extra={"mc": "int8 (im2col + int8 GEMM)", "torch": "fp32 on dequantized"})
