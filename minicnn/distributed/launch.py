"""Starting ranks: `minicnn train --nproc N` runs itself again under the installed MPI's mpiexec.

Each rank gets an equal share of the CPU cores for its Numba and BLAS threads (NUMBA_NUM_THREADS
and --threads): two ranks of two threads on two cores run 2-4x slower than two of one. A user's
own `mpiexec -n N minicnn train ...` is recognised by the variables mpiexec sets (MPICH's PMI_*,
Open MPI's OMPI_COMM_WORLD_*), and the threads are shared the same way.
"""
import os
import shutil
import subprocess
import sys

from ._mpi import INSTALL_HINT

_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS")
_LOCAL_SIZE_VARS = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE")


def find_mpiexec():
    """The mpiexec of the MPI that mpi4py uses: the one beside this Python (the mpich wheel
    installs it there), else the first on PATH; None when there is none."""
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if os.access(beside, os.X_OK):
        return beside
    return shutil.which("mpiexec") or shutil.which("mpirun")


def world_size_from_env():
    """The number of ranks mpiexec started this process among (1 when not under mpiexec)."""
    for var in _SIZE_VARS:
        value = os.environ.get(var)
        if value and value.isdigit():
            return int(value)
    return 1


def local_size_from_env():
    """Ranks on this machine as mpiexec says (world_size_from_env when it does not say)."""
    for var in _LOCAL_SIZE_VARS:
        value = os.environ.get(var)
        if value and value.isdigit():
            return int(value)
    return world_size_from_env()


def thread_share(ranks_here, cpus=None):
    """CPU threads per rank when ranks_here ranks share this machine's cores."""
    return max(1, (cpus or os.cpu_count() or 1) // max(1, ranks_here))


def relaunch(argv, nproc, module="minicnn"):
    """Run `python -m module argv` as nproc ranks under mpiexec; returns its exit status."""
    mpiexec = find_mpiexec()
    if mpiexec is None:
        raise RuntimeError(f"--nproc {nproc}: no mpiexec found; install an MPI with "
                           f"{INSTALL_HINT}, or start the ranks yourself with your MPI's "
                           f"mpiexec -n {nproc}")
    share = str(thread_share(nproc))
    env = dict(os.environ, NUMBA_NUM_THREADS=share, OMP_NUM_THREADS=share,
               OPENBLAS_NUM_THREADS=share, MKL_NUM_THREADS=share)
    cmd = [mpiexec, "-n", str(nproc), sys.executable, "-m", module, *argv]
    return subprocess.call(cmd, env=env)
