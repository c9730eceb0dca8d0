"""mc.cuda: questions about the CUDA device (answers False/0 cleanly without CuPy or a GPU)."""
from .backend import cuda_device_count, is_cuda_available


def is_available():
    return is_cuda_available()


def device_count():
    return cuda_device_count()


def synchronize():
    if is_cuda_available():
        from .backend import _import_cupy
        _import_cupy().cuda.get_current_stream().synchronize()
