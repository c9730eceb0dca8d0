"""minicnn/allocator.py: glibc's malloc keeps freed arrays in the process, unless the user chose."""
import ctypes
import os
import subprocess
import sys
import textwrap

import pytest

from minicnn import allocator

glibc_only = pytest.mark.skipif(allocator._glibc() is None, reason="glibc's malloc only")

# A child that allocates a 1 MiB array and says whether glibc served it with mmap (mallinfo2's
# hblkhd: bytes in mmapped blocks), which it does by default (threshold 128 KiB at start) and
# must not after minicnn's tuning (threshold 32 MiB).
_CHILD = textwrap.dedent("""
    import ctypes
    import minicnn, numpy
    class Info(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
            "fordblks", "keepcost")]
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = Info
    before = libc.mallinfo2().hblkhd
    a = numpy.ones(1 << 18, numpy.float32)
    print(libc.mallinfo2().hblkhd - before >= a.nbytes, minicnn.allocator.applied)
""")


def _child(**env):
    full = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "MINICNN_MALLOC"))
            and k != "GLIBC_TUNABLES"}
    full.update(env)
    out = subprocess.run([sys.executable, "-c", _CHILD], env=full, capture_output=True,
                         text=True, check=True, timeout=120)
    return out.stdout.split()


@glibc_only
def test_import_keeps_a_1mib_array_off_mmap():
    if not hasattr(ctypes.CDLL(None), "mallinfo2"):
        pytest.skip("glibc < 2.33 has no mallinfo2")
    assert _child() == ["False", "True"]
    # the same child with glibc's defaults: the array is mmapped, so the check above can fail
    assert _child(MINICNN_MALLOC="system") == ["True", "False"]
    assert _child(MALLOC_ARENA_MAX="2") == ["True", "False"]


@pytest.mark.parametrize("environ", [{"MINICNN_MALLOC": "system"}, {"MINICNN_MALLOC": "SYSTEM"},
                                     {"MALLOC_TRIM_THRESHOLD_": "131072"},
                                     {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=131072"}])
def test_a_users_choice_is_left_alone(environ):
    assert allocator.tune(environ) is False


@glibc_only
def test_tune_succeeds_on_glibc():
    assert allocator.tune({}) is True
    assert allocator.applied
