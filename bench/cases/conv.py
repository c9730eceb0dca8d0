"""The convolution suite of DESIGN.md: F.conv2d with bias, forward and forward+backward (input,
weight and bias gradients from a fixed random upstream gradient), against torch's conv2d.

FLOPs: forward 2 * N * K * OH * OW * (C / groups) * KH * KW (multiply-adds of the GEMM form);
forward+backward three times that (input- and weight-gradient GEMMs). column_buffer_MB is the
im2col buffer one call uses (0 for the 1x1 and depthwise paths, which need none).
"""
from ..registry import Workload, case

# name: (GPU N, CPU N, C, H, K, k, s, p, d, g)
SUITE = {
    "lenet_c1_5x5": (256, 64, 1, 28, 6, 5, 1, 0, 1, 1),
    "resnet_stem7x7": (32, 4, 3, 224, 64, 7, 2, 3, 1, 1),
    "resnet_l1_3x3": (32, 4, 64, 56, 64, 3, 1, 1, 1, 1),
    "resnet_l3_3x3": (32, 4, 256, 14, 256, 3, 1, 1, 1, 1),
    "bottleneck_1x1": (32, 4, 256, 56, 64, 1, 1, 0, 1, 1),
    "dilated_3x3_d2": (32, 4, 64, 56, 64, 3, 1, 2, 2, 1),
    "grouped_3x3_g32": (32, 4, 128, 28, 128, 3, 1, 1, 1, 32),
    "depthwise_3x3": (32, 4, 256, 28, 256, 3, 1, 1, 1, 256),
    "cifar_3x3": (128, 16, 64, 32, 64, 3, 1, 1, 1, 1),
}


def _conv_case(name):
    gpu_n, cpu_n, C, H, K, k, s, p, d, g = SUITE[name]

    def run(ctx):
        import minicnn as mc  # noqa: PLC0415
        F, TF = mc.functional, ctx.torch.nn.functional
        N = ctx.by_device(cpu=cpu_n, gpu=gpu_n, quick=1)
        OH = (H + 2 * p - d * (k - 1) - 1) // s + 1
        bound = (C // g * k * k) ** -0.5
        a = ctx.array((N, C, H, H))
        wa = ctx.array((K, C // g, k, k), -bound, bound)
        ba = ctx.array((K,), -bound, bound)
        gya = ctx.randn((N, K, OH, OH))
        x, w, b = (ctx.mc(v, requires_grad=True) for v in (a, wa, ba))
        xt, wt, bt = (ctx.th(v, requires_grad=True) for v in (a, wa, ba))
        gy, gyt = ctx.mc(gya), ctx.th(gya)
        kw = dict(stride=s, padding=p, dilation=d, groups=g)

        def mc_fwd_bwd():
            F.conv2d(x, w, b, **kw).backward(gy)
            return ctx.mc_grads(x, w, b)

        def torch_fwd_bwd():
            TF.conv2d(xt, wt, bt, **kw).backward(gyt)
            return ctx.th_grads(xt, wt, bt)

        flops = 2.0 * N * K * OH * OH * (C // g) * k * k
        im2col = not (g == C and g > 1) and not (k == 1 and p == 0)
        col_mb = N * C * k * k * OH * OH * 4 / 2 ** 20 if im2col else 0.0
        return Workload(mc_fwd=lambda: F.conv2d(x, w, b, **kw),
                        torch_fwd=lambda: TF.conv2d(xt, wt, bt, **kw),
                        mc_fwd_bwd=mc_fwd_bwd, torch_fwd_bwd=torch_fwd_bwd,
                        flops=flops, flops_fwd_bwd=3 * flops, atol=1e-3, rtol=1e-3,
                        extra={"shape": f"{N}x{C}x{H}x{H} K{K} k{k} s{s} p{p} d{d} g{g}",
                               "column_buffer_MB": round(col_mb, 1)})
    run.__name__ = name
    return run


for _name in SUITE:
    case("conv", _name, tags=("cpu", "gpu"), shape=_name)(_conv_case(_name))
