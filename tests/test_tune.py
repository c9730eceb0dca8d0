"""mc.tune: folds, cross-validation, searches (best, resume), ensembles."""
import csv
import json
import os

import numpy as np
import pytest

import minicnn as mc
from minicnn import tune
from minicnn.data.dataset import ArrayDataset, Subset


def _dataset(counts=(60, 30, 10), seed=0):
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.full(c, i) for i, c in enumerate(counts)])
    rng.shuffle(y)
    x = (rng.standard_normal((len(y), 1, 2, 2)) + 2 * y[:, None, None, None]).astype(np.float32)
    return ArrayDataset(x, y)


# --- folds -------------------------------------------------------------------------------------

@pytest.mark.parametrize("k", [2, 3, 5])
def test_stratified_folds_partition_and_keep_class_ratios(k):
    ds = _dataset()
    y = ds.targets
    folds = tune.kfold(ds, k=k, stratified=True, seed=1)
    assert len(folds) == k
    vals = np.concatenate([va for _, va in folds])
    np.testing.assert_array_equal(np.sort(vals), np.arange(len(ds)))      # a partition
    for tr, va in folds:
        assert len(np.intersect1d(tr, va)) == 0
        np.testing.assert_array_equal(np.sort(np.concatenate([tr, va])), np.arange(len(ds)))
        for c in np.unique(y):                                             # class ratios kept
            assert abs((y[va] == c).sum() - (y == c).sum() / k) < 1
    sizes = [len(va) for _, va in folds]
    assert max(sizes) - min(sizes) <= 1


def test_unstratified_folds_and_seed():
    f1 = tune.kfold(23, k=4, seed=3)
    f2 = tune.kfold(23, k=4, seed=3)
    assert all((a[1] == b[1]).all() for a, b in zip(f1, f2))
    np.testing.assert_array_equal(np.sort(np.concatenate([v for _, v in f1])), np.arange(23))
    assert any((a[1] != b[1]).any() for a, b in zip(f1, tune.kfold(23, k=4, seed=4)))
    with pytest.raises(ValueError, match="kfold"):
        tune.kfold(5, k=6)


def test_targets_of_a_subset():
    ds = _dataset()
    sub = Subset(ds, [5, 1, 7])
    np.testing.assert_array_equal(tune.get_targets(sub), ds.targets[[5, 1, 7]])


def test_cross_validate_reports_per_fold_and_mean_std():
    ds = _dataset()
    calls = []

    def fit_fn(model, train_set, val_set, offset=0.0):
        calls.append((len(train_set), len(val_set)))
        return {"val_accuracy": len(val_set) / 100 + offset, "val_loss": 1.0}

    cv = tune.cross_validate(lambda: None, ds, k=4, fit_kwargs={"offset": 0.5}, fit_fn=fit_fn)
    assert len(cv["folds"]) == 4 and len(calls) == 4
    accs = [m["val_accuracy"] for m in cv["folds"]]
    assert cv["mean"]["val_accuracy"] == pytest.approx(np.mean(accs))
    assert cv["std"]["val_accuracy"] == pytest.approx(np.std(accs))
    assert cv["std"]["val_loss"] == 0
    assert "±" in str(cv)


# --- searches ----------------------------------------------------------------------------------

def _objective(config, budget=None):
    # a cheap synthetic objective: best at lr = 1e-2, width 16; more budget helps a little
    acc = 1.0 - (np.log10(config["lr"]) + 2) ** 2 / 10 - abs(config["width"] - 16) / 100
    if budget is not None:
        acc -= 0.05 / budget
    return {"val_accuracy": float(acc), "val_loss": float(1 - acc)}


def test_grid_search_best_is_best_of_its_table(tmp_path):
    space = {"lr": [1e-3, 1e-2, 1e-1], "width": tune.Choice([8, 16]), "optimizer": "adam"}
    res = tune.grid_search(_objective, space, path=str(tmp_path / "grid.json"))
    table = res.table()
    assert len(table) == 6
    vals = [t["metrics"]["val_accuracy"] for t in table]
    assert vals == sorted(vals, reverse=True)
    assert res.best is table[0]
    assert res.best["metrics"]["val_accuracy"] == max(vals)
    assert res.best_config == {"lr": 1e-2, "width": 16, "optimizer": "adam"}
    # saved as JSON and CSV, sorted the same way
    data = json.loads((tmp_path / "grid.json").read_text())
    assert len(data["trials"]) == 6
    rows = list(csv.DictReader(open(tmp_path / "grid.csv")))
    assert [float(r["val_accuracy"]) for r in rows] == vals
    # minimizing picks the other end
    res_min = tune.grid_search(_objective, space, metric="val_loss", mode="min")
    assert res_min.best_config == res.best_config
    with pytest.raises(TypeError, match="grid_search"):
        tune.grid_search(_objective, {"lr": tune.LogUniform(1e-3, 1)})


