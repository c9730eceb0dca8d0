"""Samplers: the order in which a DataLoader reads a dataset (PyTorch's torch.utils.data.sampler).

    SequentialSampler(ds)                     0, 1, ..., len(ds) - 1
    RandomSampler(ds, replacement=False, num_samples=None, generator=None)
    SubsetRandomSampler(indices, generator=None)
    WeightedRandomSampler(weights, num_samples, replacement=True, generator=None)
    BatchSampler(sampler, batch_size, drop_last)   lists of indices
    DistributedSampler(ds, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False)
                                              this rank's share of the dataset

A sampler is any iterable of indices with a length; BatchSampler takes any iterable. Random
samplers draw from `generator` (an int seed, a numpy or minicnn Generator) or, by default, from
the data generator of minicnn.data._random (the framework's CPU generator, so `mc.manual_seed`
makes them repeatable). An int seed is made into one generator when the sampler is made, so
every epoch draws a new order and the run as a whole is repeatable.
"""
import numbers

import numpy

from . import _random


class Sampler:
    """Base class: subclasses define `__iter__` (indices) and usually `__len__`."""

    def __init__(self, data_source=None):
        pass

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} does not define __iter__")


def persistent_generator(generator):
    """What a sampler or loader keeps of its `generator` argument: an int seed becomes one numpy
    Generator now (so each epoch draws anew); other generators are kept and resolved at each use
    (a minicnn Generator's manual_seed replaces its stream)."""
    if isinstance(generator, (int, numpy.integer)) and not isinstance(generator, bool):
        return _random.resolve(generator)
    _random.resolve(generator)      # checks the type now
    return generator


def _positive_int(value, name, owner):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{owner}: {name} should be a positive integer value, but got "
                         f"{name}={value!r}")
    return int(value)


class SequentialSampler(Sampler):
    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


class RandomSampler(Sampler):
    """A random permutation of the dataset (repeated when num_samples exceeds its length), or
    num_samples indices drawn with replacement."""

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        if not isinstance(replacement, bool):
            raise TypeError(f"RandomSampler: replacement should be a boolean value, but got "
                            f"replacement={replacement!r}")
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = None if num_samples is None else \
            _positive_int(num_samples, "num_samples", "RandomSampler")
        self.generator = persistent_generator(generator)

    @property
    def num_samples(self):
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self):
        n, rng = len(self.data_source), _random.resolve(self.generator)
        if n == 0:
            return iter(())
        if self.replacement:
            return iter(rng.integers(0, n, self.num_samples).tolist())
        full, rest = divmod(self.num_samples, n)
        parts = [rng.permutation(n) for _ in range(full)]
        if rest:
            parts.append(rng.permutation(n)[:rest])
        return iter(numpy.concatenate(parts).tolist())

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices, in a random order each epoch."""

    def __init__(self, indices, generator=None):
        self.indices = indices
        self.generator = persistent_generator(generator)

    def __iter__(self):
        order = _random.resolve(self.generator).permutation(len(self.indices))
        return (self.indices[i] for i in order.tolist())

    def __len__(self):
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """num_samples indices in range(len(weights)), index i with probability proportional to
    weights[i] (with or without replacement)."""

    def __init__(self, weights, num_samples, replacement=True, generator=None):
        if not isinstance(replacement, bool):
            raise ValueError(f"WeightedRandomSampler: replacement should be a boolean value, "
                             f"but got replacement={replacement!r}")
        w = numpy.asarray(getattr(weights, "array", weights), dtype=numpy.float64)
        if w.ndim != 1:
            raise ValueError(f"WeightedRandomSampler: weights should be a 1-d sequence, but "
                             f"got shape {list(w.shape)}")
        if not numpy.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ValueError("WeightedRandomSampler: weights must be finite, non-negative and "
                             "not all zero")
        self.weights = w
        self.num_samples = _positive_int(num_samples, "num_samples", "WeightedRandomSampler")
        if not replacement and self.num_samples > numpy.count_nonzero(w):
            raise ValueError(f"WeightedRandomSampler: cannot draw {self.num_samples} samples "
                             f"without replacement from {numpy.count_nonzero(w)} non-zero weights")
        self.replacement = replacement
        self.generator = persistent_generator(generator)

    def __iter__(self):
        rng = _random.resolve(self.generator)
        p = self.weights / self.weights.sum()
        return iter(rng.choice(len(p), self.num_samples, replace=self.replacement, p=p).tolist())

    def __len__(self):
        return self.num_samples


class BatchSampler(Sampler):
    """Groups the indices of `sampler` into lists of batch_size (the last one shorter unless
    drop_last)."""

    def __init__(self, sampler, batch_size, drop_last):
        self.batch_size = _positive_int(batch_size, "batch_size", "BatchSampler")
        if not isinstance(drop_last, bool):
            raise ValueError(f"BatchSampler: drop_last should be a boolean value, but got "
                             f"drop_last={drop_last!r}")
        self.sampler = sampler
        self.drop_last = drop_last

    def __iter__(self):
        batch = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self):
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


class DistributedSampler(Sampler):
    """This rank's share of the dataset, for data-parallel training (PyTorch's sampler).

    Every rank draws the same permutation (from seed + epoch: call set_epoch(epoch) before each
    epoch for a new one) and takes every num_replicas-th index from position rank on. When the
    dataset does not divide evenly, drop_last=False pads the order with its own first indices so
    that every rank gets ceil(len / num_replicas) samples, and drop_last=True drops the tail so
    that every rank gets floor(len / num_replicas). num_replicas and rank default to
    mc.distributed's world size and rank.
    """

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0,
                 drop_last=False):
        if num_replicas is None or rank is None:
            from .. import distributed  # noqa: PLC0415 -- only when the world is asked for
            num_replicas = distributed.get_world_size() if num_replicas is None else num_replicas
            rank = distributed.get_rank() if rank is None else rank
        num_replicas = _positive_int(num_replicas, "num_replicas", "DistributedSampler")
        if isinstance(rank, bool) or not isinstance(rank, numbers.Integral) or \
                not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: invalid rank {rank!r}, rank should be in the "
                             f"interval [0, {num_replicas - 1}]")
        self.dataset, self.num_replicas, self.rank = dataset, num_replicas, int(rank)
        self.shuffle, self.seed, self.drop_last = bool(shuffle), int(seed), bool(drop_last)
        self.epoch = 0
        n = len(dataset)
        if drop_last and n % num_replicas:     # ceil((n - R) / R), as PyTorch
            self.num_samples = max(0, -(-(n - num_replicas) // num_replicas))
        else:
            self.num_samples = -(-n // num_replicas)
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch):
        """The epoch whose order the next iteration draws (the same on every rank)."""
        self.epoch = int(epoch)

    def __iter__(self):
        n = len(self.dataset)
        if self.shuffle:
            rng = numpy.random.Generator(numpy.random.PCG64(self.seed + self.epoch))
            order = rng.permutation(n)
        else:
            order = numpy.arange(n)
        if self.total_size > n:        # pad with the order's own head, repeated if need be
            order = numpy.resize(order, self.total_size)
        order = order[:self.total_size]
        return iter(order[self.rank:self.total_size:self.num_replicas].tolist())

    def __len__(self):
        return self.num_samples
