"""DataLoader workers: threads or processes that read batches while the model trains.

    get_worker_info()   inside a worker: WorkerInfo(id, num_workers, seed, dataset); else None

A worker runs `worker_loop`: it takes tasks (epoch, batch index, indices, epoch seed) from its
own queue, reads the batch under the batch's generator (minicnn.data._random.batch_generator, a
function of the epoch seed and the batch index only, so the batch is the same whichever worker
reads it, and the same as without workers) and puts (epoch, batch index, result) on the shared
result queue. `WorkerPool` starts the workers, hands out tasks round-robin, and gives the batches
back in order.

Workers are threads by default: minicnn's CPU kernels run on GNU OpenMP (Numba's default
threading layer on Linux), which kills a forked child that calls a parallel kernel, and a thread
needs neither pickling nor an `if __name__ == "__main__"` guard. `multiprocessing_context`
('fork', 'spawn', 'forkserver' or a context object) makes them processes, as PyTorch's are; their
batches come back pickled through a queue.
"""
import os
import queue
import threading
import traceback

from ..tensor import Tensor
from . import _random

STATUS_CHECK_INTERVAL = 0.1    # seconds between checks that a worker / the parent is alive

_local = threading.local()       # a worker thread's WorkerInfo
_process_info = None             # a worker process's WorkerInfo


class WorkerInfo:
    """What a worker knows about itself (PyTorch's): id, num_workers, seed, dataset."""

    __slots__ = ("id", "num_workers", "seed", "dataset")

    def __init__(self, id, num_workers, seed, dataset):  # noqa: A002 -- PyTorch's name
        self.id, self.num_workers, self.seed, self.dataset = id, num_workers, seed, dataset

    def __repr__(self):
        return (f"WorkerInfo(id={self.id}, num_workers={self.num_workers}, seed={self.seed}, "
                f"dataset={type(self.dataset).__name__})")


def get_worker_info():
    """This worker's WorkerInfo inside a DataLoader worker (thread or process); None outside."""
    return getattr(_local, "info", None) or _process_info


class ExceptionWrapper:
    """An exception raised in a worker, re-raised in the loop that reads the batches."""

    def __init__(self, exc, where):
        self.exc_type = type(exc)
        self.message = (f"Caught {type(exc).__name__} {where}.\nOriginal "
                        f"{''.join(traceback.format_exception(exc))}")
        self.exc = exc

    def reraise(self):
        if isinstance(self.exc, KeyError):      # KeyError quotes its message: keep it readable
            raise KeyError(self.message) from None
        try:
            error = self.exc_type(self.message)
        except Exception:  # noqa: BLE001 -- a type that takes other arguments
            raise RuntimeError(self.message) from None
        raise error from None

    def __getstate__(self):                   # the exception itself may not pickle
        return {"exc_type": self.exc_type, "message": self.message, "exc": None}


class _PickledTensor:
    """A Tensor on its way from a worker process: its array only."""

    def __init__(self, array):
        self.array = array


def _pack(data):
    if isinstance(data, Tensor):
        return _PickledTensor(data.array)
    if isinstance(data, (list, tuple)):
        return type(data)(_pack(d) for d in data) if not hasattr(data, "_fields") else \
            type(data)(*(_pack(d) for d in data))
    if isinstance(data, dict):
        return {k: _pack(v) for k, v in data.items()}
    return data


def unpack(data):
    if isinstance(data, _PickledTensor):
        return Tensor(data.array)
    if isinstance(data, (list, tuple)):
        return type(data)(unpack(d) for d in data) if not hasattr(data, "_fields") else \
            type(data)(*(unpack(d) for d in data))
    if isinstance(data, dict):
        return {k: unpack(v) for k, v in data.items()}
    return data


def _start_process_worker(info):
    """What a worker process does first: PyTorch's per-worker seeds and one CPU thread."""
    global _process_info
    _process_info = info
    import random  # noqa: PLC0415
    from .. import random as mc_random  # noqa: PLC0415
    from .. import threads  # noqa: PLC0415
    random.seed(info.seed)
    mc_random.manual_seed(info.seed % 2 ** 63)
    threads.use_one_thread(process_wide=True)


def worker_loop(fetch, index_queue, result_queue, done, info, init_fn, in_process):
    """Read the batches index_queue asks for until it sends None or `done` is set (or, in a
    process, until its parent is gone)."""
    parent_pid = os.getppid()           # the loader's process, or a fork server
    if in_process:
        _start_process_worker(info)
    else:
        _local.info = info
        from .. import threads  # noqa: PLC0415
        threads.use_one_thread(process_wide=False)
    try:
        if init_fn is not None:
            init_fn(info.id)
    except Exception as e:  # noqa: BLE001 -- reported by the reader
        result_queue.put((None, None, ("error", ExceptionWrapper(
            e, f"in worker_init_fn of DataLoader worker {info.id}"))))
        return
    where = f"in DataLoader worker {'process' if in_process else 'thread'} {info.id}"
    while True:
        try:
            task = index_queue.get(timeout=STATUS_CHECK_INTERVAL)
        except queue.Empty:
            if done.is_set() or (in_process and os.getppid() != parent_pid):
                return
            continue
        if task is None or done.is_set():
            return
        epoch, index, indices, seed = task
        data = None
        try:
            with _random.using(_random.batch_generator(seed, index)):
                data = fetch(indices)
            result = ("ok", _pack(data) if in_process else data)
        except Exception as e:  # noqa: BLE001 -- re-raised by the reader
            result = ("error", ExceptionWrapper(e, where))
        result_queue.put((epoch, index, result))
        del data, result


