"""The NCCL backend's stream logic and DDP's bucket logic, in one process without a GPU
(issue 20). CuPy is a stand-in that records the calls; a real NCCL run needs a GPU per rank."""
import types

import numpy as np
import pytest

import minicnn as mc
import minicnn.distributed as dist
from minicnn.distributed._nccl import NCCLBackend


class Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, *what):
        self.calls.append(what)


def fake_cupy(log):
    """cupy.cuda and cupy.cuda.nccl as far as NCCLBackend uses them, recording each call."""
    class Event:
        count = 0

        def __init__(self, disable_timing=False):
            Event.count += 1
            self.name = f"event{Event.count}"
            self.done = True

        def record(self, stream):
            log("record", self.name, stream.name)

    class Stream:
        def __init__(self, non_blocking=False, name="comm"):
            self.name, self.ptr = name, 1000 if name == "comm" else 1

        def wait_event(self, event):
            log("wait_event", self.name, event.name)

    compute = Stream(name="compute")

    class Communicator:
        def __init__(self, size, uid, rank):
            log("communicator", size, uid, rank)

        def allReduce(self, send, recv, count, dtype, op, stream):   # noqa: N802
            log("allReduce", send, recv, count, dtype, op, stream)

        def bcast(self, buf, count, dtype, root, stream):
            log("bcast", buf, count, dtype, root, stream)

        def allGather(self, send, recv, count, dtype, stream):       # noqa: N802
            log("allGather", send, recv, count, dtype, stream)

        def destroy(self):
            log("destroy")

    nccl = types.SimpleNamespace(get_unique_id=lambda: ("uid",), NcclCommunicator=Communicator,
                                 NCCL_FLOAT32=7, NCCL_FLOAT64=8, NCCL_SUM=0, NCCL_MAX=2,
                                 NCCL_AVG=4)
    device = types.SimpleNamespace(use=lambda: log("device.use"))
    cuda = types.SimpleNamespace(Event=Event, Stream=Stream, nccl=nccl,
                                 get_current_stream=lambda: compute,
                                 Device=lambda i: (log("device", i), device)[1])
    return types.SimpleNamespace(cuda=cuda, empty=lambda shape, dtype: FakeArray(shape, dtype))


class FakeArray:
    """What NCCL needs of a CuPy array: data.ptr, size, dtype, flags."""

    def __init__(self, shape, dtype=np.float32, ptr=5000):
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.size = int(np.prod(shape))
        self.data = types.SimpleNamespace(ptr=ptr)
        self.flags = types.SimpleNamespace(c_contiguous=True)


def make_backend(rank):
    log = Recorder()
    mpi = types.SimpleNamespace(rank=rank, size=2, comm=types.SimpleNamespace(
        bcast=lambda obj, root: log("mpi.bcast", obj, root) or ("uid-from-0",)))
    return NCCLBackend(mpi, local_rank=rank, cp=fake_cupy(log)), log


@pytest.mark.parametrize("rank", [0, 1])
def test_communicator_from_an_id_broadcast_over_mpi(rank):
    _, log = make_backend(rank)
    made = ("uid",) if rank == 0 else None
    assert log.calls[:4] == [("device", rank), ("device.use",), ("mpi.bcast", made, 0),
                             ("communicator", 2, ("uid-from-0",), rank)]


def test_allreduce_runs_on_the_comm_stream_between_events():
    backend, log = make_backend(0)
    del log.calls[:]
    work = backend.allreduce(FakeArray((10,)), "sum", async_op=True)
    ready, done = log.calls[0][1], log.calls[3][1]
    assert log.calls == [("record", ready, "compute"), ("wait_event", "comm", ready),
                         ("allReduce", 5000, 5000, 10, 7, 0, 1000), ("record", done, "comm")]
    del log.calls[:]
    work.wait()                   # the compute stream waits, the host does not
    assert log.calls == [("wait_event", "compute", done)]
    del log.calls[:]
    backend.allreduce(FakeArray((3,), np.float64), "avg")
    assert log.calls[2] == ("allReduce", 5000, 5000, 3, 8, 4, 1000)
    assert log.calls[-1][:2] == ("wait_event", "compute")
    with pytest.raises(TypeError, match="NCCL has no collective for dtype int16"):
        backend.allreduce(FakeArray((3,), np.int16))


