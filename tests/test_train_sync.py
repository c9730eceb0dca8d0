"""The Trainer's GPU read path (losses read from the device every `sync_every` steps).

On the CPU every loss is read before its step; on the GPU losses wait on the device and are read
in one transfer every `sync_every` steps. `Trainer._read_every` forces the deferred path on the
CPU, so its bookkeeping (epoch losses, the NaN stop, checkpoints) is tested on every machine;
the cuda-marked tests run the real thing.
"""
import math

import numpy as np
import pytest

import minicnn as mc
from minicnn import nn
from minicnn.data import DataLoader, TensorDataset
from minicnn.train import ModelCheckpoint, NonFiniteLossError, Trainer, load_checkpoint
from minicnn.train import metrics as M
from minicnn.train.trainer import _read_scalars

CUDA = mc.cuda.is_available()


def _data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n).astype(np.int64)
    x = rng.normal(0, 0.3, (n, 6)).astype(np.float32)
    x[np.arange(n), y] += 1.0
    return x, y


def _trainer(read_every=None, device=None, **kw):
    mc.manual_seed(3)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    t = Trainer(model, mc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
                metrics=["accuracy", "top2"], device=device, **kw)
    if read_every:
        t._read_every = read_every
    return t


@pytest.mark.parametrize("every", [3, 5, 100])
def test_deferred_reads_give_the_same_history(every):
    x, y = _data()
    seen = {}
    for key, n in (("eager", None), ("deferred", every)):
        t = _trainer(n)
        logs = []

        class Rec(mc.train.Callback):
            def on_batch_end(self, step, logs_=None):
                logs.append(dict(logs_))

        h = t.fit(DataLoader(TensorDataset(x, y), 8), epochs=2, callbacks=[Rec()], verbose=0)
        seen[key] = (h.history, logs)
    # the same arithmetic in the same order: identical epoch values
    assert seen["eager"][0] == seen["deferred"][0]
    # between reads the batch logs carry the last value read (or no loss before the first read)
    eager_logs, deferred_logs = seen["eager"][1], seen["deferred"][1]
    assert len(eager_logs) == len(deferred_logs) == 12
    for i, (a, b) in enumerate(zip(eager_logs, deferred_logs)):
        step = i % 6 + 1
        if step % every == 0 or step == 6:                  # read here: up to date
            assert a["loss"] == b["loss"]
        assert a["samples"] == b["samples"]


def _flaky(nan_call):
    calls = {"n": 0}

    def loss(out, target):
        calls["n"] += 1
        value = mc.functional.cross_entropy(out, target)
        return value * float("nan") if calls["n"] == nan_call else value
    return loss, calls


def test_deferred_nan_names_the_step_and_keeps_the_checkpoint(tmp_path):
    x, y = _data()                              # 6 steps per epoch
    loss, _ = _flaky(8)                         # epoch 2, step 2
    path = tmp_path / "ck.mc"
    t = _trainer(4, loss=loss)
    ck = ModelCheckpoint(path, monitor="loss", save_best_only=False)
    h = t.fit(DataLoader(TensorDataset(x, y), 8), epochs=4, callbacks=[ck], verbose=0)
    assert h.epoch == [1]
    assert "epoch 2, step 2 of 6" in h.stopped and "(global step 8)" in h.stopped
    assert "read at step 4" not in h.stopped and "stopped at step 4" in h.stopped
    assert "3 optimizer step(s) from step 2" in h.stopped and "sync_every=1" in h.stopped
    assert str(path) in h.stopped
    assert load_checkpoint(path)["meta"]["epoch"] == 1     # no checkpoint after the NaN
    assert (t.nan_info["epoch"], t.nan_info["step"]) == (2, 2)
    assert math.isnan(t.nan_info["loss"])
    loss, _ = _flaky(8)
    with pytest.raises(NonFiniteLossError, match="epoch 2, step 2"):
        _trainer(4, loss=loss, on_nan="raise").fit(DataLoader(TensorDataset(x, y), 8),
                                                   epochs=4, verbose=0)


def test_nan_in_last_partial_read_of_an_epoch():
    x, y = _data(40)                            # 5 steps per epoch, reads at 4 and 5
    loss, _ = _flaky(5)
    h = _trainer(4, loss=loss).fit(DataLoader(TensorDataset(x, y), 8), epochs=2, verbose=0)
    assert h.epoch == [] and "epoch 1, step 5 of 5" in h.stopped


def test_sync_every_is_checked():
    with pytest.raises(ValueError, match="sync_every"):
        _trainer(sync_every=0)


def test_read_scalars_numpy():
    assert _read_scalars([]) == []
    assert _read_scalars([np.float32(1.5), np.array(2.0), np.array([3.0])]) == [1.5, 2.0, 3.0]


def _cuda_or_skip():
    if not CUDA:
        pytest.skip("CUDA is not available")


@pytest.mark.cuda
def test_cuda_fit_matches_cpu_and_reads_in_batches():
    _cuda_or_skip()
    x, y = _data()
    h_cpu = _trainer().fit(DataLoader(TensorDataset(x, y), 8), epochs=2, verbose=0)
    t = _trainer(device="cuda", sync_every=4)
    h_gpu = t.fit(DataLoader(TensorDataset(x, y), 8), epochs=2, verbose=0)
    for k in ("loss", "accuracy", "top2_accuracy"):
        np.testing.assert_allclose(h_gpu[k], h_cpu[k], rtol=1e-4, atol=1e-6)
    res = t.evaluate((x, y))
    assert set(res) >= {"loss", "accuracy"} and math.isfinite(res["loss"])
    assert t.predict(x[:5]).shape == (5, 3)


@pytest.mark.cuda
def test_cuda_nan_stop():
    _cuda_or_skip()
    x, y = _data()
    loss, _ = _flaky(3)
    h = _trainer(device="cuda", loss=loss, sync_every=4).fit(
        DataLoader(TensorDataset(x, y), 8), epochs=2, verbose=0)
    assert "epoch 1, step 3 of 6" in h.stopped and "stopped at step 4" in h.stopped
    loss, _ = _flaky(3)
    h = _trainer(device="cuda", loss=loss, sync_every=1).fit(
        DataLoader(TensorDataset(x, y), 8), epochs=2, verbose=0)
    assert "epoch 1, step 3 of 6" in h.stopped and "before this optimizer step" in h.stopped


@pytest.mark.cuda
def test_cuda_metrics_stay_on_device_and_match_numpy():
    _cuda_or_skip()
    import cupy  # noqa: PLC0415
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((37, 5)).astype(np.float32)
    labels = rng.integers(0, 5, 37)
    for name in ("accuracy", "top3", "precision", "recall", "f1"):
        cpu, gpu = M.get_metric(name), M.get_metric(name)
        for sl in (slice(0, 20), slice(20, 37)):
            cpu.update(mc.tensor(logits[sl]), mc.tensor(labels[sl]))
            gpu.update(mc.tensor(logits[sl], device="cuda"), mc.tensor(labels[sl], device="cuda"))
        if name == "accuracy":
            assert isinstance(gpu.correct, cupy.ndarray)   # not read until result()
        assert gpu.result() == pytest.approx(cpu.result()), name
