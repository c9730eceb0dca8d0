"""Cross-entropy on 4096 x 1000 logits (class indices, mean reduction): one fused log-sum-exp
Function in minicnn. Bytes: forward reads the logits (4 B x 4096 x 1000; the targets are
negligible); forward+backward also reads them again and writes the gradient."""
from ..registry import Workload, case


@case("loss", "cross_entropy_4096x1000", tags=("cpu", "gpu"))
def cross_entropy(ctx):
    import minicnn as mc  # noqa: PLC0415
    import minicnn.functional as F  # noqa: PLC0415
    M = ctx.by_device(cpu=4096, gpu=4096, quick=512)
    C = 1000
    a = ctx.randn((M, C), scale=3.0)
    t = ctx.integers((M,), 0, C)
    x, xt = ctx.mc(a, requires_grad=True), ctx.th(a, requires_grad=True)
    tm = mc.tensor(t, device=ctx.device)
    tt = ctx.th(t)
    tf = ctx.torch.nn.functional

    def mc_fwd_bwd():
        F.cross_entropy(x, tm).backward()
        return ctx.mc_grads(x)

    def th_fwd_bwd():
        tf.cross_entropy(xt, tt).backward()
        return ctx.th_grads(xt)

    return Workload(mc_fwd=lambda: F.cross_entropy(x, tm),
                    torch_fwd=lambda: tf.cross_entropy(xt, tt),
                    mc_fwd_bwd=mc_fwd_bwd, torch_fwd_bwd=th_fwd_bwd,
                    bytes=a.nbytes, bytes_fwd_bwd=3 * a.nbytes, atol=1e-6, rtol=1e-4,
                    extra={"shape": f"{M}x{C}"})
