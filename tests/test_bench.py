"""The benchmark harness itself, in quick mode on the CPU. No test asserts a time."""
import copy
import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")

import minicnn as mc  # noqa: E402
from minicnn.bench import registry  # noqa: E402
from minicnn.bench.__main__ import main as bench_main  # noqa: E402
from minicnn.bench.registry import Workload, case  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FAMILY = "zz_benchtest"
CALLS = {}


def _count(name, fn):
    def wrapped():
        CALLS[name] = CALLS.get(name, 0) + 1
        return fn()
    return wrapped


@pytest.fixture
def test_cases():
    """Three throw-away cases: a correct matmul, a wrong kernel, one that raises."""
    CALLS.clear()

    @case(FAMILY, "matmul_ok", tags=("cpu",), shape="(7,5)@(5,3)")
    def matmul_ok(ctx):
        a, b = ctx.array((7, 5)), ctx.array((5, 3))
        ma, mb = ctx.mc(a, requires_grad=True), ctx.mc(b, requires_grad=True)
        ta, tb = ctx.th(a, requires_grad=True), ctx.th(b, requires_grad=True)

        def mc_fb():
            (ma @ mb).sum().backward()
            return ctx.mc_grads(ma, mb)

        def th_fb():
            (ta @ tb).sum().backward()
            return ctx.th_grads(ta, tb)
        return Workload(mc_fwd=lambda: ma @ mb, torch_fwd=lambda: ta @ tb,
                        mc_fwd_bwd=mc_fb, torch_fwd_bwd=th_fb,
                        flops=2 * 7 * 5 * 3, flops_fwd_bwd=3 * 2 * 7 * 5 * 3,
                        bytes=4 * (35 + 15 + 21), extra={"note": "synthetic"})

    @case(FAMILY, "wrong_kernel", tags=("cpu",))
    def wrong_kernel(ctx):
        a = ctx.array((4, 6))
        ma, ta = ctx.mc(a, requires_grad=True), ctx.th(a, requires_grad=True)

        def mc_fb():
            (ma * 2.0).sum().backward()          # wrong: gradient 2 where torch has 3
            return ctx.mc_grads(ma)

        def th_fb():
            (ta * 3.0).sum().backward()
            return ctx.th_grads(ta)
        return Workload(mc_fwd=_count("wrong_mc_fwd", lambda: ma * 2.0 + 1e-3),
                        torch_fwd=_count("wrong_th_fwd", lambda: ta * 2.0),
                        mc_fwd_bwd=_count("wrong_mc_fwd_bwd", mc_fb),
                        torch_fwd_bwd=_count("wrong_th_fwd_bwd", th_fb),
                        atol=1e-5, rtol=1e-4)

    @case(FAMILY, "raises", tags=("cpu",))
    def raises(ctx):
        def boom():
            raise RuntimeError("kernel exploded")
        return Workload(mc_fwd=boom, torch_fwd=lambda: ctx.torch.zeros(3))

    @case(FAMILY, "gpu_only", tags=("gpu",))
    def gpu_only(ctx):  # never selected on the CPU
        raise AssertionError("must not run on cpu")

    yield
    for name in ("matmul_ok", "wrong_kernel", "raises", "gpu_only"):
        registry.unregister(FAMILY, name)


def _run(tmp_path, *only, extra=()):
    out = tmp_path / "results"
    rc = bench_main(["--device", "cpu", "--quick", "--out", str(out), "--only", *only, *extra])
    files = sorted(os.listdir(out))
    (jname,) = [f for f in files if f.endswith(".json")]
    with open(out / jname) as f:
        return rc, json.load(f), out, files