class WorkerPool:
    """num_workers workers (threads, or processes of `context`) reading batches for a loader."""

    def __init__(self, fetch, dataset, num_workers, base_seed, init_fn=None, context=None,
                 timeout=0):
        self.num_workers, self.timeout = num_workers, timeout
        self.in_process = context is not None
        make_queue = context.Queue if self.in_process else queue.Queue
        self.done = context.Event() if self.in_process else threading.Event()
        self.result_queue = make_queue()
        self.index_queues = [make_queue() for _ in range(num_workers)]
        self.epoch = 0
        self.workers = []
        for i in range(num_workers):
            info = WorkerInfo(i, num_workers, base_seed + i, dataset)
            args = (fetch, self.index_queues[i], self.result_queue, self.done, info, init_fn,
                    self.in_process)
            make = context.Process if self.in_process else threading.Thread
            w = make(target=worker_loop, args=args, daemon=True,
                     name=f"minicnn-dataloader-{i}")
            w.start()
            self.workers.append(w)

    def batches(self, index_lists, seed, prefetch_factor, in_order=True):
        """Yield the batches of `index_lists` (an iterable of index lists), prefetch_factor per
        worker ahead, in order (or as they come when not in_order)."""
        self.epoch += 1
        epoch, tasks = self.epoch, enumerate(index_lists)
        outstanding, ready, next_index, sent = 0, {}, 0, 0

        def send_one():
            nonlocal outstanding, sent
            for index, indices in tasks:
                self.index_queues[sent % self.num_workers].put((epoch, index, indices, seed))
                outstanding, sent = outstanding + 1, sent + 1
                return True
            return False

        try:
            for _ in range(self.num_workers * prefetch_factor):
                if not send_one():
                    break
            while outstanding or ready:
                if in_order and next_index in ready:
                    data = ready.pop(next_index)
                else:
                    index, data = self._receive(epoch)
                    outstanding -= 1
                    if in_order and index != next_index:
                        ready[index] = data
                        continue
                next_index += 1
                send_one()
                yield data
                del data
        finally:
            self._drain()

    def _receive(self, epoch):
        """The next (batch index, batch) of this epoch; raises a worker's error, a timeout, or
        the death of a worker."""
        waited = 0.0
        while True:
            try:
                got_epoch, index, (kind, payload) = self.result_queue.get(
                    timeout=STATUS_CHECK_INTERVAL)
            except queue.Empty:
                waited += STATUS_CHECK_INTERVAL
                self._check_alive()
                if self.timeout and waited >= self.timeout:
                    raise RuntimeError(f"DataLoader timed out after {self.timeout} seconds "
                                       "waiting for a batch") from None
                continue
            if kind == "error" and got_epoch is None:        # worker_init_fn failed
                payload.reraise()
            if got_epoch != epoch:                           # left over from a broken epoch
                continue
            if kind == "error":
                payload.reraise()
            return index, unpack(payload) if self.in_process else payload

    def _check_alive(self):
        dead = [w for w in self.workers if not w.is_alive()]
        if not dead:
            return
        if self.in_process:
            codes = ", ".join(f"pid {w.pid}: exit code {w.exitcode}" for w in dead)
            hint = (" (a signal; a Numba parallel kernel in a forked worker is one cause: GNU "
                    "OpenMP is not fork-safe; use thread workers or "
                    "multiprocessing_context='spawn')") if any(
                        (w.exitcode or 0) < 0 for w in dead) else ""
            raise RuntimeError(f"DataLoader worker ({codes}) exited unexpectedly{hint}")
        raise RuntimeError(f"DataLoader worker thread(s) {[w.name for w in dead]} stopped "
                           "unexpectedly")

    def _drain(self):
        """Drop the tasks not started yet (a loop that stopped early)."""
        for q in self.index_queues:
            try:
                while True:
                    q.get_nowait()
            except (queue.Empty, OSError, ValueError):
                pass

    def shutdown(self):
        if not self.workers:
            return
        self.done.set()
        for q in self.index_queues:
            try:
                q.put(None)
            except (OSError, ValueError):
                pass
        for w in self.workers:
            w.join(timeout=5)
            if self.in_process and w.is_alive():
                w.terminate()
        if self.in_process:
            for q in self.index_queues + [self.result_queue]:
                q.cancel_join_thread()
                q.close()
        self.workers = []

    def __del__(self):
        try:
            self.shutdown()
        except Exception:  # noqa: BLE001 -- at interpreter exit, modules may be gone
            pass
