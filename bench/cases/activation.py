"""Element-wise activations and dropout on (8, 64, 56, 56) (CPU) / (32, 256, 56, 56) (GPU).

Bytes: forward reads x and writes y (2 x size); forward+backward adds reading x (or y) and gy
and writing gx (5 x size).
"""
from ..registry import Workload, case


def _shape(ctx):
    return (ctx.by_device(cpu=8, gpu=32, quick=2), ctx.by_device(cpu=64, gpu=256, quick=64),
            56, 56)


def _act_case(ctx, fm, ft, atol=1e-5, check=None):
    shape = _shape(ctx)
    a = ctx.array(shape, low=-4.0, high=4.0)
    gy = ctx.randn(shape)
    x, xt = ctx.mc(a, requires_grad=True), ctx.th(a, requires_grad=True)
    gm, gt = ctx.mc(gy), ctx.th(gy)

    def mc_fwd_bwd():
        fm(x).backward(gm)
        return ctx.mc_grads(x)

    def th_fwd_bwd():
        ft(xt).backward(gt)
        return ctx.th_grads(xt)

    return Workload(mc_fwd=lambda: fm(x), torch_fwd=lambda: ft(xt),
                    mc_fwd_bwd=mc_fwd_bwd, torch_fwd_bwd=th_fwd_bwd,
                    bytes=2 * a.nbytes, bytes_fwd_bwd=5 * a.nbytes, atol=atol, rtol=1e-4,
                    check=check, extra={"shape": "x".join(map(str, shape))})


@case("activation", "relu", tags=("cpu", "gpu"))
def relu(ctx):
    import minicnn.functional as F  # noqa: PLC0415
    return _act_case(ctx, F.relu, ctx.torch.nn.functional.relu)


@case("activation", "gelu", tags=("cpu", "gpu"), description="exact (erf) GELU")
def gelu(ctx):
    import minicnn.functional as F  # noqa: PLC0415
    return _act_case(ctx, F.gelu, ctx.torch.nn.functional.gelu)


@case("activation", "silu", tags=("cpu", "gpu"))
def silu(ctx):
    import minicnn.functional as F  # noqa: PLC0415
    return _act_case(ctx, F.silu, ctx.torch.nn.functional.silu)


@case("activation", "dropout_p0.5", tags=("cpu", "gpu"),
      description="F.dropout(x, 0.5) in training mode; masks differ between the libraries, so "
                  "the gate checks minicnn's output itself: every value 0 or 2x, about half "
                  "dropped, and the gradient uses the same mask")
def dropout(ctx):
    import numpy as np  # noqa: PLC0415
    import minicnn.functional as F  # noqa: PLC0415
    from minicnn.devices import to_numpy  # noqa: PLC0415
    shape = _shape(ctx)
    a = ctx.array(shape, low=0.5, high=1.5)
    gy = ctx.array(shape, low=0.5, high=1.5)

    def check():
        x = ctx.mc(a, requires_grad=True)
        y = F.dropout(x, 0.5)
        y.backward(ctx.mc(gy))
        out, g = to_numpy(y.array), to_numpy(x.grad.array)
        kept = out != 0
        if not np.allclose(out[kept], 2 * a[kept], rtol=1e-6):
            return "kept values are not scaled by 1 / (1 - p)"
        frac = 1 - kept.mean()
        if abs(frac - 0.5) > 5 * np.sqrt(0.25 / a.size):
            return f"dropped fraction {frac:.4f} is not 0.5"
        if not np.array_equal(g != 0, kept) or not np.allclose(g[kept], 2 * gy[kept], rtol=1e-6):
            return "the gradient does not use the forward mask"
        return None

    return _act_case(ctx, lambda t: F.dropout(t, 0.5),
                     lambda t: ctx.torch.nn.functional.dropout(t, 0.5), check=check)


@case("activation", "bias_relu", tags=("cpu", "gpu"),
      description="F.bias_act(x, b, 'relu') (one fused kernel each way on the GPU) vs torch "
                  "relu(x + b[None, :, None, None])")
def bias_relu(ctx):
    import minicnn.functional as F  # noqa: PLC0415
    shape = _shape(ctx)
    a = ctx.array(shape, low=-4.0, high=4.0)
    bias = ctx.array((shape[1],), low=-1.0, high=1.0)
    gy = ctx.randn(shape)
    x, xt = ctx.mc(a, requires_grad=True), ctx.th(a, requires_grad=True)
    b, bt = ctx.mc(bias, requires_grad=True), ctx.th(bias, requires_grad=True)
    gm, gt = ctx.mc(gy), ctx.th(gy)
    th_fn = lambda: ctx.torch.relu(xt + bt.view(1, -1, 1, 1))  # noqa: E731

    def mc_fwd_bwd():
        F.bias_act(x, b, "relu").backward(gm)
        return ctx.mc_grads(x, b)

    def th_fwd_bwd():
        th_fn().backward(gt)
        return ctx.th_grads(xt, bt)

    # fwd reads x, writes y; bwd reads x and gy, writes gx (bias traffic is negligible)
    return Workload(mc_fwd=lambda: F.bias_act(x, b, "relu"), torch_fwd=th_fn,
                    mc_fwd_bwd=mc_fwd_bwd, torch_fwd_bwd=th_fwd_bwd,
                    bytes=2 * a.nbytes, bytes_fwd_bwd=5 * a.nbytes, atol=1e-4, rtol=1e-4,
                    extra={"shape": "x".join(map(str, shape))})
