"""mc.nn.parallel: DataParallel (one device: the module on the whole batch, for PyTorch programs
that wrap their model) and DistributedDataParallel with SyncBatchNorm, over mc.distributed."""
from .data_parallel import DataParallel, data_parallel
from .distributed import DistributedDataParallel
from .sync_batchnorm import SyncBatchNorm

__all__ = ["DataParallel", "data_parallel", "DistributedDataParallel", "SyncBatchNorm"]
