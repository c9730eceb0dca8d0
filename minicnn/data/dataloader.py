"""DataLoader: batches from a Dataset, PyTorch's torch.utils.data.DataLoader.

    loader = mc.data.DataLoader(dataset, batch_size=64, shuffle=True, drop_last=False,
                                num_workers=2, collate_fn=None, sampler=None, generator=None)
    for x, y in loader: ...

PyTorch's arguments and semantics: `sampler` / `batch_sampler` (see sampler.py) or `shuffle`;
`batch_size=None` gives single samples; `num_workers > 0` reads batches in workers (threads by
default, processes with `multiprocessing_context`: see worker.py), `prefetch_factor` batches
ahead per worker, kept across epochs with `persistent_workers`, each started with
`worker_init_fn(worker_id)`; `timeout` seconds at most per batch; `in_order=False` yields
batches as they come. `pin_memory` is accepted and has no effect (pinned memory matters only
for copies to a GPU, which `device=` makes). minicnn's own: `prefetch=n` (one worker thread, n
batches ahead) and `device='cuda'` (each batch moved there, in the worker thread when there is
one).

- Shuffling draws a permutation from `generator` (an int seed, a numpy or minicnn Generator) or,
  by default, from the framework's CPU generator (`mc.manual_seed` makes it repeatable).
- Each epoch draws one seed from the same generator, and batch k is read under a generator made
  from that seed and k (minicnn.data._random). Random transforms draw from it, so the batches are
  the same for any num_workers, with or without prefetch, and independent of thread timing.
- Datasets with `get_batch(indices)` (every array dataset here) give a batch in one call;
  others are read item by item and stacked by `collate_fn` (default: `default_collate`).
"""
import multiprocessing
import numbers

import numpy

from .. import devices
from ..tensor import Tensor
from . import _random
from .sampler import BatchSampler, RandomSampler, SequentialSampler, persistent_generator
from .worker import WorkerPool


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


class _Fetcher:
    """Reads one batch (a list of indices) or one sample: what a worker runs, so it pickles."""

    def __init__(self, dataset, collate_fn, auto_collation, device=None):
        self.dataset, self.collate_fn = dataset, collate_fn
        self.auto_collation, self.device = auto_collation, device

    def __call__(self, indices):
        ds = self.dataset
        if not self.auto_collation:
            batch = (self.collate_fn or default_convert)(ds[indices])
        elif self.collate_fn is None and hasattr(ds, "get_batch"):
            batch = default_convert(ds.get_batch(numpy.asarray(indices, dtype=numpy.int64)))
        else:
            batch = (self.collate_fn or default_collate)([ds[int(i)] for i in indices])
        if self.device is not None:
            batch = _to_device(batch, self.device)
        return batch


def _non_negative(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"DataLoader: {name} option should be a non-negative integer, got "
                         f"{name}={value!r}")
    return int(value)


def _context(value):
    """None, a start method name or a multiprocessing context -> a context or None (threads)."""
    if value is None:
        return None
    if isinstance(value, str):
        methods = multiprocessing.get_all_start_methods()
        if value not in methods:
            raise ValueError(f"DataLoader: multiprocessing_context {value!r} is not a start "
                             f"method of this platform ({', '.join(methods)})")
        return multiprocessing.get_context(value)
    if not hasattr(value, "Process") or not hasattr(value, "Queue"):
        raise TypeError(f"DataLoader: multiprocessing_context should be a start method name or "
                        f"a multiprocessing context, got {type(value).__name__}")
    return value


