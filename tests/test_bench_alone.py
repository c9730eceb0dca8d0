"""bench.alone (each framework alone in a child process) and its `programs` family, in quick mode.
No test asserts a time."""
import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("torch")

import minicnn as mc  # noqa: E402
from minicnn.bench import alone, programs  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("name", sorted(programs.PROGRAMS))
def test_programs_build_from_the_examples_code(name):
    # the models come from examples/*.py's own source: a renamed class there fails here, not in
    # the middle of a long benchmark run
    step, what = programs.PROGRAMS[name](mc, True)
    assert callable(step) and what
    assert alone.CASES[name].family == "programs"


def test_example_defs_reports_a_missing_name():
    with pytest.raises(LookupError, match="NoSuchNet"):
        programs.example_defs("mnist.py", ["Net", "NoSuchNet"], **programs._names(mc))


def test_quick_programs_run_writes_the_table(tmp_path):
    env = {k: v for k, v in os.environ.items()    # what pytest's `import minicnn` set stays here
           if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OPENBLAS_THREAD_TIMEOUT")}
    env["OPENBLAS_L2_SIZE"] = "1048576"            # recorded as the child saw it
    proc = subprocess.run(
        [sys.executable, "-m", "bench.alone", "programs", "--quick", "--only", "cifar10_tutorial",
         "--threads", "1", "--env", "given", "--steps", "2", "--out", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    md = [p for p in os.listdir(tmp_path) if p.endswith(".md")]
    assert len(md) == 1 and md[0].startswith("programs-")
    text = (tmp_path / md[0]).read_text()
    assert "QUICK" in text and text.count("| cifar10_tutorial |") == 1
    assert "## 1 thread, the environment as given" in text
    assert "OPENBLAS_L2_SIZE=1048576" in text and "(minicnn children)" in text
    assert "WARNING" not in text                   # minicnn was not loaded in the torch child
    res = json.loads((tmp_path / md[0].replace(".md", ".json")).read_text())
    runs = res["blocks"][0]["runs"]["cifar10_tutorial"]
    assert [len(r["times"]) for r in runs["minicnn"] + runs["torch"]] == [2, 2]
    assert runs["torch"][0]["env"]["OMP_WAIT_POLICY"] is None
    assert runs["torch"][0]["env"]["GOMP_SPINCOUNT"] is None
    assert runs["minicnn"][0]["env"]["GOMP_SPINCOUNT"] == "3000"   # what `import minicnn` set


def _blocks(monkeypatch, variables, **kw):
    for k in alone.BLAS_KERNEL_VARS:
        monkeypatch.delenv(k, raising=False)
    for k, v in variables.items():
        monkeypatch.setenv(k, v)
    args = alone.argparse.Namespace(**{"env": ["given", "unset"], "threads": [1, 2], **kw})
    return alone._blocks(args)


def test_the_unset_pass_removes_the_openblas_kernel_variables(monkeypatch):
    blocks = _blocks(monkeypatch, {"OPENBLAS_CORETYPE": "Haswell"})
    assert [(b[0], b[3]) for b in blocks] == [("given", 1), ("given", 2), ("unset", 1),
                                               ("unset", 2)]
    assert blocks[0][2]["OPENBLAS_CORETYPE"] == "Haswell"
    assert "OPENBLAS_CORETYPE" not in blocks[2][2] and "unset" in blocks[2][1]


def test_the_unset_pass_is_not_repeated_when_nothing_is_set(monkeypatch):
    blocks = _blocks(monkeypatch, {})
    assert [(b[0], b[3]) for b in blocks] == [("given", 1), ("given", 2)]
    assert "which was not repeated" in blocks[0][1]
    assert [b[0] for b in _blocks(monkeypatch, {}, env=["unset"])] == ["unset", "unset"]


def test_a_case_of_another_family_is_refused():
    with pytest.raises(SystemExit):
        alone.main(["programs", "--only", "lenet5_train_b64"])
