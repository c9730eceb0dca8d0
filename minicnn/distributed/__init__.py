"""mc.distributed: processes that train one model together (torch.distributed's names).

    mpiexec -n 2 python train.py        # or: minicnn train --nproc 2

    import minicnn.distributed as dist
    dist.init_process_group()           # MPI's world; NCCL too on GPUs
    model = mc.nn.parallel.DistributedDataParallel(model)
    sampler = mc.data.DistributedSampler(dataset)

The world is MPI's (mpi4py): one process per rank, started by mpiexec. Host (NumPy) tensors are
reduced over MPI; device (CuPy) tensors over an NCCL communicator made by init_process_group on
a GPU machine (its unique id broadcast over MPI; rank r uses GPU r % GPUs per node), or through
the host when there is none.

Collectives work on Tensors in place, as PyTorch's: all_reduce, broadcast, all_gather, barrier;
async_op=True returns a Work with wait(). Without init_process_group the world is one process
and the collectives are identities, so code written for several ranks runs in one. Without
mpi4py or an MPI library, init_process_group raises a RuntimeError that names
`pip install "minicnn[mpi]"`.
"""
import numpy

from ..autograd import version as _version
from ..autograd.function import Function
from .. import devices
from ._mpi import INSTALL_HINT, DoneWork, MPIBackend, install_abort_on_error, load_mpi

__all__ = ["ReduceOp", "init_process_group", "destroy_process_group", "is_initialized",
           "is_available", "is_mpi_available", "is_nccl_available", "get_rank",
           "get_world_size", "get_local_rank", "get_backend", "barrier", "all_reduce",
           "broadcast", "all_gather", "INSTALL_HINT"]


class ReduceOp:
    """torch.distributed.ReduceOp's names (AVG: the sum divided by the world size)."""
    SUM, PRODUCT, MIN, MAX, AVG = "sum", "product", "min", "max", "avg"
    BAND, BOR, BXOR = "band", "bor", "bxor"


_VALID_OPS = ("sum", "product", "min", "max", "avg", "band", "bor", "bxor")


class _Group:
    """The world once init_process_group has run."""

    def __init__(self, mpi, nccl, local_rank, restore_excepthook):
        self.mpi, self.nccl, self.local_rank = mpi, nccl, local_rank
        self.rank, self.size = mpi.rank, mpi.size
        self.restore_excepthook = restore_excepthook


_group = None


def is_available():
    """True: the package is always there (whether MPI is: is_mpi_available)."""
    return True


def is_mpi_available():
    try:
        load_mpi()
    except RuntimeError:
        return False
    return True


def is_nccl_available():
    try:
        return devices.is_cuda_available() and devices.cupy().cuda.nccl.available
    except (ImportError, AttributeError):
        return False


def is_initialized():
    return _group is not None


