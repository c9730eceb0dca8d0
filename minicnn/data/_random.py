"""Which NumPy generator data code draws from.

Transforms and datasets call `generator()`. By default that is the framework's CPU generator
(`minicnn.random.rng('cpu')`, reset by `mc.manual_seed`). A DataLoader iterating with a background
thread gives that thread its own generator, seeded from the framework's generator on the main
thread when the epoch starts, so augmentation draws never interleave with the model's (dropout,
init) and a run is repeatable with or without prefetching.
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
    seed = int(generator().integers(0, 2 ** 63 - 1))
    return numpy.random.Generator(numpy.random.PCG64(seed))


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
