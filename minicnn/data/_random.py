"""Which NumPy generator data code draws from.

Transforms and datasets call `generator()`. By default that is the framework's CPU generator
(`minicnn.random.rng('cpu')`, reset by `mc.manual_seed`). A DataLoader draws one seed per epoch
(from its `generator`, else the framework's) and reads batch k under `batch_generator(seed, k)`,
wherever batch k is read (the main thread, a worker thread or a worker process): augmentation
draws never interleave with the model's (dropout, init), and a run gives the same batches for
any num_workers and with or without prefetching.
"""
import contextlib
import threading

import numpy

from .. import random as _mc_random

_local = threading.local()


def generator():
    """The NumPy Generator the current thread's data code should draw from."""
    g = getattr(_local, "generator", None)
    return g if g is not None else _mc_random.rng("cpu")


@contextlib.contextmanager
def using(gen):
    """Make `gen` (a numpy.random.Generator) the current thread's data generator."""
    previous = getattr(_local, "generator", None)
    _local.generator = gen
    try:
        yield gen
    finally:
        _local.generator = previous


def spawn():
    """A new NumPy Generator seeded by one draw from the current generator."""
    return numpy.random.Generator(numpy.random.PCG64(draw_seed()))


def draw_seed(gen=None):
    """One seed (an int in [0, 2**63 - 1)) drawn from `gen` (see resolve)."""
    return int(resolve(gen).integers(0, 2 ** 63 - 1))


def batch_generator(seed, index):
    """The generator a DataLoader reads batch `index` of the epoch with seed `seed` under: a
    function of the two numbers only, so any thread or process reading the batch gets it."""
    return numpy.random.Generator(numpy.random.PCG64(numpy.random.SeedSequence([seed, index])))


def resolve(gen):
    """A numpy Generator from None / a minicnn.random.Generator / a numpy Generator / an int."""
    if gen is None:
        return generator()
    if isinstance(gen, numpy.random.Generator):
        return gen
    if isinstance(gen, _mc_random.Generator):
        return gen.cpu
    if isinstance(gen, (int, numpy.integer)):
        return numpy.random.Generator(numpy.random.PCG64(int(gen)))
    raise TypeError(f"generator must be None, an int, a numpy.random.Generator or a "
                    f"minicnn.random.Generator, got {type(gen).__name__}")
