"""Trainer checks the weights, not only the loss (issue 23): a loss can stay finite while a
parameter it does not reach has gone NaN, and "the last good checkpoint" must hold finite
weights. The weights are checked every `sync_every` steps and at each epoch's end (before its
checkpoint); with grad_clip a non-finite gradient norm stops training before the step."""
import numpy as np
import pytest

import minicnn as mc
from minicnn import nn
from minicnn.data import DataLoader, TensorDataset
from minicnn.train import ModelCheckpoint, NonFiniteLossError, Trainer, load_checkpoint


class Spare(nn.Module):
    """A small classifier with one parameter its output does not use."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
        self.spare = nn.Parameter(mc.zeros(4))

    def forward(self, x):
        return self.net(x)


def _data(n=32):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n).astype(np.int64)
    x = rng.normal(0, 0.3, (n, 6)).astype(np.float32)
    x[np.arange(n), y] += 1.0
    return DataLoader(TensorDataset(x, y), 8)         # 4 steps per epoch


def _loss_with_nan_gradient(model, bad_call):
    """Cross-entropy; at call `bad_call` plus sqrt(sum(spare**2)) at spare = 0, which adds 0 to
    the loss and NaN (0 * inf) to spare's gradient, as in PyTorch."""
    calls = {"n": 0}

    def loss(out, target):
        calls["n"] += 1
        value = mc.functional.cross_entropy(out, target)
        if calls["n"] == bad_call:
            value = value + (model.spare * model.spare).sum().sqrt()
        return value
    return loss


def _trainer(bad_call=7, **kw):
    mc.manual_seed(0)
    model = Spare()
    opt = mc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return Trainer(model, opt, loss=_loss_with_nan_gradient(model, bad_call), **kw)


def _finite(state):
    return all(np.isfinite(np.asarray(v)).all() for v in state.values())


def test_the_loss_stays_finite_while_a_weight_goes_nan():
    t = _trainer(on_nan="raise")
    value, _ = t.train_step(*next(iter(_data())))
    assert np.isfinite(value) and np.isfinite(t.model.net[0].weight.numpy()).all()
    for _ in range(6):
        value, _ = t.train_step(*next(iter(_data())))
        assert np.isfinite(value)
    assert np.isnan(t.model.spare.numpy()).all()   # what the loss check alone lets through


@pytest.mark.parametrize("sync_every,step,last_good", [(10, 4, 4), (7, 3, 4)])
def test_nan_weights_stop_training_and_keep_the_last_good_checkpoint(tmp_path, sync_every,
                                                                      step, last_good):
    path = tmp_path / "last.mc"
    t = _trainer(sync_every=sync_every)                 # the NaN step: epoch 2, step 3
    ck = ModelCheckpoint(path, monitor="loss", save_best_only=False)
    h = t.fit(_data(), epochs=5, callbacks=[ck], verbose=0)
    assert h.epoch == [1]
    assert f"NaN or inf in the weights (spare) at epoch 2, step {step} of 4" in h.stopped
    assert f"global step {4 + step}" in h.stopped
    assert f"the last check that found them finite was at global step {last_good}" in h.stopped
    assert f"the last good checkpoint is {path}" in h.stopped
    saved = load_checkpoint(path)
    assert saved["meta"]["epoch"] == 1 and _finite(saved["model"])
    assert t.nan_info == {"epoch": 2, "step": step, "loss": None}


def test_nan_weights_raise_with_on_nan_raise(device):
    """On every device (on the GPU the check reads one flag from it)."""
    with pytest.raises(NonFiniteLossError, match=r"NaN or inf in the weights \(spare\) at "
                                                 r"epoch 2, step 4 of 4"):
        _trainer(on_nan="raise", device=device).fit(_data(), epochs=5, verbose=0)


def test_deferred_reads_check_the_weights_too():
    """The GPU's path (losses read every few steps), run on the CPU."""
    t = _trainer(sync_every=3)
    t._read_every = 4
    h = t.fit(_data(), epochs=5, verbose=0)
    assert h.epoch == [1] and "NaN or inf in the weights (spare) at epoch 2, step 4" in h.stopped


def test_a_nan_gradient_norm_stops_before_the_step_with_grad_clip():
    t = _trainer(grad_clip=1.0)
    seen = {}

    class Keep(mc.train.Callback):
        def on_batch_end(self, step, logs=None):
            seen["w"] = {k: v.numpy().copy() for k, v in self.trainer.model.state_dict().items()}

    h = t.fit(_data(), epochs=5, callbacks=[Keep()], verbose=0)
    assert h.epoch == [1]
    assert "gradient norm is nan (loss " in h.stopped and "epoch 2, step 3" in h.stopped
    assert "training stopped before this optimizer step" in h.stopped
    for k, v in t.model.state_dict().items():       # the step with the NaN gradient not taken
        np.testing.assert_array_equal(v.numpy(), seen["w"][k])


def test_finite_training_is_unchanged_by_the_checks():
    """Without a NaN, checking (every step or every epoch) changes nothing."""
    histories = []
    for sync_every in (1, 1000):
        h = _trainer(bad_call=None, sync_every=sync_every).fit(_data(), epochs=3, verbose=0)
        assert h.stopped is None
        histories.append(h.history)
    assert histories[0] == histories[1]
