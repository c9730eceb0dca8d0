"""mc.data: datasets, DataLoader, loaders for files the tests write, clear errors."""
import gzip

import numpy as np
import pytest

import minicnn as mc
from minicnn.data import (CIFAR10, MNIST, ArrayDataset, ConcatDataset, CorruptDatasetError,
                          DataLoader, DatasetNotFoundError, Digits, FashionMNIST, Shapes, Subset,
                          TensorDataset, default_collate, random_split, read_idx,
                          write_cifar10_batch, write_idx)


# --- datasets and loaders -----------------------------------------------------------------------

def test_tensor_dataset_and_subset():
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    y = np.arange(10)
    ds = TensorDataset(x, mc.tensor(y))
    assert len(ds) == 10
    xi, yi = ds[3]
    assert xi.tolist() == [6.0, 7.0] and int(yi) == 3
    sub = Subset(ds, [7, 2])
    assert len(sub) == 2 and int(sub[0][1]) == 7
    with pytest.raises(ValueError, match="Size mismatch"):
        TensorDataset(x, y[:5])


def test_random_split_is_a_partition_and_seeded():
    ds = TensorDataset(np.arange(10))
    a, b = random_split(ds, [7, 3], generator=0)
    got = sorted(int(a[i][0]) for i in range(7)) + sorted(int(b[i][0]) for i in range(3))
    assert sorted(got) == list(range(10))
    a2, _ = random_split(ds, [7, 3], generator=0)
    assert a.indices.tolist() == a2.indices.tolist()
    f1, f2 = random_split(ds, [0.5, 0.5], generator=1)
    assert len(f1) == len(f2) == 5
    with pytest.raises(ValueError, match="sum of input lengths"):
        random_split(ds, [4, 4])


def test_concat_dataset():
    c = ConcatDataset([TensorDataset(np.arange(3)), TensorDataset(np.arange(10, 12))])
    assert len(c) == 5 and int(c[3][0]) == 10 and int(c[-1][0]) == 11


@pytest.mark.parametrize("prefetch", [False, True])
def test_dataloader_batches_shuffle_drop_last(prefetch):
    ds = TensorDataset(np.arange(10, dtype=np.float32)[:, None], np.arange(10))
    dl = DataLoader(ds, batch_size=4, prefetch=prefetch)
    sizes = [len(y) for _, y in dl]
    assert sizes == [4, 4, 2] and len(dl) == 3
    x, y = next(iter(dl))
    assert isinstance(x, mc.Tensor) and y.dtype == np.int64 and y.tolist() == [0, 1, 2, 3]
    dl = DataLoader(ds, batch_size=4, drop_last=True, shuffle=True, prefetch=prefetch)
    seen = np.concatenate([y.numpy() for _, y in dl])
    assert len(dl) == 2 and len(seen) == 8 and len(set(seen.tolist())) == 8
    assert seen.tolist() != sorted(seen.tolist())          # shuffled (p of sorted ~ 1e-5)


def test_shuffle_follows_manual_seed_and_prefetch_matches():
    aug = mc.data.transforms.GaussianNoise(0.1)
    ds = ArrayDataset(np.zeros((20, 1, 2, 2), np.float32), np.arange(20), transform=aug)

    def run(prefetch):
        mc.manual_seed(3)
        return [(x.numpy().copy(), y.numpy().copy())
                for x, y in DataLoader(ds, 6, shuffle=True, prefetch=prefetch)]

    a, b, c = run(False), run(False), run(True)
    for (xa, ya), (xb, yb), (xc, yc) in zip(a, b, c):
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yc)               # same batches with a thread
        np.testing.assert_array_equal(xa, xc)               # and the same augmentation draws
    mc.manual_seed(4)
    other = [y.numpy() for _, y in DataLoader(ds, 6, shuffle=True)]
    assert any((o != y).any() for o, (_, y) in zip(other, a))


