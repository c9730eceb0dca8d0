"""`minicnn train` when training stops on a NaN (issue 23): exit status 1 and one line on stderr
naming the step; the run folder keeps only finite weights, the test measures the last good
checkpoint (or is left out when there is none) and NumPy's overflow warnings stay quiet."""
import json

import numpy as np

from minicnn.train import load_checkpoint
from test_bad_input import minicnn

# the loss of the 5th training step (epoch 2, step 2 at 3 steps per epoch) becomes NaN
NAN_AT_STEP_5 = """
from minicnn.train import trainer as T
_init = T.Trainer.__init__
def init(self, *a, **k):
    _init(self, *a, **k)
    loss, calls = self.loss_fn, [0]
    def flaky(out, y):
        calls[0] += 1
        value = loss(out, y)
        return value * float("nan") if calls[0] == 5 else value
    self.loss_fn = flaky
T.Trainer.__init__ = init
"""


def _stderr_line(proc):
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def test_a_diverging_run_writes_no_checkpoint_and_no_test(tmp_path):
    out = tmp_path / "run"
    proc = minicnn("train", "--optimizer", "sgd", "--lr", "1e6", "--epochs", 2,
                   "--steps-per-epoch", 10, "--quiet", "--out", out)
    assert proc.returncode == 1
    line = _stderr_line(proc)
    assert line.startswith("minicnn: training stopped: loss is nan at epoch 1, step ")
    assert "no checkpoint was written before it" in line
    assert not (out / "model.mc").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test"] is None and "checkpoint" not in summary["files"]
    assert summary["stopped"] in line
    assert "no test result" in proc.stdout and "model.mc" not in proc.stdout


def test_a_nan_after_a_checkpoint_tests_the_last_good_one(tmp_path):
    out = tmp_path / "run"
    proc = minicnn("train", "--epochs", 3, "--steps-per-epoch", 3, "--quiet", "--no-plots",
                   "--out", out, prelude=NAN_AT_STEP_5)
    assert proc.returncode == 1
    line = _stderr_line(proc)
    assert "loss is nan at epoch 2, step 2" in line
    assert f"the last good checkpoint is {out / 'model.mc'}" in line
    saved = load_checkpoint(out / "model.mc")
    assert saved["meta"]["epoch"] == 1
    assert all(np.isfinite(np.asarray(v)).all() for v in saved["model"].values())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test"]["weights"] == "last good checkpoint"
    assert "test accuracy (the last good checkpoint): " in proc.stdout
