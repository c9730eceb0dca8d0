"""WGAN-GP on the built-in 8x8 digits: a gradient penalty through a small CNN critic.

The critic's loss (Gulrajani et al., "Improved Training of Wasserstein GANs", 2017) is

    D(fake).mean() - D(real).mean() + lambda * E[(||grad_x D(x_hat)||_2 - 1)^2],
    x_hat = alpha * real + (1 - alpha) * fake,  alpha ~ U(0, 1) per sample,

and its penalty term needs the gradient of the critic's input-gradient w.r.t. the critic's
weights: a second derivative through conv2d, leaky ReLU and linear layers. minicnn computes it
with `mc.autograd.grad(..., create_graph=True)`, as PyTorch does.

    python examples/wgan_gp.py [--steps 100] [--n-critic 5] [--device cpu] [--out samples.png]

It prints, every few generator steps, the critic's Wasserstein estimate D(real) - D(fake), the
penalty and the mean gradient norm at the interpolates (which the penalty pulls towards 1).
"""
import argparse
import json
import time

import numpy as np

import minicnn as mc
from minicnn import nn

Z_DIM = 16


class Generator(nn.Module):
    """z (N, 16) -> image (N, 1, 8, 8) in (0, 1)."""

    def __init__(self, z_dim=Z_DIM, width=32):
        super().__init__()
        self.fc = nn.Linear(z_dim, width * 4 * 4)
        self.width = width
        self.up = nn.ConvTranspose2d(width, width // 2, 4, stride=2, padding=1)  # 4x4 -> 8x8
        self.out = nn.Conv2d(width // 2, 1, 3, padding=1)
        self.act = nn.ReLU()
        self.sigmoid = nn.Sigmoid()

    def forward(self, z):
        h = self.act(self.fc(z)).reshape(z.shape[0], self.width, 4, 4)  # (N, W*16) -> (N, W, 4, 4)
        h = self.act(self.up(h))
        return self.sigmoid(self.out(h))


def make_critic(width=16):
    """A small CNN, no batch norm (the penalty is per sample): (N, 1, 8, 8) -> (N, 1)."""
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.LeakyReLU(0.2),
        nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),  # 8x8 -> 4x4
        nn.Flatten(), nn.Linear(2 * width * 4 * 4, 1))


def gradient_penalty(critic, real, fake, alpha):
    """(penalty, per-sample gradient norms) at x_hat = alpha * real + (1 - alpha) * fake.

    The input gradient is recorded (create_graph=True) so that the penalty's own gradient
    reaches the critic's weights through it.
    """
    x_hat = (alpha * real + (1.0 - alpha) * fake.detach()).detach().requires_grad_()
    score = critic(x_hat)
    (g,) = mc.autograd.grad(score.sum(), x_hat, create_graph=True)
    norms = ((g * g).sum(dim=(1, 2, 3)) + 1e-12).sqrt()  # (N,)
    return ((norms - 1.0) ** 2).mean(), norms


def critic_loss(critic, real, fake, alpha, lam=10.0):
    """The WGAN-GP critic loss and its parts (loss, wasserstein estimate, penalty, norms)."""
    d_real, d_fake = critic(real).mean(), critic(fake.detach()).mean()
    gp, norms = gradient_penalty(critic, real, fake, alpha)
    return d_fake - d_real + lam * gp, d_real - d_fake, gp, norms


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=100, help="generator steps")
    ap.add_argument("--n-critic", type=int, default=5, help="critic steps per generator step")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--lam", type=float, default=10.0, help="gradient penalty weight")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--out", default=None, help="save a grid of generated digits (PNG)")
    ap.add_argument("--json", default=None, help="write the history as JSON")
    args = ap.parse_args(argv)

    mc.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    data = mc.data.Digits(train=True).data.astype(np.float32)  # (1437, 1, 8, 8) in [0, 1]
    gen, critic = Generator().to(args.device), make_critic().to(args.device)
    opt_g = mc.optim.Adam(gen.parameters(), lr=args.lr, betas=(0.5, 0.9))
    opt_d = mc.optim.Adam(critic.parameters(), lr=args.lr, betas=(0.5, 0.9))

    def tensor(a):
        return mc.tensor(a.astype(np.float32), device=args.device)

    history = []
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        for _ in range(args.n_critic):
            real = tensor(data[rng.integers(0, len(data), args.batch_size)])
            fake = gen(tensor(rng.standard_normal((args.batch_size, Z_DIM))))
            alpha = tensor(rng.uniform(size=(args.batch_size, 1, 1, 1)))
            loss_d, wdist, gp, norms = critic_loss(critic, real, fake, alpha, args.lam)
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
        fake = gen(tensor(rng.standard_normal((args.batch_size, Z_DIM))))
        loss_g = -critic(fake).mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        rec = {"step": step, "critic_loss": loss_d.item(), "wasserstein": wdist.item(),
               "penalty": gp.item(), "grad_norm": float(norms.mean().item()),
               "generator_loss": loss_g.item(), "seconds": time.perf_counter() - start}
        history.append(rec)
        if step % args.log_every == 0 or step == 1 or step == args.steps:
            print(f"step {step:4d}  W(real, fake) {rec['wasserstein']:8.4f}  "
                  f"penalty {rec['penalty']:7.4f}  |grad D| {rec['grad_norm']:6.3f}  "
                  f"G loss {rec['generator_loss']:8.4f}  ({rec['seconds']:.1f} s)")

    if args.out:
        import matplotlib  # noqa: PLC0415
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
        with mc.no_grad():
            imgs = gen(tensor(rng.standard_normal((64, Z_DIM)))).numpy()[:, 0]
        grid = imgs.reshape(8, 8, 8, 8).transpose(0, 2, 1, 3).reshape(64, 64)
        plt.imsave(args.out, grid, cmap="gray")
        print(f"samples written to {args.out}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(history, f, indent=1)
    return history


if __name__ == "__main__":
    main()
