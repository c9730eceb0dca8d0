"""What each rank runs in tests/test_distributed.py (started by mpiexec), and the models and data
those tests rebuild in one process for the reference. A scenario saves what it ends with to
OUT/<scenario>_rank<r>.npz; the test compares the ranks with each other and with one process.

    mpiexec -n 2 python tests/_distributed_worker.py OUT scenario [scenario ...]
"""
import sys

import numpy as np

import minicnn as mc

B = 3               # per-rank batch
N_DATA = 24
SAMPLER_SEED = 5


def build(seed, norm="none"):
    """A small float64 conv net; norm: 'none', 'bn' (BatchNorm2d) or 'syncbn' (the BatchNorm2d
    converted to SyncBatchNorm)."""
    mc.manual_seed(seed)
    net = mc.nn.Sequential(mc.nn.Conv2d(2, 3, 3, padding=1), mc.nn.BatchNorm2d(3), mc.nn.ReLU(),
                           mc.nn.Flatten(), mc.nn.Linear(3 * 5 * 5, 3)).double()
    if norm == "none":
        net[1] = mc.nn.Identity()
    return mc.nn.SyncBatchNorm.convert_sync_batchnorm(net) if norm == "syncbn" else net


def data():
    rng = np.random.default_rng(1)
    return rng.standard_normal((N_DATA, 2, 5, 5)), rng.integers(0, 3, N_DATA)


def optimizer(net):
    return mc.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)


def rank_orders(epoch, world):
    """Each rank's sample order for an epoch (what DistributedSampler gives it)."""
    out = []
    for r in range(world):
        s = mc.data.DistributedSampler(range(N_DATA), world, r, shuffle=True, seed=SAMPLER_SEED)
        s.set_epoch(epoch)
        out.append(list(s))
    return out


def state(net):
    return {k: v.numpy().copy() for k, v in net.state_dict().items()}


def loss_of(net, x, y):
    return mc.nn.functional.cross_entropy(net(mc.tensor(x)), mc.tensor(y))


def train(dist, norm, epochs=2):
    """Per-rank batches of B from the sampler, SGD; returns the final state."""
    rank, world = dist.get_rank(), dist.get_world_size()
    net = build(100 + rank, norm)            # different on each rank: the wrap broadcasts
    ddp = mc.nn.parallel.DistributedDataParallel(net, bucket_cap_mb=0.0005)
    opt = optimizer(ddp)
    X, Y = data()
    for epoch in range(epochs):
        order = rank_orders(epoch, world)[rank]
        for k in range(0, len(order), B):
            idx = order[k:k + B]
            opt.zero_grad()
            loss_of(ddp, X[idx], Y[idx]).backward()
            opt.step()
    out = state(net)
    out["n_buckets"] = np.array(len(ddp.bucket_sizes))
    return out


def scenario_plain(dist):
    return train(dist, "none")


def scenario_bn(dist):
    """BatchNorm2d, not synced: its statistics are local, its buffers rank 0's after each
    forward (broadcast_buffers)."""
    return train(dist, "bn", epochs=1)


def scenario_syncbn(dist):
    return train(dist, "syncbn")


def scenario_no_sync(dist, steps=2):
    """Two micro-batches per step, the first under no_sync."""
    rank = dist.get_rank()
    net = build(100 + rank)         # no batch statistics: micro-batches add up exactly
    ddp = mc.nn.parallel.DistributedDataParallel(net)
    opt = optimizer(ddp)
    X, Y = data()
    order = rank_orders(0, dist.get_world_size())[rank]
    differs = []
    for step in range(steps):
        opt.zero_grad()
        first = order[2 * step * B:(2 * step + 1) * B]
        second = order[(2 * step + 1) * B:(2 * step + 2) * B]
        with ddp.no_sync():
            loss_of(ddp, X[first], Y[first]).backward()
        local = net[0].weight.grad.numpy().copy()
        gathered = [mc.zeros_like(net[0].weight.grad) for _ in range(2)]
        dist.all_gather(gathered, net[0].weight.grad)
        differs.append(not np.array_equal(gathered[0].numpy(), gathered[1].numpy()))
        assert np.array_equal(local, net[0].weight.grad.numpy())
        loss_of(ddp, X[second], Y[second]).backward()
        opt.step()
    out = state(net)
    out["local_grads_differed"] = np.array(differs)
    out["synced_backwards"] = np.array(ddp.comm_stats["backwards"])
    return out


class TwoHeads(mc.nn.Module):
    """A trunk and three heads: rank 0 uses head a, rank 1 head b, nobody head c."""

    def __init__(self):
        super().__init__()
        self.trunk = mc.nn.Linear(4, 5)
        self.a, self.b, self.c = mc.nn.Linear(5, 2), mc.nn.Linear(5, 2), mc.nn.Linear(5, 2)

    def forward(self, x, head):
        return getattr(self, head)(self.trunk(x).tanh())


def unused_data():
    rng = np.random.default_rng(2)
    return rng.standard_normal((2, 6, 4)), rng.standard_normal((2, 6, 2))