def test_harness_runs_and_gate_catches_wrong_kernel(tmp_path, test_cases, capsys):
    rc, res, out, files = _run(tmp_path, "overhead", FAMILY)
    text = capsys.readouterr().out
    assert rc == 1                      # a WRONG/ERROR case makes the exit status non-zero
    cases = {c["key"]: c for c in res["cases"]}
    assert set(cases) == {"overhead/mul_add_10", f"{FAMILY}/matmul_ok",
                          f"{FAMILY}/wrong_kernel", f"{FAMILY}/raises"}   # gpu_only skipped

    for key in ("overhead/mul_add_10", f"{FAMILY}/matmul_ok"):
        c = cases[key]
        assert c["status"] == "OK", c["message"]
        for ph in ("fwd", "fwd_bwd"):
            p = c["phases"][ph]
            assert p["status"] == "OK"
            for side in ("mc", "torch"):
                assert p[side]["median_s"] > 0 and p[side]["repeats"] >= 3
                assert p[side]["q1_s"] <= p[side]["median_s"] <= p[side]["q3_s"]
                assert p[side]["first_call_s"] > 0
            assert p["ratio"] == pytest.approx(p["mc"]["median_s"] / p["torch"]["median_s"])
            assert p["max_abs_err"] is not None
    mm = cases[f"{FAMILY}/matmul_ok"]["phases"]
    assert mm["fwd"]["mc"]["gflops"] > 0 and 0 < mm["fwd"]["mc"]["frac_sgemm"]
    assert mm["fwd"]["mc"]["gbps"] > 0 and 0 < mm["fwd"]["mc"]["frac_copy"]
    assert cases[f"{FAMILY}/matmul_ok"]["memory"]["mc_peak_bytes"] > 0

    wrong = cases[f"{FAMILY}/wrong_kernel"]
    assert wrong["status"] == "WRONG"
    for ph in ("fwd", "fwd_bwd"):
        assert wrong["phases"][ph]["status"] == "WRONG"
        assert "median_s" not in wrong["phases"][ph]["mc"]      # not timed
        assert wrong["phases"][ph]["ratio"] is None
    assert "worst at" in wrong["phases"]["fwd"]["message"]
    # each side called exactly once: the gate's call, no warm-up, no timing
    assert CALLS == {"wrong_mc_fwd": 1, "wrong_th_fwd": 1,
                     "wrong_mc_fwd_bwd": 1, "wrong_th_fwd_bwd": 1}
    assert "WRONG" in text and "kernel exploded" in text

    err = cases[f"{FAMILY}/raises"]
    assert err["status"] == "ERROR" and "kernel exploded" in err["message"]

    # the markdown table (and, with matplotlib, the plots) next to the JSON
    stem = [f for f in files if f.endswith(".json")][0][:-5]
    assert stem.startswith("cpu-") and stem + ".md" in files
    md = (out / (stem + ".md")).read_text()
    assert "overhead/mul_add_10" in md and "WRONG" in md
    try:
        import matplotlib  # noqa: F401
        assert stem + "-ratio.png" in files and stem + "-ceiling.png" in files
    except ImportError:
        pass


def test_json_has_documented_fields(tmp_path):
    rc, res, _, _ = _run(tmp_path, "overhead", extra=["--no-plots"])
    assert rc == 0
    for k in ("schema", "created", "device", "versions", "git", "settings", "ceilings",
              "import_errors", "cases", "summary"):
        assert k in res
    assert res["device"]["kind"] == "cpu" and res["device"]["cpu_model"]
    for k in ("python", "numpy", "numba", "torch", "minicnn", "cupy"):
        assert k in res["versions"]
    assert "commit" in res["git"]
    st = res["settings"]
    assert st["threads"] >= 1 and st["tf32"] is False and st["quick"] is True
    assert st["thread_pinning"]["torch"] == st["threads"]
    assert res["ceilings"]["sgemm_gflops"] > 0 and res["ceilings"]["copy_gbps"] > 0
    (c,) = res["cases"]
    for k in ("family", "name", "key", "meta", "status", "message", "extra", "phases", "memory",
              "gate"):
        assert k in c
    for k in ("status", "message", "mc", "torch", "ratio", "flops", "bytes", "max_abs_err",
              "max_rel_err"):
        assert k in c["phases"]["fwd"]
    fam = res["summary"]["families"]["overhead"]
    assert fam["geomean_ratio_fwd"] == pytest.approx(c["phases"]["fwd"]["ratio"])
    assert fam["geomean_ratio_fwd_bwd"] == pytest.approx(c["phases"]["fwd_bwd"]["ratio"])


