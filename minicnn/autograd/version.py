"""Version counters: how many in-place writes each piece of memory has seen (PyTorch's
`Tensor._version`).

A Function records the version of every array its backward reads (what it declares in `saves`,
see function.py), and the engine compares before it runs that backward: a write in between
(`x.add_(1)`, `x.data.mul_(2)`, `x[0] = 5`, `x -= y`, an optimizer step) raises PyTorch's error
instead of returning a gradient computed from the new values.

The count belongs to the memory, not to a Tensor: every view of an array (`x[0]`, a reshape,
`x.data`, which wraps the same array) counts on its storage, the array at the end of its `.base`
chain (or the buffer object NumPy keeps there, for an array made from a buffer). Writes through
the raw array (`t.array[...] = v`, `t.numpy()[0] = v`) are not seen, as writes through
`.numpy()` are not in PyTorch.

A storage may be split into parts that count separately (`partition`): the optimizer keeps all
the parameters of a group in one flat buffer, and an in-place update of one parameter must not
invalidate another one saved by a Function (PyTorch's parameters are separate storages).
Updating part i bumps that part; a write through the whole buffer bumps every part.

Storages that were never written have no entry; an entry goes away with its storage (a weak
reference's callback), so the table does not grow with the number of tensors ever modified.
"""
import bisect
import weakref

import numpy

_counts = {}   # id(storage) -> writes so far (int), or a _Partition
_refs = {}     # id(storage) -> the weak reference that removes its entry when it dies


def _storage(a):
    """The object that owns a's memory: the end of its `.base` chain."""
    b = a.base
    while b is not None:
        a = b
        b = getattr(b, "base", None)
    return a


def version(a):
    """The number of in-place writes a's memory has seen (0 for one never written)."""
    root = _storage(a)
    c = _counts.get(id(root), 0)
    return c if c.__class__ is int else c.version(a, root)


def bump(a):
    """Count one in-place write to the memory of array `a` (and of every view sharing it)."""
    root = _storage(a)
    key = id(root)
    c = _counts.get(key)
    if c is None:
        _counts[key] = 1
        _forget_with(root, key)
    elif c.__class__ is int:
        _counts[key] = c + 1
    else:
        c.bump(a, root)


def partition(buffer, offsets):
    """Count the writes to buffer[offsets[i]:offsets[i + 1]] (element offsets, a 1-D buffer)
    separately for each i: the optimizer's flat parameter buffers."""
    key = id(buffer)
    _counts[key] = _Partition(buffer, offsets)
    _forget_with(buffer, key)


def bump_parts(buffer, i0, i1):
    """Count one write to each of the parts i0..i1-1 of a partitioned buffer."""
    c = _counts.get(id(buffer))
    if c is None or c.__class__ is int:
        bump(buffer)
        return
    for i in range(i0, i1):
        c.counts[i] += 1


def _forget_with(root, key):
    def forget(_ref):
        _counts.pop(key, None)
        _refs.pop(key, None)
    try:
        _refs[key] = weakref.ref(root, forget)
    except TypeError:  # a buffer object without weak references (bytes): the entry stays
        pass


def _address(a):
    return a.ctypes.data if isinstance(a, numpy.ndarray) else a.data.ptr


class _Partition:
    """The write counts of a buffer's consecutive parts, and of the whole buffer."""
    __slots__ = ("start", "itemsize", "offsets", "counts", "whole")

    def __init__(self, buffer, offsets):
        self.start, self.itemsize = _address(buffer), buffer.itemsize
        self.offsets = list(offsets[:-1])
        self.counts = [0] * len(self.offsets)
        self.whole = 0

    def _part(self, a):
        """The part holding a's first element."""
        element = (_address(a) - self.start) // self.itemsize
        return max(bisect.bisect_right(self.offsets, element) - 1, 0)

    def version(self, a, root):
        if a is root:
            return self.whole + sum(self.counts)
        return self.whole + self.counts[self._part(a)]

    def bump(self, a, root):
        if a is root:
            self.whole += 1
        else:
            self.counts[self._part(a)] += 1
