"""Reading the CUDA sources: include inlining and kernel signatures.

Each kernel family's file `kernels/<family>/<family>.cu` may `#include "../cuda/common.cuh"`
(a path relative to the including file); the text handed to the compiler has those includes
inlined, so CuPy's cache key (the source text) changes whenever a header does. No system headers
(NVRTC has none) but CUDA's half-precision ones, <cuda_fp16.h> and <cuda_bf16.h>, which half.cuh
includes under nvcc and NVRTC only (NVRTC finds them in the folder `include_options()` names;
the emulator has stand-ins of its own, emu/cuda_emu.h).

A kernel is either `extern "C" __global__ void name(...)` or, for float and double alike,
`template <typename T> __global__ void name(...)`; `template <typename T> HALF_STORAGE __global__
...` has __half and __nv_bfloat16 instances too (half.cuh: T is then the storage type, and a
scalar declared `acc_t<T>` is float). `kernels(text)` parses each one's parameters
so every launch can check its arguments and cast scalars to the declared C types (CuPy passes a
Python int as a 64-bit value, which a kernel declared with `int` would misread).
"""
import functools
import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy

from minicnn.dtypes import bfloat16

CUDA_DIR = Path(__file__).resolve().parent    # the runtime and its headers
KERNELS_DIR = CUDA_DIR.parent                   # one folder per kernel family

_INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]\s*$', re.M)
_PRAGMA_ONCE = re.compile(r"^\s*#\s*pragma\s+once\s*$", re.M)
_KERNEL = re.compile(
    r'(template\s*<\s*typename\s+T\s*>\s*)?(HALF_STORAGE\s+)?(extern\s+"C"\s+)?'
    r'__global__\s+void\s+'
    r'(?:__launch_bounds__\s*\([^)]*\)\s*)?(\w+)\s*\(([^)]*)\)\s*\{')

# C type of a parameter -> NumPy dtype ("T" is the template's element type)
SCALARS = {
    "float": numpy.float32, "double": numpy.float64,
    "int": numpy.int32, "unsigned int": numpy.uint32, "unsigned": numpy.uint32,
    "long long": numpy.int64, "unsigned long long": numpy.uint64,
    "int32_t": numpy.int32, "uint32_t": numpy.uint32, "int64_t": numpy.int64,
    "uint64_t": numpy.uint64, "int8_t": numpy.int8, "signed char": numpy.int8,
    "uint8_t": numpy.uint8, "unsigned char": numpy.uint8, "bool": numpy.bool_,
    "__half": numpy.float16, "__nv_bfloat16": bfloat16,
}
FLOAT_TYPES = ("float", "double")                  # every template's instances
HALF_TYPES = ("__half", "__nv_bfloat16")           # and a HALF_STORAGE template's
TEMPLATE_TYPES = {numpy.dtype(SCALARS[t]): t for t in FLOAT_TYPES + HALF_TYPES}
SYSTEM_HEADERS = ("cuda_fp16.h", "cuda_bf16.h")    # the only <...> includes let through
ACC = "acc_t<T>"   # a scalar in the template's compute type: double for double, else float


def _ctype(ctype, T):
    """The C type of a parameter declared `ctype` in the instance for T."""
    if ctype == "T":
        return T
    if ctype == ACC:
        return "double" if T == "double" else "float"
    return ctype


@dataclass(frozen=True)
class Param:
    name: str
    ctype: str        # the C type without qualifiers, with T as written ("float", "T", ...)
    pointer: bool
    const: bool       # a pointer to const (an input)

    def dtype(self, T=None):
        return numpy.dtype(SCALARS[_ctype(self.ctype, T)])

    def c_decl(self, T=None):
        """The C type with T substituted, for the emulator's launch wrappers."""
        ctype = _ctype(self.ctype, T)
        return ("const " if self.const else "") + ctype + ("*" if self.pointer else "")


@dataclass(frozen=True)
class KernelDecl:
    name: str
    template: bool
    params: tuple
    half: bool = False    # a HALF_STORAGE template: __half and __nv_bfloat16 instances too

    @property
    def types(self):
        """The element types of its instances ((None,) for an extern "C" kernel)."""
        if not self.template:
            return (None,)
        return FLOAT_TYPES + HALF_TYPES if self.half else FLOAT_TYPES

    def expression(self, T=None):
        """The name CuPy's RawModule knows the kernel by."""
        return f"{self.name}<{T}>" if self.template else self.name


def read(path):
    """The text of a .cu file with the headers of this folder inlined (each once)."""
    return _inline(Path(path), set())


def _inline(path, seen):
    text = path.read_text()

    def include(m):
        if m.group(1) == "<" and m.group(2) in SYSTEM_HEADERS:
            return m.group(0)
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
    if ctype not in ("T", ACC) and ctype not in SCALARS:
        raise ValueError(f"kernel {kernel}: parameter {name} has unsupported type {ctype!r}")
    return Param(name, ctype, pointer, pointer and const_pointee)


def kernels(text):
    """name -> KernelDecl for every __global__ function in `text`."""
    out = {}
    for m in _KERNEL.finditer(_strip_comments(text)):
        template, half, extern_c, name, params = m.groups()
        if not template and not extern_c:
            raise ValueError(f"kernel {name}: declare it extern \"C\" or template <typename T>")
        if half and not template:
            raise ValueError(f"kernel {name}: HALF_STORAGE needs template <typename T>")
        plist = tuple(_param(p, name) for p in params.split(",") if p.strip())
        if name in out:
            raise ValueError(f"kernel {name} is declared twice")
        if not template and any(p.ctype == ACC for p in plist):
            raise ValueError(f"kernel {name}: {ACC} outside a template")
        out[name] = KernelDecl(name, bool(template), plist, bool(half))
    return out


def _strip_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


@functools.lru_cache(maxsize=1)
def include_options():
    """NVRTC's -I options for SYSTEM_HEADERS: the first of $CUDA_PATH/include,
    /usr/local/cuda/include and the nvidia-* wheels' include folders that has them (CuPy adds
    such a folder itself; the compile check needs one too). () when none has them."""
    roots = [os.environ.get("CUDA_PATH"), os.environ.get("CUDA_HOME"), "/usr/local/cuda"]
    dirs = [os.path.join(r, "include") for r in roots if r]
    site = Path(numpy.__file__).parents[1]   # site-packages
    dirs += sorted(glob.glob(str(site / "nvidia" / "*" / "include")))
    for d in dirs:
        if all(os.path.isfile(os.path.join(d, h)) for h in SYSTEM_HEADERS):
            return (f"-I{d}",)
    return ()


def family_path(family):
    """The .cu file of a kernel family: kernels/<family>/<family>.cu."""
    return KERNELS_DIR / family / f"{family}.cu"


def sources():
    """The kernel files of every family."""
    return sorted(KERNELS_DIR.glob("*/*.cu"))
