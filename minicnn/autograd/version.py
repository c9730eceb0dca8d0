"""Version counters: how many in-place writes each piece of memory has seen (PyTorch's
`Tensor._version`), and when.

A Function declares what its backward reads (`saves`, see function.py) and notes the write clock
when it is recorded; before its backward runs, the engine asks whether any of those arrays was
written since (`x.add_(1)`, `x.data.mul_(2)`, `x[0] = 5`, `x -= y`, an optimizer step) and
raises PyTorch's error instead of returning a gradient computed from the new values. Recording
costs one attribute per op, and the check costs nothing while no write happened since the
forward (the common case: a training step writes after its backward).

The count belongs to the memory, not to a Tensor: every view of an array (`x[0]`, a reshape,
`x.data`, which wraps the same array) counts on its storage, the object at the end of its
`.base` chain. Writes through the raw array (`t.array[...] = v`, `t.numpy()[0] = v`) are not
seen, as writes through `.numpy()` are not in PyTorch.

A storage may be split into parts that count separately (`partition`): the optimizer keeps all
the parameters of a group in one flat buffer, and an in-place update of one parameter must not
invalidate another one saved by a Function (PyTorch's parameters are separate storages).
Updating part i counts on that part; a write through the whole buffer counts on every part.

Storages that were never written have no entry; an entry goes away with its storage (a weak
reference's callback), so the table does not grow with the number of tensors ever modified.
"""
import bisect
import collections
import weakref

import numpy

clock = 0      # the number of in-place writes so far, process-wide: the time of the last one
_counts = {}   # id(storage) -> _Writes, or a _Partition
_refs = {}     # id(storage) -> the weak reference that removes its entry when it dies


class _Writes:
    """The writes one storage (or one part of one) has seen: how many, and the clocks of the
    most recent ones (enough to say which version a Function saw, up to HISTORY writes back)."""
    __slots__ = ("count", "clocks")
    HISTORY = 64

    def __init__(self, count=0, clocks=()):
        self.count = count
        self.clocks = collections.deque(clocks, maxlen=self.HISTORY)

    def add(self, at):
        self.count += 1
        self.clocks.append(at)

    def last(self):
        return self.clocks[-1] if self.clocks else -1

    def since(self, at):
        """The writes after clock `at` (exact up to HISTORY of them)."""
        return sum(1 for c in self.clocks if c > at)


_NEVER = _Writes()


def _storage(a):
    """The object that owns a's memory: the end of its `.base` chain."""
    b = a.base
    while b is not None:
        a = b
        b = getattr(b, "base", None)
    return a


def _writes(a):
    """(writes to a's memory, writes since) as (count, the _Writes objects that hold them)."""
    root = _storage(a)
    c = _counts.get(id(root), _NEVER)
    return c.parts_of(a, root) if c.__class__ is _Partition else (c,)


def version(a):
    """The number of in-place writes a's memory has seen (0 for one never written)."""
    return sum(w.count for w in _writes(a))


def written_since(a, at):
    """None if a's memory was not written after clock `at`; else (version now, version then)."""
    writes = _writes(a)
    if max(w.last() for w in writes) <= at:
        return None
    now = sum(w.count for w in writes)
    return now, now - sum(w.since(at) for w in writes)


def bump(a):
    """Count one in-place write to the memory of array `a` (and of every view sharing it)."""
    global clock
    clock += 1
    root = _storage(a)
    c = _counts.get(id(root))
    if c is None:
        c = _counts[id(root)] = _Writes()
        _forget_with(root)
    if c.__class__ is _Partition:
        c.add(a, root, clock)
    else:
        c.add(clock)


def carry_over(new, old):
    """The writes seen by `old`'s memory continue on `new`'s: a tensor that takes a new array
    in place of an in-place update (x op= y in the graph) keeps its version, and a Function
    that saved the tensor before sees the write."""
    writes = _writes(old)
    w = _Writes(sum(x.count for x in writes), sorted(c for x in writes for c in x.clocks))
    root = _storage(new)
    _counts[id(root)] = w
    _forget_with(root)


def partition(buffer, offsets):
    """Count the writes to buffer[offsets[i]:offsets[i + 1]] (element offsets, a 1-D buffer)
    separately for each i: the optimizer's flat parameter buffers."""
    _counts[id(buffer)] = _Partition(buffer, offsets)
    _forget_with(buffer)


def bump_parts(buffer, i0, i1):
    """Count one write to each of the parts i0..i1-1 of a partitioned buffer."""
    c = _counts.get(id(buffer))
    if c.__class__ is not _Partition:
        bump(buffer)
        return
    global clock
    clock += 1
    for i in range(i0, i1):
        c.parts[i].add(clock)


def _forget_with(root):
    key = id(root)

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
    """The writes of a buffer's consecutive parts, and of the whole buffer."""
    __slots__ = ("start", "itemsize", "offsets", "parts", "whole")

    def __init__(self, buffer, offsets):
        self.start, self.itemsize = _address(buffer), buffer.itemsize
        self.offsets = list(offsets[:-1])
        self.parts = [_Writes() for _ in self.offsets]
        self.whole = _Writes()

    def _part(self, a):
        """The part holding a's first element."""
        element = (_address(a) - self.start) // self.itemsize
        return self.parts[max(bisect.bisect_right(self.offsets, element) - 1, 0)]

    def parts_of(self, a, root):
        return (self.whole, *self.parts) if a is root else (self.whole, self._part(a))

    def add(self, a, root, at):
        (self.whole if a is root else self._part(a)).add(at)
