"""torchvision's side of the data idioms: download=True, CIFAR-10's Python layout, make_grid and
save_image."""
import pickle

import numpy as np
import pytest

import minicnn as mc
from minicnn.data import (CIFAR10, MNIST, CorruptDatasetError, DatasetNotFoundError,
                          FashionMNIST, write_cifar10_batch, write_cifar10_pickle_batch)
from minicnn.utils import make_grid, save_image


@pytest.mark.parametrize("cls", [MNIST, FashionMNIST, CIFAR10])
def test_download_true_says_where_to_put_the_files(tmp_path, cls):
    with pytest.raises(DatasetNotFoundError) as e:
        cls(tmp_path / "data", train=True, download=True)
    msg = str(e.value)
    assert "cannot download" in msg and str(tmp_path / "data") in msg
    assert ("train-images-idx3-ubyte" if cls is not CIFAR10 else "data_batch_1") in msg
    assert isinstance(e.value, FileNotFoundError)


def test_download_true_reads_files_that_are_there(tmp_path):
    for i in range(1, 6):
        write_cifar10_batch(tmp_path / f"data_batch_{i}.bin", np.zeros((1, 3, 32, 32)), [i])
    assert len(CIFAR10(tmp_path, train=True, download=True)) == 5


def _write_python_layout(folder, n_train=2, n_test=3, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, n in [(f"data_batch_{i}", n_train) for i in range(1, 6)] + [("test_batch", n_test)]:
        imgs = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, 10, n)
        write_cifar10_pickle_batch(folder / name, imgs, labels)
        written[name] = (imgs, labels)
    return written


def test_cifar10_python_layout_as_torchvision_downloads_it(tmp_path):
    written = _write_python_layout(tmp_path / "cifar-10-batches-py")
    te = CIFAR10(tmp_path, train=False)
    imgs, labels = written["test_batch"]
    assert te.targets.tolist() == labels.tolist() and te.data.shape == (3, 3, 32, 32)
    np.testing.assert_allclose(te.data * 255, imgs, atol=1e-3)
    tr = CIFAR10(tmp_path / "cifar-10-batches-py", train=True)       # the folder itself too
    assert len(tr) == 10 and tr.targets[:2].tolist() == written["data_batch_1"][1].tolist()


def test_cifar10_python_batch_pickled_by_numpy_1(tmp_path):
    """The published files name numpy.core.multiarray (NumPy 1); NumPy 2 writes numpy._core."""
    written = _write_python_layout(tmp_path / "cifar-10-batches-py")
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    raw = path.read_bytes()
    if b"numpy._core.multiarray" in raw:
        path.write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    assert b"numpy.core.multiarray" in path.read_bytes()
    assert CIFAR10(tmp_path, train=False).targets.tolist() == \
        written["test_batch"][1].tolist()


def test_cifar10_python_batch_runs_no_code(tmp_path):
    _write_python_layout(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "test_batch").write_bytes(pickle.dumps({"data": Evil(), "labels": []},
                                                       protocol=2))
    with pytest.raises(CorruptDatasetError, match=r"not __builtin__.print|not builtins.print"):
        CIFAR10(tmp_path, train=False)
    (tmp_path / "test_batch").write_bytes(pickle.dumps(
        {"data": np.zeros((2, 3072), np.uint8), "labels": [1, 12]}, protocol=2))
    with pytest.raises(CorruptDatasetError, match="label 12 is not in 0..9"):
        CIFAR10(tmp_path, train=False)
    (tmp_path / "test_batch").write_bytes(pickle.dumps({"labels": [1]}, protocol=2))
    with pytest.raises(CorruptDatasetError, match="no 'data'"):
        CIFAR10(tmp_path, train=False)


# --- make_grid / save_image ---------------------------------------------------------------------

def test_make_grid_layout_is_torchvisions():
    x = np.arange(5 * 3 * 2 * 2, dtype=np.float32).reshape(5, 3, 2, 2)
    g = make_grid(mc.tensor(x), nrow=2, padding=1, pad_value=-1)
    assert isinstance(g, mc.Tensor) and g.shape == (3, 3 * 3 + 1, 2 * 3 + 1)
    a = g.numpy()
    np.testing.assert_array_equal(a[:, 1:3, 1:3], x[0])               # row 0: images 0, 1
    np.testing.assert_array_equal(a[:, 1:3, 4:6], x[1])
    np.testing.assert_array_equal(a[:, 7:9, 1:3], x[4])               # row 2: image 4
    assert (a[:, 0] == -1).all() and (a[:, 7:9, 4:6] == -1).all()     # padding, empty cell
    grey = make_grid(np.zeros((2, 1, 2, 2)), padding=0)
    assert grey.shape == (3, 2, 4)                                     # grey becomes RGB
    assert make_grid(mc.ones(3, 4, 4)).shape == (3, 4, 4)              # one image: as it is
    assert make_grid([mc.ones(3, 2, 2), mc.zeros(3, 2, 2)], padding=0).shape == (3, 2, 4)


def test_make_grid_normalize():
    x = np.array([[[[0.0, 2.0]]], [[[4.0, 8.0]]]], np.float32)        # (2, 1, 1, 2)
    g = make_grid(x, padding=0, normalize=True).numpy()[0]
    np.testing.assert_allclose(g, [[0, 0.25, 0.5, 1.0]])
    g = make_grid(x, padding=0, normalize=True, scale_each=True).numpy()[0]
    np.testing.assert_allclose(g, [[0, 1, 0, 1]])
    g = make_grid(x, padding=0, normalize=True, value_range=(0, 4)).numpy()[0]
    np.testing.assert_allclose(g, [[0, 0.5, 1, 1]])
    np.testing.assert_array_equal(x[1, 0, 0], [4.0, 8.0])            # the input is not changed


def test_make_grid_errors():
    with pytest.raises(ValueError, match="nrow"):
        make_grid(np.zeros((2, 3, 2, 2)), nrow=0)
    with pytest.raises(ValueError, match=r"expected images \(N, C, H, W\)"):
        make_grid(np.zeros((1, 2, 3, 2, 2)))
    with pytest.raises(TypeError, match="expected a Tensor"):
        make_grid("images")
    with pytest.raises(ValueError, match="different shapes"):
        make_grid([np.zeros((3, 2, 2)), np.zeros((3, 3, 3))])


def test_save_image_writes_the_grid_as_png(tmp_path):
    image_module = pytest.importorskip("PIL.Image")
    x = np.zeros((2, 3, 4, 4), np.float32)
    x[0, 0] = 1.0                                                      # a red square
    x[1] = 0.5
    save_image(mc.tensor(x), tmp_path / "grid.png", padding=0)
    with image_module.open(tmp_path / "grid.png") as im:
        assert im.format == "PNG" and im.size == (8, 4)
        pixels = np.asarray(im)
    assert pixels[0, 0].tolist() == [255, 0, 0] and pixels[0, 4].tolist() == [128, 128, 128]
    save_image(mc.tensor(x) * 2 - 1, tmp_path / "n.png", normalize=True)
    with pytest.raises(ValueError, match="image format"):
        save_image(mc.tensor(x), tmp_path / "no_extension")
