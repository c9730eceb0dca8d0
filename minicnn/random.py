"""The framework's seeded random number generators (one per device), reset by mc.manual_seed.

Everything random in minicnn (randn, init, dropout, shuffling, augmentation) draws from here, so
one call to `mc.manual_seed(s)` makes a run repeatable.
"""
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


default_generator = Generator(0)


def manual_seed(seed):
    """Seed every generator minicnn uses; returns the default generator."""
    return default_generator.manual_seed(seed)


def seed_from_entropy():
    return default_generator.manual_seed(numpy.random.SeedSequence().entropy % (2 ** 63))


def get_rng_state():
    return default_generator.get_state()


def set_rng_state(state):
    default_generator.set_state(state)


def rng(device="cpu", generator=None):
    return (generator or default_generator).for_device(device)


def philox(generator=None):
    """(seed, offset) for one call of a CUDA kernel drawing Philox numbers (see Generator)."""
    return (generator or default_generator).next_philox()
