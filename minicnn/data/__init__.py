"""mc.data (also mc.utils.data, PyTorch's torch.utils.data): datasets, samplers, DataLoader and
batch transforms (augmentation).

    from minicnn.data import DataLoader, Digits, transforms as T
    train = Digits(train=True, transform=T.RandomAffine(10, translate=(0.1, 0.1)))
    for x, y in DataLoader(train, batch_size=64, shuffle=True, num_workers=2): ...
"""
from . import transforms
from .dataloader import DataLoader, default_collate, default_convert
from .dataset import ArrayDataset, ConcatDataset, Dataset, Subset, TensorDataset, random_split
from .datasets import (CIFAR10, MNIST, SHAPE_CLASSES, CorruptDatasetError, DatasetNotFoundError,
                       Digits, FakeData, FashionMNIST, Shapes, load_digits_arrays, make_shapes,
                       read_idx, write_cifar10_batch, write_cifar10_pickle_batch, write_idx)
from .sampler import (BatchSampler, DistributedSampler, RandomSampler, Sampler,
                      SequentialSampler, SubsetRandomSampler, WeightedRandomSampler)
from .worker import WorkerInfo, get_worker_info

__all__ = ["transforms", "DataLoader", "default_collate", "default_convert", "ArrayDataset",
           "ConcatDataset", "Dataset", "Subset", "TensorDataset", "random_split", "CIFAR10",
           "MNIST", "FashionMNIST", "Digits", "Shapes", "FakeData", "SHAPE_CLASSES",
           "DatasetNotFoundError", "CorruptDatasetError", "load_digits_arrays", "make_shapes",
           "read_idx", "write_idx", "write_cifar10_batch", "write_cifar10_pickle_batch",
           "Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler",
           "WeightedRandomSampler", "BatchSampler", "DistributedSampler", "WorkerInfo",
           "get_worker_info"]
