"""Classification metrics: streaming (update per batch, result at the end) and one-shot functions.

    acc = Accuracy(); acc.update(logits, targets); acc.result()
    confusion_matrix(y_true, y_pred, num_classes); precision_recall_f1(cm)

Metric names accepted by Trainer(metrics=[...]): 'accuracy' (or 'acc'), 'top5' / 'top_k' /
'top3_accuracy' (top-k accuracy), 'precision', 'recall', 'f1' (macro averages), or Metric objects.
"""
import re

import numpy

from .. import devices
from ..tensor import Tensor


def _np(a):
    if isinstance(a, Tensor):
        a = a.array
    return devices.to_numpy(a)


def _labels(targets):
    """Integer labels from integer targets or from soft/one-hot targets (N, K)."""
    t = _np(targets)
    return t.argmax(-1) if t.ndim == 2 and t.dtype.kind == "f" else t.astype(numpy.int64)


def _device_pair(outputs, targets):
    """(outputs, labels) as raw arrays on the outputs' device, or None when either is not a CUDA
    array on the same device as the other (then the NumPy path runs). Keeps GPU metrics on the
    GPU: no transfer or synchronization until result() is read."""
    out = outputs.array if isinstance(outputs, Tensor) else outputs
    t = targets.array if isinstance(targets, Tensor) else targets
    if not (devices.is_cuda_array(out) and devices.is_cuda_array(t)):
        return None
    labels = t.argmax(-1) if t.ndim == 2 and t.dtype.kind == "f" else t.astype(numpy.int64)
    return out, labels


def _cat(arrays):
    """Concatenate 1-D label arrays into one NumPy array (one transfer when all are on the GPU)."""
    if not arrays:
        return numpy.zeros(0, numpy.int64)
    if all(devices.is_cuda_array(a) for a in arrays):
        return devices.to_numpy(devices.get_array_module(arrays[0]).concatenate(arrays))
    return numpy.concatenate([_np(a) for a in arrays])


def _host_int(count):
    """A count kept as a Python int (CPU) or a 0-d device array (GPU) -> int (a sync on GPU)."""
    return int(count)


class Metric:
    name = "metric"

    def reset(self):
        raise NotImplementedError

    def update(self, outputs, targets):
        raise NotImplementedError

    def result(self):
        raise NotImplementedError


class Accuracy(Metric):
    name = "accuracy"

    def __init__(self):
        self.reset()

    def reset(self):
        self.correct, self.count = 0, 0

    def update(self, outputs, targets):
        dev = _device_pair(outputs, targets)
        if dev is not None:                       # on the device, read only by result()
            out, y = dev
            self.correct = (out.argmax(-1) == y).sum() + self.correct
            self.count += int(y.size)
            return
        pred = _np(outputs).argmax(-1)
        y = _labels(targets)
        self.correct += int((pred == y).sum())
        self.count += int(y.size)

    def result(self):
        return _host_int(self.correct) / self.count if self.count else float("nan")


class TopKAccuracy(Metric):
    def __init__(self, k=5):
        self.k = int(k)
        self.name = f"top{self.k}_accuracy"
        self.reset()

    def reset(self):
        self.correct, self.count = 0, 0

    def update(self, outputs, targets):
        dev = _device_pair(outputs, targets)
        if dev is not None:                       # on the device, read only by result()
            out, y = dev
            # a row's label is in its top k iff fewer than k scores beat the label's score
            # (argpartition-free; ties count for the label, as argpartition may pick either)
            k = min(self.k, out.shape[-1])
            score = out[devices.get_array_module(out).arange(out.shape[0]), y]
            beaten_by = (out > score[:, None]).sum(-1)
            self.correct = (beaten_by < k).sum() + self.correct
            self.count += int(y.size)
            return
        out = _np(outputs)
        y = _labels(targets)
        k = min(self.k, out.shape[-1])
        top = numpy.argpartition(-out, k - 1, axis=-1)[..., :k]
        self.correct += int((top == y[..., None]).any(-1).sum())
        self.count += int(y.size)

    def result(self):
        return _host_int(self.correct) / self.count if self.count else float("nan")


