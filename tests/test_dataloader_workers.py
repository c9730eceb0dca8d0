"""mc.utils.data as PyTorch's torch.utils.data: samplers, the DataLoader's arguments, and workers
(threads and processes) that give the same batches as num_workers=0."""
import multiprocessing
import os
import time

import numpy as np
import pytest

import minicnn as mc
from minicnn.utils.data import (BatchSampler, DataLoader, Dataset, RandomSampler,
                                SequentialSampler, SubsetRandomSampler, TensorDataset,
                                WeightedRandomSampler, get_worker_info)
from minicnn.data import ArrayDataset, FakeData, transforms as T


# --- samplers -----------------------------------------------------------------------------------

def test_samplers_give_pytorch_orders():
    ds = list(range(7))
    assert list(SequentialSampler(ds)) == list(range(7)) and len(SequentialSampler(ds)) == 7
    perm = list(RandomSampler(ds, generator=0))
    assert sorted(perm) == list(range(7)) and perm != list(range(7))
    long = list(RandomSampler(ds, num_samples=10, generator=1))     # a permutation, then 3 more
    assert len(long) == 10 and sorted(long[:7]) == list(range(7))
    drawn = list(RandomSampler(ds, replacement=True, num_samples=50, generator=2))
    assert len(drawn) == 50 and set(drawn) <= set(ds) and len(set(drawn)) < 7 + 1
    sub = list(SubsetRandomSampler([10, 20, 30], generator=3))
    assert sorted(sub) == [10, 20, 30]
    w = list(WeightedRandomSampler([0, 0, 1.0, 0], 5, generator=4))
    assert w == [2] * 5
    assert list(BatchSampler(range(5), 2, drop_last=False)) == [[0, 1], [2, 3], [4]]
    assert list(BatchSampler(range(5), 2, drop_last=True)) == [[0, 1], [2, 3]]
    assert len(BatchSampler(range(5), 2, False)) == 3 and len(BatchSampler(range(5), 2, True)) == 2


def test_an_int_generator_draws_a_new_order_each_epoch_repeatably():
    s = RandomSampler(range(20), generator=5)
    a, b = list(s), list(s)
    assert a != b
    s2 = RandomSampler(range(20), generator=5)
    assert [list(s2), list(s2)] == [a, b]


def test_random_sampler_follows_manual_seed():
    mc.manual_seed(1)
    a = list(RandomSampler(range(30)))
    mc.manual_seed(1)
    assert list(RandomSampler(range(30))) == a


def test_sampler_argument_errors():
    with pytest.raises(TypeError, match="replacement"):
        RandomSampler(range(3), replacement=1)
    with pytest.raises(ValueError, match="num_samples"):
        RandomSampler(range(3), num_samples=0)
    with pytest.raises(ValueError, match="batch_size"):
        BatchSampler(range(3), 0, False)
    with pytest.raises(ValueError, match="drop_last"):
        BatchSampler(range(3), 2, None)
    with pytest.raises(ValueError, match="non-negative"):
        WeightedRandomSampler([1.0, -1.0], 2)
    with pytest.raises(ValueError, match="without replacement"):
        WeightedRandomSampler([1.0, 0.0], 2, replacement=False)
    with pytest.raises(TypeError, match="generator"):
        RandomSampler(range(3), generator="seed")


# --- the DataLoader's arguments -----------------------------------------------------------------

def test_loader_with_sampler_batch_sampler_and_no_batching():
    ds = TensorDataset(np.arange(10.0), np.arange(10))
    got = [y.tolist() for _, y in DataLoader(ds, batch_size=3, sampler=[9, 8, 7, 6, 5])]
    assert got == [[9, 8, 7], [6, 5]]
    got = [y.tolist() for _, y in DataLoader(ds, batch_sampler=[[1, 2], [0], [5, 6, 7]])]
    assert got == [[1, 2], [0], [5, 6, 7]]
    singles = list(DataLoader(ds, batch_size=None))
    assert len(singles) == 10 and singles[3][1].shape == () and int(singles[3][1]) == 3
    assert len(DataLoader(ds, batch_size=None)) == 10
    assert len(DataLoader(ds, batch_sampler=[[1, 2], [0]])) == 2


