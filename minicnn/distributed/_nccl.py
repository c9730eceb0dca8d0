"""The NCCL side of mc.distributed: collectives on CuPy arrays through `cupy.cuda.nccl`.

Set up as Chainer's ChainerMN does: rank 0 makes NCCL's unique id, MPI broadcasts it, and every
rank joins a communicator of the world's size with its MPI rank, on the GPU of its local rank
(its rank among the processes of its node).

A collective runs on the backend's own stream so that it can overlap the computation:

    compute stream  ... grads of bucket k ready -> record `ready` ...... wait(`done`) -> step
    comm stream                       wait(`ready`) -> ncclAllReduce -> record `done`

`ready` orders the collective after the kernels that wrote the buffer; wait() makes the
compute stream (not the host) wait for `done`, so the optimizer's kernels queue behind the
collective without a host synchronisation. The Work keeps the buffer alive until then.

CuPy comes in as an argument (`cp`: cp.cuda, cp.cuda.nccl and cp.empty are used), so the
ordering above is tested on machines without a GPU with a stand-in that records the calls
(tests/test_distributed_nccl.py); the real library needs a GPU per rank.
"""

_DTYPES = {"float16": "NCCL_FLOAT16", "float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64",
           "int8": "NCCL_INT8", "uint8": "NCCL_UINT8", "int32": "NCCL_INT32",
           "int64": "NCCL_INT64", "uint32": "NCCL_UINT32", "uint64": "NCCL_UINT64",
           "bfloat16": "NCCL_BFLOAT16"}
_OPS = {"sum": "NCCL_SUM", "product": "NCCL_PROD", "min": "NCCL_MIN", "max": "NCCL_MAX",
        "avg": "NCCL_AVG"}


class NCCLWork:
    """A collective queued on the communication stream (see the module docstring)."""

    def __init__(self, cuda, done, array):
        self.cuda, self.done, self.array = cuda, done, array

    def is_completed(self):
        return self.done.done

    def wait(self):
        """The current (compute) stream waits for the collective; the host does not."""
        self.cuda.get_current_stream().wait_event(self.done)
        self.array = None
        return True


class NCCLBackend:
    name = "nccl"

    def __init__(self, mpi_backend, local_rank, cp):
        self.cp, self.cuda, self.nccl = cp, cp.cuda, cp.cuda.nccl
        cuda, nccl = self.cuda, self.nccl
        self.rank, self.size = mpi_backend.rank, mpi_backend.size
        self.device = cuda.Device(local_rank)
        self.device.use()
        uid = nccl.get_unique_id() if self.rank == 0 else None
        uid = mpi_backend.comm.bcast(uid, root=0)
        self.comm = nccl.NcclCommunicator(self.size, uid, self.rank)
        self.stream = cuda.Stream(non_blocking=True)

    def _dtype(self, array):
        name = _DTYPES.get(str(array.dtype))
        if name is None or not hasattr(self.nccl, name):
            raise TypeError(f"mc.distributed: NCCL has no collective for dtype {array.dtype}")
        return getattr(self.nccl, name)

    def _queue(self, array, launch):
        """Run launch(stream pointer) on the comm stream after the current stream's work."""
        if not array.flags.c_contiguous:
            raise ValueError("mc.distributed: NCCL collectives need contiguous arrays")
        ready = self.cuda.Event(disable_timing=True)
        ready.record(self.cuda.get_current_stream())
        self.stream.wait_event(ready)
        launch(self.stream.ptr)
        done = self.cuda.Event(disable_timing=True)
        done.record(self.stream)
        return NCCLWork(self.cuda, done, array)

    def allreduce(self, array, op="sum", async_op=False):
        op_code = getattr(self.nccl, _OPS[op])
        dtype = self._dtype(array)
        ptr = array.data.ptr
        work = self._queue(array, lambda stream: self.comm.allReduce(
            ptr, ptr, array.size, dtype, op_code, stream))
        if not async_op:
            work.wait()
        return work

    def broadcast(self, array, src):
        dtype = self._dtype(array)
        self._queue(array, lambda stream: self.comm.bcast(
            array.data.ptr, array.size, dtype, src, stream)).wait()

    def allgather(self, array):
        out = self.cp.empty((self.size,) + tuple(array.shape), array.dtype)
        dtype = self._dtype(array)
        self._queue(array, lambda stream: self.comm.allGather(
            array.data.ptr, out.data.ptr, array.size, dtype, stream)).wait()
        return out

    def destroy(self):
        self.comm.destroy()

