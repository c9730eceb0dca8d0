"""Batch-norm folding gives the outputs of the unfolded model in eval mode."""
import numpy as np
import pytest

import minicnn as mc
from minicnn import compress, nn


def _randomize_bn(model, rng):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            C = m.num_features
            m.running_mean.array[...] = rng.normal(0, 1, C)
            m.running_var.array[...] = rng.uniform(0.2, 3, C)
            if m.weight is not None:
                m.weight.array[...] = rng.normal(1, 0.5, C)
                m.bias.array[...] = rng.normal(0, 0.5, C)
    return model


class Block(nn.Module):
    """A torchvision-style basic block: conv1/bn1/relu/conv2/bn2 + shortcut."""

    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))) + x)


def _models():
    seq = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.Conv2d(4, 6, 3, stride=2, bias=False, groups=2), nn.BatchNorm2d(6),
                        nn.Flatten(), nn.Linear(6 * 2 * 2, 3))
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                        Block(4), Block(4))
    return {"sequential": seq, "blocks": net}


@pytest.mark.parametrize("name", ["sequential", "blocks"])
@pytest.mark.parametrize("traced", [True, False])
def test_folded_model_matches_in_eval_mode(name, traced):
    model = _models()[name].double()
    _randomize_bn(model, np.random.default_rng(0))
    model.eval()
    x = mc.randn(2, 3, 6, 6, dtype=mc.float64)
    with mc.no_grad():
        want = model(x).numpy()
    folded = compress.fold_batchnorm(model, example_input=x if traced else None)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    n_left = sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    # the traced version finds the pairs inside the blocks too; the structural one only the
    # adjacent children of Sequentials
    assert n_left == (0 if traced or name == "sequential" else n_bn - 1)
    with mc.no_grad():
        got = folded(x).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    # the original is untouched (fold works on a copy)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == n_bn


def test_fold_float32_and_in_place():
    model = _models()["blocks"]
    _randomize_bn(model, np.random.default_rng(1))
    model.eval()
    x = mc.randn(2, 3, 5, 5)
    with mc.no_grad():
        want = model(x).numpy()
    compress.fold_batchnorm(model, example_input=x, inplace=True)
    assert len(model.folded_pairs) == 5
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert model[3].conv1.bias is not None          # a bias was added to the bias-free conv
    with mc.no_grad():
        np.testing.assert_allclose(model(x).numpy(), want, rtol=1e-5, atol=1e-5)


def test_only_direct_pairs_are_folded():
    # bn after a relu is not a conv->bn pair
    m = nn.Sequential(nn.Conv2d(2, 3, 1), nn.ReLU(), nn.BatchNorm2d(3))
    assert compress.find_conv_bn_pairs(m, mc.randn(1, 2, 3, 3)) == []
    assert compress.find_conv_bn_pairs(m) == []

    class Both(nn.Module):        # bn(h) + h: folding would change the h of the add
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(2, 2, 1), nn.BatchNorm2d(2)

        def forward(self, x):
            h = self.conv(x)
            return self.bn(h) + h

    assert compress.find_conv_bn_pairs(Both(), mc.randn(1, 2, 3, 3)) == []
    with pytest.raises(ValueError, match="fold_conv_bn"):
        compress.fold_conv_bn(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(4))


@pytest.mark.parametrize("name, shape", [("resnet18_cifar", (3, 8, 8)), ("simple_cnn", (1, 8, 8))])
def test_trace_gives_each_op_to_one_module_call(name, shape):
    """A module returning its own input (Identity: resnet18_cifar's maxpool; Dropout in eval
    mode) ran no op; trace once gave it every op above it."""
    from minicnn.compress._util import trace
    model = mc.models.get_model(name, width=4) if name.startswith("resnet") else \
        mc.models.get_model(name, image_size=8)
    calls = trace(model, mc.randn(2, *shape))
    passthrough = [i for i, (_, m, _, _) in enumerate(calls)
                   if isinstance(m, (mc.nn.Identity, mc.nn.Dropout))]
    assert passthrough and all(calls.owned[i] == set() for i in passthrough)
    seen = set()
    for owned in calls.owned:
        assert not owned & seen
        seen |= owned
