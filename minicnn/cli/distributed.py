"""`minicnn train --nproc N` and `mpiexec -n N minicnn train ...`: data-parallel training runs.

--nproc N outside mpiexec runs the same command again as N ranks under the installed MPI's
mpiexec, each with an equal share of the cores (mc.distributed.launch). Under mpiexec (ours or
the user's) each rank joins the world, takes its share of the cores when --threads is auto,
trains on its part of every batch (--batch-size stays the global batch) and only rank 0 prints
and writes the run folder. An error on one rank after the world is joined aborts every rank.
"""
import contextlib
import sys

from .. import distributed as dist
from ..distributed import launch
from .common import CLIError


def relaunch_if_asked(args):
    """The exit status of the ranks when --nproc asks for more processes than this one;
    None when this process should train (one process, or a rank under mpiexec)."""
    n = getattr(args, "nproc", None)
    if n is None:
        return None
    if n < 1:
        raise CLIError(f"--nproc must be a positive number of processes, got {n}")
    started = launch.world_size_from_env()
    if started > 1:
        if started != n:
            raise CLIError(f"--nproc {n}, but mpiexec started {started} processes")
        return None
    if n == 1:
        return None
    if getattr(args, "argv", None) is None:
        raise CLIError("--nproc: the command line to run again is unknown; start the ranks "
                       f"with mpiexec -n {n} minicnn train ...")
    try:        # the same command, --nproc included: each rank checks it against mpiexec's
        return launch.relaunch(args.argv, n)
    except RuntimeError as e:
        raise CLIError(str(e)) from None


@contextlib.contextmanager
def world(args):
    """Join mpiexec's world when this process is one of several ranks; yields the world size."""
    if launch.world_size_from_env() == 1:
        yield 1
        return
    try:
        dist.init_process_group()
    except RuntimeError as e:
        raise CLIError(str(e)) from None
    if args.threads == "auto":
        args.threads = str(launch.thread_share(launch.local_size_from_env()))
    if dist.get_rank() != 0:
        args.quiet = True
    try:
        yield dist.get_world_size()
    except BaseException as e:  # noqa: BLE001 -- every rank must end, not wait for this one
        if isinstance(e, SystemExit) and not e.code:
            raise
        print(f"minicnn {args.command}: rank {dist.get_rank()} of {dist.get_world_size()}: "
              f"error: {type(e).__name__}: {e}; aborting every rank", file=sys.stderr,
              flush=True)
        dist.abort(2 if isinstance(e, CLIError) else 1)     # 2: the user's error, as the CLI
    dist.destroy_process_group()


def per_rank_batch(batch_size, world_size):
    """--batch-size is the global batch: each rank's share (it must divide)."""
    if batch_size % world_size:
        raise CLIError(f"--batch-size {batch_size} is the global batch and must divide among "
                       f"the {world_size} processes")
    return batch_size // world_size
