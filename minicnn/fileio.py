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
        os.chmod(tmp, _mode(path))      # mkstemp's 0600 would make the file private
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


def _mode(path):
    """The permissions of the file being replaced, or those a new file gets (0666 less the
    umask, read without changing it where /proc says it)."""
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        pass
    try:
        with open("/proc/self/status") as f:
            umask = next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        umask = os.umask(0o22)      # elsewhere: read it by setting it (and put it back)
        os.umask(umask)
    return 0o666 & ~umask
