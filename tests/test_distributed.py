"""Data-parallel training over MPI (issue 20): 2 ranks started by mpiexec in a subprocess, each
with a timeout, so that a rank that dies cannot hang the suite. The ranks run the scenarios of
tests/_distributed_worker.py; here their results are compared with each other and with one
process training on the global batch (float64, the same data order through the sampler)."""
import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np
import pytest

import minicnn as mc

HERE = pathlib.Path(__file__).resolve().parent
WORKER = HERE / "_distributed_worker.py"
_spec = importlib.util.spec_from_file_location("_distributed_worker", WORKER)
W = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(W)

pytest.importorskip("mpi4py", reason='needs mpi4py and an MPI: pip install "minicnn[mpi]"')
from minicnn.distributed.launch import find_mpiexec  # noqa: E402

MPIEXEC = find_mpiexec()
needs_mpiexec = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec found")
TIMEOUT = 120
SCENARIOS = ("collectives", "plain", "bn", "syncbn", "no_sync", "unused", "trainer")
# float64, a few steps: the two sides differ by the order of a few sums
RTOL, ATOL = 1e-11, 1e-13


def one_thread_env():
    env = dict(os.environ, NUMBA_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent), env.get("PYTHONPATH", "")])
    return env


def mpirun(args, n=2, timeout=TIMEOUT):
    return subprocess.run([MPIEXEC, "-n", str(n), sys.executable, *args], env=one_thread_env(),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def ranks_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("ranks")


@pytest.fixture(scope="module")
def results(ranks_dir):
    out = ranks_dir
    if MPIEXEC is None:
        pytest.skip("no mpiexec found")
    proc = mpirun([str(WORKER), str(out), *SCENARIOS])
    assert proc.returncode == 0, proc.stdout + proc.stderr

    def load(name):
        return [dict(np.load(out / f"{name}_rank{r}.npz")) for r in range(2)]
    return load


def reference_train(norm, epochs=2):
    """One process, batches of 2B: rank 0's batch then rank 1's, as the ranks saw them."""
    net = W.build(100, norm)        # rank 0's initial weights (broadcast at wrap)
    opt = W.optimizer(net)
    X, Y = W.data()
    for epoch in range(epochs):
        orders = W.rank_orders(epoch, 2)
        for k in range(0, len(orders[0]), W.B):
            idx = orders[0][k:k + W.B] + orders[1][k:k + W.B]
            opt.zero_grad()
            W.loss_of(net, X[idx], Y[idx]).backward()
            opt.step()
    return W.state(net)


def assert_ranks_identical(ranks, keys=None):
    for k in keys or ranks[0]:
        np.testing.assert_array_equal(ranks[0][k], ranks[1][k], err_msg=k)


@pytest.mark.parametrize("scenario, norm", [("plain", "none"), ("syncbn", "bn")])
def test_two_ranks_equal_one_process_on_the_global_batch(results, scenario, norm):
    """No batch norm, and SyncBatchNorm against BatchNorm2d over the global batch (running
    statistics included)."""
    ranks = results(scenario)
    assert int(ranks[0]["n_buckets"]) > 1            # several buckets really were sent
    assert_ranks_identical(ranks)
    ref = reference_train(norm)
    assert sorted(ref) == sorted(k for k in ranks[0] if k != "n_buckets")
    for k, v in ref.items():
        np.testing.assert_allclose(ranks[0][k], v, rtol=RTOL, atol=ATOL, err_msg=k)


def test_local_batchnorm(results):
    """Plain BatchNorm2d under DDP normalizes with each rank's own batch: the parameters stay
    identical, the running statistics are rank 0's at each forward (broadcast_buffers) plus
    that forward's local update, so they differ from the global batch's."""
    ranks = results("bn")
    assert_ranks_identical(ranks, [k for k in ranks[0] if "running" not in k])
    ref = reference_train("bn", epochs=1)
    assert not np.allclose(ranks[0]["1.weight"], ref["1.weight"], rtol=1e-6)


def test_no_sync_accumulates_locally_then_averages(results):
    ranks = results("no_sync")
    assert_ranks_identical(ranks)
    assert ranks[0]["local_grads_differed"].all()
    assert int(ranks[0]["synced_backwards"]) == 2
    net = W.build(100)
    opt = W.optimizer(net)
    X, Y = W.data()
    orders = W.rank_orders(0, 2)
    for step in range(2):
        opt.zero_grad()
        for micro in (2 * step, 2 * step + 1):
            idx = orders[0][micro * W.B:(micro + 1) * W.B] + \
                orders[1][micro * W.B:(micro + 1) * W.B]
            W.loss_of(net, X[idx], Y[idx]).backward()
        opt.step()
    for k, v in W.state(net).items():
        np.testing.assert_allclose(ranks[0][k], v, rtol=RTOL, atol=ATOL, err_msg=k)


def test_find_unused_parameters(results):
    ranks = results("unused")
    grads = [{k: v for k, v in r.items() if k.startswith("grad.")} for r in ranks]
    assert sorted(grads[0]) == sorted(grads[1])
    assert_ranks_identical(grads)
    assert not any(k.startswith("grad.c.") for k in grads[0])   # no rank used head c
    mc.manual_seed(7)
    net = W.TwoHeads().double()
    X, T = W.unused_data()
    losses = [((net(mc.tensor(X[r]), "ab"[r]) - mc.tensor(T[r])) ** 2).mean() for r in (0, 1)]
    ((losses[0] + losses[1]) / 2).backward()
    for k, p in net.named_parameters():
        if p.grad is not None:
            np.testing.assert_allclose(grads[0][f"grad.{k}"], p.grad.numpy(), rtol=RTOL,
                                       atol=ATOL, err_msg=k)
    message = str(ranks[0]["error"])
    assert "find_unused_parameters=True" in message and "b.weight" in message


def test_trainer_global_metrics_rank_0_files_and_resume(results, ranks_dir):
    ranks = results("trainer")
    assert_ranks_identical(ranks, [k for k in ranks[0] if k != "callbacks"])
    assert "ModelCheckpoint" in ranks[0]["callbacks"] and "CSVLogger" in ranks[0]["callbacks"]
    assert not {"ModelCheckpoint", "CSVLogger"} & set(ranks[1]["callbacks"])
    assert sorted(p.name for p in ranks_dir.glob("ck-*.mc")) == ["ck-1.mc", "ck-2.mc"]
    assert len((ranks_dir / "history.csv").read_text().splitlines()) == 3
    # one process on the global batches, in the ranks' order: the same weights and epoch logs
    trainer, history = W.fit(W.build(100), W.MergedOrder(), 2 * W.B, 2)
    np.testing.assert_allclose(ranks[0]["state"], np.concatenate(
        [v.ravel() for v in W.state(trainer.model).values()]), rtol=RTOL, atol=ATOL)
    for k in ("loss", "accuracy", "f1"):
        np.testing.assert_allclose(ranks[0][f"history.{k}"], history[k], rtol=RTOL, err_msg=k)
    # resumed from epoch 1's checkpoint (model and optimizer), epoch 2 again: the same weights
    np.testing.assert_array_equal(ranks[0]["resumed"], ranks[0]["state"])


def test_collectives(results):
    ranks = results("collectives")
    for r, res in enumerate(ranks):
        np.testing.assert_array_equal(res["sum"], [3.0, -2.0])
        np.testing.assert_array_equal(res["max"], [2.0, 0.0])
        np.testing.assert_array_equal(res["avg"], [1.5, 3.0])
        np.testing.assert_array_equal(res["broadcast"], [[0, 2], [4, 6]])
        np.testing.assert_array_equal(res["gather"], [[0, 0, 7], [1, 10, 7]])
        np.testing.assert_array_equal(res["world"], [r, 2])


@needs_mpiexec
def test_a_rank_that_raises_ends_every_rank(tmp_path):
    start = time.monotonic()
    proc = mpirun([str(WORKER), str(tmp_path), "raise"], timeout=60)
    assert proc.returncode != 0
    assert "rank 1 gives up" in proc.stderr
    assert "aborting every rank" in proc.stderr
    assert time.monotonic() - start < 60


@needs_mpiexec
def test_minicnn_train_nproc_2(tmp_path):
    """`minicnn train --nproc 2` runs itself again under mpiexec: rank 0 writes the run folder,
    whose checkpoint holds the bare model's weights."""
    env = one_thread_env()
    proc = subprocess.run([sys.executable, "-m", "minicnn", "train", "--nproc", "2", "--epochs",
                           "1", "--steps-per-epoch", "3", "--limit-test", "64", "--no-plots",
                           "--quiet", "--out", str(tmp_path)], env=env, cwd=HERE.parent,
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("test accuracy") == 1          # rank 0 alone reports
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["config"]["nproc"] == 2 and summary["test"]["total"] == 64
    ck = mc.train.load_checkpoint(tmp_path / "model.mc")
    assert not any(k.startswith("module.") for k in ck["model"])
