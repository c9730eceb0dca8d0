"""Atomic file writes: the bytes go to a temporary file in the target's folder, are flushed and
fsync'ed, and the file is renamed over the target (os.replace), so a crash never leaves a
half-written file under the real name (used by the ONNX and safetensors exports and the
profiler's traces)."""
import os
import tempfile


def write_atomic(path, data):
    """Write `data` (bytes, or a function given the open binary file) to path atomically;
    returns path."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename durable too
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return path