def test_random_search_distributions_and_seed():
    space = {"lr": tune.LogUniform(1e-4, 1e-1), "width": tune.IntUniform(4, 32),
             "drop": tune.Uniform(0.0, 0.5), "opt": ["sgd", "adam"]}
    r1 = tune.random_search(_objective_any, space, n_trials=15, seed=7)
    r2 = tune.random_search(_objective_any, space, n_trials=15, seed=7)
    assert [t["config"] for t in r1.trials] == [t["config"] for t in r2.trials]
    for t in r1.trials:
        c = t["config"]
        assert 1e-4 <= c["lr"] <= 1e-1 and 4 <= c["width"] <= 32 and 0 <= c["drop"] <= 0.5
        assert c["opt"] in ("sgd", "adam")
    lrs = np.log10([t["config"]["lr"] for t in r1.trials])
    assert lrs.min() < -3 and lrs.max() > -2          # spread over decades, not clustered at 0.1
    assert r1.best["metrics"]["val_accuracy"] == max(
        t["metrics"]["val_accuracy"] for t in r1.table())


def _objective_any(config):
    return _objective({"lr": config["lr"], "width": config["width"]})


def test_resumed_search_skips_finished_trials(tmp_path):
    path = str(tmp_path / "search.json")
    space = {"lr": tune.LogUniform(1e-4, 1e-1), "width": [8, 16, 32]}
    calls = []

    def interrupted(config):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(config)
        return _objective(config)

    with pytest.raises(KeyboardInterrupt):
        tune.random_search(interrupted, space, n_trials=8, seed=1, path=path)
    saved = json.loads(open(path).read())["trials"]
    assert [t["config"] for t in saved] == calls            # written after each trial

    calls2 = []

    def counting(config):
        calls2.append(config)
        return _objective(config)

    res = tune.random_search(counting, space, n_trials=8, seed=1, path=path)
    assert len(calls2) == 5 and res.n_run == 5 and res.n_reused == 3
    assert not any(c in calls for c in calls2)
    assert len(res.table()) == 8
    # a third run does nothing at all
    res3 = tune.random_search(counting, space, n_trials=8, seed=1, path=path)
    assert len(calls2) == 5 and res3.n_reused == 8
    assert res3.best == res.best
    # resume=False starts over
    tune.random_search(counting, space, n_trials=8, seed=1, path=path, resume=False)
    assert len(calls2) == 13


def test_failed_trials_are_recorded_and_retried(tmp_path):
    path = str(tmp_path / "s.json")
    space = {"lr": [1e-3, 1e-2], "width": [16]}

    def flaky(config):
        if config["lr"] == 1e-3:
            raise RuntimeError("diverged")
        return _objective(config)

    res = tune.grid_search(flaky, space, path=path)
    assert len(res.table()) == 1
    failed = [t for t in res.trials if t["status"] == "failed"]
    assert len(failed) == 1 and "diverged" in failed[0]["error"]
    calls = []
    res2 = tune.grid_search(lambda c: calls.append(c) or _objective(c), space, path=path)
    assert calls == [{"lr": 1e-3, "width": 16}] and len(res2.table()) == 2


def test_config_key_is_stable():
    assert tune.config_key({"a": 1, "b": 0.5}) == tune.config_key({"b": 0.5, "a": 1})
    assert tune.config_key({"a": 1}) != tune.config_key({"a": 2})
    assert tune.config_key({"a": np.int64(3)}) == tune.config_key({"a": 3})
    assert tune.config_key({"a": 3}, 2) == tune.config_key({"a": 3}) + "@2"


def test_successive_halving(tmp_path):
    seen = []

    def fn(config, budget):
        seen.append((tune.config_key(config), budget))
        return _objective(config, budget)

    space = {"lr": tune.LogUniform(1e-4, 1e0), "width": [8, 16, 32]}
    res = tune.successive_halving(fn, space, n_trials=9, min_budget=1, eta=3, seed=0,
                                  path=str(tmp_path / "sh.json"))
    budgets = [b for _, b in seen]
    assert budgets.count(1) == 9 and budgets.count(3) == 3 and budgets.count(9) == 1
    # the survivors of each rung are the best of the rung below
    rung1 = [t for t in res.trials if t["budget"] == 1]
    rung1.sort(key=lambda t: -t["metrics"]["val_accuracy"])
    top3 = {t["key"].split("@")[0] for t in rung1[:3]}
    assert {k for k, b in seen if b == 3} == top3
    best = res.best
    assert best["budget"] == 9 and res.table()[0] is best
    # resume: nothing runs again
    n = len(seen)
    tune.successive_halving(fn, space, n_trials=9, min_budget=1, eta=3, seed=0,
                            path=str(tmp_path / "sh.json"))
    assert len(seen) == n


def test_early_stopping_helper():
    es = tune.EarlyStopping(patience=2, mode="min")
    stops = [es.step(v) for v in [1.0, 0.8, 0.9, 0.85, 0.7]]
    assert stops == [False, False, False, True, False]
    assert es.best == 0.7


# --- ensembles ---------------------------------------------------------------------------------