class DataLoader:
    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None,
                 num_workers=0, collate_fn=None, pin_memory=False, drop_last=False, timeout=0,
                 worker_init_fn=None, multiprocessing_context=None, generator=None, *,
                 prefetch_factor=None, persistent_workers=False, pin_memory_device="",
                 in_order=True, prefetch=False, device=None):
        self.num_workers = _non_negative(num_workers, "num_workers")
        if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) or timeout < 0:
            raise ValueError(f"DataLoader: timeout option should be non-negative, got "
                             f"timeout={timeout!r}")
        if prefetch_factor is not None:
            if self.num_workers == 0:
                raise ValueError("DataLoader: prefetch_factor option could only be specified "
                                 "with num_workers > 0 (workers), otherwise set "
                                 "prefetch_factor to None")
            if isinstance(prefetch_factor, bool) or not isinstance(
                    prefetch_factor, numbers.Integral) or prefetch_factor < 1:
                raise ValueError(f"DataLoader: prefetch_factor should be a positive integer, "
                                 f"got {prefetch_factor!r}")
        if persistent_workers and self.num_workers == 0:
            raise ValueError("DataLoader: persistent_workers option needs num_workers > 0")
        if self.num_workers and prefetch:
            raise ValueError("DataLoader: prefetch is one worker thread; pass either prefetch "
                             "or num_workers")
        if shuffle not in (None, True, False):
            raise TypeError(f"DataLoader: shuffle should be True, False or None, got "
                            f"{shuffle!r}")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("DataLoader: batch_sampler option is mutually exclusive with "
                                 "batch_size, shuffle, sampler, and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None:
            if drop_last:
                raise ValueError("DataLoader: batch_size=None option disables auto-batching "
                                 "and is mutually exclusive with drop_last")
        elif isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or \
                batch_size < 1:
            raise ValueError(f"DataLoader: batch_size should be a positive integer value or "
                             f"None, got batch_size={batch_size!r}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        if not isinstance(drop_last, bool):
            raise ValueError(f"DataLoader: drop_last should be a boolean value, got "
                             f"drop_last={drop_last!r}")

        self.dataset = dataset
        self.batch_size = None if batch_size is None else int(batch_size)
        self.drop_last = drop_last
        self.generator = generator
        self._generator = persistent_generator(generator)
        if sampler is None:
            sampler = RandomSampler(dataset, generator=self._generator) if shuffle else \
                SequentialSampler(dataset)
        if batch_sampler is None and self.batch_size is not None:
            batch_sampler = BatchSampler(sampler, self.batch_size, drop_last)
        self.sampler, self.batch_sampler = sampler, batch_sampler
        self.shuffle = bool(shuffle)
        self.collate_fn = collate_fn
        self.pin_memory, self.pin_memory_device = bool(pin_memory), pin_memory_device
        self.timeout, self.worker_init_fn = timeout, worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self._context = _context(multiprocessing_context)
        self.persistent_workers, self.in_order = bool(persistent_workers), bool(in_order)
        self.prefetch = int(prefetch)        # False/0: no thread; True/1: one batch ahead; n
        self.prefetch_factor = prefetch_factor if prefetch_factor is not None else \
            (2 if self.num_workers else None)
        self.device = None if device is None else devices.normalize_device(device)
        self._pool = None

    def __len__(self):
        return len(self.batch_sampler if self.batch_sampler is not None else self.sampler)

    def _index_lists(self):
        if self.batch_sampler is None:
            return iter(self.sampler)                       # single samples
        return (list(b) for b in self.batch_sampler)

    def _fetcher(self, moves_to_device):
        # the main thread and worker threads move batches to the device; processes leave it to
        # the main process (a forked child must not touch CUDA)
        device = self.device if moves_to_device else None
        return _Fetcher(self.dataset, self.collate_fn, self.batch_sampler is not None, device)

    def _workers(self):
        """(number of workers, batches ahead per worker, context or None for threads)."""
        if self.num_workers:
            return self.num_workers, self.prefetch_factor, self._context
        return (1, self.prefetch, None) if self.prefetch else (0, 0, None)

    def __iter__(self):
        seed = _random.draw_seed(self._generator)          # before the sampler, as PyTorch
        index_lists = self._index_lists()
        workers, ahead, context = self._workers()
        if not workers:
            fetch = self._fetcher(moves_to_device=True)
            for index, indices in enumerate(index_lists):
                with _random.using(_random.batch_generator(seed, index)):
                    batch = fetch(indices)
                yield batch
            return
        pool = self._pool
        if pool is None:
            pool = WorkerPool(self._fetcher(moves_to_device=context is None), self.dataset,
                              workers, seed, self.worker_init_fn, context, self.timeout)
            if self.persistent_workers:
                self._pool = pool
        try:
            for batch in pool.batches(index_lists, seed, ahead, self.in_order):
                if context is not None and self.device is not None:
                    batch = _to_device(batch, self.device)
                yield batch
        finally:
            if pool is not self._pool:
                pool.shutdown()

    def __del__(self):
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown()

    def __repr__(self):
        return (f"DataLoader(n={len(self.dataset)}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, "
                f"num_workers={self.num_workers}, prefetch={self.prefetch})")
