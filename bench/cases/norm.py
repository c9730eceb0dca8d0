"""Normalization layers on the memory-bound suite shape: (8, 64, 56, 56) on the CPU,
(32, 256, 56, 56) on the GPU. Batch norm in training mode (batch statistics, running stats
updated), layer norm over (C, H, W) with an elementwise affine of that shape, instance norm
(no affine, PyTorch's default) and group norm with 32 groups.

Bytes are the algorithmic minimum: forward reads x and writes y (2 x size); forward+backward
adds reading x and gy and writing gx (5 x size in all).
"""
from ..registry import Workload, case


def _shape(ctx):
    n = ctx.by_device(cpu=8, gpu=32, quick=2)
    c = ctx.by_device(cpu=64, gpu=256, quick=64)
    return (n, c, 56, 56)


def _norm_case(ctx, layer, params=lambda m: []):
    """layer(nn, shape) builds the layer from either library's nn module (minicnn.nn or
    torch.nn); params(m) lists the parameters whose gradients are compared besides x's."""
    import minicnn as mc  # noqa: PLC0415
    shape = _shape(ctx)
    a = ctx.randn(shape)
    gy = ctx.randn(shape)
    x, xt = ctx.mc(a, requires_grad=True), ctx.th(a, requires_grad=True)
    gm, gt = ctx.mc(gy), ctx.th(gy)
    fm, ft = layer(mc.nn, shape).to(ctx.device), layer(ctx.torch.nn, shape).to(ctx.device)

    def mc_fwd_bwd():
        fm(x).backward(gm)
        return ctx.mc_grads(x, *params(fm))

    def th_fwd_bwd():
        ft(xt).backward(gt)
        return ctx.th_grads(xt, *params(ft))

    nbytes = a.nbytes
    return Workload(mc_fwd=lambda: fm(x), torch_fwd=lambda: ft(xt),
                    mc_fwd_bwd=mc_fwd_bwd, torch_fwd_bwd=th_fwd_bwd,
                    bytes=2 * nbytes, bytes_fwd_bwd=5 * nbytes, atol=2e-4, rtol=1e-3,
                    extra={"shape": "x".join(map(str, shape))})


def _affine(m):
    return [m.weight, m.bias]


@case("norm", "batch_norm2d", tags=("cpu", "gpu"),
      description="nn.BatchNorm2d(C) in training mode")
def batch_norm(ctx):
    return _norm_case(ctx, lambda nn, shape: nn.BatchNorm2d(shape[1]), _affine)


@case("norm", "layer_norm_chw", tags=("cpu", "gpu"),
      description="nn.LayerNorm((C, H, W)) with elementwise affine")
def layer_norm(ctx):
    return _norm_case(ctx, lambda nn, shape: nn.LayerNorm(shape[1:]), _affine)


@case("norm", "instance_norm2d", tags=("cpu", "gpu"),
      description="nn.InstanceNorm2d(C) (no affine, no running stats)")
def instance_norm(ctx):
    return _norm_case(ctx, lambda nn, shape: nn.InstanceNorm2d(shape[1]))


@case("norm", "group_norm_g32", tags=("cpu", "gpu"),
      description="nn.GroupNorm(32, C) with affine")
def group_norm(ctx):
    return _norm_case(ctx, lambda nn, shape: nn.GroupNorm(32, shape[1]), _affine)
