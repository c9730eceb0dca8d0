"""The CPU emulator of the CUDA kernels, for the tests on machines without a GPU.

A kernel file is compiled by g++ together with emu/cuda_emu.h (CUDA's built-ins), emu/runtime.cpp
(a scheduler that runs each block's threads as fibers on one OS thread) and a launch wrapper per
kernel generated from its signature, into a shared library cached under
$MINICNN_CACHE_DIR (default ~/.cache/minicnn) by the hash of everything that went into it.
`launch(...)` takes NumPy arrays where the GPU takes device arrays. It checks the kernel's logic
-- indexing, barriers, warp shuffles, shared memory, reductions, no reliance on block order
(blocks run one at a time, shuffled), missing barriers (between two barriers the threads run in
a fresh random order, so a read of another thread's write of the same phase sees stale data for
some of them) -- not its speed, and not what differs on the GPU:
floating-point contraction, races and memory ordering between blocks running at once. Built
with UBSan's alignment and bounds checks, a misaligned vector access or an index past a
fixed-size (e.g. __shared__) array aborts with the file and line.
"""
import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy

from . import source

EMU_DIR = source.CUDA_DIR / "emu"
# UBSan, aborting with a message that names the .cu file and line: alignment (a misaligned vector
# load faults on a GPU, so it must not silently work here) and bounds (an index past the end of a
# fixed-size array: the __shared__ tiles and register arrays, whose overruns the output guards
# cannot see).
CXX_FLAGS = ["-std=c++17", "-O1", "-fPIC", "-shared", "-fno-strict-aliasing", "-w",
             "-U_FORTIFY_SOURCE"]
SANITIZE = ["-fsanitize=alignment,bounds", "-fno-sanitize-recover=alignment,bounds"]
_sanitize_ok = None


def _flags(cxx):
    """CXX_FLAGS, with SANITIZE where the compiler has UBSan's runtime (probed once)."""
    global _sanitize_ok
    if _sanitize_ok is None:
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "probe.cpp"
            src.write_text("int probe(int* a, int i) { return a[i]; }\n")
            proc = subprocess.run([cxx, *CXX_FLAGS, *SANITIZE, "-o", str(Path(tmp) / "p.so"),
                                   str(src)], capture_output=True)
            _sanitize_ok = proc.returncode == 0
    return CXX_FLAGS + (SANITIZE if _sanitize_ok else [])

_libs = {}
_lock = threading.Lock()


def available():
    return shutil.which(os.environ.get("CXX", "g++")) is not None


def cache_dir():
    root = os.environ.get("MINICNN_CACHE_DIR") or os.path.join(Path.home(), ".cache", "minicnn")
    return Path(root) / "cuda-emu"


def _translation_unit(path):
    """The C++ text: the emulated built-ins, the kernel file, the runtime, the wrappers."""
    text = source.read(path)
    decls = source.kernels(text)
    parts = [(EMU_DIR / "cuda_emu.h").read_text(), "#line 1 \"" + Path(path).name + "\"", text,
             (EMU_DIR / "runtime.cpp").read_text()]
    for decl in decls.values():
        for T in decl.types:
            symbol = _symbol(decl, T)
            unpacked = ", ".join(f"*static_cast<{p.c_decl(T)}*>(a[{i}])"
                                 for i, p in enumerate(decl.params))
            parts.append(
                f"static void body_{symbol}(void* p) {{\n"
                f"    void** a = static_cast<void**>(p); (void)a;\n"
                f"    {decl.expression(T)}({unpacked});\n}}\n"
                f"extern \"C\" int {symbol}(const unsigned* grid, const unsigned* block, "
                f"size_t shared, void** args) {{\n"
                f"    return emu::launch(grid, block, shared, body_{symbol}, args);\n}}\n")
    return "\n".join(parts), decls


def _symbol(decl, T):
    return f"emu_launch_{decl.name}" + (f"__{T}" if T else "")


def library(path):
    """(ctypes library, declarations) for one .cu file, compiled on first use."""
    path = Path(path)
    with _lock:
        if path in _libs:
            return _libs[path]
        tu, decls = _translation_unit(path)
        cxx = os.environ.get("CXX", "g++")
        flags = _flags(cxx)
        key = hashlib.sha1((tu + " ".join([cxx] + flags)).encode()).hexdigest()[:16]
        so = cache_dir() / f"{path.stem}-{key}.so"
        if not so.exists():
            _compile(cxx, flags, tu, so, path.name)
        lib = ctypes.CDLL(str(so))
        lib.emu_error.restype = ctypes.c_char_p
        _libs[path] = (lib, decls)
        return _libs[path]


def _compile(cxx, flags, tu, so, name):
    so.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / (Path(name).stem + "_emu.cpp")
        src.write_text(tu)
        out = Path(tmp) / so.name
        proc = subprocess.run([cxx, *flags, "-o", str(out), str(src)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"emulator build of {name} failed:\n{proc.stderr[-4000:]}")
        # atomic: a concurrent process either sees no file or the whole library
        tmp_so = so.with_suffix(f".{os.getpid()}.tmp")
        shutil.copyfile(out, tmp_so)
        os.replace(tmp_so, so)


def launch(path, decl, T, grid, block, args, shared_mem):
    """Run one kernel on the CPU. `args` are already checked and cast by the caller."""
    lib, _ = library(path)
    fn = getattr(lib, _symbol(decl, T))
    keep = []
    ptrs = (ctypes.c_void_p * max(len(args), 1))()
    for i, (p, a) in enumerate(zip(decl.params, args)):
        if p.pointer:
            obj = ctypes.c_void_p(a.ctypes.data)
        else:
            obj = numpy.ctypeslib.as_ctypes_type(a.dtype)(a.item())
        keep.append(obj)
        ptrs[i] = ctypes.addressof(obj)
    g = (ctypes.c_uint * 3)(*grid)
    b = (ctypes.c_uint * 3)(*block)
    with _lock:  # the runtime's scheduler state is global
        rc = fn(g, b, ctypes.c_size_t(shared_mem), ptrs)
        err = lib.emu_error().decode() if rc != 0 else ""
    if rc != 0:
        raise RuntimeError(f"kernel {decl.expression(T)}: {err}")
