"""mc.profiler: per-op (forward and backward apart) and per-module events, the table, the Chrome
trace, and nothing left installed when it is off."""
import json
import threading

import numpy as np
import pytest

import minicnn as mc
import minicnn.nn.functional as F
from minicnn import nn
from minicnn.autograd.function import Function, Observers
from minicnn.nn.module import Module
from minicnn.profiler import profile


def _counts(prof, kind):
    return {r.key: r.count for r in prof.key_averages(kinds=(kind,))}


def test_ops_forward_and_backward_are_counted_apart():
    a = mc.randn(10, requires_grad=True)
    b, c = mc.randn(10), mc.randn(10)
    with profile() as prof:
        y = a * b + c
        y.sum().backward()
    # forward: Mul, Add, Sum; backward: Sum's spread (Reshape, BroadcastTo), Mul's gy * b
    assert _counts(prof, "op") == {"Mul": 2, "Add": 1, "Sum": 1, "Reshape": 1, "BroadcastTo": 1}
    back = _counts(prof, "backward")
    assert back == {"Sum backward": 1, "Add backward": 1, "Mul backward": 1}
    # the forward Mul, and the Mul of Mul's backward (gy * b), recorded inside "Mul backward"
    events = prof.events()
    mul_back = next(e for e in events if e.name == "Mul backward")
    inside = [e for e in events if e.kind == "op" and
              mul_back.start_ns <= e.start_ns and e.end_ns <= mul_back.end_ns]
    assert any(e.name == "Mul" for e in inside)
    assert mul_back.child_ns == sum(e.duration_ns for e in inside)


def test_self_time_excludes_nested_events_and_bytes_count_new_arrays():
    x = mc.randn(4, 8, requires_grad=True)
    with profile() as prof:
        y = (x * 2.0).reshape(32)
    for e in prof.events():
        assert 0 <= e.self_ns <= e.duration_ns
    by_name = {e.name: e for e in prof.events()}
    assert by_name["Mul"].self_bytes == 4 * 8 * 4       # a new float32 array
    assert by_name["Reshape"].self_bytes == 0            # a view of its input
    assert y.shape == (32,)


def test_modules_are_named_by_their_path_and_hold_their_ops():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Sequential(nn.Linear(8, 2)))
    with profile() as prof:
        model(mc.randn(3, 4))
    mods = _counts(prof, "module")
    assert mods == {"nn.Module: Sequential": 1, "nn.Module: 0 (Linear)": 1,
                    "nn.Module: 1 (ReLU)": 1, "nn.Module: 2 (Sequential)": 1,
                    "nn.Module: 2.0 (Linear)": 1}
    events = prof.events()
    root = next(e for e in events if e.name == "nn.Module: Sequential")
    inner = next(e for e in events if e.name == "nn.Module: 2.0 (Linear)")
    assert root.start_ns <= inner.start_ns and inner.end_ns <= root.end_ns
    linear_ops = [e for e in events if e.name == "LinearOp"]
    assert len(linear_ops) == 2
    assert inner.start_ns <= linear_ops[-1].start_ns <= linear_ops[-1].end_ns <= inner.end_ns
    assert inner.child_ns == linear_ops[-1].duration_ns
    # the outer module's children are its three direct submodules
    children = [e for e in events if e.name in ("nn.Module: 0 (Linear)", "nn.Module: 1 (ReLU)",
                                                "nn.Module: 2 (Sequential)")]
    assert root.child_ns == sum(e.duration_ns for e in children)


def test_off_leaves_nothing_installed_also_after_an_error():
    plain_call, plain_module_call = Function.__call__, Module.__call__
    with pytest.raises(ValueError, match="boom"):
        with profile():
            mc.randn(3) * 2
            raise ValueError("boom")
    assert Function.__call__ is plain_call
    assert Observers.backward is None
    assert Module.__call__ is plain_module_call
    with profile() as prof:
        pass
    assert prof.events() == []
    with profile(enabled=False) as prof:
        mc.randn(3) * 2
    assert prof.events() == []
    assert Function.__call__ is plain_call


def test_profilers_do_not_nest():
    with profile():
        with pytest.raises(RuntimeError, match="already recording"):
            with profile():
                pass
    assert Observers.backward is None


def test_a_module_that_raises_leaves_no_open_event_behind():
    class Boom(nn.Module):
        def forward(self, x):
            x = x * 2
            raise RuntimeError("inside")

    with profile() as prof:
        with pytest.raises(RuntimeError):
            Boom()(mc.randn(2))
        mc.randn(2) + 1
    add = next(e for e in prof.events() if e.name == "Add")
    boom = next(e for e in prof.events() if e.kind == "module")
    assert boom.end_ns <= add.start_ns     # closed, not the parent of the later op


def test_other_threads_are_recorded_on_their_own_track():
    def work():
        (mc.randn(5) * 3).sum()

    with profile() as prof:
        t = threading.Thread(target=work)
        t.start()
        t.join()
        mc.randn(5) + 1
    tids = {e.tid for e in prof.events()}
    assert len(tids) == 2


