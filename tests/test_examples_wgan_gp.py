"""examples/wgan_gp.py: the gradient penalty's second derivatives through a CNN critic match
PyTorch's, and a few training steps run. Skips cleanly if a layer it needs is missing."""
import importlib.util
import math
import pathlib

import numpy as np
import pytest

import minicnn as mc

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "wgan_gp.py"
NEEDED = ("Conv2d", "ConvTranspose2d", "LeakyReLU", "ReLU", "Sigmoid", "Flatten", "Linear",
          "Sequential")
missing = [name for name in NEEDED if not hasattr(mc.nn, name)]
pytestmark = pytest.mark.skipif(bool(missing), reason=f"mc.nn lacks {missing}")


def _load():
    spec = importlib.util.spec_from_file_location("wgan_gp_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gradient_penalty_gradients_match_torch():
    torch = pytest.importorskip("torch")
    ex = _load()
    critic = ex.make_critic(width=4).double()
    tnn = torch.nn
    tcritic = tnn.Sequential(
        tnn.Conv2d(1, 4, 3, padding=1), tnn.LeakyReLU(0.2),
        tnn.Conv2d(4, 8, 4, stride=2, padding=1), tnn.LeakyReLU(0.2),
        tnn.Flatten(), tnn.Linear(8 * 4 * 4, 1)).double()
    params = dict(critic.named_parameters())
    for name, tp in tcritic.named_parameters():
        params[name].array[...] = tp.detach().numpy()

    rng = np.random.default_rng(0)
    real, fake = rng.uniform(0, 1, (3, 1, 8, 8)), rng.uniform(0, 1, (3, 1, 8, 8))
    alpha = rng.uniform(0, 1, (3, 1, 1, 1))
    fake_mc = mc.tensor(fake, requires_grad=True)
    loss, wdist, gp, norms = ex.critic_loss(critic, mc.tensor(real), fake_mc, mc.tensor(alpha))
    loss.backward()

    t = torch.from_numpy
    x_hat = (t(alpha) * t(real) + (1 - t(alpha)) * t(fake)).requires_grad_()
    (g,) = torch.autograd.grad(tcritic(x_hat).sum(), x_hat, create_graph=True)
    tnorms = ((g * g).sum(dim=(1, 2, 3)) + 1e-12).sqrt()
    tgp = ((tnorms - 1.0) ** 2).mean()
    tloss = tcritic(t(fake)).mean() - tcritic(t(real)).mean() + 10.0 * tgp
    tloss.backward()

    np.testing.assert_allclose(norms.numpy(), tnorms.detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-10)
    for name, tp in tcritic.named_parameters():
        assert params[name].grad is not None, name
        np.testing.assert_allclose(params[name].grad.numpy(), tp.grad.numpy(), rtol=1e-8,
                                   atol=1e-12, err_msg=name)
    assert fake_mc.grad is None  # the critic's loss does not train the generator


def test_a_few_training_steps_run(tmp_path):
    ex = _load()
    hist = ex.main(["--steps", "2", "--n-critic", "2", "--batch-size", "8", "--log-every", "1",
                    "--json", str(tmp_path / "h.json")])
    assert len(hist) == 2
    for rec in hist:
        for key in ("critic_loss", "wasserstein", "penalty", "grad_norm", "generator_loss"):
            assert math.isfinite(rec[key]), (key, rec)
        assert rec["penalty"] >= 0.0 and rec["grad_norm"] > 0.0
    assert (tmp_path / "h.json").exists()
