"""DistributedDataParallel: one model replica per rank, gradients averaged during backward.

At wrap every rank takes rank 0's parameters and buffers (one broadcast per dtype). The
parameters that require grad are laid out in buckets of about bucket_cap_mb, in the reverse of
module.parameters()' order (roughly the order backward makes their gradients; the first bucket is
capped at 1 MiB so that the first message leaves early, as PyTorch does). Each parameter has a
post-accumulate-grad hook, which the engine runs as soon as that parameter's gradient is final:
the hook copies the gradient into its bucket, and a full bucket is sent at once as a non-blocking
allreduce (buckets always leave in index order, so every rank issues the same sequence of
collectives whatever order its gradients come in). When the last bucket has left, the hook waits
for all of them, divides by the world size and writes the averages back into the .grad of every
parameter, all before backward() returns, so the optimizer step that follows sees the averages.

    ddp = DistributedDataParallel(model)
    loss_fn(ddp(x), y).backward()          # .grad holds the mean over all ranks' batches
    with ddp.no_sync():                     # accumulate locally; the next synced backward
        loss_fn(ddp(x2), y2).backward()     # averages the sum

find_unused_parameters=True walks the graph after each forward to find parameters that took no
part (control flow), counts them ready at once, and leaves the .grad of the ones no rank used
untouched; without it such a parameter leaves the reduction unfinished, which the next forward
reports, as PyTorch does. gradient_as_bucket_view, static_graph, device_ids, output_device and
process_group are taken for PyTorch's signature (one device per process, the default group).
"""
import contextlib
import time

import numpy

from ... import distributed as dist
from ... import devices
from ...autograd.mode import is_grad_enabled
from ..module import Module

_FIRST_BUCKET_BYTES = 1 << 20


class _Bucket:
    def __init__(self, params, xp, dtype):
        self.params = params
        self.offsets = []
        total = 0
        for p in params:
            self.offsets.append(total)
            total += p.array.size
        self.buffer = xp.zeros(total, dtype)
        self.pending = len(params)
        self.work = None

    def reset(self):
        self.pending = len(self.params)
        self.work = None


def _make_buckets(params, cap_bytes):
    """Buckets over params (in the order given) of at most cap_bytes each (a larger parameter
    has one of its own), one dtype and device per bucket; the first capped at 1 MiB."""
    buckets, current, size, key = [], [], 0, None
    for p in params:
        p_key = (p.array.dtype.str, devices.is_cuda_array(p.array))
        nbytes = p.array.nbytes
        cap = min(cap_bytes, _FIRST_BUCKET_BYTES) if not buckets else cap_bytes
        if current and (p_key != key or size + nbytes > cap):
            buckets.append(current)
            current, size = [], 0
        current.append(p)
        size += nbytes
        key = p_key
    if current:
        buckets.append(current)
    return [_Bucket(ps, devices.get_array_module(ps[0].array), ps[0].array.dtype)
            for ps in buckets]


class _Reducer:
    """The gradients' way from the engine's hooks to the averages (see the module docstring)."""

    def __init__(self, named_params, cap_bytes, find_unused):
        self.names = {id(p): name for name, p in named_params}
        self.buckets = _make_buckets([p for _, p in named_params][::-1], cap_bytes)
        self.slot = {}
        for b in self.buckets:
            for p, offset in zip(b.params, b.offsets):
                self.slot[id(p)] = (b, offset)
        self.find_unused = find_unused
        self.armed = False
        self.next_bucket = 0
        self.used = None
        self.done = set()
        self.stats = {"backwards": 0, "wait_s": 0.0, "launch_s": 0.0, "buckets": 0}
        for _, p in named_params:
            p.register_post_accumulate_grad_hook(self._grad_ready)

    def check_finished(self):
        if not self.armed:
            return
        missing = [self.names[id(p)] for b in self.buckets for p in b.params
                   if b.pending and self._waiting(p)]
        self.armed = False
        raise RuntimeError(
            "DistributedDataParallel: expected to have finished reduction in the prior iteration "
            "before starting a new one: parameters that got no gradient in the last backward "
            f"({', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}). If the forward "
            "does not use every parameter, pass find_unused_parameters=True; make sure that "
            "every output of the forward takes part in the loss")

    def _waiting(self, p):
        return id(p) not in self.done

    def arm(self, unused):
        """A forward that backward will follow: count every parameter as pending."""
        for b in self.buckets:
            b.reset()
        self.next_bucket = 0
        self.done = set()
        self.armed = True
        self.used = {id(p): True for b in self.buckets for p in b.params} \
            if self.find_unused else None
        for p in unused:
            self.used[id(p)] = False
            b, offset = self.slot[id(p)]
            b.buffer[offset:offset + p.array.size] = 0
            self._count(p, b)

    def _grad_ready(self, p):
        if not self.armed or id(p) in self.done:
            return
        b, offset = self.slot[id(p)]
        b.buffer[offset:offset + p.array.size] = p.grad.array.reshape(-1)
        self._count(p, b)

    def _count(self, p, b):
        self.done.add(id(p))
        b.pending -= 1
        if b.pending == 0:
            self._launch_in_order()
        else:
            self._progress()

    def _progress(self):
        """Let MPI move the messages in flight (see _mpi.MPIWork.is_completed)."""
        for b in self.buckets[:self.next_bucket]:
            if not b.work.is_completed():
                return

    def _launch_in_order(self):
        t0 = time.perf_counter()
        while self.next_bucket < len(self.buckets) and \
                self.buckets[self.next_bucket].pending == 0:
            b = self.buckets[self.next_bucket]
            b.work = dist.allreduce_array(b.buffer, "sum", async_op=True)
            self.next_bucket += 1
        self.stats["launch_s"] += time.perf_counter() - t0
        if self.next_bucket == len(self.buckets):
            self._finish()

    def _finish(self):
        t0 = time.perf_counter()
        for b in self.buckets:
            b.work.wait()
        self.stats["wait_s"] += time.perf_counter() - t0
        self.stats["backwards"] += 1
        self.stats["buckets"] += len(self.buckets)
        self.armed = False
        world = dist.get_world_size()
        used_anywhere = self._used_anywhere()
        for b in self.buckets:
            b.buffer /= world
            for p, offset in zip(b.params, b.offsets):
                if used_anywhere is not None and not used_anywhere[id(p)]:
                    continue
                mean = b.buffer[offset:offset + p.array.size].reshape(p.array.shape)
                if p.grad is None:
                    p.grad = p._wrap(mean.copy())
                else:
                    p.grad.array[...] = mean

    def _used_anywhere(self):
        """{id(param): used by some rank} when find_unused_parameters (one small allreduce)."""
        if self.used is None:
            return None
        ids = list(self.used)
        flags = numpy.array([self.used[i] for i in ids], dtype=numpy.float64)
        dist.allreduce_array(flags, "max")
        return {i: bool(f) for i, f in zip(ids, flags)}


