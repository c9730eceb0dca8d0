"""Reading the CUDA sources: include inlining and kernel signatures.

Each kernel family's file `kernels/<family>/<family>.cu` may `#include "../cuda/common.cuh"`
(a path relative to the including file); the text handed to the compiler has those includes
inlined, so CuPy's cache key (the source text) changes whenever a header does. No system headers:
NVRTC has none.

A kernel is either `extern "C" __global__ void name(...)` or, for float and double alike,
`template <typename T> __global__ void name(...)`. `kernels(text)` parses each one's parameters
so every launch can check its arguments and cast scalars to the declared C types (CuPy passes a
Python int as a 64-bit value, which a kernel declared with `int` would misread).
"""
import re
from dataclasses import dataclass
from pathlib import Path

import numpy

CUDA_DIR = Path(__file__).resolve().parent    # the runtime and its headers
KERNELS_DIR = CUDA_DIR.parent                   # one folder per kernel family

_INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]\s*$', re.M)
_PRAGMA_ONCE = re.compile(r"^\s*#\s*pragma\s+once\s*$", re.M)
_KERNEL = re.compile(
    r'(template\s*<\s*typename\s+T\s*>\s*)?(extern\s+"C"\s+)?__global__\s+void\s+'
    r'(?:__launch_bounds__\s*\([^)]*\)\s*)?(\w+)\s*\(([^)]*)\)\s*\{')

# C type of a parameter -> NumPy dtype ("T" is the template's element type)
SCALARS = {
    "float": numpy.float32, "double": numpy.float64,
    "int": numpy.int32, "unsigned int": numpy.uint32, "unsigned": numpy.uint32,
    "long long": numpy.int64, "unsigned long long": numpy.uint64,
    "int32_t": numpy.int32, "uint32_t": numpy.uint32, "int64_t": numpy.int64,
    "uint64_t": numpy.uint64, "int8_t": numpy.int8, "signed char": numpy.int8,
    "uint8_t": numpy.uint8, "unsigned char": numpy.uint8, "bool": numpy.bool_,
}
TEMPLATE_TYPES = {numpy.dtype(numpy.float32): "float", numpy.dtype(numpy.float64): "double"}


@dataclass(frozen=True)
class Param:
    name: str
    ctype: str        # the C type without qualifiers, with T as written ("float", "T", ...)
    pointer: bool
    const: bool       # a pointer to const (an input)

    def dtype(self, T=None):
        ctype = self.ctype if self.ctype != "T" else T
        return numpy.dtype(SCALARS[ctype])

    def c_decl(self, T=None):
        """The C type with T substituted, for the emulator's launch wrappers."""
        ctype = self.ctype if self.ctype != "T" else T
        return ("const " if self.const else "") + ctype + ("*" if self.pointer else "")


@dataclass(frozen=True)
class KernelDecl:
    name: str
    template: bool
    params: tuple

    def expression(self, T=None):
        """The name CuPy's RawModule knows the kernel by."""
        return f"{self.name}<{T}>" if self.template else self.name


def read(path):
    """The text of a .cu file with the headers of this folder inlined (each once)."""
    return _inline(Path(path), set())


def _inline(path, seen):
    text = path.read_text()

    def include(m):
        if m.group(1) == "<":
            raise ValueError(f"{path.name}: system include <{m.group(2)}>: NVRTC has no "
                             f"system headers; use CUDA's built-ins")
        header = (path.parent / m.group(2)).resolve()
        if header in seen:
            return ""
        seen.add(header)
        body = _PRAGMA_ONCE.sub("", _inline(header, seen))  # once is what `seen` ensures
        return f"// ---- {m.group(2)} ----\n{body}\n// ---- end {m.group(2)} ----"

    return _INCLUDE.sub(include, text)


def _param(text, kernel):
    text = " ".join(text.replace("__restrict__", " ").replace("*", " * ").split())
    words = text.split()
    if len(words) < 2:
        raise ValueError(f"kernel {kernel}: cannot read parameter {text!r}")
    name, words = words[-1], words[:-1]
    pointer = "*" in words
    if words.count("*") > 1:
        raise ValueError(f"kernel {kernel}: parameter {name}: pointers to pointers are not used")
    const_pointee = bool(words) and words[0] == "const"
    words = [w for w in words if w not in ("*", "const")]
    ctype = " ".join(words)
    if ctype != "T" and ctype not in SCALARS:
        raise ValueError(f"kernel {kernel}: parameter {name} has unsupported type {ctype!r}")
    return Param(name, ctype, pointer, pointer and const_pointee)


def kernels(text):
    """name -> KernelDecl for every __global__ function in `text`."""
    out = {}
    for m in _KERNEL.finditer(_strip_comments(text)):
        template, extern_c, name, params = m.groups()
        if not template and not extern_c:
            raise ValueError(f"kernel {name}: declare it extern \"C\" or template <typename T>")
        plist = tuple(_param(p, name) for p in params.split(",") if p.strip())
        if name in out:
            raise ValueError(f"kernel {name} is declared twice")
        out[name] = KernelDecl(name, bool(template), plist)
    return out


def _strip_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def family_path(family):
    """The .cu file of a kernel family: kernels/<family>/<family>.cu."""
    return KERNELS_DIR / family / f"{family}.cu"


def sources():
    """The kernel files of every family."""
    return sorted(KERNELS_DIR.glob("*/*.cu"))
