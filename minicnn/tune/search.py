"""Hyperparameter search: grid, random and successive halving over a user's train_fn.

    def train_fn(config):                 # or train_fn(config, budget) for successive halving
        ...train a model with config["lr"], ...
        return {"val_accuracy": 0.93, "val_loss": 0.21}

    space = {"lr": LogUniform(1e-4, 1e-1), "batch_size": Choice([32, 64]), "width": [8, 16]}
    result = random_search(train_fn, space, n_trials=20, metric="val_accuracy", mode="max",
                           path="runs/search.json")
    print(result)            # table sorted by the validation metric
    result.best["config"]

Every finished trial is written at once (atomically: temporary file, fsync, os.replace) to
`path` (JSON) and next to it as CSV. Run the same search again with the same path and the trials
already finished are read back, not run again: a trial is keyed by a stable hash of its config
(and budget), so an interrupted search resumes where it stopped. Trials that raised are recorded
as failed and are retried on resume. Early stopping inside a trial is train_fn's business:
`EarlyStopping` below is a small helper for hand-written loops, and `trainer_objective` builds a
train_fn on mc.train.Trainer with a patience.
"""
import csv
import hashlib
import io
import itertools
import json
import math
import os
import time

import numpy as np


# --- search spaces ---------------------------------------------------------------------------

class Distribution:
    def sample(self, rng):
        raise NotImplementedError


class Uniform(Distribution):
    def __init__(self, low, high):
        if not low < high:
            raise ValueError(f"Uniform: need low < high, got {low}, {high}")
        self.low, self.high = float(low), float(high)

    def sample(self, rng):
        return float(rng.uniform(self.low, self.high))

    def __repr__(self):
        return f"Uniform({self.low}, {self.high})"


class LogUniform(Distribution):
    """log(x) uniform on [log(low), log(high)] (learning rates, weight decay)."""

    def __init__(self, low, high):
        if not 0 < low < high:
            raise ValueError(f"LogUniform: need 0 < low < high, got {low}, {high}")
        self.low, self.high = float(low), float(high)

    def sample(self, rng):
        return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))

    def grid(self, n):
        return [float(v) for v in np.geomspace(self.low, self.high, n)]

    def __repr__(self):
        return f"LogUniform({self.low}, {self.high})"


class IntUniform(Distribution):
    """An integer in [low, high] (both ends included); log=True samples log-uniformly."""

    def __init__(self, low, high, log=False):
        if not low <= high:
            raise ValueError(f"IntUniform: need low <= high, got {low}, {high}")
        self.low, self.high, self.log = int(low), int(high), log

    def sample(self, rng):
        if self.log:
            v = math.exp(rng.uniform(math.log(self.low), math.log(self.high + 1)))
            return int(min(self.high, max(self.low, math.floor(v))))
        return int(rng.integers(self.low, self.high + 1))

    def __repr__(self):
        return f"IntUniform({self.low}, {self.high}{', log=True' if self.log else ''})"


class Choice(Distribution):
    def __init__(self, options):
        self.options = list(options)
        if not self.options:
            raise ValueError("Choice: needs at least one option")

    def sample(self, rng):
        return _plain(self.options[int(rng.integers(len(self.options)))])

    def __repr__(self):
        return f"Choice({self.options})"


def log_uniform(low, high):
    return LogUniform(low, high)


def uniform(low, high):
    return Uniform(low, high)


def choice(options):
    return Choice(options)


def _plain(v):
    """NumPy scalars -> Python scalars, so configs hash and serialize the same way."""
    return v.item() if isinstance(v, np.generic) else v


def sample_config(space, rng):
    """One config: a Distribution is sampled, a list/tuple is a uniform choice, else a constant.
    Keys are visited in sorted order so the draw does not depend on dict order."""
    out = {}
    for k in sorted(space):
        v = space[k]
        if isinstance(v, Distribution):
            out[k] = v.sample(rng)
        elif isinstance(v, (list, tuple)):
            out[k] = _plain(v[int(rng.integers(len(v)))])
        else:
            out[k] = _plain(v)
    return {k: out[k] for k in space}


def grid_configs(space):
    """The cartesian product of the lists / Choices in `space` (constants are kept as they are)."""
    keys, values = [], []
    for k, v in space.items():
        if isinstance(v, Choice):
            v = v.options
        elif isinstance(v, Distribution):
            raise TypeError(f"grid_search: {k!r} is {v!r}; give a list of values (e.g. "
                            f"LogUniform(...).grid(n)) or use random_search")
        elif not isinstance(v, (list, tuple)):
            v = [v]
        keys.append(k)
        values.append([_plain(x) for x in v])
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


