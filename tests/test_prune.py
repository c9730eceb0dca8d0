"""Pruning: promised sparsity / channel counts, same outputs as the masked original."""
import numpy as np
import pytest

import minicnn as mc
from minicnn import compress, nn
from minicnn.compress._util import copy_model


def _cnn():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.MaxPool2d(2),
                         nn.Conv2d(8, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU(),
                         nn.Flatten(), nn.Linear(6 * 3 * 3, 4))


class Block(nn.Module):
    def __init__(self, c, mid):
        super().__init__()
        self.conv1 = nn.Conv2d(c, mid, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(mid, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))) + x)


def _resnetlike():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                         Block(4, 8), Block(4, 6), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 3))


def _randomize_bn(model, seed=0):
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            C = m.num_features
            m.running_mean.array[...] = rng.normal(0, 0.5, C)
            m.running_var.array[...] = rng.uniform(0.5, 2, C)
            m.weight.array[...] = rng.normal(1, 0.3, C)
            m.bias.array[...] = rng.normal(0, 0.3, C)
    return model.eval()


def _out(model, x):
    with mc.no_grad():
        return model(x).numpy()


# --- unstructured --------------------------------------------------------------------------

@pytest.mark.parametrize("scope", ["global", "layer"])
def test_magnitude_pruning_sparsity_and_outputs(scope):
    model = _randomize_bn(_cnn())
    x = mc.randn(2, 3, 6, 6)
    ref = copy_model(model)
    compress.magnitude_prune(model, amount=0.7, scope=scope)
    total, per = compress.sparsity(model)
    sizes = {n: m.weight.numel() for n, m in ref.named_modules()
             if isinstance(m, (nn.Conv2d, nn.Linear))}
    if scope == "global":
        assert total == pytest.approx(round(0.7 * sum(sizes.values())) / sum(sizes.values()))
        # global: the pruned weights are exactly the smallest over all layers
        kept = np.concatenate([np.abs(m.weight.numpy()).ravel() for n, m in model.named_modules()
                               if n in sizes])
        alls = np.concatenate([np.abs(m.weight.numpy()).ravel() for n, m in ref.named_modules()
                               if n in sizes])
        assert np.abs(alls[kept == 0]).max() <= np.abs(kept[kept != 0]).min()
    else:
        for n, s in per.items():
            assert s == pytest.approx(round(0.7 * sizes[n]) / sizes[n])
    # same outputs as the original with its weights multiplied by the masks
    for n, m in ref.named_modules():
        if n in sizes:
            m.weight.array = m.weight.array * dict(model.named_modules())[n].weight_mask.array
    np.testing.assert_allclose(_out(model, x), _out(ref, x), rtol=1e-6, atol=1e-6)


def test_mask_holds_during_fine_tuning_and_remove():
    model = _cnn()
    compress.magnitude_prune(model, amount=0.5)
    opt = mc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = mc.randn(4, 3, 6, 6), mc.tensor(np.array([0, 1, 2, 3]))
    lin = model[8]
    mask = lin.weight_mask.numpy() == 0
    for _ in range(3):
        loss = mc.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        assert (lin.weight_orig.grad.numpy()[mask] == 0).all()   # no gradient to pruned weights
        opt.step()
    model(x)
    assert (lin.weight.numpy()[mask] == 0).all()
    assert "8.weight_orig" in model.state_dict() and "8.weight_mask" in model.state_dict()
    before = compress.sparsity(model)[0]
    compress.remove_pruning(model)
    assert "8.weight" in model.state_dict() and "8.weight_mask" not in model.state_dict()
    assert isinstance(lin.weight, nn.Parameter) and not compress.is_pruned(lin)
    assert compress.sparsity(model)[0] == pytest.approx(before)
    assert not lin._forward_pre_hooks
    with pytest.raises(ValueError, match="not pruned"):
        compress.remove(lin)


def test_pruned_model_survives_copy_and_repruning():
    model = _cnn()
    compress.l1_unstructured(model[0], amount=0.25)
    compress.l1_unstructured(model[0], amount=0.5)          # masks combine: 50% of the weights
    assert compress.sparsity(model)[1]["0"] == pytest.approx(0.5, abs=1 / 216)
    c = copy_model(model)
    x = mc.randn(1, 3, 6, 6)
    np.testing.assert_array_equal(_out(c, x), _out(model, x))
    with pytest.raises(ValueError, match="amount"):
        compress.l1_unstructured(model[4], amount=1.5)


