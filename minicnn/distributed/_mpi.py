"""The MPI side of mc.distributed: mpi4py loaded on first use, and the collectives on host arrays.

Every rank is one process started by `mpiexec` (or a plain `python`, a world of one: MPI's
singleton start). MPI moves NumPy arrays in place through mpi4py's buffer interface, so nothing
is pickled on the hot path; a CuPy array goes through the host when no NCCL communicator is set
up (correct, not fast).
"""
import sys
import time

import numpy

INSTALL_HINT = 'pip install "minicnn[mpi]"'


def load_mpi():
    """mpi4py's MPI module, or a RuntimeError that says how to install it."""
    try:
        from mpi4py import MPI  # noqa: PLC0415 -- an optional dependency, loaded on use
    except ImportError as exc:
        raise RuntimeError(
            f"mc.distributed needs mpi4py and an MPI library ({exc}); install them with "
            f"{INSTALL_HINT} (mpi4py and the mpich wheel, which brings mpiexec)") from exc
    except RuntimeError as exc:   # mpi4py found, but no libmpi it can load
        raise RuntimeError(
            f"mc.distributed: mpi4py could not load an MPI library ({exc}); install one with "
            f"{INSTALL_HINT}") from exc
    return MPI


_OPS = {"sum": "SUM", "product": "PROD", "min": "MIN", "max": "MAX", "band": "BAND",
        "bor": "BOR", "bxor": "BXOR"}


class MPIWork:
    """A non-blocking MPI collective in flight: wait() blocks until it is done; is_completed()
    also drives MPI's progress (MPICH moves a non-blocking collective on only inside MPI calls,
    so polling one while the backward runs is what lets it proceed behind it)."""

    def __init__(self, request, array, after=None):
        self.request, self.array, self.after = request, array, after
        self.done = False

    def is_completed(self):
        if not self.done and self.request.Test():
            self._finish()
        return self.done

    def wait(self):
        if not self.done:
            self.request.Wait()
            self._finish()
        return True

    def _finish(self):
        self.done = True
        if self.after is not None:
            self.after()


class DoneWork:
    """A collective that finished when it was called (async_op=True on a blocking path)."""

    def is_completed(self):
        return True

    def wait(self):
        return True


class MPIBackend:
    """Collectives on NumPy arrays over an MPI communicator (COMM_WORLD by default)."""
    name = "mpi"

    def __init__(self, MPI, comm):
        self.MPI, self.comm = MPI, comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()

    def _op(self, op):
        return getattr(self.MPI, _OPS[op])

    def allreduce(self, array, op="sum", async_op=False):
        """Reduce `array` over the ranks, in place (a contiguous NumPy array)."""
        buf = _contiguous(array)
        after = None if buf is array else (lambda: array.__setitem__(Ellipsis, buf))
        if async_op:
            request = self.comm.Iallreduce(self.MPI.IN_PLACE, buf, op=self._op(op))
            return MPIWork(request, buf, after)
        self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self._op(op))
        if after is not None:
            after()
        return DoneWork()

    def broadcast(self, array, src):
        buf = _contiguous(array)
        self.comm.Bcast(buf, root=src)
        if buf is not array:
            array[...] = buf

    def allgather(self, array):
        """(world, *array.shape): every rank's array, in rank order."""
        buf = numpy.ascontiguousarray(array)
        out = numpy.empty((self.size,) + buf.shape, buf.dtype)
        self.comm.Allgather(buf, out)
        return out

    def barrier(self):
        self.comm.Barrier()

    def abort(self, code=1):
        self.comm.Abort(code)


def _contiguous(array):
    if not isinstance(array, numpy.ndarray):
        raise TypeError(f"mc.distributed: the MPI backend moves NumPy arrays, got "
                        f"{type(array).__name__}")
    return array if array.flags.c_contiguous else numpy.ascontiguousarray(array)


def install_abort_on_error(backend):
    """An exception that nobody catches on one rank aborts every rank (MPI_Abort), instead of
    leaving the others blocked in their next collective forever (mpi4py's `-m mpi4py` runner
    does the same). Returns the function that puts the previous hook back."""
    previous = sys.excepthook

    def hook(kind, value, tb):
        previous(kind, value, tb)
        try:
            sys.stderr.write(f"mc.distributed: rank {backend.rank} of {backend.size} raised "
                             f"{kind.__name__}; aborting every rank\n")
            sys.stderr.flush()
            sys.stdout.flush()
            # mpiexec's proxy forwards a rank's output as it reads it, and MPI_Abort tears the
            # proxies down: without a moment's grace the last lines were lost 1 time in 3
            time.sleep(0.2)
        finally:
            backend.abort(1)

    sys.excepthook = hook

    def restore():
        if sys.excepthook is hook:
            sys.excepthook = previous
    return restore