class _Fixed(mc.nn.Module):
    """Returns fixed logits per sample index (x holds the indices)."""

    def __init__(self, logits):
        super().__init__()
        self.logits = np.asarray(logits, np.float32)

    def forward(self, x):
        return mc.tensor(self.logits[np.asarray(x.array, np.int64).reshape(-1)])


def test_soft_and_hard_voting():
    a = [[2.0, 0.0, 0.0], [0.0, 3.0, 0.0]]
    b = [[0.0, 1.0, 0.0], [0.0, 0.0, 0.2]]
    c = [[0.0, 1.1, 0.0], [0.0, 0.1, 0.0]]
    models = [_Fixed(a), _Fixed(b), _Fixed(c)]
    x = mc.tensor(np.array([0, 1]))
    soft = tune.VotingEnsemble(models, voting="soft")
    sm = lambda z: np.exp(z) / np.exp(z).sum(1, keepdims=True)  # noqa: E731
    want = (sm(np.array(a)) + sm(np.array(b)) + sm(np.array(c))) / 3
    np.testing.assert_allclose(np.exp(soft(x).numpy()), want, rtol=1e-5)
    hard = tune.VotingEnsemble(models, voting="hard")
    pred = hard(x).numpy().argmax(1)
    np.testing.assert_array_equal(pred, [1, 1])          # 2 of 3 vote class 1 for sample 0
    assert np.exp(hard(x).numpy())[0, 1] == pytest.approx(2 / 3, abs=1e-4)
    assert len(list(soft.named_modules())) == 5           # ensemble, members, 3 models
    with pytest.raises(ValueError, match="voting"):
        tune.VotingEnsemble(models, voting="mean")


class _Linear(mc.nn.Module):
    def __init__(self, d, k, seed):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.w = mc.nn.Parameter(rng.normal(0, 0.1, (d, k)).astype(np.float32))
        self.b = mc.nn.Parameter(np.zeros(k, np.float32))

    def forward(self, x):
        return x.reshape(x.shape[0], -1) @ self.w + self.b


def _fit_gd(model, dataset, steps=300, lr=0.5):
    x, y = next(tune.iterate_batches(dataset, len(dataset)))
    x = mc.tensor(x)
    onehot = mc.tensor(np.eye(3, dtype=np.float32)[y])
    for _ in range(steps):
        loss = -(tune.log_softmax(model(x)) * onehot).sum(dim=1).mean()
        model.zero_grad()
        loss.backward()
        with mc.no_grad():
            for p in model.parameters():
                p.array -= lr * p.grad.array


def test_bagging_and_stacking_learn():
    ds = _dataset((40, 40, 40))
    ens = tune.bagging(lambda: _Linear(4, 3, 0), ds, n_estimators=3, fit_fn=_fit_gd, seed=0)
    assert len(ens.members) == 3 and len(ens.bootstrap) == 3
    for idx, oob in zip(ens.bootstrap, ens.oob):
        assert len(idx) == len(ds) and len(np.unique(idx)) < len(ds)
        assert len(np.intersect1d(idx, oob)) == 0
    x, y = next(tune.iterate_batches(ds, len(ds)))
    acc = (ens(mc.tensor(x)).numpy().argmax(1) == y).mean()
    assert acc > 0.8
    stack = tune.StackingEnsemble(list(ens.members), num_classes=3)
    loss = stack.fit_meta(ds, epochs=200)
    assert np.isfinite(loss)
    assert (stack(mc.tensor(x)).numpy().argmax(1) == y).mean() > 0.8
    assert stack.features(mc.tensor(x)).shape == (len(ds), 9)


# --- on mc.train.Trainer -----------------------------------------------------------------------

def _tiny(config=None):
    return mc.nn.Sequential(mc.nn.Flatten(), mc.nn.Linear(4, 3))


def test_cross_validate_and_search_with_the_trainer(tmp_path):
    ds = _dataset((20, 20, 20))
    cv = tune.cross_validate(_tiny, ds, k=3, fit_kwargs={"epochs": 2, "lr": 0.05,
                                                          "batch_size": 16})
    assert len(cv["folds"]) == 3
    assert set(cv["mean"]) >= {"val_loss", "val_accuracy"}
    assert cv["mean"]["val_accuracy"] > 0.5
    fn = tune.trainer_objective(_tiny, Subset(ds, np.arange(40)), Subset(ds, np.arange(40, 60)),
                                epochs=2, patience=1, batch_size=16)
    a, b = fn({"lr": 0.05}), fn({"lr": 0.05})
    assert a == b                                          # seeded: the same config, same result
    res = tune.grid_search(fn, {"lr": [0.001, 0.05]}, path=str(tmp_path / "g.json"))
    assert res.best_config == {"lr": 0.05}
    ens = tune.VotingEnsemble([_tiny(), _tiny()])
    out = mc.train.Trainer(ens, None).evaluate(ds)
    assert np.isfinite(out["loss"]) and 0 <= out["accuracy"] <= 1
