"""Pooling on the memory-bound suite shape: (8, 64, 56, 56) on the CPU, (32, 256, 56, 56) on the
GPU. max_pool2d 3x3 stride 2 padding 1 (ResNet's stem pool) and avg_pool2d 2x2.

Bytes are the algorithmic minimum: forward reads x and writes y; forward+backward adds reading
gy and writing gx (max pool: and the indices, 8 bytes per output).
"""
from ..registry import Workload, case


def _shape(ctx):
    n = ctx.by_device(cpu=8, gpu=32, quick=2)
    c = ctx.by_device(cpu=64, gpu=256, quick=64)
    return (n, c, 56, 56)


def _pool_case(ctx, fn_mc, fn_th, out_hw, index_bytes):
    import minicnn as mc  # noqa: PLC0415
    shape = _shape(ctx)
    a = ctx.randn(shape)
    gya = ctx.randn(shape[:2] + out_hw)
    x, xt = ctx.mc(a, requires_grad=True), ctx.th(a, requires_grad=True)
    gy, gyt = ctx.mc(gya), ctx.th(gya)
    F, TF = mc.functional, ctx.torch.nn.functional

    def mc_fwd_bwd():
        fn_mc(F, x).backward(gy)
        return ctx.mc_grads(x)

    def torch_fwd_bwd():
        fn_th(TF, xt).backward(gyt)
        return ctx.th_grads(xt)

    out_bytes = gya.nbytes
    fwd_bytes = a.nbytes + out_bytes + index_bytes * gya.size
    return Workload(mc_fwd=lambda: fn_mc(F, x), torch_fwd=lambda: fn_th(TF, xt),
                    mc_fwd_bwd=mc_fwd_bwd, torch_fwd_bwd=torch_fwd_bwd,
                    bytes=fwd_bytes, bytes_fwd_bwd=fwd_bytes + out_bytes + a.nbytes
                    + index_bytes * gya.size, atol=1e-5, rtol=1e-5,
                    extra={"shape": "x".join(map(str, shape))})


@case("pool", "max_pool_3x3_s2_p1", tags=("cpu", "gpu"),
      description="F.max_pool2d(x, 3, stride=2, padding=1)")
def max_pool(ctx):
    return _pool_case(ctx, lambda F, x: F.max_pool2d(x, 3, 2, 1),
                      lambda F, x: F.max_pool2d(x, 3, 2, 1), (28, 28), 8)


@case("pool", "avg_pool_2x2", tags=("cpu", "gpu"), description="F.avg_pool2d(x, 2)")
def avg_pool(ctx):
    return _pool_case(ctx, lambda F, x: F.avg_pool2d(x, 2), lambda F, x: F.avg_pool2d(x, 2),
                      (28, 28), 0)
