"""The `minicnn train | evaluate | predict` command, run as a subprocess (tiny runs)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def minicnn(*args, cwd=None, check=True):
    env = dict(os.environ, NUMBA_NUM_THREADS="1", PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-m", "minicnn", *map(str, args)], cwd=cwd or ROOT,
                          capture_output=True, text=True, env=env, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"minicnn {' '.join(map(str, args))} exited {proc.returncode}:\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One short training run shared by the tests below (2 epochs of 3 batches of digits)."""
    out = tmp_path_factory.mktemp("run") / "run1"
    proc = minicnn("train", "--epochs", 2, "--steps-per-epoch", 3, "--batch-size", 16,
                   "--out", out, "--seed", 3)
    return out, proc


def test_train_writes_run_folder(tiny_run):
    out, proc = tiny_run
    assert "test accuracy:" in proc.stdout
    assert "epoch 2/2" in proc.stdout                        # per-epoch line
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"]["name"] == "lenet5" and summary["data"]["dataset"] == "digits"
    assert 0 <= summary["test"]["accuracy"] <= 1 and summary["epochs_run"] == 2
    assert summary["timing"]["train_seconds"] > 0 and "environment" in summary
    assert len(summary["history"]["history"]["loss"]) == 2
    assert (out / "model.mc").exists() and (out / "history.csv").exists()
    # matplotlib is a dependency: the plots are part of every run folder
    for name in ("curves.png", "lr.png", "confusion_matrix.png", "predictions.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG", name


def test_same_seed_same_losses(tiny_run, tmp_path):
    out, _ = tiny_run
    minicnn("train", "--epochs", 2, "--steps-per-epoch", 3, "--batch-size", 16, "--out",
            tmp_path / "again", "--seed", 3, "--no-plots", "--quiet")
    a = json.loads((out / "summary.json").read_text())["history"]["history"]["loss"]
    b = json.loads((tmp_path / "again" / "summary.json").read_text())["history"]["history"]["loss"]
    assert a == b


def test_evaluate_checkpoint(tiny_run):
    out, _ = tiny_run
    proc = minicnn("evaluate", out / "model.mc", "--json")
    res = json.loads(proc.stdout)
    summary = json.loads((out / "summary.json").read_text())
    assert res["accuracy"] == pytest.approx(summary["test"]["accuracy"])
    assert res["images"] == summary["data"]["test_images"]


def test_predict_npy_and_npz(tiny_run, tmp_path):
    out, _ = tiny_run
    from minicnn.data import Digits
    test = Digits(train=False, image_size=16)
    np.save(tmp_path / "x.npy", test.data[:5])
    proc = minicnn("predict", out / "model.mc", tmp_path / "x.npy", "--top-k", 3, "--output",
                   tmp_path / "p.json")
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 5 and lines[0].split("\t")[1] in [str(d) for d in range(10)]
    rows = json.loads((tmp_path / "p.json").read_text())
    assert len(rows) == 5 and len(rows[0]["top_k"]) == 3
    np.savez(tmp_path / "x.npz", images=(test.data[:2, 0] * 255).astype(np.uint8))  # (N, H, W)
    proc = minicnn("predict", out / "model.mc", tmp_path / "x.npz")
    assert len(proc.stdout.strip().splitlines()) == 2


def test_predict_wrong_shape_is_a_clear_error(tiny_run, tmp_path):
    out, _ = tiny_run
    np.save(tmp_path / "bad.npy", np.zeros((2, 3, 16, 16), np.float32))
    proc = minicnn("predict", out / "model.mc", tmp_path / "bad.npy", check=False)
    assert proc.returncode == 2
    assert "wrong shape" in proc.stderr and "(N, 1, 16, 16)" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_clear_errors(tmp_path):
    proc = minicnn("train", "--model", "resnet19", "--out", tmp_path / "r", check=False)
    assert proc.returncode == 2 and "unknown model 'resnet19'" in proc.stderr
    assert "resnet18" in proc.stderr and "Traceback" not in proc.stderr
    proc = minicnn("train", "--dataset", "mnist", "--data-dir", tmp_path / "nothing", "--out",
                   tmp_path / "m", check=False)
    assert proc.returncode == 2 and str(tmp_path / "nothing") in proc.stderr
    assert "train-images-idx3-ubyte" in proc.stderr
    proc = minicnn("train", "--dataset", "cifar10", "--out", tmp_path / "c", check=False)
    assert proc.returncode == 2 and "--data-dir" in proc.stderr
    bad = tmp_path / "corrupt.mc"
    bad.write_bytes(b"this is not a checkpoint")
    proc = minicnn("evaluate", bad, check=False)
    assert proc.returncode == 2 and "corrupt.mc" in proc.stderr and "Traceback" not in proc.stderr
    proc = minicnn("evaluate", tmp_path / "missing.mc", check=False)
    assert proc.returncode == 2 and "not found" in proc.stderr


def test_train_on_mnist_files_and_shapes(tmp_path):
    from minicnn.data import write_idx
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 24), ("t10k", 8)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz",
                  rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    proc = minicnn("train", "--dataset", "mnist", "--data-dir", tmp_path, "--model", "simple_cnn",
                   "--epochs", 1, "--batch-size", 8, "--out", tmp_path / "m", "--no-plots")
    assert "test accuracy" in proc.stdout
    proc = minicnn("train", "--dataset", "shapes", "--num-samples", 40, "--image-size", 12,
                   "--model", "resnet18_cifar", "--width", 4, "--epochs", 1, "--batch-size", 20,
                   "--optimizer", "sgd", "--augment", "strong", "--val-fraction", 0.25,
                   "--out", tmp_path / "s", "--no-plots", "--quiet")
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["data"]["val_images"] == 10 and summary["model"]["kwargs"]["width"] == 4
    assert "val_accuracy" in summary["history"]["history"]


def test_help_lists_subcommands():
    proc = minicnn("--help")
    for word in ("train", "evaluate", "predict", "bench"):
        assert word in proc.stdout
