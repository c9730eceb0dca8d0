"""fileio.write_atomic: all or nothing under the target's name, with the permissions a plain
open() would give (mkstemp's are 0600)."""
import os

import pytest

from minicnn.fileio import write_atomic


def test_writes_bytes_or_a_writer_with_the_umask_or_the_old_mode(tmp_path):
    old = os.umask(0o027)
    try:
        path = write_atomic(tmp_path / "a.bin", b"abc")
        assert open(path, "rb").read() == b"abc"
        assert os.stat(path).st_mode & 0o777 == 0o640
    finally:
        os.umask(old)
    os.chmod(path, 0o604)
    write_atomic(path, lambda f: f.write(b"xyz"))
    assert open(path, "rb").read() == b"xyz" and os.stat(path).st_mode & 0o777 == 0o604


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "a.bin"
    write_atomic(path, b"old")

    def fail(f):
        f.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomic(path, fail)
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["a.bin"]
