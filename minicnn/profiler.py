"""mc.profiler: where the time goes, per op (forward and backward apart) and per module.

    with mc.profiler.profile() as prof:
        loss = F.cross_entropy(model(x), y)
        loss.backward()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10))
    prof.export_chrome_trace("trace.json")   # open in https://ui.perfetto.dev or chrome://tracing

Four kinds of events are recorded, each with its start, its duration and the thread it ran on:

- `op`: one call of a Function (an op's forward), named by its class (`Conv2d`, `MatMul`,
  `Activation[relu]`);
- `backward`: one step of a backward pass, the Function's backward, named `Conv2d backward`; the
  ops a backward runs (Conv2dGradInput...) are recorded inside it;
- `module`: one call of a Module, named `nn.Module: layer1.0.conv1 (Conv2d)` (the path from the
  outermost module called, as in its state dict);
- `user`: a block of your own, `with mc.profiler.record_function("data"): ...`.

An event's self time is its time less that of the events recorded inside it. Its self bytes are
the bytes of the arrays it allocated for its outputs (an output that is a view of an input, as a
reshape's, allocates nothing; temporaries an op frees before returning are not seen); its bytes
include those of the events inside it. Recording costs a few microseconds per event, which the
times of the enclosing events include.

Off (outside `profile()`), nothing is recorded and nothing is paid: the profiler installs its
hooks by swapping `Function.__call__` (minicnn.autograd.function.observe_calls) and
`Module.__call__` while it records, and the engine tests one attribute per backward step.
"""
import json
import os
import threading
import time

from .autograd.function import Observers, observe_calls
from .fileio import write_atomic
from .nn.module import Module

__all__ = ["profile", "record_function", "Event", "EventAverage", "EventList"]

_active = []    # the profiler recording now (at most one)


class Event:
    """One recorded call: name, kind ('op', 'backward' or 'module'), start_ns / end_ns
    (time.perf_counter_ns), thread id, input shapes (ops), self and child time and bytes."""
    __slots__ = ("name", "kind", "start_ns", "end_ns", "tid", "shapes", "self_bytes",
                 "child_ns", "child_bytes")

    def __init__(self, name, kind, tid, shapes=None):
        self.name, self.kind, self.tid, self.shapes = name, kind, tid, shapes
        self.start_ns = self.end_ns = 0
        self.self_bytes = self.child_ns = self.child_bytes = 0

    @property
    def duration_ns(self):
        return self.end_ns - self.start_ns

    @property
    def self_ns(self):
        return max(self.duration_ns - self.child_ns, 0)

    @property
    def bytes(self):
        return self.self_bytes + self.child_bytes

    def __repr__(self):
        return f"<Event {self.kind} {self.name!r} {self.duration_ns / 1e3:.1f} us>"


def _owner(a):
    while getattr(a, "base", None) is not None:
        a = a.base
    return id(a)


def _new_bytes(outputs, inputs):
    """Bytes of the output arrays that share no memory with an input (views allocate nothing)."""
    outs = outputs if isinstance(outputs, tuple) else (outputs,)
    owners = {_owner(t.array) for t in inputs if hasattr(t, "array")}
    total = 0
    for t in outs:
        a = getattr(t, "array", None)
        if a is not None and _owner(a) not in owners:
            owners.add(_owner(a))
            total += a.nbytes
    return total


def _op_name(fn):
    act = getattr(fn, "act", None)
    name = type(fn).__name__
    return f"{name}[{act}]" if isinstance(act, str) else name


