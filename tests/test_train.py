"""mc.train: Trainer.fit/evaluate/predict, metrics, callbacks, NaN stop, determinism, plots."""
import csv
import math

import numpy as np
import pytest

import minicnn as mc
from minicnn import nn
from minicnn.data import ArrayDataset, DataLoader, TensorDataset
from minicnn.train import (CSVLogger, EarlyStopping, History, LRScheduler, ModelCheckpoint,
                           NonFiniteLossError, Trainer, confusion_matrix, load_checkpoint,
                           precision_recall_f1)
from minicnn.train import metrics as M


def quadrant_data(n=64, seed=0):
    """4 classes: which quadrant of a 6x6 grey image is bright."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.normal(0, 0.1, (n, 1, 6, 6)).astype(np.float32)
    for i, c in enumerate(y):
        r, s = divmod(int(c), 2)
        x[i, 0, 3 * r:3 * r + 3, 3 * s:3 * s + 3] += 1.0
    return x, y.astype(np.int64)


def tiny_model(dropout=0.0):
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Dropout(dropout), nn.Linear(36, 4))


def make_trainer(lr=0.1, model=None, **kw):
    model = model or tiny_model()
    return Trainer(model, mc.optim.SGD(model.parameters(), lr=lr, momentum=0.9), **kw)


def test_fit_learns_and_history(device):
    x, y = quadrant_data(96)
    t = make_trainer(device=device)
    h = t.fit(DataLoader(ArrayDataset(x, y), 16, shuffle=True), epochs=4,
              val_data=quadrant_data(32, seed=1), verbose=0)
    assert isinstance(h, History) and h.epoch == [1, 2, 3, 4]
    assert set(h.history) >= {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}
    assert h["loss"][-1] < h["loss"][0] and h["val_accuracy"][-1] >= 0.9
    res = t.evaluate(quadrant_data(32, seed=1))
    assert res["accuracy"] == pytest.approx(h["val_accuracy"][-1])
    pred = t.predict(x[:5])
    assert pred.shape == (5, 4) and isinstance(pred, np.ndarray)
    assert t.predict(ArrayDataset(x[:7], y[:7])).shape == (7, 4)


def test_fit_accepts_dataset_and_tuple_and_steps_per_epoch():
    x, y = quadrant_data(40)
    t = make_trainer()
    h = t.fit(TensorDataset(x, y), epochs=1, batch_size=8, verbose=0, steps_per_epoch=2)
    assert t.global_step == 2 and len(h["loss"]) == 1
    h = t.fit((x, y), epochs=1, batch_size=10, validation_data=(x, y), verbose=0)
    assert t.global_step == 6 and "val_loss" in h


def _losses(seed, prefetch):
    mc.manual_seed(seed)
    x, y = quadrant_data(48)
    aug = mc.data.transforms.Compose([mc.data.transforms.RandomHorizontalFlip(),
                                      mc.data.transforms.GaussianNoise(0.05)])
    t = make_trainer(lr=0.05, model=tiny_model(dropout=0.3))
    losses = []

    class Record(mc.train.Callback):
        def on_batch_end(self, step, logs=None):
            losses.append(logs["loss"])

    t.fit(DataLoader(ArrayDataset(x, y, transform=aug), 8, shuffle=True, prefetch=prefetch),
          epochs=2, callbacks=[Record()], verbose=0)
    return losses, [p.array.copy() for p in t.model.parameters()]


def test_same_seed_same_losses_on_cpu():
    a, wa = _losses(5, prefetch=False)
    b, wb = _losses(5, prefetch=True)
    c, _ = _losses(6, prefetch=False)
    assert a == b                                    # bit-identical, with or without prefetch
    for p, q in zip(wa, wb):
        np.testing.assert_array_equal(p, q)
    assert a != c


def test_metrics_on_known_values():
    logits = np.array([[3, 1, 0], [0, 2, 1], [1, 0, 2], [2, 1, 0], [0, 1, 3]], np.float32)
    y = np.array([0, 1, 1, 1, 2])
    acc = M.Accuracy()
    acc.update(logits[:2], y[:2])
    acc.update(logits[2:], y[2:])
    assert acc.result() == pytest.approx(3 / 5)
    top2 = M.get_metric("top2")
    top2.update(logits, y)
    assert top2.name == "top2_accuracy" and top2.result() == pytest.approx(4 / 5)
    cm = confusion_matrix(y, logits.argmax(1), 3)
    np.testing.assert_array_equal(cm, [[1, 0, 0], [1, 1, 1], [0, 0, 1]])
    p, r, f = precision_recall_f1(cm, average=None)
    np.testing.assert_allclose(p, [0.5, 1.0, 0.5])
    np.testing.assert_allclose(r, [1.0, 1 / 3, 1.0])
    np.testing.assert_allclose(f, [2 / 3, 0.5, 2 / 3])
    f1 = M.get_metric("f1")
    f1.update(logits, y)
    assert f1.result() == pytest.approx(np.mean([2 / 3, 0.5, 2 / 3]))
    with pytest.raises(ValueError, match="unknown metric"):
        M.get_metric("auroc")
    with pytest.raises(ValueError, match="unknown loss"):
        Trainer(tiny_model(), None, loss="hinge_of_doom")


def test_early_stopping_restores_best_weights():
    x, y = quadrant_data(32)
    t = make_trainer(lr=0.0)                          # nothing improves after epoch 1
    weights = []

    class Snap(mc.train.Callback):
        def on_epoch_end(self, epoch, logs=None):
            weights.append([p.array.copy() for p in self.trainer.model.parameters()])

    es = EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True)
    h = t.fit((x, y), epochs=10, val_data=(x, y), callbacks=[es, Snap()], verbose=0)
    assert len(h.epoch) == 3 and es.stopped_epoch == 3 and "early stopping" in h.stopped
    es2 = EarlyStopping(monitor="loss", patience=0, min_delta=10.0)
    h2 = make_trainer().fit((x, y), epochs=5, callbacks=[es2], verbose=0)
    assert len(h2.epoch) == 2
    with pytest.raises(KeyError, match="val_accuracy"):
        make_trainer().fit((x, y), epochs=1, verbose=0,
                           callbacks=[EarlyStopping(monitor="val_accuracy")])


def test_early_stopping_restore_gives_best_epoch_weights():
    x, y = quadrant_data(32)
    vx, vy = quadrant_data(16, seed=3)
    t = make_trainer(lr=0.5)                          # a large lr: val loss goes up and down
    snaps = {}

    class Snap(mc.train.Callback):
        def on_epoch_end(self, epoch, logs=None):
            snaps[epoch] = ([p.array.copy() for p in self.trainer.model.parameters()],
                            logs["val_loss"])

    es = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    t.fit((x, y), epochs=6, val_data=(vx, vy), callbacks=[Snap(), es], verbose=0)
    best = min(snaps, key=lambda e: snaps[e][1])
    assert es.best_epoch == best
    for p, q in zip(t.model.parameters(), snaps[best][0]):
        np.testing.assert_array_equal(p.array, q)


def test_model_checkpoint_best_only(tmp_path):
    x, y = quadrant_data(32)
    path = tmp_path / "best.mc"
    seen = []

    class Fake(mc.train.Callback):   # feeds a made-up monitored value before the checkpoint
        values = iter([1.0, 0.5, 0.7, 0.4])

        def on_epoch_end(self, epoch, logs=None):
            logs["score"] = next(self.values)

    ck = ModelCheckpoint(path, monitor="score", mode="min", save_best_only=True)

    class Watch(mc.train.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(ck.best_epoch)

    t = make_trainer()
    t.fit((x, y), epochs=4, callbacks=[Fake(), ck, Watch()], verbose=0)
    assert seen == [1, 2, 2, 4]
    loaded = load_checkpoint(path)
    assert loaded["meta"]["epoch"] == 4 and loaded["optimizer"] is not None
    for (k, v), p in zip(loaded["model"].items(), t.model.parameters()):
        np.testing.assert_array_equal(np.asarray(v), p.array)


def test_nan_loss_stops_with_epoch_and_step_and_keeps_checkpoint(tmp_path):
    x, y = quadrant_data(32)
    calls = {"n": 0}

    def flaky_loss(out, target):
        calls["n"] += 1
        loss = mc.functional.cross_entropy(out, target)
        return loss * float("nan") if calls["n"] == 7 else loss      # epoch 2, step 3

    path = tmp_path / "last.mc"
    t = make_trainer(loss=flaky_loss)
    ck = ModelCheckpoint(path, monitor="loss", save_best_only=False)
    before = {}

    class Keep(mc.train.Callback):
        def on_batch_end(self, step, logs=None):
            before["w"] = [p.array.copy() for p in self.trainer.model.parameters()]

    h = t.fit(DataLoader(TensorDataset(x, y), 8), epochs=5, callbacks=[ck, Keep()], verbose=0)
    assert h.epoch == [1] and "epoch 2, step 3" in h.stopped and "nan" in h.stopped
    assert str(path) in h.stopped                                     # names the checkpoint
    assert load_checkpoint(path)["meta"]["epoch"] == 1
    for p, q in zip(t.model.parameters(), before["w"]):               # no step on the NaN
        np.testing.assert_array_equal(p.array, q)
    calls["n"] = 0
    t2 = make_trainer(loss=flaky_loss, on_nan="raise")
    with pytest.raises(NonFiniteLossError, match="epoch 2, step 3"):
        t2.fit(DataLoader(TensorDataset(x, y), 8), epochs=5, verbose=0)


def test_lr_scheduler_per_epoch_per_step_and_plateau():
    x, y = quadrant_data(32)
    t = make_trainer(lr=0.1)
    sched = mc.optim.lr_scheduler.StepLR(t.optimizer, step_size=1, gamma=0.5)
    h = t.fit(DataLoader(TensorDataset(x, y), 8), epochs=3, callbacks=[LRScheduler(sched)],
              verbose=0)
    np.testing.assert_allclose(h["lr"], [0.1, 0.05, 0.025])              # the lr each epoch used
    t = make_trainer(lr=0.1)
    sched = mc.optim.lr_scheduler.StepLR(t.optimizer, step_size=1, gamma=0.5)
    t2 = Trainer(t.model, t.optimizer, scheduler=sched, scheduler_interval="step")
    h = t2.fit(DataLoader(TensorDataset(x, y), 8), epochs=1, verbose=0)
    np.testing.assert_allclose(h.lr_steps, [0.1, 0.05, 0.025, 0.0125])   # lr used at each step
    class Flat(mc.train.Callback):                     # a monitored value that never improves
        def on_epoch_end(self, epoch, logs=None):
            logs["score"] = 1.0

    t = make_trainer(lr=0.1)
    plateau = mc.optim.lr_scheduler.ReduceLROnPlateau(t.optimizer, patience=0, factor=0.5)
    h = t.fit((x, y), epochs=3, callbacks=[Flat(), LRScheduler(plateau, monitor="score")],
              verbose=0)
    np.testing.assert_allclose(h["lr"], [0.1, 0.1, 0.05])
    assert h["lr"][-1] < h["lr"][0]


def test_csv_logger(tmp_path):
    x, y = quadrant_data(16)
    path = tmp_path / "log.csv"
    make_trainer().fit((x, y), epochs=2, val_data=(x, y), callbacks=[CSVLogger(path)], verbose=0)
    rows = list(csv.DictReader(open(path)))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "lr"} <= set(rows[0])
    assert math.isfinite(float(rows[1]["val_loss"]))


def test_progress_bar_shows_loss_metrics_throughput(capsys):
    x, y = quadrant_data(32)
    make_trainer().fit((x, y), epochs=1, batch_size=8, verbose=1)
    out = capsys.readouterr()
    text = out.out + out.err
    assert "epoch 1/1" in text and "loss" in text and "accuracy" in text and "img/s" in text


def test_mixup_and_cutmix_training():
    x, y = quadrant_data(32)
    for mix in ("mixup", "cutmix"):
        h = make_trainer(mix=mix, mix_alpha=0.4).fit((x, y), epochs=1, batch_size=8, verbose=0)
        assert math.isfinite(h["loss"][0])
    with pytest.raises(ValueError, match="mix must be"):
        make_trainer(mix="blend")


def test_plots_write_png(tmp_path):
    pytest.importorskip("matplotlib")
    from minicnn.train import plots
    x, y = quadrant_data(16)
    t = make_trainer()
    h = t.fit((x, y), epochs=2, val_data=(x, y), verbose=0)
    files = [plots.plot_history(h, tmp_path / "curves.png"),
             plots.plot_lr(h, tmp_path / "lr.png"),
             plots.plot_confusion_matrix(confusion_matrix(y, t.predict(x), 4), tmp_path / "cm.png",
                                         classes=list("abcd")),
             plots.plot_image_grid(x[:8], tmp_path / "grid.png", labels=y[:8],
                                   predictions=t.predict(x[:8]).argmax(1)),
             plots.plot_augmentations(x[:2], mc.data.transforms.RandomRotation(30),
                                      tmp_path / "aug.png", n_versions=3)]
    for f in files:
        with open(f, "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"


def test_plots_skip_without_matplotlib(tmp_path, monkeypatch, capsys):
    import builtins

    from minicnn.train import plots
    real_import = builtins.__import__

    def no_mpl(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mpl)
    monkeypatch.setattr(plots, "_warned", False)
    assert plots.plot_history({"loss": [1.0, 0.5]}, tmp_path / "c.png") is None
    assert "matplotlib is not installed" in capsys.readouterr().err
    assert not (tmp_path / "c.png").exists()
