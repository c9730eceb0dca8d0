"""Dataset, TensorDataset, ArrayDataset, Subset, ConcatDataset and random_split (PyTorch's names).

A dataset is anything with `__len__` and `__getitem__(i)`. Datasets that hold whole arrays also
define `get_batch(indices)`, which returns a batch already stacked; the DataLoader uses it when
it can, so a batch is one fancy-indexing copy instead of `batch_size` Python calls. Image
transforms in `minicnn.data.transforms` work on whole batches `(N, C, H, W)`, and array datasets
apply them to the batch.
"""
import bisect

import numpy

from ..tensor import Tensor
from . import _random


class Dataset:
    """Base class: subclasses define `__getitem__(index)` and `__len__()`."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} does not define __getitem__")

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} does not define __len__")

    def __add__(self, other):
        return ConcatDataset([self, other])


def _as_array(a):
    if isinstance(a, Tensor):
        return a.array
    return a if hasattr(a, "shape") and hasattr(a, "dtype") else numpy.asarray(a)


def _apply_batch_transform(transform, x):
    return x if transform is None else transform(x)


def _apply_single_transform(transform, x):
    """Apply a batch transform to one sample by giving it a batch axis of 1."""
    if transform is None:
        return x
    if getattr(transform, "batched", True):
        out = transform(x[None])
        return out[0]
    return transform(x)


class TensorDataset(Dataset):
    """Samples are the i-th rows of each array/Tensor (all of the same length)."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one array or Tensor")
        self.tensors = tuple(_as_array(t) for t in tensors)
        n = len(self.tensors[0])
        bad = [t.shape for t in self.tensors if len(t) != n]
        if bad:
            raise ValueError("Size mismatch between tensors: first dimensions "
                             f"{[len(t) for t in self.tensors]} must all be equal")

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def get_batch(self, indices):
        return tuple(t[indices] for t in self.tensors)

    def __len__(self):
        return len(self.tensors[0])


class ArrayDataset(Dataset):
    """Images and labels held as arrays, with optional batch transforms.

    images: (N, C, H, W) array; targets: (N,) integer labels (or None for unlabeled data).
    transform: a callable on an image batch (see minicnn.data.transforms); target_transform: on
    a label batch. Item i is `(image, label)`; `get_batch(idx)` returns the transformed batch.
    """

    classes = None

    def __init__(self, images, targets=None, transform=None, target_transform=None,
                 classes=None):
        images = _as_array(images)
        if images.ndim != 4:
            raise ValueError(f"{type(self).__name__}: images must have shape (N, C, H, W), got "
                             f"{list(images.shape)}")
        if targets is not None:
            targets = numpy.asarray(_as_array(targets))
            if len(targets) != len(images):
                raise ValueError(f"{type(self).__name__}: {len(images)} images but "
                                 f"{len(targets)} targets")
        self.data = images
        self.targets = targets
        self.transform = transform
        self.target_transform = target_transform
        if classes is not None:
            self.classes = list(classes)

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        if not isinstance(index, (int, numpy.integer)):
            return self.get_batch(index)
        x = _apply_single_transform(self.transform, self.data[index])
        if self.targets is None:
            return x
        y = self.targets[index]
        if self.target_transform is not None:
            y = self.target_transform(y)
        return x, y

    def get_batch(self, indices):
        x = _apply_batch_transform(self.transform, self.data[indices])
        if self.targets is None:
            return (x,)
        y = self.targets[indices]
        if self.target_transform is not None:
            y = self.target_transform(y)
        return x, y

    @property
    def num_classes(self):
        if self.classes is not None:
            return len(self.classes)
        return int(self.targets.max()) + 1 if self.targets is not None else 0

    @property
    def image_shape(self):
        return tuple(self.data.shape[1:])

    def __repr__(self):
        return (f"{type(self).__name__}(n={len(self)}, image_shape={list(self.image_shape)}, "
                f"classes={self.num_classes})")


class Subset(Dataset):
    """The samples of `dataset` at `indices`."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = numpy.asarray(indices, dtype=numpy.int64)

    def __getitem__(self, index):
        if isinstance(index, (list, numpy.ndarray)):
            return self.get_batch(index)
        return self.dataset[int(self.indices[index])]

    def get_batch(self, indices):
        return self.dataset.get_batch(self.indices[numpy.asarray(indices)])

    def __len__(self):
        return len(self.indices)

    def __getattr__(self, name):
        # classes, num_classes, image_shape, ... of the underlying dataset
        if name in ("dataset", "indices"):
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __repr__(self):
        return f"Subset(n={len(self)}, of {self.dataset!r})"


class ConcatDataset(Dataset):
    """Several datasets one after the other."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset needs at least one dataset")
        self.cumulative_sizes = numpy.cumsum([len(d) for d in self.datasets]).tolist()

    def __len__(self):
        return self.cumulative_sizes[-1]

    def __getitem__(self, index):
        if index < 0:
            if -index > len(self):
                raise IndexError("index out of range")
            index += len(self)
        d = bisect.bisect_right(self.cumulative_sizes, index)
        start = 0 if d == 0 else self.cumulative_sizes[d - 1]
        return self.datasets[d][index - start]


def random_split(dataset, lengths, generator=None):
    """Split into non-overlapping Subsets of the given lengths (or fractions summing to 1).

    Shuffles with `generator` (an int seed, a numpy/minicnn Generator) or the framework's
    generator.
    """
    n = len(dataset)
    lengths = list(lengths)
    if lengths and all(isinstance(v, float) for v in lengths) and \
            abs(sum(lengths) - 1.0) < 1e-6:
        counts = [int(numpy.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):          # round-robin the remainder, as PyTorch does
            counts[i % len(counts)] += 1
        lengths = counts
    if sum(lengths) != n:
        raise ValueError(f"random_split: sum of input lengths {sum(lengths)} does not equal the "
                         f"length of the input dataset ({n})")
    perm = _random.resolve(generator).permutation(n)
    out, start = [], 0
    for length in lengths:
        out.append(Subset(dataset, perm[start:start + length]))
        start += length
    return out