def confusion_matrix(y_true, y_pred, num_classes=None):
    """counts[i, j] = number of samples of true class i predicted as class j (int64)."""
    t = _labels(y_true).ravel()
    p = _np(y_pred)
    p = (p.argmax(-1) if p.ndim == 2 else p).astype(numpy.int64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"confusion_matrix: {t.size} targets but {p.size} predictions")
    k = int(num_classes if num_classes is not None else max(t.max(initial=-1),
                                                             p.max(initial=-1)) + 1)
    if t.size and (t.min() < 0 or t.max() >= k or p.min() < 0 or p.max() >= k):
        raise ValueError(f"confusion_matrix: labels must be in [0, {k})")
    return numpy.bincount(t * k + p, minlength=k * k).reshape(k, k)


def precision_recall_f1(cm, average="macro"):
    """Per-class or macro-averaged precision, recall and F1 from a confusion matrix.

    average='macro' -> three floats; None -> three arrays (one value per class). Classes with no
    predictions (or no samples) count as 0 for precision (recall), as scikit-learn does."""
    cm = numpy.asarray(cm, dtype=numpy.float64)
    tp = numpy.diag(cm)
    predicted, actual = cm.sum(0), cm.sum(1)
    precision = numpy.divide(tp, predicted, out=numpy.zeros_like(tp), where=predicted > 0)
    recall = numpy.divide(tp, actual, out=numpy.zeros_like(tp), where=actual > 0)
    denom = precision + recall
    f1 = numpy.divide(2 * precision * recall, denom, out=numpy.zeros_like(tp), where=denom > 0)
    if average is None:
        return precision, recall, f1
    if average != "macro":
        raise ValueError(f"precision_recall_f1: average must be 'macro' or None, got {average!r}")
    return float(precision.mean()), float(recall.mean()), float(f1.mean())


class ConfusionMatrix(Metric):
    name = "confusion_matrix"

    def __init__(self, num_classes=None):
        self.num_classes = num_classes
        self.reset()

    def reset(self):
        self.true, self.pred = [], []

    def update(self, outputs, targets):
        dev = _device_pair(outputs, targets)
        if dev is not None:                       # labels stay on the device until result()
            out, y = dev
            self.true.append(y.ravel())
            self.pred.append(out.argmax(-1).ravel())
            return
        self.true.append(_labels(targets).ravel())
        self.pred.append(_np(outputs).argmax(-1).ravel())

    def result(self):
        return confusion_matrix(_cat(self.true), _cat(self.pred), self.num_classes)


class _FromConfusion(ConfusionMatrix):
    index = 0

    def result(self):
        cm = super().result()
        return precision_recall_f1(cm)[self.index]


class Precision(_FromConfusion):
    name, index = "precision", 0


class Recall(_FromConfusion):
    name, index = "recall", 1


class F1Score(_FromConfusion):
    name, index = "f1", 2


def get_metric(spec):
    """A Metric from a name ('accuracy', 'top5', 'top_k_accuracy', 'precision', 'recall', 'f1')
    or a Metric instance."""
    if isinstance(spec, Metric):
        return spec
    if isinstance(spec, type) and issubclass(spec, Metric):
        return spec()
    if not isinstance(spec, str):
        raise TypeError(f"a metric must be a name or a Metric, got {type(spec).__name__}")
    name = spec.lower()
    if name in ("accuracy", "acc"):
        return Accuracy()
    m = re.fullmatch(r"top_?(\d*)(_k)?(_accuracy)?", name)
    if m and name.startswith("top"):
        return TopKAccuracy(int(m.group(1) or 5))
    table = {"precision": Precision, "recall": Recall, "f1": F1Score, "f1_score": F1Score}
    if name in table:
        return table[name]()
    raise ValueError(f"unknown metric {spec!r}; known: accuracy, top5 (top<k>), precision, "
                     "recall, f1")