def init_process_group(backend=None, init_method=None, timeout=None, world_size=-1, rank=-1,
                       store=None, group_name="", device_id=None):
    """Join MPI's world (the processes mpiexec started; a plain `python` is a world of one).

    backend: None or "mpi" for host tensors, with NCCL for CUDA tensors when CuPy's NCCL and a
    GPU are there ("nccl" requires them). The world, its size and each rank come from mpiexec:
    world_size / rank, if given, must agree with it; init_method, store and timeout are
    PyTorch's rendezvous settings, which MPI does not need. From here on an exception left
    uncaught on one rank aborts every rank (MPI_Abort) rather than leaving the others blocked.
    """
    global _group
    if _group is not None:
        raise RuntimeError("init_process_group: the default process group is already "
                           "initialized; call destroy_process_group() first")
    if backend not in (None, "mpi", "nccl", "mpi:nccl", "cpu:mpi,cuda:nccl"):
        raise ValueError(f"init_process_group: backend must be None, 'mpi' or 'nccl', got "
                         f"{backend!r} (the world is MPI's; NCCL serves CUDA tensors)")
    if init_method not in (None, "env://") or store is not None:
        raise ValueError("init_process_group: the processes meet through MPI (mpiexec); "
                         "init_method and store are not used, leave them unset")
    MPI = load_mpi()
    mpi = MPIBackend(MPI, MPI.COMM_WORLD)
    for name, given, actual in (("world_size", world_size, mpi.size), ("rank", rank, mpi.rank)):
        if given is not None and given != -1 and given != actual:
            raise ValueError(f"init_process_group: {name}={given}, but mpiexec started this "
                             f"process as {name} {actual}")
    local_rank = MPI.COMM_WORLD.Split_type(MPI.COMM_TYPE_SHARED).Get_rank()
    nccl = None
    want_nccl = backend is not None and "nccl" in backend
    if want_nccl and not is_nccl_available():
        raise RuntimeError("init_process_group: backend='nccl' needs CuPy with NCCL "
                           "(cupy.cuda.nccl) and a CUDA GPU")
    if want_nccl or (backend is None and is_nccl_available()):
        from ._nccl import NCCLBackend  # noqa: PLC0415
        cp = devices.cupy()
        device = local_rank if device_id is None else _device_index(device_id)
        nccl = NCCLBackend(mpi, device % max(cp.cuda.runtime.getDeviceCount(), 1), cp)
    restore = install_abort_on_error(mpi) if mpi.size > 1 else None
    _group = _Group(mpi, nccl, local_rank, restore)


def _device_index(device_id):
    index = getattr(device_id, "index", device_id)
    return 0 if index is None else int(index)


def destroy_process_group(group=None):
    """Leave the group (MPI itself stays initialized until the process exits, as MPI allows
    only one initialization per process)."""
    global _group
    if _group is None:
        return
    if _group.nccl is not None:
        _group.nccl.destroy()
    if _group.restore_excepthook is not None:
        _group.restore_excepthook()
    _group = None


def abort(errorcode=1):
    """End every rank at once (MPI_Abort); in a world of one, exit this process."""
    if _group is None or _group.size == 1:
        raise SystemExit(errorcode)
    _group.mpi.abort(errorcode)


def get_rank(group=None):
    return 0 if _group is None else _group.rank


def get_world_size(group=None):
    return 1 if _group is None else _group.size


def get_local_rank():
    return 0 if _group is None else _group.local_rank


def get_backend(group=None):
    if _group is None:
        raise RuntimeError("get_backend: the default process group has not been initialized; "
                           "call init_process_group() first")
    return "mpi" if _group.nccl is None else "mpi,nccl"


def backend_for(array):
    """The backend that moves `array` (None in a world of one): NCCL for CuPy arrays when there
    is a communicator, MPI for NumPy arrays. A CuPy array without NCCL: None too (the caller
    stages it through the host)."""
    if _group is None:
        return None
    if devices.is_cuda_array(array):
        return _group.nccl
    return _group.mpi


def _check_op(op):
    if op not in _VALID_OPS:
        raise ValueError(f"all_reduce: op must be one of ReduceOp's ({', '.join(_VALID_OPS)}), "
                         f"got {op!r}")
    return op


def _array_of(tensor, what):
    array = getattr(tensor, "array", None)
    if array is None:
        raise TypeError(f"{what}: expected a Tensor, got {type(tensor).__name__}")
    return array


def _written(array):
    _version.bump(array)


def allreduce_array(array, op="sum", async_op=False):
    """Reduce an array over the ranks in place; returns a Work (see all_reduce)."""
    if _group is None or _group.size == 1:
        return DoneWork()
    reduce_op = "sum" if op == "avg" else op
    backend = backend_for(array)
    if backend is None:     # a CUDA array and no NCCL: through the host
        host = devices.to_numpy(array)
        _group.mpi.allreduce(host, reduce_op)
        array[...] = devices.cupy().asarray(host)
    elif backend.name == "nccl" and op == "avg" and hasattr(backend.nccl, "NCCL_AVG"):
        return backend.allreduce(array, "avg", async_op)
    else:
        work = backend.allreduce(array, reduce_op, async_op)
        if op != "avg":
            return work
        work.wait()
    if op == "avg":
        array /= _group.size
    return DoneWork()


