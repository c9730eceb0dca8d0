"""Higher-order gradients (issue 10): a WGAN-GP gradient penalty through a CNN critic, a
Hessian-vector product, and conv2d's backward recorded with create_graph=True.

Both sides do the same work: the input gradient recorded (create_graph=True), then a backward
pass through it. FLOPs are left out (the double-backward graphs of the two frameworks differ in
shape); the figures of interest are the times and the ratio to PyTorch.
"""
from ..registry import Workload, case


def _critic_pair(ctx, width):
    """The same small CNN critic (examples/wgan_gp.py) in minicnn and in PyTorch."""
    import minicnn as mc  # noqa: PLC0415
    from minicnn import nn  # noqa: PLC0415
    tnn = ctx.torch.nn
    mc.manual_seed(0)
    critic = nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.LeakyReLU(0.2),
        nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
        nn.Flatten(), nn.Linear(2 * width * 4 * 4, 1)).to(ctx.device)
    tcritic = tnn.Sequential(
        tnn.Conv2d(1, width, 3, padding=1), tnn.LeakyReLU(0.2),
        tnn.Conv2d(width, 2 * width, 4, stride=2, padding=1), tnn.LeakyReLU(0.2),
        tnn.Flatten(), tnn.Linear(2 * width * 4 * 4, 1)).to(ctx.device)
    params = dict(critic.named_parameters())
    with ctx.torch.no_grad():
        for name, tp in tcritic.named_parameters():
            tp.copy_(ctx.torch.as_tensor(mc.devices.to_numpy(params[name].array)).to(ctx.device))
    return critic, tcritic


@case("higher_order", "wgan_gp_critic_8x8", tags=("cpu", "gpu"),
      description="WGAN-GP critic loss (penalty through conv-lrelu-conv-lrelu-linear) on 8x8 "
                  "images; fwd = loss incl. the recorded input gradient, fwd_bwd = weight grads")
def wgan_gp_critic(ctx):
    import minicnn as mc  # noqa: PLC0415
    torch = ctx.torch
    n = ctx.by_device(cpu=64, gpu=512, quick=8)
    width = ctx.by_device(cpu=16, gpu=64, quick=4)
    critic, tcritic = _critic_pair(ctx, width)
    real, fake = ctx.array((n, 1, 8, 8), 0.0, 1.0), ctx.array((n, 1, 8, 8), 0.0, 1.0)
    alpha = ctx.array((n, 1, 1, 1), 0.0, 1.0)
    x_hat = alpha * real + (1 - alpha) * fake
    mr, mf, mx = ctx.mc(real), ctx.mc(fake), ctx.mc(x_hat)
    tr, tf, tx = ctx.th(real), ctx.th(fake), ctx.th(x_hat)
    params = list(critic.parameters())
    tparams = list(tcritic.parameters())

    def mc_loss():
        xh = mx.detach().requires_grad_()
        (g,) = mc.autograd.grad(critic(xh).sum(), xh, create_graph=True)
        gp = ((((g * g).sum(dim=(1, 2, 3)) + 1e-12).sqrt() - 1.0) ** 2).mean()
        return critic(mf).mean() - critic(mr).mean() + 10.0 * gp

    def torch_loss():
        xh = tx.detach().requires_grad_()
        (g,) = torch.autograd.grad(tcritic(xh).sum(), xh, create_graph=True)
        gp = ((((g * g).sum(dim=(1, 2, 3)) + 1e-12).sqrt() - 1.0) ** 2).mean()
        return tcritic(tf).mean() - tcritic(tr).mean() + 10.0 * gp

    def mc_fwd_bwd():
        mc_loss().backward()
        return ctx.mc_grads(*params)

    def torch_fwd_bwd():
        torch_loss().backward()
        return ctx.th_grads(*tparams)

    return Workload(mc_fwd=mc_loss, torch_fwd=torch_loss, mc_fwd_bwd=mc_fwd_bwd,
                    torch_fwd_bwd=torch_fwd_bwd, atol=2e-4, rtol=2e-3,
                    extra={"batch": n, "width": width})