class profile:
    """Record every op, backward step and module call made inside the `with` block (on any
    thread), as torch.profiler.profile does on the CPU.

    record_shapes: keep each op's input shapes (the trace shows them;
    key_averages(group_by_input_shape=True) splits the rows by them).
    """

    def __init__(self, enabled=True, record_shapes=True):
        self.enabled, self.record_shapes = bool(enabled), bool(record_shapes)
        self._events = []
        self._local = threading.local()
        self._names = {}     # id(module) -> its path, from the outermost module called
        self._roots = {}     # id(outermost module) -> the module (kept alive while recording)
        self._undo = []
        self.start_ns = self.end_ns = 0

    # --- recording --------------------------------------------------------------------------

    def __enter__(self):
        if not self.enabled:
            return self
        if _active:
            raise RuntimeError("mc.profiler.profile: another profiler is already recording; "
                               "profilers do not nest")
        _active.append(self)
        self.start_ns = time.perf_counter_ns()
        self._undo = [observe_calls(self._on_op), self._observe_modules()]
        Observers.backward = self._on_backward
        return self

    def __exit__(self, *exc):
        if not self.enabled or not _active or _active[-1] is not self:
            return False
        Observers.backward = None
        stack = self._stack()
        if stack:                    # events an exception left open end here
            self._close(stack[0])
        for undo in reversed(self._undo):
            undo()
        self._undo = []
        _active.pop()
        self.end_ns = time.perf_counter_ns()
        self._roots.clear()
        return False

    def _stack(self):
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def _open(self, name, kind, shapes=None):
        ev = Event(name, kind, threading.get_ident(), shapes)
        self._stack().append(ev)
        ev.start_ns = time.perf_counter_ns()
        return ev

    def _close(self, ev):
        if ev.end_ns:                # already closed, with an event around it that ended first
            return
        ev.end_ns = time.perf_counter_ns()
        stack = self._stack()
        while stack:                 # events left open by an exception close with this one
            top = stack.pop()
            if top is not ev:
                top.end_ns = ev.end_ns
                self._finish(top, stack)
                continue
            break
        self._finish(ev, stack)

    def _finish(self, ev, stack):
        if stack:
            stack[-1].child_ns += ev.duration_ns
            stack[-1].child_bytes += ev.bytes
        self._events.append(ev)

    def _on_op(self, fn, inputs, run):
        shapes = [tuple(t.shape) if t is not None else None for t in inputs] \
            if self.record_shapes else None
        ev = self._open(_op_name(fn), "op", shapes)
        try:
            outputs = run(fn, *inputs)
            ev.self_bytes = _new_bytes(outputs, [t for t in inputs if t is not None])
            return outputs
        finally:
            self._close(ev)

    def _on_backward(self, fn, grads):
        ev = self._open(f"{_op_name(fn)} backward", "backward")
        try:
            gxs = fn.backward(*grads)
            made = _new_bytes(gxs if isinstance(gxs, tuple) else (gxs,),
                              [g for g in grads if g is not None])
            ev.self_bytes = max(made - ev.child_bytes, 0)   # not already counted by its ops
            return gxs
        finally:
            self._close(ev)

    def _module_name(self, m):
        name = self._names.get(id(m))
        if name is None:
            if not any(e.kind == "module" for e in self._stack()):   # an outermost module
                self._roots[id(m)] = m
                for path, sub in m.named_modules():
                    self._names.setdefault(id(sub), f"{path} ({type(sub).__name__})" if path
                                           else type(sub).__name__)
                name = self._names[id(m)]
            else:
                name = type(m).__name__
        return f"nn.Module: {name}"

    def _observe_modules(self):
        """Time every Module call, by swapping Module.__call__ as observe_calls does for ops;
        returns the function that puts it back."""
        run = Module.__call__
        profiler = self

        def observed(m, *args, **kwargs):
            ev = profiler._open(profiler._module_name(m), "module")
            try:
                return run(m, *args, **kwargs)
            finally:
                profiler._close(ev)
        Module.__call__ = observed

        def remove():
            Module.__call__ = run
        return remove

    # --- results ----------------------------------------------------------------------------

    def events(self):
        """Every recorded Event, in the order they ended."""
        return list(self._events)

    def key_averages(self, group_by_input_shape=False, kinds=None):
        """One EventAverage per name (and input shapes with group_by_input_shape), optionally
        only for the given kinds ('op', 'backward', 'module', 'user')."""
        rows = {}
        for ev in self._events:
            if kinds is not None and ev.kind not in kinds:
                continue
            key = (ev.name, str(ev.shapes)) if group_by_input_shape else (ev.name,)
            row = rows.get(key)
            if row is None:
                row = rows[key] = EventAverage(ev.name, ev.kind,
                                               ev.shapes if group_by_input_shape else None)
            row.add(ev)
        total_self = sum(ev.self_ns for ev in self._events)
        return EventList(rows.values(), total_self)

    def export_chrome_trace(self, path):
        """Write the events as Chrome trace JSON (complete 'X' events, microseconds), which
        Perfetto (ui.perfetto.dev) and chrome://tracing open; written atomically."""
        pid = os.getpid()
        tids = {}
        trace = []
        for ev in sorted(self._events, key=lambda e: (e.start_ns, -e.end_ns)):
            tid = tids.setdefault(ev.tid, len(tids))
            args = {"self bytes": ev.self_bytes, "bytes": ev.bytes}
            if ev.shapes is not None:
                args["Input Dims"] = [list(s) if s is not None else None for s in ev.shapes]
            trace.append({"name": ev.name, "cat": ev.kind, "ph": "X", "pid": pid, "tid": tid,
                          "ts": (ev.start_ns - self.start_ns) / 1e3,
                          "dur": ev.duration_ns / 1e3, "args": args})
        trace += [{"name": "thread_name", "ph": "M", "pid": pid, "tid": t,
                   "args": {"name": "main" if t == 0 else f"thread {t}"}}
                  for t in tids.values()]
        doc = {"traceEvents": trace, "displayTimeUnit": "ms",
               "otherData": {"producer": "minicnn.profiler"}}
        return write_atomic(path, json.dumps(doc).encode("utf-8"))


