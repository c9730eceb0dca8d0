"""Atomic file writes: the bytes go to a temporary file in the target's folder, are flushed and
fsync'ed, and the file is renamed over the target (os.replace), so a crash never leaves a
half-written file under the real name (used by mc.save, the ONNX and safetensors exports and
the profiler's traces).

A writer that is killed mid-write leaves its temporary file behind. The temporary's name carries
the writer's host and process id (`.<target>.<host>.<pid>.<random>.tmp`), so the next write to
the same target removes the ones whose process is gone, and never one that a live writer (this
process, another on this host, or any on another host) may still be filling.
"""
import errno
import os
import re
import socket
import tempfile

_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"


def write_atomic(path, data):
    """Write `data` (bytes, or a function given the open binary file) to path atomically;
    returns path."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):   # (mkstemp would name the temporary file instead)
        raise FileNotFoundError(errno.ENOENT, f"cannot write {path!r}: the folder {directory!r} "
                                "does not exist", path)
    prefix = _temporary_prefix(path)
    remove_stale_temporaries(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{prefix}{os.getpid()}.", suffix=".tmp",
                                   dir=directory)
    except OSError as e:
        raise _about(e, path) from e
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
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError) and e.filename in (None, tmp):
            raise _about(e, path) from e
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


def _about(e, path):
    """The OSError `e` (a full disk, a read-only folder) naming the target, not the temporary."""
    return type(e)(e.errno, e.strerror or str(e), path)


def _temporary_prefix(path):
    return os.path.join(os.path.dirname(os.path.abspath(path)),
                        f".{os.path.basename(path)}.{_HOST}.")


def remove_stale_temporaries(path):
    """Remove the temporary files of writes to `path` whose writer process (on this host) no
    longer exists; returns how many. Called by every write_atomic to that path."""
    prefix = _temporary_prefix(path)
    directory, start = os.path.split(prefix)
    removed = 0
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    for name in names:
        if not (name.startswith(start) and name.endswith(".tmp")):
            continue
        pid = name[len(start):].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            try:
                os.unlink(os.path.join(directory, name))
                removed += 1
            except OSError:   # another writer removed it first
                pass
    return removed


def _alive(pid):
    """Whether process `pid` exists on this host (True when that cannot be known)."""
    if pid == os.getpid():
        return True
    if os.name != "posix":   # os.kill(pid, 0) is no existence test on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:          # EPERM: it exists, owned by someone else
        return True
    return True


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