def test_loader_argument_errors():
    ds = TensorDataset(np.arange(4))
    cases = [
        (dict(batch_sampler=[[0]], batch_size=2), ValueError, "batch_sampler option"),
        (dict(batch_sampler=[[0]], shuffle=True), ValueError, "batch_sampler option"),
        (dict(sampler=[0, 1], shuffle=True), ValueError, "mutually exclusive with shuffle"),
        (dict(batch_size=None, drop_last=True), ValueError, "batch_size=None"),
        (dict(batch_size=0), ValueError, "batch_size"),
        (dict(num_workers=-1), ValueError, "num_workers"),
        (dict(prefetch_factor=2), ValueError, "prefetch_factor"),
        (dict(num_workers=1, prefetch_factor=0), ValueError, "prefetch_factor"),
        (dict(persistent_workers=True), ValueError, "persistent_workers"),
        (dict(timeout=-1), ValueError, "timeout"),
        (dict(num_workers=1, prefetch=True), ValueError, "prefetch"),
        (dict(num_workers=1, multiprocessing_context="nonsense"), ValueError, "start method"),
        (dict(num_workers=1, multiprocessing_context=3), TypeError, "multiprocessing_context"),
        (dict(shuffle="yes"), TypeError, "shuffle"),
    ]
    for kwargs, error, match in cases:
        with pytest.raises(error, match=match):
            DataLoader(ds, **kwargs)


def test_pin_memory_and_the_other_pytorch_arguments_are_accepted():
    ds = TensorDataset(np.arange(6.0))
    loader = DataLoader(ds, batch_size=2, num_workers=1, pin_memory=True, persistent_workers=True,
                        prefetch_factor=3, timeout=30, pin_memory_device="", in_order=True,
                        worker_init_fn=lambda i: None, generator=mc.random.Generator(0))
    assert [b[0].tolist() for b in loader] == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]


# --- workers ------------------------------------------------------------------------------------

def _augmented():
    x = np.random.default_rng(0).random((45, 1, 4, 4)).astype(np.float32)
    return ArrayDataset(x, np.arange(45), transform=T.Compose(
        [T.RandomHorizontalFlip(), T.GaussianNoise(0.1)]))


def _epochs(ds, epochs=2, **kwargs):
    mc.manual_seed(7)
    loader = DataLoader(ds, batch_size=8, shuffle=True, **kwargs)
    out = [[(x.numpy().copy(), y.numpy().copy()) for x, y in loader] for _ in range(epochs)]
    return out, mc.rand(1).item()               # and where the framework's stream ended


def _assert_same(a, b):
    (ea, ra), (eb, rb) = a, b
    assert len(ea) == len(eb) and ra == rb
    for batches_a, batches_b in zip(ea, eb):
        assert len(batches_a) == len(batches_b)
        for (xa, ya), (xb, yb) in zip(batches_a, batches_b):
            np.testing.assert_array_equal(ya, yb)
            np.testing.assert_array_equal(xa, xb)


@pytest.mark.parametrize("kwargs", [
    dict(num_workers=1), dict(num_workers=3), dict(num_workers=2, persistent_workers=True),
    dict(num_workers=2, prefetch_factor=1), dict(prefetch=True), dict(prefetch=3)],
    ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
def test_worker_threads_give_the_batches_of_num_workers_0(kwargs):
    ds = _augmented()
    reference = _epochs(ds)
    assert not np.array_equal(reference[0][0][0][0], reference[0][1][0][0])   # epochs differ
    _assert_same(reference, _epochs(ds, **kwargs))


@pytest.mark.parametrize("method", [m for m in ("fork", "spawn", "forkserver")
                                    if m in multiprocessing.get_all_start_methods()])
def test_worker_processes_give_the_batches_of_num_workers_0(method):
    ds = _augmented()
    _assert_same(_epochs(ds), _epochs(ds, num_workers=2, multiprocessing_context=method,
                                      persistent_workers=method != "fork"))


def test_the_generator_argument_decides_order_and_augmentation():
    ds = _augmented()

    def run(seed, **kwargs):
        g = mc.random.Generator(seed)
        return [(x.numpy().copy(), y.tolist())
                for x, y in DataLoader(ds, 9, shuffle=True, generator=g, **kwargs)]

    mc.manual_seed(0)
    a = run(3)
    mc.manual_seed(1)                            # the framework's generator plays no part
    b = run(3, num_workers=2)
    assert [y for _, y in a] == [y for _, y in b]
    assert all(np.array_equal(xa, xb) for (xa, _), (xb, _) in zip(a, b))
    assert [y for _, y in run(4)] != [y for _, y in a]


def test_in_order_false_gives_every_batch():
    class Slow(Dataset):
        def __len__(self):
            return 12

        def __getitem__(self, i):
            time.sleep(0.02 if i < 3 else 0)     # the first batch comes last
            return np.float32(i)

    got = [b.tolist() for b in DataLoader(Slow(), batch_size=3, num_workers=2, in_order=False)]
    assert sorted(v for b in got for v in b) == list(range(12))
    ordered = [b.tolist() for b in DataLoader(Slow(), batch_size=3, num_workers=2)]
    assert ordered == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]]


