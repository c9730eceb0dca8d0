"""Column buffers kept from a CPU forward for the weight gradient.

The weight gradient of an im2col convolution multiplies gy by the same columns the forward
built, so a forward whose weight will get a gradient keeps them (`KeptColumns`) instead of
building them again in the backward: one im2col fewer per such conv per step (PyTorch's DCGAN
at batch 64 ran 39 im2cols a step, 15 of them again for its discriminator's weight gradients).

The kept arrays can be tens of MB (DCGAN's second discriminator conv: 67 MB), above glibc's
largest mmap threshold, so a fresh one each step would be page-faulted in again (see
minicnn/allocator.py). Their buffers therefore come from a pool and go back to it when the
holder drops them (after the weight gradient, or with the graph), so the next step reuses the
same memory. Everything kept and pooled together stays under MAX_BYTES
($MINICNN_KEPT_COLUMNS_MB, default 1024; 0 turns keeping off): past it a forward keeps nothing
and its backward builds the columns again, as before.
"""
import os
import threading

import numpy

MAX_BYTES = int(os.environ.get("MINICNN_KEPT_COLUMNS_MB", "1024")) << 20


class _Pool:
    """Free byte buffers for kept columns, and the bytes lent out now; safe across threads (a
    holder can be dropped on any thread)."""

    def __init__(self):
        self.free = []       # buffers nobody holds
        self.lent = 0        # bytes of the buffers held by live KeptColumns
        self.lock = threading.Lock()

    def take(self, nbytes):
        """A buffer of at least nbytes (at most twice, so a small conv does not hold a large
        one), or None when lending it would pass MAX_BYTES."""
        with self.lock:
            fits = [i for i, b in enumerate(self.free) if nbytes <= b.size <= 2 * nbytes]
            if fits:
                buf = self.free.pop(min(fits, key=lambda i: self.free[i].size))
            else:
                if self.lent + self._free_bytes() + nbytes > MAX_BYTES:
                    self.free.clear()         # what does not fit goes back to the allocator
                    if self.lent + nbytes > MAX_BYTES:
                        return None
                buf = numpy.empty(nbytes, numpy.uint8)
            self.lent += buf.size
            return buf

    def give(self, buf):
        with self.lock:
            self.lent -= buf.size
            if self.lent + self._free_bytes() + buf.size <= MAX_BYTES:
                self.free.append(buf)

    def _free_bytes(self):
        return sum(b.size for b in self.free)

    def release(self):
        with self.lock:
            self.free.clear()


POOL = _Pool()


class KeptColumns:
    """A forward's column operand (G, Cg*KH*KW, N*OH*OW), in a pooled buffer that goes back to
    the pool when this object is dropped. Make one with `take`."""
    __slots__ = ("array", "_buf")

    def __init__(self, buf, shape, dtype):
        self._buf = buf
        self.array = buf[:int(numpy.prod(shape)) * dtype.itemsize].view(dtype).reshape(shape)

    @classmethod
    def take(cls, shape, dtype):
        """Room for columns of `shape`, or None when the budget is spent."""
        dtype = numpy.dtype(dtype)
        buf = POOL.take(max(int(numpy.prod(shape)) * dtype.itemsize, 1))
        return None if buf is None else cls(buf, shape, dtype)

    def matches(self, shape, dtype):
        return self.array.shape == tuple(shape) and self.array.dtype == dtype

    def __del__(self):
        buf, self._buf = self._buf, None
        if buf is not None and POOL is not None:   # POOL is None at interpreter exit
            POOL.give(buf)