def test_table_and_chrome_trace_of_a_resnet18_step(tmp_path):
    mc.manual_seed(0)
    model = mc.models.resnet18(num_classes=10, cifar=True, width=8)
    x, y = mc.randn(2, 3, 16, 16), mc.tensor(np.array([1, 2]))
    F.cross_entropy(model(x), y).backward()           # warm-up (JIT compilation)
    model.zero_grad()
    with profile() as prof:
        F.cross_entropy(model(x), y).backward()
    rows = prof.key_averages()
    top = sorted(rows, key=lambda r: r.self_cpu_time_total_ns, reverse=True)[:5]
    assert {"Conv2d", "Conv2dGradInput", "Conv2dGradWeight"} & {r.key for r in top}
    counts = {r.key: r.count for r in rows}
    assert counts["Conv2d"] == 20 and counts["Conv2d backward"] == 20
    assert counts["nn.Module: layer1.0.conv1 (Conv2d)"] == 1
    table = rows.table(row_limit=8)
    lines = table.splitlines()
    assert lines[1].split()[:3] == ["Name", "Self", "CPU"]
    assert len(lines) == 8 + 5 and lines[-1].startswith("Self CPU time total:")
    assert top[0].key in lines[3]
    with pytest.raises(ValueError, match="sort_by"):
        rows.table(sort_by="cuda_time")

    path = prof.export_chrome_trace(tmp_path / "trace.json")
    doc = json.loads(open(path).read())
    spans = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    assert len(spans) == len(prof.events())
    assert {e["cat"] for e in spans} == {"op", "backward", "module"}
    for e in spans:
        assert e["ts"] >= 0 and e["dur"] >= 0 and isinstance(e["tid"], int)
    convs = [e for e in spans if e["name"] == "Conv2d"]
    assert convs[0]["args"]["Input Dims"][0] == [2, 3, 16, 16]
    root = next(e for e in spans if e["name"] == "nn.Module: ResNet")
    for e in spans:    # every forward event of the model lies inside the model's span
        if e["cat"] == "module":
            assert root["ts"] <= e["ts"] and e["ts"] + e["dur"] <= root["ts"] + root["dur"] + 1e-3


def test_record_function_marks_a_block_only_while_profiling():
    from minicnn.profiler import record_function
    with record_function("outside"):     # no profiler: nothing, no error
        mc.randn(2) * 2
    with profile() as prof:
        with record_function("my block"):
            mc.randn(2) * 2
    block = next(e for e in prof.events() if e.name == "my block")
    mul = next(e for e in prof.events() if e.name == "Mul")
    assert block.kind == "user" and block.child_ns == mul.duration_ns
    assert [e.name for e in prof.events()].count("outside") == 0


def test_train_profile_writes_the_trace_and_the_table(tmp_path):
    from minicnn.cli import main
    out = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--steps-per-epoch", "4", "--batch-size", "16",
                 "--limit-test", "32", "--no-plots", "--quiet", "--profile", "2",
                 "--out", str(out)]) == 0
    doc = json.loads((out / "trace.json").read_text())
    names = {e["name"] for e in doc["traceEvents"] if e["ph"] == "X"}
    assert {"Conv2d", "Conv2d backward", "nn.Module: LeNet5"} <= names
    modules = [e for e in doc["traceEvents"] if e["name"] == "nn.Module: LeNet5"]
    assert len(modules) == 2                  # two steps profiled, after one warm-up step
    table = (out / "profile.txt").read_text()
    assert table.startswith("minicnn.profiler: 2 training step(s) after 1 warm-up step(s)")
    assert "Conv2d" in table and "Self CPU time total" in table
    summary = json.loads((out / "summary.json").read_text())
    assert summary["files"]["profile_trace"] == "trace.json"
    assert main(["train", "--profile", "0", "--out", str(tmp_path / "bad")]) == 2


def test_profile_callback_close_removes_the_hooks_after_an_error(tmp_path):
    from minicnn.train import Profile
    plain = Function.__call__
    cb = Profile(5, tmp_path / "trace.json", tmp_path / "profile.txt", skip=1)
    cb.on_train_begin()
    assert Function.__call__ is plain          # the warm-up step is not recorded
    cb.on_batch_end(1)
    assert Function.__call__ is not plain      # recording from the second step on
    cb.close()                                 # fit raised: no on_train_end
    assert Function.__call__ is plain and Observers.backward is None
    assert not (tmp_path / "trace.json").exists()
    with pytest.raises(ValueError, match="steps must be positive"):
        Profile(0, tmp_path / "t.json")


def test_leaving_the_profiler_inside_a_module_records_each_event_once():
    class Inner(nn.Module):
        def forward(self, x):
            prof.__exit__(None, None, None)      # the profile ends inside this call
            return x * 2

    plain = Function.__call__, Module.__call__
    prof = profile()
    prof.__enter__()
    Inner()(mc.randn(2))
    names = [e.name for e in prof.events()]
    assert names == ["nn.Module: Inner"]
    assert (Function.__call__, Module.__call__) == plain and Observers.backward is None