def _tensors_in(obj):
    """Every Tensor-like object (with a creator) inside nested tuples, lists and dicts."""
    if hasattr(obj, "creator"):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for x in obj:
            yield from _tensors_in(x)
    elif isinstance(obj, dict):
        for x in obj.values():
            yield from _tensors_in(x)


def _leaves_reached(outputs):
    """ids of the leaf tensors the graph of outputs reads."""
    seen_fns, leaves = set(), set()
    stack = []
    for t in _tensors_in(outputs):
        if t.creator is None:
            leaves.add(id(t))
        else:
            stack.append(t.creator)
    while stack:
        fn = stack.pop()
        if id(fn) in seen_fns or fn.inputs is None:
            continue
        seen_fns.add(id(fn))
        for t in fn.inputs:
            if t is None:
                continue
            if t.creator is None:
                leaves.add(id(t))
            else:
                stack.append(t.creator)
    return leaves


class DistributedDataParallel(Module):
    """PyTorch's DistributedDataParallel over mc.distributed (see the module docstring)."""

    def __init__(self, module, device_ids=None, output_device=None, dim=0,
                 broadcast_buffers=True, process_group=None, bucket_cap_mb=25,
                 find_unused_parameters=False, gradient_as_bucket_view=False,
                 static_graph=False):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: expected an nn.Module, got "
                            f"{type(module).__name__}")
        if isinstance(bucket_cap_mb, bool) or not isinstance(bucket_cap_mb, (int, float)) \
                or bucket_cap_mb <= 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be a positive "
                             f"number, got {bucket_cap_mb!r}")
        if device_ids is not None and len(list(device_ids)) > 1:
            raise ValueError("DistributedDataParallel: one device per process; device_ids="
                             f"{list(device_ids)} names several")
        self.module = module
        self.broadcast_buffers = bool(broadcast_buffers)
        self.find_unused_parameters = bool(find_unused_parameters)
        self.bucket_cap_mb = bucket_cap_mb
        self.require_backward_grad_sync = True
        self.device_ids, self.output_device, self.dim = device_ids, output_device, dim
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        dist.broadcast_arrays([p.array for p in module.parameters()] + self._buffer_arrays())
        self._reducer = _Reducer(named, int(bucket_cap_mb * 2 ** 20), find_unused_parameters)
        self._params = [p for _, p in named]

    def _buffer_arrays(self):
        return [b.array for b in self.module.buffers()]

    @property
    def bucket_sizes(self):
        """Number of parameters in each bucket, in sending order."""
        return [len(b.params) for b in self._reducer.buckets]

    @property
    def comm_stats(self):
        """{'backwards', 'buckets', 'wait_s', 'launch_s'}: synced backwards so far, buckets
        sent, and host seconds spent launching allreduces and waiting for them at the end."""
        return dict(self._reducer.stats)

    @contextlib.contextmanager
    def no_sync(self):
        """Backwards of forwards run inside keep their gradients local (accumulating in .grad);
        the first synced backward after averages the accumulated sum."""
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    def forward(self, *inputs, **kwargs):
        reducer = self._reducer
        world = dist.get_world_size()
        syncs = world > 1 and is_grad_enabled() and self.require_backward_grad_sync and \
            bool(self._params)
        if syncs:
            reducer.check_finished()
        else:       # a forward no backward syncs (eval, no_grad): a pending one is dropped
            reducer.armed = False
        if world > 1 and self.training and self.broadcast_buffers:
            dist.broadcast_arrays(self._buffer_arrays())
        out = self.module(*inputs, **kwargs)
        if syncs:
            unused = ()
            if self.find_unused_parameters:
                reached = _leaves_reached(out)
                unused = [p for p in self._params if id(p) not in reached]
            reducer.arm(unused)
        return out
