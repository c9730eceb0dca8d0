"""Ensembles as Modules: soft / hard voting, bagging, stacking.

An ensemble's forward returns per-class scores whose argmax is the ensemble's prediction and
which plug into a cross-entropy loss: log of the averaged probabilities (soft voting), log of the
vote shares (hard voting), the meta-model's logits (stacking). So `Trainer.evaluate`, `predict`
and accuracy metrics work on an ensemble as on any model.
"""
import numpy as np

from ..autograd import no_grad
from ..devices import get_array_module
from ..nn.module import Module
from ..nn.parameter import Parameter
from ..tensor import Tensor


def softmax(logits, dim=1):
    z = logits - logits.amax(dim=dim, keepdim=True).detach()
    e = z.exp()
    return e / e.sum(dim=dim, keepdim=True)


def log_softmax(logits, dim=1):
    z = logits - logits.amax(dim=dim, keepdim=True).detach()
    return z - z.exp().sum(dim=dim, keepdim=True).log()


class _Members(Module):
    """Holds the member models as submodules '0', '1', ... (PyTorch's ModuleList names)."""

    def __init__(self, models):
        super().__init__()
        for i, m in enumerate(models):
            self.add_module(str(i), m)

    def __iter__(self):
        return iter(self._modules.values())

    def __len__(self):
        return len(self._modules)

    def __getitem__(self, i):
        return list(self._modules.values())[i]


class VotingEnsemble(Module):
    """voting='soft': average of the members' probabilities (optionally weighted);
    voting='hard': majority vote of their predicted classes (ties go to the larger average
    probability). forward returns log-probabilities / log vote shares of shape (N, classes)."""

    def __init__(self, models, voting="soft", weights=None):
        super().__init__()
        if voting not in ("soft", "hard"):
            raise ValueError(f"VotingEnsemble: voting must be 'soft' or 'hard', got {voting!r}")
        models = list(models)
        if not models:
            raise ValueError("VotingEnsemble: needs at least one model")
        self.members = _Members(models)
        self.voting = voting
        w = np.ones(len(models)) if weights is None else np.asarray(weights, np.float64)
        if w.shape != (len(models),) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"VotingEnsemble: weights must be {len(models)} non-negative "
                             f"numbers with a positive sum, got {weights}")
        self.weights = (w / w.sum()).tolist()

    def member_probabilities(self, x):
        return [softmax(m(x)) for m in self.members]

    def forward(self, x):
        probs = self.member_probabilities(x)
        avg = sum(w * p for w, p in zip(self.weights, probs))
        if self.voting == "soft":
            return avg.clamp(min=1e-12).log()
        xp_avg = avg.array
        votes = 0.0
        for w, p in zip(self.weights, probs):
            onehot = (p.array == p.array.max(axis=1, keepdims=True)).astype(p.array.dtype)
            votes = votes + w * onehot / onehot.sum(axis=1, keepdims=True)
        shares = votes + 1e-6 * xp_avg                       # tie-break by average probability
        return Tensor(shares / shares.sum(axis=1, keepdims=True)).clamp(min=1e-12).log()

    def extra_repr(self):
        return f"voting={self.voting!r}, n={len(self.members)}"


class LogisticRegression(Module):
    """A small linear meta-model: logits = x @ W + b (W: (in_features, classes))."""

    def __init__(self, in_features, num_classes, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.weight = Parameter(rng.normal(0, 0.01, (in_features, num_classes)).astype(np.float32))
        self.bias = Parameter(np.zeros(num_classes, np.float32))

    def forward(self, x):
        return x @ self.weight + self.bias


class StackingEnsemble(Module):
    """Stacking: the members' class probabilities, concatenated, feed a small meta-model.

    Fit the members first (on one part of the data), then call `fit_meta` on held-out data the
    members did not see (fitting the meta-model on the members' training data would reward
    overfitting). forward returns the meta-model's logits.
    """

    def __init__(self, models, num_classes, meta=None):
        super().__init__()
        self.members = _Members(list(models))
        self.num_classes = int(num_classes)
        self.meta = meta if meta is not None else \
            LogisticRegression(len(self.members) * self.num_classes, self.num_classes)

    def features(self, x):
        """(N, models * classes): the members' probabilities side by side (no graph)."""
        with no_grad():
            probs = [softmax(m(x)).array for m in self.members]
        return Tensor(get_array_module(*probs).concatenate(probs, axis=1))

    def forward(self, x):
        return self.meta(self.features(x))

    def fit_meta(self, dataset, epochs=300, lr=0.5, weight_decay=1e-3, batch_size=256):
        """Train the meta-model by full-batch gradient descent on the members' probabilities."""
        for m in self.members:
            m.eval()
        feats, ys = [], []
        for xb, yb in iterate_batches(dataset, batch_size):
            feats.append(self.features(Tensor(xb)).array)
            ys.append(yb)
        f = Tensor(np.concatenate(feats).astype(np.float32))
        y = np.concatenate(ys).astype(np.int64)
        onehot = Tensor(np.eye(self.num_classes, dtype=np.float32)[y])
        params = list(self.meta.parameters())
        for _ in range(epochs):
            loss = -(log_softmax(self.meta(f)) * onehot).sum(dim=1).mean()
            for p in params:
                p.grad = None
            loss.backward()
            with no_grad():
                for p in params:
                    p.array -= lr * (p.grad.array + weight_decay * p.array)
        return float(loss.item())


def iterate_batches(dataset, batch_size=256):
    """(x, y) NumPy batches of a dataset, in order (uses get_batch when the dataset has it)."""
    n = len(dataset)
    for s in range(0, n, batch_size):
        idx = np.arange(s, min(n, s + batch_size))
        if hasattr(dataset, "get_batch"):
            xb, yb = dataset.get_batch(idx)
        else:
            items = [dataset[int(i)] for i in idx]
            xb = np.stack([np.asarray(getattr(it[0], "data", it[0])) for it in items])
            yb = np.asarray([int(np.asarray(getattr(it[1], "data", it[1]))) for it in items])
        xb = getattr(xb, "data", xb)
        yb = getattr(yb, "data", yb)
        yield np.asarray(xb), np.asarray(yb)


def bootstrap_indices(n, rng):
    """n indices drawn with replacement, and the out-of-bag indices (never drawn)."""
    idx = rng.integers(0, n, n)
    oob = np.setdiff1d(np.arange(n), idx)
    return idx, oob


def bagging(build_model, dataset, n_estimators=5, fit_fn=None, fit_kwargs=None, seed=0,
            voting="soft"):
    """Train n_estimators models, each on a bootstrap sample of `dataset`; return the
    VotingEnsemble of them. fit_fn(model, train_set, **fit_kwargs) trains a model in place
    (default: mc.train.Trainer via minicnn.tune.folds.train_model). The bootstrap and out-of-bag
    indices are kept on the ensemble as `.bootstrap` and `.oob`."""
    from ..data import Subset  # noqa: PLC0415
    from ..random import manual_seed  # noqa: PLC0415
    from .folds import train_model  # noqa: PLC0415
    fit_fn = fit_fn or train_model
    rng = np.random.default_rng(seed)
    models, boots, oobs = [], [], []
    for i in range(n_estimators):
        idx, oob = bootstrap_indices(len(dataset), rng)
        manual_seed(seed + i)
        model = build_model()
        fit_fn(model, Subset(dataset, idx), **dict(fit_kwargs or {}))
        models.append(model)
        boots.append(idx)
        oobs.append(oob)
    ens = VotingEnsemble(models, voting=voting)
    ens.bootstrap, ens.oob = boots, oobs
    return ens