def test_broadcast_and_gather_calls():
    backend, log = make_backend(1)
    del log.calls[:]
    backend.broadcast(FakeArray((4,)), src=0)
    assert ("bcast", 5000, 4, 7, 0, 1000) in log.calls
    out = backend.allgather(FakeArray((2, 3)))
    assert out.shape == (2, 2, 3)
    assert any(c[0] == "allGather" and c[3:] == (6, 7, 1000) for c in log.calls)
    backend.destroy()
    assert log.calls[-1] == ("destroy",)


class EchoBackend:
    """A world of two whose other rank sends the same gradients: allreduce doubles the array
    when waited for; records the order of launches and waits."""
    name = "mpi"

    def __init__(self, log):
        self.log, self.rank, self.size = log, 0, 2

    def allreduce(self, array, op="sum", async_op=False):
        self.log("launch", array.size)
        log = self.log

        class Work:
            def is_completed(self):
                return False

            def wait(self):
                log("wait", array.size)
                array[...] = array * 2

        work = Work()
        if not async_op:
            work.wait()
        return work

    def broadcast(self, array, src):
        self.log("broadcast", array.size)


@pytest.fixture
def echo_world(monkeypatch):
    log = Recorder()
    backend = EchoBackend(log)
    group = types.SimpleNamespace(mpi=backend, nccl=None, rank=0, size=2, local_rank=0)
    monkeypatch.setattr(dist, "_group", group)
    return log


def test_buckets_leave_during_backward_in_order(echo_world):
    mc.manual_seed(0)
    net = mc.nn.Sequential(mc.nn.Linear(3, 400), mc.nn.ReLU(), mc.nn.Linear(400, 300),
                           mc.nn.ReLU(), mc.nn.Linear(300, 2))
    ref = [p.numpy().copy() for p in net.parameters()]
    ddp = mc.nn.parallel.DistributedDataParallel(net, bucket_cap_mb=0.2)
    # buckets of at most 0.2 MiB (52,428 float32), the parameters in reverse order
    assert ddp.bucket_sizes == [3, 1, 2]
    x = mc.randn(8, 3)
    seen_at_first_layer = []
    net[0].weight.register_post_accumulate_grad_hook(
        lambda t: seen_at_first_layer.append(list(echo_world.calls)))
    del echo_world.calls[:]
    loss = ddp(x).sum()
    assert echo_world.calls == [("broadcast", 0)] or echo_world.calls == []
    del echo_world.calls[:]
    loss.backward()
    launches = [c for c in echo_world.calls if c[0] == "launch"]
    assert launches == [("launch", 2 + 600 + 300), ("launch", 120000), ("launch", 400 + 1200)]
    # the last layers' buckets left before the first layer's gradient was final
    assert [c for c in seen_at_first_layer[0] if c[0] == "launch"] == launches[:2]
    assert echo_world.calls[-3:] == [("wait", n) for _, n in launches]
    # the average of two identical ranks is the local gradient
    plain = mc.nn.Sequential(mc.nn.Linear(3, 400), mc.nn.ReLU(), mc.nn.Linear(400, 300),
                             mc.nn.ReLU(), mc.nn.Linear(300, 2))
    for p, a in zip(plain.parameters(), ref):
        p.array[...] = a
    plain(x).sum().backward()
    for p, q in zip(net.parameters(), plain.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-6)
    assert ddp.comm_stats["backwards"] == 1


def test_an_unfinished_reduction_is_reported(echo_world):
    class Partial(mc.nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.spare = mc.nn.Linear(2, 2), mc.nn.Linear(2, 2)

        def forward(self, x):
            return self.used(x)

    ddp = mc.nn.parallel.DistributedDataParallel(Partial())
    ddp(mc.randn(3, 2)).sum().backward()
    with pytest.raises(RuntimeError, match=r"spare\.weight.*find_unused_parameters=True"):
        ddp(mc.randn(3, 2))
    ddp = mc.nn.parallel.DistributedDataParallel(Partial(), find_unused_parameters=True)
    for _ in range(2):
        ddp(mc.randn(3, 2)).sum().backward()
    assert ddp.module.spare.weight.grad is None     # no rank used it: left alone
    assert ddp.module.used.weight.grad is not None
