"""What Trainer does differently when several ranks train one model (mc.distributed).

Every rank runs the same fit() on its share of the data (a DistributedSampler's; Trainer calls
its set_epoch at each epoch). What each rank reports is made global here: a step's loss is the
mean over the ranks (so a NaN on one rank stops every rank at the same step), an epoch's loss and
metrics are over all the ranks' samples (count metrics and confusion matrices summed exactly,
any other metric averaged by sample count). Only rank 0 prints and runs the callbacks that write
files (those with `rank_zero_only = True`: CSVLogger, ModelCheckpoint, Profile), and a
checkpoint holds the wrapped module's weights, so it loads into the bare model (to resume, or in
`minicnn evaluate`). In a world of one all of this is the identity.
"""
import math

import numpy

from .. import distributed as dist
from ..data import DistributedSampler
from ..nn.parallel import DistributedDataParallel
from .metrics import ConfusionMatrix, precision_recall_f1


def world_size():
    return dist.get_world_size()


def is_main():
    return dist.get_rank() == 0


def main_only(callbacks):
    """The callbacks this rank runs: all on rank 0, none that write files on the others."""
    return [c for c in callbacks if is_main() or not getattr(c, "rank_zero_only", False)]


def unwrap(model):
    """The module a DistributedDataParallel wraps (model itself otherwise)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def set_epoch(loader, epoch):
    """Tell the loader's sampler (a DistributedSampler's kind) which epoch starts (0-based)."""
    sampler = getattr(loader, "sampler", None)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)


def sharded(loader):
    """Whether each rank reads its own part of loader's data (so results must be summed)."""
    return world_size() > 1 and isinstance(getattr(loader, "sampler", None), DistributedSampler)


def mean_over_ranks(values):
    """Each value averaged over the ranks (a list of floats)."""
    if world_size() == 1:
        return list(values)
    return [v / world_size() for v in dist.reduce_scalars(list(values))]


def global_mean(value, n):
    """The mean over every rank's samples of a per-sample mean `value` over this rank's n."""
    if world_size() == 1:
        return value
    total, count = dist.reduce_scalars([value * n, n])
    return total / count if count else float("nan")


def global_results(metrics, n):
    """{name: result} of each metric over every rank's samples (n: this rank's count)."""
    return {m.name: _global_result(m, n) for m in metrics}


def _global_result(metric, n):
    if world_size() == 1:
        return metric.result()
    if hasattr(metric, "correct") and hasattr(metric, "count"):
        correct = round(metric.result() * metric.count) if metric.count else 0
        correct, count = dist.reduce_scalars([correct, metric.count])
        return correct / count if count else float("nan")
    if isinstance(metric, ConfusionMatrix):
        cm = _global_confusion(metric)
        return cm if type(metric) is ConfusionMatrix else precision_recall_f1(cm)[metric.index]
    value = float(metric.result())
    return global_mean(value if math.isfinite(value) else 0.0, n)


def _global_confusion(metric):
    local = numpy.asarray(ConfusionMatrix.result(metric))
    size = int(dist.reduce_scalars([local.shape[0]], "max")[0])
    padded = numpy.zeros((size, size), numpy.float64)
    padded[:local.shape[0], :local.shape[1]] = local
    dist.allreduce_array(padded, "sum")
    return padded.astype(numpy.int64)
