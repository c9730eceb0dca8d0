"""K-fold splits (stratified by default) and cross-validation."""
import numpy as np


def get_targets(dataset):
    """The integer labels of a dataset as a NumPy array (Subsets map through their indices)."""
    d = getattr(dataset, "__dict__", {})
    if "dataset" in d and "indices" in d:                  # a Subset
        return get_targets(d["dataset"])[np.asarray(d["indices"])]
    if "datasets" in d:                                    # a ConcatDataset
        return np.concatenate([get_targets(s) for s in d["datasets"]])
    for name in ("targets", "labels", "y"):
        t = d.get(name, None)
        if t is not None:
            t = getattr(t, "data", t)                      # a Tensor
            if hasattr(t, "get"):
                t = t.get()
            return np.asarray(t).reshape(len(t), -1)[:, 0] if np.ndim(t) > 1 else np.asarray(t)
    tensors = d.get("tensors")
    if tensors is not None and len(tensors) >= 2:         # a TensorDataset(x, y)
        t = getattr(tensors[1], "data", tensors[1])
        return np.asarray(t.get() if hasattr(t, "get") else t)
    out = []
    for i in range(len(dataset)):
        y = dataset[i][1]
        y = getattr(y, "data", y)
        out.append(int(np.asarray(y)))
    return np.asarray(out)


def _rng(seed):
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def kfold(dataset, k=5, stratified=True, seed=0, shuffle=True):
    """Split `dataset` (or a number of samples, or an array of labels) into k folds.

    Returns a list of k (train_indices, val_indices) pairs of int64 arrays. The validation sets
    partition range(n); with `stratified` each class is dealt round-robin over the folds (after a
    seeded shuffle), so every fold keeps the class ratios up to one sample per class.
    """
    if isinstance(dataset, (int, np.integer)):
        n, labels = int(dataset), None
    elif isinstance(dataset, np.ndarray):
        labels = dataset
        n = len(labels)
    else:
        n = len(dataset)
        labels = get_targets(dataset) if stratified else None
    if not 2 <= k <= n:
        raise ValueError(f"kfold: k must be between 2 and the number of samples ({n}), got {k}")
    rng = _rng(seed)
    fold_of = np.empty(n, np.int64)
    if stratified and labels is not None:
        labels = np.asarray(labels)
        offset = 0
        for c in np.unique(labels):
            idx = np.flatnonzero(labels == c)
            if shuffle:
                idx = rng.permutation(idx)
            # continue the round-robin where the last class stopped so fold sizes stay balanced
            fold_of[idx] = (offset + np.arange(len(idx))) % k
            offset = (offset + len(idx)) % k
    else:
        order = rng.permutation(n) if shuffle else np.arange(n)
        fold_of[order] = np.arange(n) % k
    folds = []
    for f in range(k):
        val = np.flatnonzero(fold_of == f)
        train = np.flatnonzero(fold_of != f)
        folds.append((train, val))
    return folds


def _subset(dataset, indices):
    from ..data import Subset  # noqa: PLC0415
    return Subset(dataset, indices)


def summarize(per_fold):
    """{metric: (mean, std)} over a list of metric dicts (population std, numbers only)."""
    keys = [k for k in per_fold[0] if all(isinstance(m.get(k), (int, float, np.number))
                                          and not isinstance(m.get(k), bool) for m in per_fold)]
    mean = {k: float(np.mean([m[k] for m in per_fold])) for k in keys}
    std = {k: float(np.std([m[k] for m in per_fold])) for k in keys}
    return mean, std


class CVResult(dict):
    """{'folds': [metrics per fold], 'mean': {...}, 'std': {...}} that prints as mean ± std."""

    def __str__(self):
        lines = [f"{len(self['folds'])}-fold cross-validation"]
        for i, m in enumerate(self["folds"]):
            lines.append(f"  fold {i}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in m.items()))
        lines.append("  mean ± std: " + ", ".join(
            f"{k}={self['mean'][k]:.4g} ± {self['std'][k]:.2g}" for k in self["mean"]))
        return "\n".join(lines)


def _fmt(v):
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def cross_validate(build_model, dataset, k=5, fit_kwargs=None, stratified=True, seed=0,
                   fit_fn=None, verbose=False):
    """Train a fresh model on each of k folds and evaluate it on the held-out fold.

    build_model() -> a new Module (called once per fold).
    fit_fn(model, train_set, val_set, **fit_kwargs) -> {metric: value}; by default
    `minicnn.tune.fit_and_evaluate`, which uses mc.train.Trainer.
    Returns a CVResult with per-fold metrics and their mean and std.
    """
    fit_kwargs = dict(fit_kwargs or {})
    fit_fn = fit_fn or fit_and_evaluate
    per_fold = []
    from ..random import manual_seed  # noqa: PLC0415
    for i, (tr, va) in enumerate(kfold(dataset, k, stratified=stratified, seed=seed)):
        manual_seed(seed + i)                # reproducible initial weights per fold
        model = build_model()
        metrics = fit_fn(model, _subset(dataset, tr), _subset(dataset, va), **fit_kwargs)
        per_fold.append({kk: (float(v) if isinstance(v, (np.floating, np.integer)) else v)
                         for kk, v in dict(metrics).items()})
        if verbose:
            print(f"fold {i}: {per_fold[-1]}")
    mean, std = summarize(per_fold)
    return CVResult(folds=per_fold, mean=mean, std=std)


def train_model(model, train_set, val_set=None, epochs=5, batch_size=64, lr=1e-3,
                optimizer="adam", weight_decay=0.0, patience=None, loss="cross_entropy",
                metrics=("accuracy",), seed=0, verbose=0, momentum=0.9, callbacks=()):
    """Train `model` in place with mc.train.Trainer; early stopping on the validation loss (best
    weights restored) when `patience` is given and there is a validation set. Returns the
    Trainer."""
    import minicnn as mc  # noqa: PLC0415
    from ..train import Trainer  # noqa: PLC0415
    mc.manual_seed(seed)
    opt_cls = {"adam": mc.optim.Adam, "sgd": mc.optim.SGD, "adamw": mc.optim.AdamW}[
        optimizer.lower()] if isinstance(optimizer, str) else optimizer
    opt_kwargs = {"lr": lr, "weight_decay": weight_decay}
    if opt_cls is mc.optim.SGD:
        opt_kwargs["momentum"] = momentum
    opt = opt_cls(model.parameters(), **opt_kwargs)
    callbacks = list(callbacks)
    if patience is not None and val_set is not None:
        callbacks.append(mc.train.EarlyStopping(monitor="val_loss", patience=patience,
                                                restore_best_weights=True))
    trainer = Trainer(model, opt, loss=loss, metrics=list(metrics))
    trainer.fit(train_set, epochs=epochs, batch_size=batch_size, validation_data=val_set,
                callbacks=callbacks, verbose=verbose)
    return trainer


def fit_and_evaluate(model, train_set, val_set, batch_size=64, **train_kwargs):
    """train_model, then the validation metrics as {'val_loss': ..., 'val_accuracy': ...}."""
    trainer = train_model(model, train_set, val_set, batch_size=batch_size, **train_kwargs)
    result = trainer.evaluate(val_set, batch_size=batch_size, verbose=0)
    return {k if k.startswith("val_") else f"val_{k}": float(v) for k, v in dict(result).items()}
