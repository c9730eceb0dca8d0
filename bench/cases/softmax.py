"""Softmax over the last axis of long rows (attention-like) and log-softmax over the channels of
an NCHW map (segmentation-like: the axis in the middle, no transpose in minicnn's CUDA kernels).

Bytes (the minimum traffic): forward reads x and writes y (2 x size); forward+backward adds
reading y and gy and writing gx (5 x size).
"""
from ..registry import Workload, case


def _softmax_case(ctx, shape, dim, log):
    import minicnn as mc  # noqa: PLC0415
    a = ctx.randn(shape, scale=3.0)
    gy = ctx.randn(shape)
    x, xt = ctx.mc(a, requires_grad=True), ctx.th(a, requires_grad=True)
    gm, gt = ctx.mc(gy), ctx.th(gy)
    fm = mc.log_softmax if log else mc.softmax
    tf = ctx.torch.nn.functional
    ft = tf.log_softmax if log else tf.softmax

    def mc_fwd_bwd():
        fm(x, dim=dim).backward(gm)
        return ctx.mc_grads(x)

    def th_fwd_bwd():
        ft(xt, dim=dim).backward(gt)
        return ctx.th_grads(xt)

    return Workload(mc_fwd=lambda: fm(x, dim=dim), torch_fwd=lambda: ft(xt, dim=dim),
                    mc_fwd_bwd=mc_fwd_bwd, torch_fwd_bwd=th_fwd_bwd,
                    bytes=2 * a.nbytes, bytes_fwd_bwd=5 * a.nbytes, atol=1e-5, rtol=1e-4,
                    extra={"shape": "x".join(map(str, shape)), "dim": dim})


@case("softmax", "softmax_rows_4096", tags=("cpu", "gpu"),
      description="softmax over the last axis, rows of 4096")
def softmax_rows(ctx):
    rows = ctx.by_device(cpu=512, gpu=8192, quick=64)
    return _softmax_case(ctx, (rows, 4096), -1, log=False)


@case("softmax", "log_softmax_nchw_dim1", tags=("cpu", "gpu"),
      description="log-softmax over the 21 channels of an NCHW map")
def log_softmax_channels(ctx):
    n = ctx.by_device(cpu=4, gpu=64, quick=1)
    return _softmax_case(ctx, (n, 21, 56, 56), 1, log=True)