class _WhoReads(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        info = get_worker_info()
        return np.array([i, -1 if info is None else info.id, -1 if info is None else
                         info.num_workers, os.getpid()])


def test_get_worker_info_and_worker_init_fn():
    started = []
    batches = list(DataLoader(_WhoReads(), batch_size=2, num_workers=2,
                              worker_init_fn=started.append))
    rows = np.concatenate([b.numpy() for b in batches])
    assert rows[:, 0].tolist() == list(range(8))
    assert rows[:, 1].tolist() == [0, 0, 1, 1, 0, 0, 1, 1]        # round-robin, as PyTorch
    assert set(rows[:, 2].tolist()) == {2} and sorted(started) == [0, 1]
    assert get_worker_info() is None
    alone = np.concatenate([b.numpy() for b in DataLoader(_WhoReads(), batch_size=4)])
    assert set(alone[:, 1].tolist()) == {-1}


def test_worker_processes_are_processes():
    rows = np.concatenate([b.numpy() for b in DataLoader(
        _WhoReads(), batch_size=2, num_workers=2, multiprocessing_context="fork")])
    assert os.getpid() not in set(rows[:, 3].tolist()) and len(set(rows[:, 3].tolist())) == 2


class _Broken(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        if i == 5:
            raise KeyError("broken sample 5")
        return np.float32(i)


@pytest.mark.parametrize("kwargs", [dict(num_workers=2),
                                    dict(num_workers=2, multiprocessing_context="fork")],
                         ids=["threads", "processes"])
def test_a_worker_error_is_raised_with_its_traceback(kwargs):
    with pytest.raises(KeyError,
                       match=r"(?s)Caught KeyError in DataLoader worker.*broken sample 5"):
        list(DataLoader(_Broken(), batch_size=2, **kwargs))


def test_worker_init_fn_error_and_a_dead_worker_process():
    def bad_init(worker_id):
        raise ValueError(f"no setup for worker {worker_id}")

    with pytest.raises(ValueError, match="worker_init_fn"):
        list(DataLoader(TensorDataset(np.arange(4)), batch_size=2, num_workers=1,
                        worker_init_fn=bad_init))

    class Dies(Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            os._exit(3)

    with pytest.raises(RuntimeError, match="exited unexpectedly"):
        list(DataLoader(Dies(), batch_size=2, num_workers=1, multiprocessing_context="fork"))


def test_timeout():
    class Stuck(Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            time.sleep(1.0)
            return np.float32(i)

    with pytest.raises(RuntimeError, match="timed out after 0.2 seconds"):
        list(DataLoader(Stuck(), batch_size=1, num_workers=1, timeout=0.2))


def test_workers_stop_when_the_loop_stops():
    import threading
    before = threading.active_count()
    loader = DataLoader(TensorDataset(np.arange(100)), batch_size=1, num_workers=2)
    for i, _ in enumerate(loader):
        if i == 2:
            break
    deadline = time.time() + 5
    while threading.active_count() > before and time.time() < deadline:
        time.sleep(0.05)
    assert threading.active_count() == before
    persistent = DataLoader(TensorDataset(np.arange(10)), batch_size=2, num_workers=2,
                            persistent_workers=True)
    for i, _ in enumerate(persistent):           # a broken epoch, then a whole one
        if i == 1:
            break
    assert [b[0].tolist() for b in persistent] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    del persistent


def test_fakedata_in_workers_matches_and_is_torchvisions():
    ds = FakeData(size=10, image_size=(3, 5, 4), num_classes=4)
    x, y = ds[3]
    assert x.shape == (3, 5, 4) and x.dtype == np.float32 and 0 <= y < 4
    np.testing.assert_array_equal(ds[3][0], x)                   # the same on every read
    assert not np.array_equal(ds[4][0], x)
    assert not np.array_equal(FakeData(10, (3, 5, 4), 4, random_offset=1)[3][0], x)
    batch = next(iter(DataLoader(ds, batch_size=10, num_workers=2)))
    np.testing.assert_array_equal(batch[0].numpy()[3], x)
    assert batch[1].dtype == np.int64 and len(ds) == 10
    with pytest.raises(IndexError):
        ds[10]
    with pytest.raises(ValueError, match="image_size"):
        FakeData(image_size=(3, 4))