def test_dataloader_collate_fn_and_item_path():
    class Plain(mc.data.Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return {"x": np.full(3, i, np.float32), "y": i}

    batch = next(iter(DataLoader(Plain(), batch_size=5)))
    assert batch["x"].shape == (5, 3) and batch["y"].tolist() == [0, 1, 2, 3, 4]
    seen = []
    out = next(iter(DataLoader(Plain(), batch_size=2, collate_fn=lambda b: seen.append(b) or 7)))
    assert out == 7 and len(seen[0]) == 2
    with pytest.raises(RuntimeError, match="different shapes"):
        default_collate([np.zeros(2), np.zeros(3)])


def test_prefetch_propagates_errors_and_stops_on_break():
    class Boom(mc.data.Dataset):
        def __len__(self):
            return 8

        def __getitem__(self, i):
            if i == 5:
                raise KeyError("broken sample 5")
            return np.float32(i)

    with pytest.raises(KeyError, match="broken sample 5"):
        list(DataLoader(Boom(), batch_size=2, prefetch=True))
    ds = TensorDataset(np.arange(100))
    for i, _ in enumerate(DataLoader(ds, batch_size=1, prefetch=2)):
        if i == 2:
            break                                           # the worker thread must stop


def test_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(TensorDataset(np.arange(3)), batch_size=0)


def test_digits_split_and_values():
    tr, te = Digits(train=True), Digits(train=False)
    assert len(tr) + len(te) == 1797 and tr.data.shape[1:] == (1, 8, 8)
    assert tr.data.dtype == np.float32 and 0 <= tr.data.min() and tr.data.max() <= 1
    assert set(np.unique(te.targets).tolist()) == set(range(10)) and tr.num_classes == 10
    assert abs(len(te) - 360) <= 5                         # stratified 20%
    assert np.array_equal(Digits(train=False).targets, te.targets)     # a fixed split
    big = Digits(train=False, image_size=16)
    assert big.data.shape[1:] == (1, 16, 16)
    # first shipped row is a '0'
    x, y = mc.data.load_digits_arrays()
    assert x.shape == (1797, 8, 8) and int(y[0]) == 0 and int(x.max()) == 16


def test_shapes_deterministic_and_balanced():
    a = Shapes(50, image_size=16, seed=7)
    b = Shapes(50, image_size=16, seed=7)
    c = Shapes(50, image_size=16, seed=7, train=False)
    np.testing.assert_array_equal(a.data, b.data)
    assert not np.array_equal(a.data, c.data)
    assert a.data.shape == (50, 3, 16, 16) and a.data.dtype == np.float32
    assert np.bincount(a.targets).tolist() == [10] * 5
    assert 0 <= a.data.min() and a.data.max() <= 1
    grey = Shapes(10, image_size=12, channels=1, classes=("circle", "ring"))
    assert grey.data.shape == (10, 1, 12, 12) and grey.num_classes == 2
    with pytest.raises(ValueError, match="unknown shape"):
        Shapes(4, classes=("circle", "blob"))


def test_shapes_are_drawn():
    # a noiseless circle: the centre pixel has the foreground colour, a corner the background
    x, y = mc.data.make_shapes(20, 24, classes=("circle",), seed=0, noise=0.0)
    assert np.all(np.abs(x[:, :, 0, 0] - x[:, :, 0, -1]) < 1e-6)   # background everywhere there
    spread = x.reshape(20, 3, -1).std(-1).max(-1)
    assert np.all(spread > 0.05)                                     # a shape is visible


# --- MNIST / Fashion-MNIST / CIFAR-10 from files the test writes --------------------------------

def _write_mnist(root, n=6, gz=False):
    ext = ".gz" if gz else ""
    imgs = (np.arange(n * 28 * 28) % 256).astype(np.uint8).reshape(n, 28, 28)
    labels = (np.arange(n) % 10).astype(np.uint8)
    for prefix in ("train", "t10k"):
        write_idx(root / f"{prefix}-images-idx3-ubyte{ext}", imgs)
        write_idx(root / f"{prefix}-labels-idx1-ubyte{ext}", labels)
    return imgs, labels


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx(tmp_path, gz):
    imgs, labels = _write_mnist(tmp_path, gz=gz)
    ds = MNIST(tmp_path, train=True)
    assert ds.data.shape == (6, 1, 28, 28) and ds.targets.tolist() == labels.tolist()
    np.testing.assert_allclose(ds.data[:, 0] * 255, imgs, atol=1e-4)
    assert len(FashionMNIST(tmp_path, train=False)) == 6
    np.testing.assert_array_equal(read_idx(tmp_path / ("train-labels-idx1-ubyte" +
                                                       (".gz" if gz else ""))), labels)


def test_mnist_missing_folder_names_folder_and_files(tmp_path):
    where = tmp_path / "nowhere"
    with pytest.raises(DatasetNotFoundError) as e:
        MNIST(where)
    msg = str(e.value)
    assert str(where) in msg and "train-images-idx3-ubyte" in msg and "t10k-labels" in msg


def test_mnist_corrupt_file(tmp_path):
    _write_mnist(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03garbage")
    with pytest.raises(CorruptDatasetError, match="train-images-idx3-ubyte"):
        MNIST(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"PK\x03\x04 not idx at all")
    with pytest.raises(CorruptDatasetError, match="not an IDX file"):
        MNIST(tmp_path)
    (tmp_path / "bad.gz").write_bytes(b"not gzip")
    with pytest.raises(CorruptDatasetError, match="bad.gz"):
        read_idx(tmp_path / "bad.gz")


def test_cifar10_binary(tmp_path):
    rng = np.random.default_rng(0)
    for name, n in [(f"data_batch_{i}.bin", 3) for i in range(1, 6)] + [("test_batch.bin", 4)]:
        imgs = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        write_cifar10_batch(tmp_path / name, imgs, np.arange(n) % 10)
        if name == "test_batch.bin":
            test_imgs = imgs
    tr, te = CIFAR10(tmp_path, train=True), CIFAR10(tmp_path, train=False)
    assert tr.data.shape == (15, 3, 32, 32) and te.targets.tolist() == [0, 1, 2, 3]
    np.testing.assert_allclose(te.data * 255, test_imgs, atol=1e-3)
    assert te.classes[0] == "airplane"


def test_cifar10_missing_and_corrupt(tmp_path):
    with pytest.raises(DatasetNotFoundError) as e:
        CIFAR10(tmp_path / "cifar", train=False)
    assert str(tmp_path / "cifar") in str(e.value) and "test_batch.bin" in str(e.value)
    (tmp_path / "test_batch.bin").write_bytes(b"\x01" * 100)
    with pytest.raises(CorruptDatasetError, match="not a whole number of CIFAR-10 records"):
        CIFAR10(tmp_path, train=False)


def test_idx_gzip_roundtrip(tmp_path):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", a)
    with gzip.open(tmp_path / "a.gz") as f:
        assert f.read(4) == b"\x00\x00\x08\x03"
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), a)


def test_dataset_transform_applies_per_batch_and_item():
    calls = []

    def t(batch):
        calls.append(batch.shape)
        return batch + 1

    ds = ArrayDataset(np.zeros((4, 1, 2, 2), np.float32), np.arange(4), transform=t)
    x, y = ds[1]
    assert x.shape == (1, 2, 2) and x.max() == 1 and calls[-1] == (1, 1, 2, 2)
    xb, _ = next(iter(DataLoader(ds, 4)))
    assert calls[-1] == (4, 1, 2, 2) and xb.numpy().min() == 1
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        ArrayDataset(np.zeros((4, 2, 2)), np.arange(4))