def config_key(config, budget=None):
    """A stable hash of a config (order of keys does not matter), plus the budget if any."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"),
                      default=lambda v: v.item() if isinstance(v, np.generic) else repr(v))
    h = hashlib.sha1(text.encode()).hexdigest()[:12]
    return h if budget is None else f"{h}@{budget}"


# --- early stopping helper ------------------------------------------------------------------

class EarlyStopping:
    """`stop = es.step(value)` is True once `value` has not improved for `patience` steps."""

    def __init__(self, patience=3, mode="min", min_delta=0.0):
        self.patience, self.mode, self.min_delta = patience, mode, min_delta
        self.best, self.bad, self.best_step, self.steps = None, 0, -1, 0

    def step(self, value):
        value = float(value)
        better = self.best is None or (value < self.best - self.min_delta if self.mode == "min"
                                       else value > self.best + self.min_delta)
        if better:
            self.best, self.bad, self.best_step = value, 0, self.steps
        else:
            self.bad += 1
        self.steps += 1
        return self.bad >= self.patience


# --- results --------------------------------------------------------------------------------

def _atomic_write(path, text):
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class SearchResult:
    """All trials of a search; `table()` is the finished ones, best first."""

    def __init__(self, trials, metric, mode, n_run=0, n_reused=0):
        self.trials, self.metric, self.mode = trials, metric, mode
        self.n_run, self.n_reused = n_run, n_reused

    def _score(self, t):
        v = t["metrics"].get(self.metric)
        if not _is_number(v):
            return math.inf
        return -v if self.mode == "max" else v

    def table(self):
        """Finished trials sorted by budget (largest first) then by the metric (best first)."""
        ok = [t for t in self.trials if t["status"] == "ok"]
        return sorted(ok, key=lambda t: (-(t.get("budget") or 0), self._score(t)))

    @property
    def best(self):
        table = self.table()
        return table[0] if table else None

    @property
    def best_config(self):
        return None if self.best is None else self.best["config"]

    def _columns(self):
        cfg, met = [], []
        for t in self.trials:
            for k in t["config"]:
                if k not in cfg:
                    cfg.append(k)
            for k in t.get("metrics", {}):
                if k not in met:
                    met.append(k)
        if self.metric in met:
            met.remove(self.metric)
            met.insert(0, self.metric)
        return cfg, met

    def to_json(self, path=None):
        text = json.dumps({"metric": self.metric, "mode": self.mode, "trials": self.trials},
                          indent=1, default=repr)
        if path is not None:
            _atomic_write(path, text)
        return text

    def to_csv(self, path=None):
        cfg, met = self._columns()
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["rank", "key", "status", "budget", *cfg, *met, "seconds", "error"])
        rows = self.table() + [t for t in self.trials if t["status"] != "ok"]
        for i, t in enumerate(rows):
            w.writerow([i + 1 if t["status"] == "ok" else "", t["key"], t["status"],
                        t.get("budget", ""), *[t["config"].get(k, "") for k in cfg],
                        *[t["metrics"].get(k, "") for k in met], f"{t.get('seconds', 0):.3f}",
                        t.get("error", "")])
        if path is not None:
            _atomic_write(path, buf.getvalue())
        return buf.getvalue()

    def __str__(self):
        cfg, met = self._columns()
        head = ["#", *cfg, *met, "budget"]
        rows = []
        for i, t in enumerate(self.table()):
            rows.append([str(i + 1)] + [_short(t["config"].get(k)) for k in cfg]
                        + [_short(t["metrics"].get(k)) for k in met] + [_short(t.get("budget"))])
        widths = [max(len(h), *(len(r[j]) for r in rows)) if rows else len(h)
                  for j, h in enumerate(head)]
        lines = [f"search: {len(self.table())} finished trials, sorted by {self.metric} "
                 f"({self.mode}); {self.n_run} run now, {self.n_reused} read back",
                 "  ".join(h.ljust(w) for h, w in zip(head, widths))]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
        failed = [t for t in self.trials if t["status"] != "ok"]
        if failed:
            lines.append(f"{len(failed)} failed trial(s): " + "; ".join(
                f"{t['key']}: {t.get('error', '')}" for t in failed[:3]))
        return "\n".join(lines)

    __repr__ = __str__


def _short(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


class _Store:
    """The trials of one search, kept in a JSON file (and a CSV beside it) after every trial."""

    def __init__(self, path, metric, mode, resume):
        self.path, self.metric, self.mode = path, metric, mode
        self.trials = {}
        if path is not None and resume and os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            for t in data.get("trials", []):
                self.trials[t["key"]] = t

    def finished(self, key):
        t = self.trials.get(key)
        return t if t is not None and t["status"] == "ok" else None

    def record(self, trial):
        self.trials[trial["key"]] = trial
        if self.path is not None:
            res = self.result()
            res.to_json(self.path)
            res.to_csv(os.path.splitext(self.path)[0] + ".csv")

    def result(self, n_run=0, n_reused=0):
        return SearchResult(list(self.trials.values()), self.metric, self.mode, n_run, n_reused)


def _run_trial(train_fn, config, budget, key, raise_errors):
    t0 = time.perf_counter()
    trial = {"key": key, "config": config, "budget": budget, "metrics": {}, "status": "ok"}
    try:
        metrics = train_fn(config) if budget is None else train_fn(config, budget)
        trial["metrics"] = {k: _plain(v) if not hasattr(v, "item") else v.item()
                            for k, v in dict(metrics).items()}
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # a failed trial is recorded, the search goes on
        if raise_errors:
            raise
        trial["status"] = "failed"
        trial["error"] = f"{type(e).__name__}: {e}"
    trial["seconds"] = time.perf_counter() - t0
    return trial


def run_configs(train_fn, configs, metric="val_accuracy", mode="max", path=None, resume=True,
                budget=None, verbose=False, raise_errors=False, _store=None):
    """Run train_fn on each config (skipping those finished in `path`); return a SearchResult."""
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    store = _store or _Store(path, metric, mode, resume)
    n_run = n_reused = 0
    for i, config in enumerate(configs):
        key = config_key(config, budget)
        if store.finished(key) is not None:
            n_reused += 1
            continue
        trial = _run_trial(train_fn, config, budget, key, raise_errors)
        n_run += 1
        store.record(trial)
        if verbose:
            m = trial["metrics"].get(metric)
            print(f"[{i + 1}/{len(configs)}] {config} -> {metric}={_short(m)} "
                  f"({trial['status']}, {trial['seconds']:.1f}s)")
    return store.result(n_run, n_reused)


def grid_search(train_fn, space, metric="val_accuracy", mode="max", path=None, resume=True,
                verbose=False, raise_errors=False):
    """Every combination of the lists in `space`; train_fn(config) -> {metric: value, ...}."""
    return run_configs(train_fn, grid_configs(space), metric, mode, path, resume,
                       verbose=verbose, raise_errors=raise_errors)


def random_search(train_fn, space, n_trials=20, seed=0, metric="val_accuracy", mode="max",
                  path=None, resume=True, verbose=False, raise_errors=False):
    """n_trials configs drawn from `space` with a seeded generator (the same seed draws the same
    configs, which is what lets an interrupted search resume)."""
    rng = np.random.default_rng(seed)
    configs, seen = [], set()
    for _ in range(n_trials):
        c = sample_config(space, rng)
        k = config_key(c)
        if k not in seen:           # a discrete space may repeat a config: run it once
            seen.add(k)
            configs.append(c)
    return run_configs(train_fn, configs, metric, mode, path, resume, verbose=verbose,
                       raise_errors=raise_errors)


def successive_halving(train_fn, space, n_trials=27, min_budget=1, max_budget=None, eta=3,
                       seed=0, metric="val_accuracy", mode="max", path=None, resume=True,
                       verbose=False, raise_errors=False, configs=None):
    """Successive halving: run n_trials configs at min_budget, keep the best 1/eta, multiply the
    budget by eta, and repeat until one config is left or max_budget is reached.

    train_fn(config, budget) -> metrics, where budget is e.g. a number of epochs. Each (config,
    budget) pair is a trial of its own in the results (and is resumable).
    """
    if configs is None:
        rng = np.random.default_rng(seed)
        configs, seen = [], set()
        for _ in range(n_trials):
            c = sample_config(space, rng)
            if config_key(c) not in seen:
                seen.add(config_key(c))
                configs.append(c)
    if eta < 2:
        raise ValueError(f"successive_halving: eta must be >= 2, got {eta}")
    store = _Store(path, metric, mode, resume)
    n_run = n_reused = 0
    budget = min_budget
    alive = list(configs)
    rungs = []
    while True:
        res = run_configs(train_fn, alive, metric, mode, budget=budget, verbose=verbose,
                          raise_errors=raise_errors, _store=store)
        n_run += res.n_run
        n_reused += res.n_reused
        scored = []
        for c in alive:
            t = store.finished(config_key(c, budget))
            if t is not None:
                scored.append((res._score(t), len(scored), c))
        scored.sort(key=lambda s: (s[0], s[1]))
        rungs.append({"budget": budget, "n": len(alive)})
        keep = max(1, len(alive) // eta)
        next_budget = budget * eta
        if len(scored) <= 1 or (max_budget is not None and next_budget > max_budget):
            break
        alive = [c for _, _, c in scored[:keep]]
        budget = next_budget
    result = store.result(n_run, n_reused)
    result.rungs = rungs
    return result


# --- a train_fn on mc.train.Trainer ---------------------------------------------------------

_FIT_KEYS = ("lr", "batch_size", "optimizer", "weight_decay", "epochs", "patience", "momentum")


def trainer_objective(build_model, train_set, val_set, epochs=5, patience=2, **fixed):
    """A train_fn for the searches built on mc.train.Trainer.

    build_model(config) -> Module. The config keys lr, batch_size, optimizer, weight_decay,
    epochs, patience and momentum go to the training loop (with early stopping on the validation
    loss after `patience` epochs without improvement); every key is visible to build_model (width,
    dropout, ...). With successive halving the budget is the number of epochs.
    """
    from .folds import fit_and_evaluate  # noqa: PLC0415

    def train_fn(config, budget=None):
        kw = {"epochs": epochs, "patience": patience, **fixed}
        kw.update({k: config[k] for k in _FIT_KEYS if k in config})
        if budget is not None:
            kw["epochs"] = int(budget)
        from ..random import manual_seed  # noqa: PLC0415
        manual_seed(kw.get("seed", 0))       # the same config builds the same initial model
        model = build_model(config)
        return fit_and_evaluate(model, train_set, val_set, **kw)
    return train_fn
