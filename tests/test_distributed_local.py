"""mc.distributed without mpiexec (issue 20): a world of one, the error without MPI, the sampler
against PyTorch's, SyncBatchNorm's conversion, the launcher's arithmetic and bad arguments."""
import sys

import numpy as np
import pytest

import minicnn as mc
import minicnn.distributed as dist
from minicnn.distributed import launch


def test_missing_mpi_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(RuntimeError, match=r'pip install "minicnn\[mpi\]"'):
        dist.init_process_group()
    assert not dist.is_mpi_available()
    assert not dist.is_initialized()


def test_world_of_one_without_a_group():
    assert (dist.get_rank(), dist.get_world_size(), dist.is_initialized()) == (0, 1, False)
    t = mc.tensor([1.0, 2.0])
    dist.all_reduce(t)
    dist.broadcast(t, src=0)
    out = [mc.zeros(2)]
    dist.all_gather(out, t)
    np.testing.assert_array_equal(out[0].numpy(), [1.0, 2.0])
    assert dist.all_reduce(t, async_op=True).wait()
    dist.barrier()
    with pytest.raises(RuntimeError, match="init_process_group"):
        dist.get_backend()


def test_bad_arguments():
    t = mc.tensor([1.0])
    with pytest.raises(ValueError, match="op must be one of"):
        dist.all_reduce(t, op="mean")
    with pytest.raises(TypeError, match="expected a Tensor"):
        dist.all_reduce(np.ones(2))
    with pytest.raises(ValueError, match="tensor_list has 2 tensors for a world of 1"):
        dist.all_gather([mc.zeros(1), mc.zeros(1)], t)
    with pytest.raises(ValueError, match="src=1 is not a rank"):
        dist.broadcast(t, src=1)
    with pytest.raises(ValueError, match="backend must be"):
        dist.init_process_group(backend="gloo")
    with pytest.raises(ValueError, match="init_method and store"):
        dist.init_process_group(init_method="tcp://127.0.0.1:23456")
    ddp = mc.nn.parallel.DistributedDataParallel
    with pytest.raises(TypeError, match="expected an nn.Module"):
        ddp(lambda x: x)
    with pytest.raises(ValueError, match="bucket_cap_mb"):
        ddp(mc.nn.Linear(2, 2), bucket_cap_mb=0)


def test_ddp_in_a_world_of_one_is_the_module():
    mc.manual_seed(0)
    net = mc.nn.Linear(3, 2)
    ref = mc.nn.Linear(3, 2)
    ref.load_state_dict(net.state_dict())
    ddp = mc.nn.parallel.DistributedDataParallel(net)
    x = mc.randn(4, 3)
    ddp(x).sum().backward()
    ref(x).sum().backward()
    np.testing.assert_array_equal(net.weight.grad.numpy(), ref.weight.grad.numpy())
    assert list(ddp.state_dict()) == ["module.weight", "module.bias"]
    with ddp.no_sync():
        assert not ddp.require_backward_grad_sync
    assert ddp.require_backward_grad_sync


def test_buckets_in_reverse_order_and_capped():
    from minicnn.nn.parallel.distributed import _make_buckets
    params = [mc.nn.Parameter(mc.zeros(n)) for n in (300_000, 10, 10, 400_000, 5)]
    # first bucket at most 1 MiB (262,144 float32), then 2 MiB
    sizes = [[p.numel() for p in b.params] for b in _make_buckets(params[::-1], 2 << 20)]
    assert sizes == [[5], [400_000, 10, 10], [300_000]]


@pytest.mark.parametrize("n, replicas, drop_last", [(10, 3, False), (10, 3, True), (2, 4, False),
                                                    (12, 4, True), (7, 2, False)])
def test_distributed_sampler_splits_as_pytorch(n, replicas, drop_last):
    shares = [list(mc.data.DistributedSampler(range(n), replicas, r, shuffle=False,
                                              drop_last=drop_last)) for r in range(replicas)]
    assert len({len(s) for s in shares}) == 1
    torch_data = pytest.importorskip("torch.utils.data")
    want = [list(torch_data.DistributedSampler(range(n), replicas, r, shuffle=False,
                                               drop_last=drop_last)) for r in range(replicas)]
    assert shares == want


def test_distributed_sampler_shuffles_by_epoch_alike_on_every_rank():
    a = mc.data.DistributedSampler(range(20), 2, 0, seed=3)
    b = mc.data.DistributedSampler(range(20), 2, 1, seed=3)
    first = list(a) + list(b)
    assert sorted(first) == list(range(20))
    assert list(a) == list(mc.data.DistributedSampler(range(20), 2, 0, seed=3))
    a.set_epoch(1)
    assert list(a) != first[:10]
    with pytest.raises(ValueError, match="invalid rank 2"):
        mc.data.DistributedSampler(range(4), 2, 2)
    with pytest.raises(ValueError, match="num_replicas should be a positive integer"):
        mc.data.DistributedSampler(range(4), 0, 0)


def test_sync_batchnorm_alone_is_batchnorm_and_converts():
    mc.manual_seed(0)
    net = mc.nn.Sequential(mc.nn.Conv2d(2, 3, 3), mc.nn.BatchNorm2d(3),
                           mc.nn.Sequential(mc.nn.BatchNorm2d(3, momentum=None)))
    ref = mc.nn.Sequential(mc.nn.Conv2d(2, 3, 3), mc.nn.BatchNorm2d(3),
                           mc.nn.Sequential(mc.nn.BatchNorm2d(3, momentum=None)))
    ref.load_state_dict(net.state_dict())
    weight = net[1].weight
    sync = mc.nn.SyncBatchNorm.convert_sync_batchnorm(net)
    assert isinstance(sync[1], mc.nn.SyncBatchNorm) and isinstance(sync[2][0],
                                                                   mc.nn.SyncBatchNorm)
    assert sync[1].weight is weight and sync[2][0].momentum is None
    x = mc.randn(4, 2, 6, 6)
    np.testing.assert_array_equal(sync(x).numpy(), ref(x).numpy())
    for k, v in ref.state_dict().items():
        np.testing.assert_array_equal(sync.state_dict()[k].numpy(), v.numpy())


def test_launcher_arithmetic(monkeypatch):
    assert launch.thread_share(2, cpus=2) == 1
    assert launch.thread_share(3, cpus=16) == 5
    assert launch.thread_share(4, cpus=2) == 1
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS",
                "OMPI_COMM_WORLD_LOCAL_SIZE"):
        monkeypatch.delenv(var, raising=False)
    assert launch.world_size_from_env() == 1
    monkeypatch.setenv("PMI_SIZE", "4")
    assert launch.world_size_from_env() == 4 and launch.local_size_from_env() == 4
    monkeypatch.setenv("MPI_LOCALNRANKS", "2")
    assert launch.local_size_from_env() == 2


def test_cli_helpers(monkeypatch):
    from minicnn.cli import distributed as cli_dist
    from minicnn.cli.common import CLIError
    assert cli_dist.per_rank_batch(32, 2) == 16
    with pytest.raises(CLIError, match="--batch-size 33 is the global batch"):
        cli_dist.per_rank_batch(33, 2)
    monkeypatch.setenv("PMI_SIZE", "2")
    args = type("Args", (), {"nproc": 3})()
    with pytest.raises(CLIError, match="--nproc 3, but mpiexec started 2 processes"):
        cli_dist.relaunch_if_asked(args)
    args.nproc = 2
    assert cli_dist.relaunch_if_asked(args) is None