@case("higher_order", "hvp_mlp", tags=("cpu", "gpu"),
      description="Hessian-vector product of an MLP's loss w.r.t. its weights "
                  "(grad with create_graph, then grad of <grad, v>)")
def hvp_mlp(ctx):
    import minicnn as mc  # noqa: PLC0415
    torch = ctx.torch
    n, d, h = ctx.by_device(cpu=256, gpu=4096, quick=16), 256, ctx.by_device(cpu=256, gpu=1024,
                                                                             quick=32)
    xa, w1a, w2a = ctx.array((n, d)), ctx.randn((d, h), 0.05), ctx.randn((h, 10), 0.05)
    v1a, v2a = ctx.randn((d, h)), ctx.randn((h, 10))
    x, w1, w2 = ctx.mc(xa), ctx.mc(w1a, True), ctx.mc(w2a, True)
    v1, v2 = ctx.mc(v1a), ctx.mc(v2a)
    tx, tw1, tw2 = ctx.th(xa), ctx.th(w1a, True), ctx.th(w2a, True)
    tv1, tv2 = ctx.th(v1a), ctx.th(v2a)

    def mc_loss():
        z = x @ w1
        return (((z * 0.5).exp() + 1.0).log() @ w2).pow(2).mean()  # softplus-ish MLP

    def torch_loss():
        z = tx @ tw1
        return (torch.log(torch.exp(z * 0.5) + 1.0) @ tw2).pow(2).mean()

    def mc_hvp():
        g1, g2 = mc.autograd.grad(mc_loss(), [w1, w2], create_graph=True)
        return list(mc.autograd.grad((g1 * v1).sum() + (g2 * v2).sum(), [w1, w2]))

    def torch_hvp():
        g1, g2 = torch.autograd.grad(torch_loss(), [tw1, tw2], create_graph=True)
        return list(torch.autograd.grad((g1 * tv1).sum() + (g2 * tv2).sum(), [tw1, tw2]))

    return Workload(mc_fwd=mc_loss, torch_fwd=torch_loss, mc_fwd_bwd=mc_hvp,
                    torch_fwd_bwd=torch_hvp, atol=1e-4, rtol=2e-3,
                    extra={"n": n, "hidden": h})


@case("higher_order", "conv3x3_create_graph", tags=("cpu", "gpu"),
      description="conv2d 3x3 forward + backward recorded with create_graph=True (compare with "
                  "conv/cifar_3x3-sized plain fwd_bwd for the cost of recording)")
def conv_create_graph(ctx):
    import minicnn as mc  # noqa: PLC0415
    torch = ctx.torch
    F = mc.functional
    n = ctx.by_device(cpu=4, gpu=32, quick=1)
    xa, wa = ctx.array((n, 32, 32, 32)), ctx.array((32, 32, 3, 3), -0.1, 0.1)
    x, w = ctx.mc(xa, True), ctx.mc(wa, True)
    tx, tw = ctx.th(xa, True), ctx.th(wa, True)
    flops = 2.0 * n * 32 * 32 * 32 * 32 * 9

    def mc_fwd():
        return F.conv2d(x, w, padding=1)

    def torch_fwd():
        return torch.nn.functional.conv2d(tx, tw, padding=1)

    def mc_fwd_bwd():
        y = F.conv2d(x, w, padding=1)
        return list(mc.autograd.grad((y * y).sum(), [x, w], create_graph=True))

    def torch_fwd_bwd():
        y = torch.nn.functional.conv2d(tx, tw, padding=1)
        return list(torch.autograd.grad((y * y).sum(), [tx, tw], create_graph=True))

    return Workload(mc_fwd=mc_fwd, torch_fwd=torch_fwd, mc_fwd_bwd=mc_fwd_bwd,
                    torch_fwd_bwd=torch_fwd_bwd, flops=flops, flops_fwd_bwd=3 * flops,
                    atol=1e-3, rtol=1e-3, extra={"create_graph": True})
