"""Temporary files of atomic writes (issue 23): a writer killed mid-write leaves its temporary
file; the next save to the same path removes those of dead writers, never a live writer's."""
import os
import signal
import subprocess
import sys
import time

import minicnn as mc

# A child that starts an atomic write of argv[1] and stays inside it (its temporary file exists)
_BLOCKED_WRITER = """
import sys, time
from minicnn.fileio import write_atomic

def slow(f):
    f.write(b"partial")
    f.flush()
    print("writing", flush=True)
    time.sleep(600)

write_atomic(sys.argv[1], slow)
"""

# A child that saves a checkpoint to argv[1] over and over, as a training loop does
_SAVING_LOOP = """
import sys
import minicnn as mc
state = {"w": mc.randn(256, 256)}
print("saving", flush=True)
while True:
    mc.save(state, sys.argv[1])
"""


def _temporaries(path):
    folder, name = os.path.split(path)
    return sorted(f for f in os.listdir(folder) if f.startswith("." + name + ".")
                  and f.endswith(".tmp"))


def _start(code, path, ready):
    child = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE,
                             text=True)
    assert child.stdout.readline().strip() == ready
    return child


def _kill(child):
    child.send_signal(signal.SIGKILL)
    child.wait()


def test_the_next_save_removes_the_temporaries_of_killed_writers(tmp_path):
    path = tmp_path / "model.ckpt"
    left = []
    for _ in range(3):   # each write first removes what the previous killed writer left
        _kill(_start(_BLOCKED_WRITER, path, "writing"))
        left.append(_temporaries(path))
    assert [len(t) for t in left] == [1, 1, 1] and len({t[0] for t in left}) == 3
    live = _start(_BLOCKED_WRITER, path, "writing")
    try:
        (live_tmp,) = _temporaries(path)
        mc.save({"x": mc.ones(2)}, path)
        assert _temporaries(path) == [live_tmp]          # the live writer's file stays
        assert mc.load(path)["x"].tolist() == [1.0, 1.0]
    finally:
        _kill(live)
    mc.save({"x": mc.ones(2)}, path)
    assert _temporaries(path) == []


def test_repeated_kills_of_a_saving_loop_leave_nothing_behind(tmp_path):
    path = tmp_path / "loop.ckpt"
    for i in range(6):
        child = _start(_SAVING_LOOP, path, "saving")
        time.sleep(0.05 + 0.07 * i)                      # killed at different points
        _kill(child)
    mc.save({"x": mc.zeros(1)}, path)
    assert _temporaries(path) == []
    assert mc.load(path)["x"].tolist() == [0.0]


def test_other_targets_temporaries_are_left_alone(tmp_path):
    path, other = tmp_path / "a.ckpt", tmp_path / "a.ckpt.bak"
    _kill(_start(_BLOCKED_WRITER, other, "writing"))
    mc.save({}, path)
    assert len(_temporaries(other)) == 1
