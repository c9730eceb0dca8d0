"""DataLoader: batches from a Dataset, shuffled with the framework's seeded generator.

    loader = mc.data.DataLoader(dataset, batch_size=64, shuffle=True, drop_last=False,
                                collate_fn=None, prefetch=True)
    for x, y in loader: ...

- Shuffling draws a permutation from `generator` (an int, a numpy or minicnn Generator) or, by
  default, from the framework's CPU generator (`mc.manual_seed` makes it repeatable).
- Datasets with `get_batch(indices)` (every array dataset here) give a batch in one call;
  others are read item by item and stacked by `collate_fn` (default: `default_collate`).
- `prefetch=True` prepares the next batch in a background thread while the model works on the
  current one (NumPy releases the GIL in its copies and most of its math). Random transforms
  then draw from a per-epoch generator seeded from the framework's generator at the start of the
  epoch, so results do not depend on thread timing and are the same with or without prefetch.
- `device='cuda'` moves each batch to the device (in the prefetch thread when there is one).
"""
import numbers
import queue
import threading

import numpy

from .. import devices
from ..tensor import Tensor
from . import _random


def default_convert(data):
    """Arrays and numbers to Tensors, recursing into tuples, lists and dicts (no stacking)."""
    if isinstance(data, Tensor):
        return data
    if isinstance(data, numpy.ndarray) or devices.is_cuda_array(data):
        if data.dtype.kind in "iu" and data.dtype != numpy.int64:
            data = data.astype(numpy.int64)
        return Tensor(data)
    if isinstance(data, (bool, numpy.bool_)):
        return Tensor(numpy.asarray(data))
    if isinstance(data, numbers.Integral):
        return Tensor(numpy.asarray(data, dtype=numpy.int64))
    if isinstance(data, numbers.Real):
        return Tensor(numpy.asarray(data, dtype=numpy.float32))
    if isinstance(data, dict):
        return {k: default_convert(v) for k, v in data.items()}
    if isinstance(data, tuple):
        return tuple(default_convert(v) for v in data)
    if isinstance(data, list):
        return [default_convert(v) for v in data]
    return data


def default_collate(batch):
    """Stack a list of samples into a batch, PyTorch-style: tuples of arrays/numbers become
    tuples of stacked Tensors, dicts become dicts of stacked Tensors."""
    if not batch:
        raise ValueError("default_collate: empty batch")
    first = batch[0]
    if isinstance(first, Tensor):
        xp = devices.get_array_module(first.array)
        return Tensor(xp.stack([b.array for b in batch]))
    if isinstance(first, numpy.ndarray) or devices.is_cuda_array(first):
        shapes = {tuple(b.shape) for b in batch}
        if len(shapes) > 1:
            raise RuntimeError(f"default_collate: samples have different shapes {sorted(shapes)}; "
                               "pass a collate_fn that pads or groups them")
        return default_convert(devices.get_array_module(first).stack(batch))
    if isinstance(first, (numbers.Number, numpy.generic)):
        return default_convert(numpy.asarray(batch))
    if isinstance(first, dict):
        return {k: default_collate([b[k] for b in batch]) for k in first}
    if isinstance(first, (tuple, list)):
        if any(len(b) != len(first) for b in batch):
            raise RuntimeError("default_collate: each sample in the batch must have the same "
                               "number of fields")
        return type(first)(default_collate(list(col)) for col in zip(*batch)) \
            if isinstance(first, tuple) else [default_collate(list(c)) for c in zip(*batch)]
    if isinstance(first, str):
        return list(batch)
    raise TypeError(f"default_collate: cannot batch samples of type {type(first).__name__}")


def _to_device(data, device):
    if isinstance(data, Tensor):
        return data if data.device == device else Tensor(devices.to_device(data.array, device))
    if isinstance(data, tuple):
        return tuple(_to_device(d, device) for d in data)
    if isinstance(data, list):
        return [_to_device(d, device) for d in data]
    if isinstance(data, dict):
        return {k: _to_device(v, device) for k, v in data.items()}
    return data


class DataLoader:
    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, collate_fn=None,
                 generator=None, prefetch=False, device=None, sampler=None):
        if batch_size is None or int(batch_size) < 1:
            raise ValueError(f"DataLoader: batch_size should be a positive integer, got "
                             f"{batch_size!r}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.collate_fn = collate_fn
        self.generator = generator
        self.prefetch = int(prefetch)        # False/0: no thread; True/1: one batch ahead; n
        self.device = None if device is None else devices.normalize_device(device)
        self.sampler = sampler

    def __len__(self):
        n = len(self.sampler) if self.sampler is not None else len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _order(self):
        if self.sampler is not None:
            return numpy.asarray(list(iter(self.sampler)), dtype=numpy.int64)
        n = len(self.dataset)
        if self.shuffle:
            return _random.resolve(self.generator).permutation(n)
        return numpy.arange(n)

    def _batches(self, order):
        n = len(order)
        stop = n - n % self.batch_size if self.drop_last else n
        for start in range(0, stop, self.batch_size):
            yield order[start:start + self.batch_size]

    def _fetch(self, idx):
        ds = self.dataset
        if self.collate_fn is None and hasattr(ds, "get_batch"):
            batch = default_convert(ds.get_batch(idx))
        else:
            batch = (self.collate_fn or default_collate)([ds[int(i)] for i in idx])
        if self.device is not None:
            batch = _to_device(batch, self.device)
        return batch

    def __iter__(self):
        order = self._order()
        if not self.prefetch:
            # Transforms draw from the per-epoch generator here too, so a run gives the same
            # batches with or without prefetching.
            gen = _random.spawn()
            for idx in self._batches(order):
                with _random.using(gen):
                    batch = self._fetch(idx)
                yield batch
            return
        yield from _PrefetchIterator(self, order, _random.spawn())

    def __repr__(self):
        return (f"DataLoader(n={len(self.dataset)}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, prefetch={self.prefetch})")


_DONE = object()


class _PrefetchIterator:
    """Runs `loader._fetch` for the next batches in a daemon thread, `prefetch` batches ahead."""

    def __init__(self, loader, order, gen):
        self.queue = queue.Queue(maxsize=max(1, loader.prefetch))
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._work, args=(loader, order, gen),
                                       name="minicnn-prefetch", daemon=True)
        self.thread.start()

    def _put(self, item):
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _work(self, loader, order, gen):
        try:
            with _random.using(gen):
                for idx in loader._batches(order):
                    if self.stop.is_set() or not self._put(("ok", loader._fetch(idx))):
                        return
        except BaseException as e:  # noqa: BLE001 -- re-raised in the consumer
            self._put(("error", e))
            return
        self._put(("done", _DONE))

    def __iter__(self):
        try:
            while True:
                kind, item = self.queue.get()
                if kind == "done":
                    return
                if kind == "error":
                    raise item
                yield item
        finally:
            self.stop.set()
            self.thread.join(timeout=5)
