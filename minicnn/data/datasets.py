"""Built-in datasets: Digits (shipped), Shapes and FakeData (generated), and MNIST / Fashion-MNIST /
CIFAR-10 read from a folder the user gives (in torchvision's layouts too).

Every dataset here but FakeData is an ArrayDataset: `data` is a float32 array (N, C, H, W) scaled
to [0, 1], `targets` an int64 array (N,), `classes` the class names; `transform` is a batch
transform from minicnn.data.transforms. minicnn downloads nothing: `download=True` is accepted
(torchvision's argument) and, when the files are missing, says where to put them.
"""
import gzip
import os
import pathlib
import pickle

import numpy

from .dataset import ArrayDataset, Dataset, _apply_single_transform

_HERE = pathlib.Path(__file__).resolve().parent


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not where they were looked for (the message says where to put them)."""


class CorruptDatasetError(ValueError):
    """A dataset file exists but is not in the expected format."""


# --- Digits -------------------------------------------------------------------------------------

DIGITS_FILE = _HERE / "digits.csv.gz"


def load_digits_arrays():
    """All 1,797 digits: images (1797, 8, 8) uint8 in 0..16 and labels (1797,) int64."""
    try:
        with gzip.open(DIGITS_FILE, "rt") as f:
            table = numpy.loadtxt(f, delimiter=",", dtype=numpy.int64)
    except FileNotFoundError as e:
        raise DatasetNotFoundError(f"the shipped digits file is missing: {DIGITS_FILE} "
                                   "(reinstall minicnn)") from e
    except (OSError, ValueError, EOFError) as e:
        raise CorruptDatasetError(f"cannot read the digits file {DIGITS_FILE}: {e}") from e
    if table.ndim != 2 or table.shape[1] != 65:
        raise CorruptDatasetError(f"{DIGITS_FILE}: expected rows of 65 values (64 pixels and a "
                                  f"label), got shape {list(table.shape)}")
    return table[:, :64].reshape(-1, 8, 8).astype(numpy.uint8), table[:, 64]


def _stratified_split(labels, test_fraction, seed):
    rng = numpy.random.Generator(numpy.random.PCG64(seed))
    train, test = [], []
    for c in numpy.unique(labels):
        idx = numpy.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        k = int(round(len(idx) * test_fraction))
        test.append(idx[:k])
        train.append(idx[k:])
    return numpy.sort(numpy.concatenate(train)), numpy.sort(numpy.concatenate(test))


def _resize_bilinear(images, size):
    """(N, C, H, W) -> (N, C, size, size), bilinear, half-pixel centres (align_corners=False)."""
    from .transforms import resize  # noqa: PLC0415
    return resize(images, (size, size))


class Digits(ArrayDataset):
    """The UCI handwritten digits (1,797 8x8 grey images, 10 classes, CC BY 4.0), shipped with
    minicnn (see minicnn/data/DIGITS_README.md for the attribution).

    Digits(train=True) is a fixed stratified 80% (1,437 images); train=False the other 20% (360).
    Images are (N, 1, 8, 8) float32 in [0, 1]; `image_size=16` (or 32, ...) upsamples them
    bilinearly. `split_seed` fixes the split (the default gives the same test set everywhere).
    """

    classes = [str(d) for d in range(10)]

    def __init__(self, train=True, transform=None, target_transform=None, image_size=8,
                 test_fraction=0.2, split_seed=0):
        images, labels = load_digits_arrays()
        tr, te = _stratified_split(labels, test_fraction, split_seed)
        idx = tr if train else te
        x = images[idx, None].astype(numpy.float32) / 16.0
        if image_size != 8:
            x = _resize_bilinear(x, int(image_size))
        super().__init__(x, labels[idx].astype(numpy.int64), transform, target_transform)
        self.train = train


# --- Shapes -------------------------------------------------------------------------------------

SHAPE_CLASSES = ("circle", "square", "triangle", "cross", "star")
EXTRA_SHAPE_CLASSES = ("ring", "hexagon", "ellipse", "plus_ring", "arrow")


def _polygon_sdf(u, v, sides, apothem):
    """Signed distance-like field of a regular polygon (vertices up) in local coordinates."""
    d = None
    for k in range(sides):
        a = numpy.pi / 2 + numpy.pi / sides + 2 * numpy.pi * k / sides
        e = u * numpy.cos(a) + v * numpy.sin(a) - apothem
        d = e if d is None else numpy.maximum(d, e)
    return d


def _box_sdf(u, v, hx, hy):
    qx, qy = numpy.abs(u) - hx, numpy.abs(v) - hy
    outside = numpy.hypot(numpy.maximum(qx, 0), numpy.maximum(qy, 0))
    return outside + numpy.minimum(numpy.maximum(qx, qy), 0)


def _star_sdf(u, v, points=5, outer=1.0, inner=0.45):
    r = numpy.hypot(u, v)
    phi = numpy.arctan2(u, v)                  # 0 at the top, so a point faces up
    sector = 2 * numpy.pi / points
    phi = numpy.abs((phi + sector / 2) % sector - sector / 2)   # fold into [0, sector/2]
    pu, pv = r * numpy.sin(phi), r * numpy.cos(phi)
    # edge from the outer point (0, outer) to the inner point at angle sector/2
    iu, iv = inner * numpy.sin(sector / 2), inner * numpy.cos(sector / 2)
    ex, ey = iu - 0.0, iv - outer
    nx, ny = -ey, ex                           # a normal to the edge
    norm = numpy.hypot(nx, ny)
    nx, ny = nx / norm, ny / norm
    if nx * (0 - 0) + ny * (0 - outer) > 0:    # make it point away from the centre
        nx, ny = -nx, -ny
    return (pu - 0.0) * nx + (pv - outer) * ny


def _shape_sdf(name, u, v):
    if name == "circle":
        return numpy.hypot(u, v) - 0.9
    if name == "square":
        return _box_sdf(u, v, 0.75, 0.75)
    if name == "triangle":
        return _polygon_sdf(u, v, 3, 0.5)
    if name == "cross":
        return numpy.minimum(_box_sdf(u, v, 0.95, 0.28), _box_sdf(u, v, 0.28, 0.95))
    if name == "star":
        return _star_sdf(u, v)
    if name == "ring":
        return numpy.abs(numpy.hypot(u, v) - 0.7) - 0.22
    if name == "hexagon":
        return _polygon_sdf(u, v, 6, 0.8)
    if name == "ellipse":
        return (numpy.hypot(u / 1.0, v / 0.45) - 1.0) * 0.45
    if name == "plus_ring":
        return numpy.minimum(numpy.abs(numpy.hypot(u, v) - 0.8) - 0.15,
                             numpy.minimum(_box_sdf(u, v, 0.5, 0.12), _box_sdf(u, v, 0.12, 0.5)))
    if name == "arrow":
        head = _polygon_sdf(u, v - 0.35, 3, 0.3)
        return numpy.minimum(head, _box_sdf(u, v + 0.35, 0.15, 0.55))
    raise ValueError(f"unknown shape {name!r}; known shapes: "
                     f"{list(SHAPE_CLASSES + EXTRA_SHAPE_CLASSES)}")


def make_shapes(num_samples, image_size=32, classes=SHAPE_CLASSES, seed=0, noise=0.05,
                channels=3, min_scale=0.2, max_scale=0.42):
    """Render `num_samples` images of random shapes; returns (images float32 (N, C, S, S) in
    [0, 1], labels int64 (N,)). Vectorized: one pass of array math per class.

    Each image: one shape of a random class at a random position, scale (as a fraction of the
    side), rotation, colour and background colour (kept apart in brightness so the shape stays
    visible), anti-aliased edges, plus Gaussian pixel noise of std `noise`.
    """
    n, s = int(num_samples), int(image_size)
    if n < 0 or s < 4:
        raise ValueError(f"make_shapes: need num_samples >= 0 and image_size >= 4, got "
                         f"{num_samples}, {image_size}")
    if channels not in (1, 3):
        raise ValueError(f"make_shapes: channels must be 1 or 3, got {channels}")
    for name in classes:
        _shape_sdf(name, numpy.zeros(1), numpy.zeros(1))          # validates the names
    g = numpy.random.Generator(numpy.random.PCG64(seed))
    k = len(classes)
    labels = numpy.arange(n) % k
    labels = labels[g.permutation(n)].astype(numpy.int64)
    scale = g.uniform(min_scale, max_scale, n) * s                # shape radius in pixels
    margin = scale * 0.9
    cx = g.uniform(margin, s - margin)
    cy = g.uniform(margin, s - margin)
    theta = g.uniform(0, 2 * numpy.pi, n)
    # colours: background and foreground with a brightness gap of at least 0.3
    bg = g.uniform(0, 1, (n, 3))
    fg = g.uniform(0, 1, (n, 3))
    gap = fg.mean(1) - bg.mean(1)
    push = numpy.where(numpy.abs(gap) < 0.3, (0.3 - numpy.abs(gap)) * numpy.where(gap >= 0, 1, -1),
                       0.0)
    fg = numpy.clip(fg + push[:, None] * 1.5, 0, 1)
    noise_field = g.standard_normal((n, channels, s, s)).astype(numpy.float32) * noise

    coords = numpy.arange(s, dtype=numpy.float32) + 0.5
    out = numpy.empty((n, channels, s, s), numpy.float32)
    for c, name in enumerate(classes):
        idx = numpy.flatnonzero(labels == c)
        if idx.size == 0:
            continue
        dx = coords[None, None, :] - cx[idx, None, None].astype(numpy.float32)
        dy = coords[None, :, None] - cy[idx, None, None].astype(numpy.float32)
        ct = numpy.cos(theta[idx])[:, None, None].astype(numpy.float32)
        st = numpy.sin(theta[idx])[:, None, None].astype(numpy.float32)
        r = scale[idx, None, None].astype(numpy.float32)
        u = (dx * ct + dy * st) / r
        v = (-dx * st + dy * ct) / r
        dist = _shape_sdf(name, u, v) * r                        # in pixels
        cover = numpy.clip(0.5 - dist, 0.0, 1.0)[:, None]          # anti-aliased coverage
        if channels == 3:
            f, b = fg[idx, :, None, None], bg[idx, :, None, None]
        else:
            f, b = fg[idx].mean(1)[:, None, None, None], bg[idx].mean(1)[:, None, None, None]
        out[idx] = (b + (f - b) * cover).astype(numpy.float32)
    out += noise_field
    numpy.clip(out, 0.0, 1.0, out=out)
    return out, labels


class Shapes(ArrayDataset):
    """A generated dataset of coloured shapes (default: circle, square, triangle, cross, star),
    deterministic for a seed: `Shapes(num_samples=10000, image_size=32, seed=0, train=True)`.

    train=True and train=False draw from different streams of the same seed, so a train and a
    test set made with one seed never share images. `classes` picks the shapes (see
    SHAPE_CLASSES and EXTRA_SHAPE_CLASSES); `channels=1` gives grey images.
    """

    def __init__(self, num_samples=10000, image_size=32, seed=0, train=True, transform=None,
                 target_transform=None, classes=SHAPE_CLASSES, noise=0.05, channels=3):
        stream = numpy.random.SeedSequence([int(seed), 0 if train else 1])
        x, y = make_shapes(num_samples, image_size, classes, seed=stream, noise=noise,
                           channels=channels)
        super().__init__(x, y, transform, target_transform, classes=list(classes))
        self.train = train


# --- IDX (MNIST, Fashion-MNIST) -----------------------------------------------------------------

_IDX_TYPES = {0x08: numpy.uint8, 0x09: numpy.int8, 0x0B: numpy.dtype(">i2"),
              0x0C: numpy.dtype(">i4"), 0x0D: numpy.dtype(">f4"), 0x0E: numpy.dtype(">f8")}


def read_idx(path):
    """Read an IDX file (as MNIST ships them), gzipped or not, into a NumPy array."""
    path = pathlib.Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise CorruptDatasetError(f"cannot read IDX file {path}: {e}") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise CorruptDatasetError(f"{path} is not an IDX file (bad magic number "
                                  f"{raw[:4].hex() if raw else 'none'}; expected 0000 0803 for "
                                  "images or 0000 0801 for labels)")
    dtype, ndim = numpy.dtype(_IDX_TYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise CorruptDatasetError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(numpy.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise CorruptDatasetError(f"{path}: IDX header says shape {list(shape)} "
                                  f"({expected} bytes) but the file has {len(raw)} bytes")
    data = numpy.frombuffer(raw, dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def write_idx(path, array):
    """Write a uint8 array as an IDX file (gzipped if the name ends in .gz); used by the tests."""
    array = numpy.ascontiguousarray(array, dtype=numpy.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big")
                                                         for d in array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


def _cannot_download(dataset, root, files, where):
    return DatasetNotFoundError(
        f"{dataset}: cannot download (minicnn downloads nothing); put the files {files} in "
        f"{root}{where}, and they are read from there.")


def _find(root, names, dataset, where_hint):
    """The first existing file among `names` (with or without .gz) under root; else a clear
    error naming the folder and the expected files."""
    root = pathlib.Path(root).expanduser()
    for name in names:
        for candidate in (root / name, root / (name + ".gz")):
            if candidate.is_file():
                return candidate
    if not root.is_dir():
        problem = f"the folder {root} does not exist"
    else:
        problem = f"the folder {root} does not contain {names[0]}"
    raise DatasetNotFoundError(
        f"{dataset}: {problem}. Put the files {where_hint} in {root} "
        f"(download them from the dataset's website; minicnn does not download anything).")


class MNIST(ArrayDataset):
    """MNIST from IDX files in `root`: train-images-idx3-ubyte, train-labels-idx1-ubyte,
    t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (each optionally .gz)."""

    classes = [str(d) for d in range(10)]
    _files = {True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
    _name = "MNIST"

    def __init__(self, root, train=True, transform=None, target_transform=None, download=False):
        hint = ", ".join(f for pair in self._files.values() for f in pair) + " (or .gz)"
        img_names, lbl_names = self._files[bool(train)]
        base = pathlib.Path(root).expanduser()
        found, first_error = None, None
        for r in (base, base / "raw", base / self._name / "raw"):
            try:
                found = (_find(r, [img_names, img_names.replace("-idx3-", ".idx3-")], self._name,
                               hint),
                         _find(r, [lbl_names, lbl_names.replace("-idx1-", ".idx1-")], self._name,
                               hint))
                break
            except DatasetNotFoundError as e:
                first_error = first_error or e
        if found is None:
            if download:
                raise _cannot_download(self._name, base, hint,
                                       f" (or {base / self._name / 'raw'}, torchvision's place)")
            raise first_error
        images, labels = read_idx(found[0]), read_idx(found[1])
        if images.ndim != 3:
            raise CorruptDatasetError(f"{found[0]}: expected 3-d image data (N, H, W), got "
                                      f"shape {list(images.shape)}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise CorruptDatasetError(f"{found[1]}: expected {len(images)} labels, got shape "
                                      f"{list(labels.shape)}")
        x = images[:, None].astype(numpy.float32) / 255.0
        super().__init__(x, labels.astype(numpy.int64), transform, target_transform)
        self.root, self.train = pathlib.Path(root), train


class FashionMNIST(MNIST):
    """Fashion-MNIST: the same IDX file names as MNIST, in `root`."""

    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot"]
    _name = "FashionMNIST"


# --- CIFAR-10 -----------------------------------------------------------------------------------

class CIFAR10(ArrayDataset):
    """CIFAR-10 from `root` in either of its two published layouts:

    - the binary version (cifar-10-binary.tar.gz): root/cifar-10-batches-bin/ (or root itself)
      with data_batch_1.bin ... data_batch_5.bin and test_batch.bin; each record is one label
      byte and 3,072 pixel bytes (1,024 each of red, green and blue, row-major 32x32);
    - the Python version (cifar-10-python.tar.gz, what torchvision downloads):
      root/cifar-10-batches-py/ (or root itself) with data_batch_1 ... data_batch_5 and
      test_batch, each a pickled dict of `data` (10000, 3072) uint8 and `labels`. They are read
      with an unpickler that builds only NumPy arrays and plain values (no other code runs).
    """

    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck"]
    train_files = [f"data_batch_{i}.bin" for i in range(1, 6)]
    test_files = ["test_batch.bin"]
    record = 1 + 3 * 32 * 32

    def __init__(self, root, train=True, transform=None, target_transform=None, download=False):
        base = pathlib.Path(root).expanduser()
        names = self.train_files if train else self.test_files
        found = self._locate(base, names)
        if found is None:
            files = (f"{', '.join(self.train_files + self.test_files)} (the binary version) or "
                     f"{', '.join(n[:-4] for n in self.train_files + self.test_files)} (the "
                     "Python version)")
            if download:
                raise _cannot_download("CIFAR10", base, files, " (or in its cifar-10-batches-bin "
                                       "or cifar-10-batches-py folder)")
            folder = base / "cifar-10-batches-bin" if (base / "cifar-10-batches-bin").is_dir() \
                else base / "cifar-10-batches-py" if (base / "cifar-10-batches-py").is_dir() \
                else base
            missing = [n for n in names if not (folder / n).is_file()
                       and not (folder / n[:-4]).is_file()]
            where = f"the folder {folder} does not exist" if not folder.is_dir() else \
                f"the folder {folder} is missing {', '.join(missing)}"
            raise DatasetNotFoundError(
                f"CIFAR10: {where}. Put the files {files} in {folder} (from "
                "cifar-10-binary.tar.gz or cifar-10-python.tar.gz; minicnn does not download "
                "anything).")
        folder, paths, reader = found
        images, labels = zip(*(reader(p) for p in paths))
        x = numpy.concatenate(images).astype(numpy.float32) / 255.0
        super().__init__(x, numpy.concatenate(labels), transform, target_transform)
        self.root, self.train = folder, train

    @classmethod
    def _locate(cls, base, names):
        """(folder, files, reader) of the first layout present under base, or None."""
        for folder in (base / "cifar-10-batches-bin", base / "cifar-10-batches-py", base):
            for files, reader in (([folder / n for n in names], cls._read_binary),
                                  ([folder / n[:-4] for n in names], _read_cifar_pickle)):
                if all(f.is_file() for f in files):
                    return folder, files, reader
        return None

    @classmethod
    def _read_binary(cls, path):
        raw = numpy.fromfile(path, dtype=numpy.uint8)
        if raw.size == 0 or raw.size % cls.record:
            raise CorruptDatasetError(
                f"{path}: {raw.size} bytes is not a whole number of CIFAR-10 records "
                f"({cls.record} bytes each: 1 label byte + 3072 pixel bytes)")
        raw = raw.reshape(-1, cls.record)
        return raw[:, 1:].reshape(-1, 3, 32, 32), _labels(raw[:, 0], path)


def _labels(values, path):
    labels = numpy.asarray(values)
    if labels.ndim != 1 or labels.dtype.kind not in "iu" and labels.size:
        raise CorruptDatasetError(f"{path}: labels must be a list of integers")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise CorruptDatasetError(f"{path}: label {int(labels.max())} is not in 0..9")
    return labels.astype(numpy.int64)


class _ArrayUnpickler(pickle.Unpickler):
    """Builds NumPy arrays, dicts, lists, strings and numbers, nothing else: the CIFAR-10
    Python batches were pickled by Python 2 with NumPy 1 (numpy.core), and pickle.load would
    run whatever a file names."""

    def find_class(self, module, name):
        if (module, name) in (("numpy.core.multiarray", "_reconstruct"),
                              ("numpy._core.multiarray", "_reconstruct")):
            try:
                from numpy._core.multiarray import _reconstruct  # noqa: PLC0415 -- NumPy 2
            except ImportError:
                from numpy.core.multiarray import _reconstruct  # noqa: PLC0415 -- NumPy 1
            return _reconstruct
        if (module, name) == ("numpy", "ndarray"):
            return numpy.ndarray
        if (module, name) == ("numpy", "dtype"):
            return numpy.dtype
        if (module, name) == ("_codecs", "encode"):   # bytes in a protocol-2 pickle of Python 3
            import codecs  # noqa: PLC0415
            return lambda text, encoding="utf-8": codecs.encode(text, "latin1") \
                if encoding == "latin1" else codecs.encode(text, "utf-8")
        raise pickle.UnpicklingError(f"a CIFAR-10 batch should hold NumPy arrays and lists, "
                                     f"not {module}.{name}")


def _read_cifar_pickle(path):
    try:
        with open(path, "rb") as f:
            batch = _ArrayUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError) as e:
        raise CorruptDatasetError(f"{path}: not a CIFAR-10 Python batch ({e})") from e
    if not isinstance(batch, dict):
        raise CorruptDatasetError(f"{path}: expected a pickled dict, got "
                                  f"{type(batch).__name__}")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise CorruptDatasetError(f"{path}: the batch has no 'data' or 'labels' "
                                  f"(keys: {sorted(map(str, batch))})")
    data = numpy.asarray(batch["data"])
    if data.dtype != numpy.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise CorruptDatasetError(f"{path}: 'data' should be uint8 of shape (N, 3072), got "
                                  f"{data.dtype} {list(data.shape)}")
    labels = _labels(batch["labels"], path)
    if len(labels) != len(data):
        raise CorruptDatasetError(f"{path}: {len(data)} images but {len(labels)} labels")
    return data.reshape(-1, 3, 32, 32), labels


def write_cifar10_batch(path, images, labels):
    """Write uint8 images (N, 3, 32, 32) and labels as one CIFAR-10 binary batch (tests use it)."""
    images = numpy.ascontiguousarray(images, dtype=numpy.uint8).reshape(len(images), -1)
    rec = numpy.concatenate([numpy.asarray(labels, numpy.uint8)[:, None], images], axis=1)
    with open(path, "wb") as f:
        f.write(rec.tobytes())
    return os.fspath(path)


def write_cifar10_pickle_batch(path, images, labels):
    """Write uint8 images (N, 3, 32, 32) and labels as one batch of CIFAR-10's Python version (a
    pickled dict, as the published files; tests use it)."""
    batch = {"batch_label": "written by minicnn", "labels": [int(v) for v in labels],
             "data": numpy.ascontiguousarray(images, dtype=numpy.uint8).reshape(len(images), -1),
             "filenames": [f"{i}.png" for i in range(len(images))]}
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=2)
    return os.fspath(path)


# --- FakeData (torchvision's) -------------------------------------------------------------------

class FakeData(Dataset):
    """torchvision's FakeData: `size` random images of `image_size` (C, H, W) and random labels
    below `num_classes`. Item i is made from a generator seeded with i + random_offset, so it is
    the same on every read, in any worker. Images are float32 in [0, 1) (torchvision's are PIL
    images of random values); `transform` is a batch transform of minicnn.data.transforms."""

    def __init__(self, size=1000, image_size=(3, 224, 224), num_classes=10, transform=None,
                 target_transform=None, random_offset=0):
        if isinstance(size, bool) or not isinstance(size, (int, numpy.integer)) or size < 0:
            raise ValueError(f"FakeData: size must be a non-negative int, got {size!r}")
        image_size = tuple(int(d) for d in image_size)
        if len(image_size) != 3 or min(image_size) < 1:
            raise ValueError(f"FakeData: image_size must be (C, H, W) of positive sizes, got "
                             f"{list(image_size)}")
        if num_classes < 1:
            raise ValueError(f"FakeData: num_classes must be positive, got {num_classes}")
        self.size, self.image_size, self.num_classes = int(size), image_size, int(num_classes)
        self.transform, self.target_transform = transform, target_transform
        self.random_offset = int(random_offset)
        self.classes = [str(c) for c in range(self.num_classes)]

    def __len__(self):
        return self.size

    def _raw(self, index):
        g = numpy.random.Generator(numpy.random.PCG64(int(index) + self.random_offset))
        return g.random(self.image_size, dtype=numpy.float32), int(g.integers(self.num_classes))

    def _check(self, index):
        if not -self.size <= index < self.size:
            raise IndexError(f"FakeData index {index} is out of range for {self.size} images")
        return index % self.size if self.size else index

    def __getitem__(self, index):
        x, y = self._raw(self._check(int(index)))
        x = _apply_single_transform(self.transform, x)
        return x, (y if self.target_transform is None else self.target_transform(y))

    def get_batch(self, indices):
        pairs = [self._raw(self._check(int(i))) for i in indices]
        x = numpy.stack([p[0] for p in pairs]) if pairs else \
            numpy.empty((0,) + self.image_size, numpy.float32)
        y = numpy.asarray([p[1] for p in pairs], dtype=numpy.int64)
        if self.transform is not None:
            x = self.transform(x)
        if self.target_transform is not None:
            y = self.target_transform(y)
        return x, y

    def __repr__(self):
        return (f"FakeData(size={self.size}, image_size={list(self.image_size)}, "
                f"num_classes={self.num_classes})")
