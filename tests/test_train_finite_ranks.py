"""The Trainer's weights check under data-parallel training (issue 23): a check that stopped
only the rank that saw a NaN would leave the others waiting in their next collective, so the
ranks agree on it. Rank 1 alone gets a NaN weight; both ranks stop at the same step."""
import os
import subprocess
import sys
import textwrap

import pytest

from minicnn.distributed.launch import find_mpiexec

MPIEXEC = find_mpiexec()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WORKER = textwrap.dedent('''
    import sys
    import numpy as np
    import minicnn as mc
    import minicnn.distributed as dist

    class Net(mc.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = mc.nn.Linear(4, 3)
            self.spare = mc.nn.Parameter(mc.zeros(2))

        def forward(self, x):
            return self.fc(x) + 0 * self.spare.sum()

    dist.init_process_group()
    rank = dist.get_rank()
    mc.manual_seed(0)
    net = Net()
    calls = [0]

    def loss(out, y):
        calls[0] += 1
        if calls[0] == 3 and rank == 1:     # the last step of epoch 1, on rank 1 only
            with mc.no_grad():
                net.spare.array[0] = float("nan")
        return mc.nn.functional.cross_entropy(out, y)

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((12, 4)), rng.integers(0, 3, 12)
    ds = mc.data.TensorDataset(x, y)
    loader = mc.data.DataLoader(ds, batch_size=2, sampler=mc.data.DistributedSampler(ds))
    opt = mc.optim.SGD(net.parameters(), lr=0.1)
    trainer = mc.train.Trainer(mc.nn.parallel.DistributedDataParallel(net.double()), opt,
                               loss=loss)
    history = trainer.fit(loader, epochs=3, verbose=0)
    with open(f"{sys.argv[1]}/rank{rank}.txt", "w") as f:
        f.write(f"{len(history.epoch)}|{trainer.global_step}|{history.stopped}")
    dist.destroy_process_group()
''')


@pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec found")
def test_every_rank_stops_when_one_ranks_weights_go_nan(tmp_path):
    (tmp_path / "worker.py").write_text(WORKER)
    env = dict(os.environ, NUMBA_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([MPIEXEC, "-n", "2", sys.executable, str(tmp_path / "worker.py"),
                           str(tmp_path)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ends = [(tmp_path / f"rank{r}.txt").read_text().split("|") for r in (0, 1)]
    for epochs, steps, stopped in ends:
        assert (epochs, steps) == ("0", "3")        # stopped at the end of epoch 1, together
        assert "NaN or inf in the weights" in stopped and "epoch 1, step 3 of 3" in stopped
    assert "(on another rank)" in ends[0][2] and "(spare)" in ends[1][2]