def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op=False):
    """Reduce `tensor` over every rank, in place (op: ReduceOp.SUM, AVG, MIN, MAX, PRODUCT...).
    async_op=True returns a Work whose wait() ends it (AVG then waits at once)."""
    array = _array_of(tensor, "all_reduce")
    work = allreduce_array(array, _check_op(op), async_op)
    _written(array)
    return work if async_op else None


def broadcast_arrays(arrays, src=0):
    """Overwrite each array with rank src's, in place: one message per dtype and device (the
    arrays are packed into one buffer, as DDP's broadcast of a model's state)."""
    if _group is None or _group.size == 1 or not arrays:
        return
    _check_src(src, "broadcast")
    groups = {}
    for a in arrays:
        groups.setdefault((a.dtype.str, devices.is_cuda_array(a)), []).append(a)
    for (_, on_cuda), same in groups.items():
        xp = devices.get_array_module(same[0])
        flat = xp.concatenate([a.reshape(-1) for a in same])
        backend = backend_for(flat)
        if backend is None:
            host = devices.to_numpy(flat)
            _group.mpi.broadcast(host, src)
            flat = xp.asarray(host)
        else:
            backend.broadcast(flat, src)
        offset = 0
        for a in same:
            a[...] = flat[offset:offset + a.size].reshape(a.shape)
            offset += a.size
            _written(a)


def _check_src(src, what):
    if not 0 <= src < get_world_size():
        raise ValueError(f"{what}: src={src} is not a rank of this world of "
                         f"{get_world_size()}")


def broadcast(tensor, src=0, group=None, async_op=False):
    """Overwrite `tensor` with rank src's, in place."""
    array = _array_of(tensor, "broadcast")
    _check_src(src, "broadcast")
    broadcast_arrays([array], src)
    return DoneWork() if async_op else None


def all_gather(tensor_list, tensor, group=None, async_op=False):
    """Fill tensor_list (one Tensor per rank, of tensor's shape) with every rank's tensor."""
    array = _array_of(tensor, "all_gather")
    if len(tensor_list) != get_world_size():
        raise ValueError(f"all_gather: tensor_list has {len(tensor_list)} tensors for a world "
                         f"of {get_world_size()}")
    for i, t in enumerate(tensor_list):
        out = _array_of(t, "all_gather")
        if tuple(out.shape) != tuple(array.shape):
            raise ValueError(f"all_gather: tensor_list[{i}] has shape {tuple(out.shape)}, "
                             f"expected {tuple(array.shape)} (the input's)")
    gathered = gather_array(array)
    for t, part in zip(tensor_list, gathered):
        t.array[...] = part
        _written(t.array)
    return DoneWork() if async_op else None


def gather_array(array):
    """(world, *array.shape): every rank's array, in rank order, on array's device."""
    xp = devices.get_array_module(array)
    if _group is None or _group.size == 1:
        return xp.ascontiguousarray(array)[None]
    backend = backend_for(array)
    if backend is None:
        return xp.asarray(_group.mpi.allgather(devices.to_numpy(array)))
    return backend.allgather(xp.ascontiguousarray(array))


def barrier(group=None, async_op=False, device_ids=None):
    if _group is not None and _group.size > 1:
        _group.mpi.barrier()


class AllReduceSum(Function):
    """Differentiable sum over the ranks (torch.distributed.nn.functional.all_reduce): the
    gradient of each rank's input is the sum of every rank's output gradient."""

    def forward(self, x):
        y = x.copy()
        allreduce_array(y, "sum")
        return y

    def backward(self, gy):
        return AllReduceSum()(gy)


def all_reduce_sum(tensor):
    """The sum of `tensor` over every rank, recorded in the graph (see AllReduceSum)."""
    return AllReduceSum()(tensor)


def reduce_scalars(values, op="sum"):
    """Python numbers reduced over the ranks (float64 on the host): metrics, counts."""
    array = numpy.asarray(values, dtype=numpy.float64).copy()
    allreduce_array(array, op)
    return array.tolist()
