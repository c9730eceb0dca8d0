"""Plots saved as PNG (matplotlib, a dependency, imported only when a plot is drawn): training
curves, the learning-rate schedule, a confusion matrix, a grid of images with predictions,
augmentation previews.

Each function returns the path it wrote, or None with a printed note when matplotlib cannot be
imported (an install without it), so training never fails for want of a plot.
"""
import os
import sys

import numpy

from .. import devices
from ..tensor import Tensor

_MISSING_NOTE = ("note: matplotlib is not installed, so no plot was written "
                 "(pip install matplotlib)")
_warned = False


def have_matplotlib():
    try:
        import matplotlib  # noqa: F401,PLC0415
        return True
    except ImportError:
        return False


def _pyplot():
    global _warned
    try:
        import matplotlib  # noqa: PLC0415
        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt  # noqa: PLC0415
        return plt
    except ImportError:
        if not _warned:
            print(_MISSING_NOTE, file=sys.stderr)
            _warned = True
        return None


def _save(fig, plt, path):
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _history_dict(history):
    return history.history if hasattr(history, "history") else dict(history)


def plot_history(history, path, title=None):
    """Loss and every metric per epoch (train and val_ in one panel each)."""
    plt = _pyplot()
    if plt is None:
        return None
    h = _history_dict(history)
    names = [k for k in h if not k.startswith("val_") and k != "lr"]
    if not names:
        raise ValueError("plot_history: the history has no values to plot")
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.5), squeeze=False)
    for ax, name in zip(axes[0], names):
        epochs = numpy.arange(1, len(h[name]) + 1)
        ax.plot(epochs, h[name], "o-", label=f"train {name}")
        if f"val_{name}" in h:
            ax.plot(numpy.arange(1, len(h[f"val_{name}"]) + 1), h[f"val_{name}"], "s-",
                    label=f"val {name}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return _save(fig, plt, path)


def plot_lr(history, path):
    """The learning rate at every optimizer step (or per epoch when steps were not recorded)."""
    plt = _pyplot()
    if plt is None:
        return None
    steps = getattr(history, "lr_steps", None)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    if steps:
        ax.plot(numpy.arange(1, len(steps) + 1), steps)
        ax.set_xlabel("step")
    else:
        lr = _history_dict(history).get("lr", [])
        ax.plot(numpy.arange(1, len(lr) + 1), lr, "o-")
        ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.grid(alpha=0.3)
    return _save(fig, plt, path)


def plot_confusion_matrix(cm, path, classes=None, normalize=False, title="confusion matrix"):
    plt = _pyplot()
    if plt is None:
        return None
    cm = numpy.asarray(cm)
    k = cm.shape[0]
    shown = cm / numpy.maximum(cm.sum(1, keepdims=True), 1) if normalize else cm
    fig, ax = plt.subplots(figsize=(1.0 + 0.45 * k, 0.8 + 0.45 * k))
    im = ax.imshow(shown, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046)
    labels = classes if classes is not None else [str(i) for i in range(k)]
    ax.set_xticks(range(k), labels, rotation=45, ha="right")
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 20:
        top = shown.max() if shown.size else 0
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{shown[i, j]:.2f}" if normalize else str(int(cm[i, j])),
                        ha="center", va="center", fontsize=7,
                        color="white" if shown[i, j] > top / 2 else "black")
    ax.set_title(title)
    return _save(fig, plt, path)


def _as_images(images):
    a = images.array if isinstance(images, Tensor) else images
    a = devices.to_numpy(a).astype(numpy.float32)
    if a.ndim != 4:
        raise ValueError(f"expected images (N, C, H, W), got shape {list(a.shape)}")
    a = a.transpose(0, 2, 3, 1)                                  # (N, C, H, W) -> (N, H, W, C)
    lo, hi = a.min(), a.max()
    if lo < 0 or hi > 1:                                         # normalized data: rescale
        a = (a - lo) / max(hi - lo, 1e-8)
    return a[..., 0] if a.shape[-1] == 1 else a


def plot_image_grid(images, path, labels=None, predictions=None, classes=None, ncols=8,
                    title=None):
    """A grid of images with their labels (and predictions: green when right, red when wrong)."""
    plt = _pyplot()
    if plt is None:
        return None
    a = _as_images(images)
    n = len(a)
    ncols = min(ncols, n) or 1
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.3 * ncols, 1.5 * nrows), squeeze=False)

    def name(i):
        return classes[i] if classes is not None else str(i)

    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= n:
            continue
        ax.imshow(a[k], cmap="gray" if a.ndim == 3 else None, vmin=0, vmax=1)
        if predictions is not None:
            p = int(predictions[k])
            ok = labels is None or int(labels[k]) == p
            text = name(p) if labels is None or ok else f"{name(p)} ({name(int(labels[k]))})"
            ax.set_title(text, fontsize=7, color="green" if ok else "red")
        elif labels is not None:
            ax.set_title(name(int(labels[k])), fontsize=7)
    if title:
        fig.suptitle(title)
    return _save(fig, plt, path)


def plot_augmentations(images, transform, path, n_versions=6, title="augmentation preview"):
    """Each row: an original image, then `n_versions` draws of `transform` applied to it."""
    plt = _pyplot()
    if plt is None:
        return None
    base = images.array if isinstance(images, Tensor) else numpy.asarray(images)
    rows = []
    for img in base:
        batch = numpy.repeat(img[None], n_versions, axis=0)
        out = transform(batch)
        out = out.array if isinstance(out, Tensor) else out
        rows.append(numpy.concatenate([img[None], devices.to_numpy(out)], axis=0))
    grid = numpy.concatenate(rows, axis=0)
    return plot_image_grid(grid, path, ncols=n_versions + 1, title=title)