# --- structured ----------------------------------------------------------------------------

@pytest.mark.parametrize("make", [_cnn, _resnetlike])
def test_channel_pruning_counts_and_equivalence(make):
    model = _randomize_bn(make())
    x = mc.randn(3, 3, 6, 6)
    groups = compress.find_channel_groups(model, x)
    pruned = compress.prune_channels(model, amount=0.5, example_input=x)
    convs = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    pconvs = {n: m for n, m in pruned.named_modules() if isinstance(m, nn.Conv2d)}
    producer_sets = sorted(sorted(g["producers"]) for g in groups)
    if make is _resnetlike:
        # the inner channels of each block, and the residual stream written by the stem and
        # both blocks' conv2 (joined by the adds), read by the blocks' conv1 and by the Linear
        assert producer_sets == [["0", "3.conv2", "4.conv2"], ["3.conv1"], ["4.conv1"]]
        stream = [g for g in groups if "0" in g["producers"]][0]
        assert sorted(stream["bns"]) == ["1", "3.bn2", "4.bn2"]
        assert sorted(c["name"] for c in stream["consumers"]) == ["3.conv1", "4.conv1", "7"]
    else:
        assert producer_sets == [["0"], ["4"]]
    for n, m in convs.items():
        K = m.weight.shape[0]
        want = int(round(K * 0.5))
        assert pconvs[n].weight.shape[0] == want and pconvs[n].out_channels == want
    assert pruned.num_parameters() < 0.5 * model.num_parameters()
    # the smaller model == the original with the removed channels zeroed
    ref = compress.zero_channels(copy_model(model), groups, pruned.pruned_channels)
    np.testing.assert_allclose(_out(pruned, x), _out(ref, x), rtol=1e-5, atol=1e-5)
    # kept channels are the ones with the largest (summed) filter L1 norms
    for g in groups:
        norms = sum(compress.channel_l1_norms(convs[p]) for p in g["producers"])
        keep = pruned.pruned_channels[g["producers"][0]]
        drop = np.setdiff1d(np.arange(len(norms)), keep)
        assert norms[drop].max() <= norms[keep].min()
    # and the pruned model trains (new parameters, consistent shapes)
    pruned.train()
    out = pruned(x)
    out.sum().backward()
    assert all(p.grad is not None for p in pruned.parameters())


def test_channel_pruning_of_a_model_zoo_resnet():
    from minicnn.models.resnet import BasicBlock, ResNet
    model = _randomize_bn(ResNet(BasicBlock, [1, 1, 1, 1], 5, cifar=True, width=4))
    x = mc.randn(2, 3, 8, 8)
    pruned = compress.prune_channels(model, 0.5, example_input=x)   # verified inside
    assert len(pruned.channel_groups) == 8                 # 4 blocks' inner + 4 stage streams
    assert all(m.weight.shape[0] == m.out_channels == int(round(c.weight.shape[0] / 2))
               for (n, m), (_, c) in zip(pruned.named_modules(), model.named_modules())
               if isinstance(m, nn.Conv2d))
    assert pruned.fc.in_features == 16


def test_channel_pruning_rejects_hidden_consumers():
    class Skip(nn.Module):          # conv output also read by ops outside the modules
        def __init__(self, cat):
            super().__init__()
            self.cat = cat
            self.a = nn.Conv2d(3, 4, 1)
            self.b = nn.Conv2d(4, 4, 1)
            self.c = nn.Conv2d(8, 2, 1)

        def forward(self, x):
            h = self.a(x)
            if self.cat:
                return self.c(mc.cat([self.b(h), h], dim=1))
            return self.b(h) + h                      # the model's output: channels fixed

    x = mc.randn(1, 3, 3, 3)
    assert compress.find_channel_groups(Skip(False), x) == []
    assert compress.find_channel_groups(Skip(True), x) == []
    # a wrong plan given by hand is caught by the verification
    bad = [{"conv": "a", "bn": None, "next": "b", "kind": "conv"}]
    with pytest.raises(RuntimeError, match="prune_channels"):
        compress.prune_channels(Skip(False), 0.5, example_input=x, groups=bad)
    with pytest.raises(ValueError, match="example_input"):
        compress.prune_channels(Skip(False), 0.5)