def test_compare_mode(tmp_path, capsys):
    base = {"created": "x", "device": {"name": "cpu0", "kind": "cpu"}, "git": {"commit": "abc"},
            "cases": [{"key": "f/a", "status": "OK", "phases": {"fwd": {
                "status": "OK", "mc": {"median_s": 1.0, "q1_s": 0.99, "q3_s": 1.01},
                "torch": {"median_s": 1.0}}}},
                {"key": "f/b", "status": "OK", "phases": {"fwd": {
                    "status": "OK", "mc": {"median_s": 1.0, "q1_s": 0.99, "q3_s": 1.01},
                    "torch": {"median_s": 1.0}}}},
                {"key": "f/c", "status": "OK", "phases": {"fwd": {
                    "status": "OK", "mc": {"median_s": 1.0, "q1_s": 0.99, "q3_s": 1.01},
                    "torch": {"median_s": 1.0}}}}]}
    new = copy.deepcopy(base)
    new["cases"][0]["phases"]["fwd"]["mc"].update(median_s=0.5, q1_s=0.49, q3_s=0.51)
    new["cases"][1]["phases"]["fwd"]["mc"].update(median_s=2.0, q1_s=1.99, q3_s=2.01)
    new["cases"][2]["phases"]["fwd"]["mc"].update(median_s=1.01)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(base))
    b.write_text(json.dumps(new))
    assert bench_main(["compare", str(a), str(b)]) == 0
    lines = {ln.split()[0]: ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("f/")}
    assert "faster" in lines["f/a"] and "-50.0%" in lines["f/a"]
    assert "slower" in lines["f/b"] and "+100.0%" in lines["f/b"]
    assert "same" in lines["f/c"]


def test_compare_gate_unit():
    from minicnn.bench.harness import compare
    a = np.ones((3, 4), np.float32)
    assert compare([mc.tensor(a)], [a.copy()], 1e-6, 1e-6)[0] is None
    msg, _ = compare([a + 1e-2], [a], 1e-4, 1e-4)
    assert msg and "12/12" in msg
    assert "shape" in compare(a, a[:2], 1, 1)[0]
    assert "None" in compare([None], [a], 1, 1)[0]
    assert compare([None], [None], 1, 1)[0] is None
    nan = a.copy()
    nan[0, 0] = np.nan
    assert "NaN" in compare(nan, a, 1, 1)[0]


def test_compare_tf32_scale_tolerance():
    # TF32 runs: an error that is small against the tensor's largest value passes, a big one not
    from minicnn.bench.harness import TF32_SCALE_TOL, compare
    ref = np.array([100.0, 0.01, -50.0], np.float32)
    close = ref + np.array([0.0, 0.2, 0.0], np.float32)      # 0.2 = 2e-3 of max|ref|
    assert compare(close, ref, 1e-3, 1e-3)[0] is not None
    assert compare(close, ref, 1e-3, 1e-3, TF32_SCALE_TOL)[0] is None
    far = ref + np.array([0.0, 5.0, 0.0], np.float32)        # 5e-2 of max|ref|: a wrong kernel
    assert compare(far, ref, 1e-3, 1e-3, TF32_SCALE_TOL)[0] is not None


def test_minicnn_bench_subcommand(capsys):
    from minicnn.__main__ import main
    assert main(["bench", "--list"]) == 0
    assert "overhead/mul_add_10" in capsys.readouterr().out


@pytest.mark.parametrize("package", ["minicnn.bench", "bench"])
def test_list_with_python_m(package):
    # installed as minicnn.bench; `python -m bench` from the repository root still works (relative
    # imports), and every case module imports under either name
    proc = subprocess.run([sys.executable, "-m", package, "--list"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "overhead/mul_add_10" in proc.stdout and "conv/" in proc.stdout
    assert "failed to import" not in proc.stdout


def test_interrupted_run_still_writes_the_finished_cases(tmp_path):
    # a time limit sends SIGINT (KeyboardInterrupt): the cases measured so far are written
    @case(FAMILY, "interrupts", tags=("cpu",))
    def interrupts(ctx):
        raise KeyboardInterrupt
    try:
        rc, res, _, _ = _run(tmp_path, "overhead", f"{FAMILY}/interrupts",
                             extra=["--no-plots"])
    finally:
        registry.unregister(FAMILY, "interrupts")
    assert rc == 1
    assert [c["key"] for c in res["cases"]] == ["overhead/mul_add_10"]
    assert res["interrupted_before"] == [f"{FAMILY}/interrupts"]


def test_half_cases_pass_their_gates_and_keep_less_for_the_backward(tmp_path):
    """bench/cases/half.py in quick mode: the same-dtype conv against PyTorch's in bfloat16 and
    the autocast ResNet-18 step pass their gates, and the graph keeps fewer bytes in half."""
    rc, res, _, _ = _run(tmp_path, "half/conv3x3_bfloat16",
                         "half/resnet18_cifar_autocast_bfloat16_step")
    assert rc == 0
    for c in res["cases"]:
        assert c["status"] == "OK", (c["key"], c["message"])
        extra = c["extra"]
        half = extra.get("saved_MB_half", extra.get("saved_MB_autocast"))
        assert 0 < half < extra["saved_MB_float32"], extra