class record_function:
    """`with mc.profiler.record_function("load batch"):` records the block as an event of that
    name (kind 'user') when a profiler is recording, and does nothing otherwise."""

    def __init__(self, name):
        self.name, self.event, self.profiler = str(name), None, None

    def __enter__(self):
        self.profiler = _active[-1] if _active else None
        if self.profiler is not None:
            self.event = self.profiler._open(self.name, "user")
        return self

    def __exit__(self, *exc):
        if self.profiler is not None:
            self.profiler._close(self.event)
        return False


class EventAverage:
    """The events of one name: count, total and self time (ns), bytes (inclusive and self)."""

    def __init__(self, name, kind, shapes=None):
        self.key, self.kind, self.input_shapes = name, kind, shapes
        self.count = self.cpu_time_total_ns = self.self_cpu_time_total_ns = 0
        self.cpu_memory_usage = self.self_cpu_memory_usage = 0

    def add(self, ev):
        self.count += 1
        self.cpu_time_total_ns += ev.duration_ns
        self.self_cpu_time_total_ns += ev.self_ns
        self.cpu_memory_usage += ev.bytes
        self.self_cpu_memory_usage += ev.self_bytes

    # PyTorch's names (microseconds)
    @property
    def cpu_time_total(self):
        return self.cpu_time_total_ns / 1e3

    @property
    def self_cpu_time_total(self):
        return self.self_cpu_time_total_ns / 1e3

    @property
    def cpu_time(self):
        return self.cpu_time_total / max(self.count, 1)

    def __repr__(self):
        return (f"<EventAverage {self.kind} {self.key!r} count={self.count} "
                f"total={self.cpu_time_total:.1f}us self={self.self_cpu_time_total:.1f}us>")


_SORT_KEYS = {
    "self_cpu_time_total": lambda r: r.self_cpu_time_total_ns,
    "cpu_time_total": lambda r: r.cpu_time_total_ns,
    "cpu_time": lambda r: r.cpu_time,
    "count": lambda r: r.count,
    "cpu_memory_usage": lambda r: r.cpu_memory_usage,
    "self_cpu_memory_usage": lambda r: r.self_cpu_memory_usage,
}


class EventList(list):
    """EventAverage rows; table() prints them as torch.profiler's key_averages().table()."""

    def __init__(self, rows, total_self_ns):
        super().__init__(rows)
        self.total_self_ns = total_self_ns

    def table(self, sort_by="self_cpu_time_total", row_limit=100, max_name_column_width=55):
        if sort_by not in _SORT_KEYS:
            raise ValueError(f"table: sort_by must be one of {', '.join(_SORT_KEYS)}, got "
                             f"{sort_by!r}")
        rows = sorted(self, key=_SORT_KEYS[sort_by], reverse=True)
        if row_limit is not None and row_limit >= 0:
            rows = rows[:row_limit]
        shapes = any(r.input_shapes is not None for r in rows)
        total = max(self.total_self_ns, 1)
        head = ["Name", "Self CPU %", "Self CPU", "CPU total %", "CPU total", "CPU time avg",
                "CPU Mem", "Self CPU Mem", "# of Calls"] + (["Input Shapes"] if shapes else [])
        body = []
        for r in rows:
            name = r.key if len(r.key) <= max_name_column_width else \
                r.key[:max_name_column_width - 3] + "..."
            line = [name, f"{100 * r.self_cpu_time_total_ns / total:.2f}%",
                    _time(r.self_cpu_time_total_ns), f"{100 * r.cpu_time_total_ns / total:.2f}%",
                    _time(r.cpu_time_total_ns), _time(r.cpu_time_total_ns / max(r.count, 1)),
                    _bytes(r.cpu_memory_usage), _bytes(r.self_cpu_memory_usage), str(r.count)]
            if shapes:
                line.append(str(r.input_shapes) if r.input_shapes is not None else "")
            body.append(line)
        widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h)
                  for i, h in enumerate(head)]
        rule = "  ".join("-" * w for w in widths)

        def fmt(cells):
            return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(cells, widths)))
        lines = [rule, fmt(head), rule] + [fmt(b) for b in body] + [rule]
        lines.append(f"Self CPU time total: {_time(self.total_self_ns)}")
        return "\n".join(lines) + "\n"

    def __str__(self):
        return self.table()


def _time(ns):
    if ns >= 1e9:
        return f"{ns / 1e9:.3f}s"
    if ns >= 1e6:
        return f"{ns / 1e6:.3f}ms"
    return f"{ns / 1e3:.3f}us"


def _bytes(n):
    for unit, size in (("Gb", 1 << 30), ("Mb", 1 << 20), ("Kb", 1 << 10)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(n)} b"

