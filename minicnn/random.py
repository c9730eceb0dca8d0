"""The framework's seeded random number generators (one per device), reset by mc.manual_seed.

Everything random in minicnn (randn, init, dropout, shuffling, augmentation) draws from here, so
one call to `mc.manual_seed(s)` makes a run repeatable.

Each thread draws from its own default generator, so two threads training two models do not
interleave their draws (each run equals the run it would be alone). The main thread's is
`default_generator`. Another thread's is made on its first draw from the main thread's last
seed and the number of threads that made one before it (NumPy's SeedSequence spawn keys):
distinct streams, the same on every run where the threads first draw in the same order.
`mc.manual_seed(s)`, get_rng_state and set_rng_state act on the calling thread's generator.
"""
import itertools
import threading

import numpy

from . import devices


class Generator:
    """A NumPy Generator for the CPU and, made on first use, a CuPy one for CUDA.

    CUDA kernels that draw their own numbers (dropout) use a counter-based Philox stream instead:
    the key is the seed, and `philox_offset` (reset by manual_seed, advanced once per call by
    `next_philox`, kept by get/set_state) selects a fresh stream for each call."""

    def __init__(self, seed=0):
        self.manual_seed(seed)

    def manual_seed(self, seed):
        self.seed = int(seed)
        self.cpu = numpy.random.Generator(numpy.random.PCG64(self.seed))
        self._cuda = None
        self.philox_offset = 0
        return self

    def next_philox(self):
        """(seed, offset) for one Philox-drawing kernel call; advances the offset."""
        offset = self.philox_offset
        self.philox_offset += 1
        return self.seed, offset

    def for_device(self, device):
        if devices.normalize_device(device) == "cpu":
            return self.cpu
        if self._cuda is None:
            cupy = devices.cupy()
            self._cuda = cupy.random.Generator(cupy.random.XORWOW(self.seed))
        return self._cuda

    def get_state(self):
        return {"seed": self.seed, "cpu": self.cpu.bit_generator.state,
                "philox_offset": self.philox_offset}

    def set_state(self, state):
        self.manual_seed(state["seed"])
        self.cpu.bit_generator.state = state["cpu"]
        self.philox_offset = int(state.get("philox_offset", 0))


default_generator = Generator(0)   # the main thread's


class _ThreadDefault(threading.local):
    generator = None


_this_thread = _ThreadDefault()
_this_thread.generator = default_generator   # (set on the importing thread: the main one)
_threads_seeded = itertools.count(1)         # spawn keys of the other threads' generators


def _default():
    """The calling thread's default generator (see the module docstring)."""
    g = _this_thread.generator
    if g is None:
        seq = numpy.random.SeedSequence(default_generator.seed,
                                        spawn_key=(next(_threads_seeded),))
        g = _this_thread.generator = Generator(int(seq.generate_state(1, numpy.uint64)[0] >> 1))
    return g


def manual_seed(seed):
    """Seed the calling thread's generators (every device); returns its default generator."""
    return _default().manual_seed(seed)


def seed_from_entropy():
    return _default().manual_seed(numpy.random.SeedSequence().entropy % (2 ** 63))


def get_rng_state():
    return _default().get_state()


def set_rng_state(state):
    _default().set_state(state)


def rng(device="cpu", generator=None):
    return (generator or _default()).for_device(device)


def philox(generator=None):
    """(seed, offset) for one call of a CUDA kernel drawing Philox numbers (see Generator)."""
    return (generator or _default()).next_philox()