def scenario_unused(dist):
    rank = dist.get_rank()
    mc.manual_seed(7)
    net = TwoHeads().double()
    ddp = mc.nn.parallel.DistributedDataParallel(net, find_unused_parameters=True)
    X, T = unused_data()
    ((ddp(mc.tensor(X[rank]), "ab"[rank]) - mc.tensor(T[rank])) ** 2).mean().backward()
    out = {f"grad.{k}": p.grad.numpy() for k, p in net.named_parameters() if p.grad is not None}
    # without find_unused_parameters, a parameter left out is reported at the next forward
    strict = mc.nn.parallel.DistributedDataParallel(net)
    for _ in range(2):
        try:
            ((strict(mc.tensor(X[rank]), "a") - mc.tensor(T[rank])) ** 2).mean().backward()
        except RuntimeError as exc:
            out["error"] = np.array(str(exc))
    return out


class MergedOrder(mc.data.Sampler):
    """One process's order that matches the ranks': per step, rank 0's batch then rank 1's."""

    def __init__(self, world=2):
        self.world, self.epoch = world, 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __iter__(self):
        orders = rank_orders(self.epoch, self.world)
        return iter([i for k in range(0, len(orders[0]), B) for o in orders for i in o[k:k + B]])

    def __len__(self):
        return N_DATA


def fit(net, sampler, batch, epochs, initial_epoch=0, callbacks=(), checkpoint=None):
    """Trainer.fit of net (wrapped in DDP under several ranks) from a checkpoint if given;
    returns (trainer, history)."""
    import minicnn.distributed as dist
    opt = optimizer(net)
    if checkpoint is not None:
        ck = mc.train.load_checkpoint(checkpoint)
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
    model = mc.nn.parallel.DistributedDataParallel(net) if dist.get_world_size() > 1 else net
    X, Y = data()
    loader = mc.data.DataLoader(mc.data.TensorDataset(X, Y), batch_size=batch, sampler=sampler)
    trainer = mc.train.Trainer(model, opt, metrics=["accuracy", "f1"])
    history = trainer.fit(loader, epochs=epochs, initial_epoch=initial_epoch, verbose=0,
                          callbacks=list(callbacks))
    return trainer, history


def scenario_trainer(dist):
    """Trainer.fit for two epochs with a checkpoint each epoch, then a run resumed from the
    first epoch's checkpoint."""
    import os
    out_dir = sys.argv[1]
    rank = dist.get_rank()
    path = os.path.join(out_dir, "ck-{epoch}.mc")
    callbacks = [mc.train.ModelCheckpoint(path, monitor="loss", save_best_only=False),
                 mc.train.CSVLogger(os.path.join(out_dir, "history.csv"))]
    sampler = mc.data.DistributedSampler(range(N_DATA), seed=SAMPLER_SEED)
    trainer, history = fit(build(100 + rank), sampler, B, 2, callbacks=callbacks)
    out = {"state": np.concatenate([v.ravel() for v in state(trainer.model.module).values()])}
    for k in ("loss", "accuracy", "f1"):
        out[f"history.{k}"] = np.array(history[k])
    out["callbacks"] = np.array([type(c).__name__ for c in trainer.callbacks])
    dist.barrier()          # rank 0's checkpoints are written
    resumed, _ = fit(build(200 + rank), mc.data.DistributedSampler(range(N_DATA),
                                                                  seed=SAMPLER_SEED),
                     B, 1, initial_epoch=1, checkpoint=path.format(epoch=1))
    out["resumed"] = np.concatenate([v.ravel() for v in state(resumed.model.module).values()])
    return out


def scenario_collectives(dist):
    rank, world = dist.get_rank(), dist.get_world_size()
    out = {}
    t = mc.tensor([1.0 + rank, -2.0 * rank])
    dist.all_reduce(t)
    out["sum"] = t.numpy()
    t = mc.tensor([1.0 + rank, -2.0 * rank])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    out["max"] = t.numpy()
    t = mc.tensor([1.0 + rank, 3.0])
    work = dist.all_reduce(t, op=dist.ReduceOp.AVG, async_op=True)
    work.wait()
    out["avg"] = t.numpy()
    t = mc.arange(4).reshape(2, 2) * (rank + 1)
    dist.broadcast(t, src=world - 1)
    out["broadcast"] = t.numpy()
    parts = [mc.zeros(3, dtype=mc.int64) for _ in range(world)]
    dist.all_gather(parts, mc.tensor([rank, rank * 10, 7]))
    out["gather"] = np.stack([p.numpy() for p in parts])
    dist.barrier()
    out["world"] = np.array([rank, world])
    return out


def scenario_raise(dist):
    """Rank 1 raises while rank 0 waits in a collective: every rank must end, not hang."""
    if dist.get_rank() == 1:
        raise ValueError("rank 1 gives up")
    dist.all_reduce(mc.ones(3))
    return {}


def main(out_dir, scenarios):
    import minicnn.distributed as dist
    dist.init_process_group()
    for name in scenarios:
        result = globals()[f"scenario_{name}"](dist)
        np.savez(f"{out_dir}/{name}_rank{dist.get_rank()}.npz", **result)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
