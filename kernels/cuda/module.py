"""Loading and launching the CUDA kernels.

    k = kernel("conv", "im2col_kernel", x.dtype)   # a template kernel, for x's element type
    k(grid, block, (x, col, C, H, W, ...), shared_mem=0)

A launch checks each argument against the kernel's declared parameters (arrays of the declared
element type, C-contiguous, writable where the kernel writes; scalars cast to the declared C
type) and runs it on the GPU with CuPy when the arrays are CuPy arrays, or under the CPU
emulator (emulator.py) when they are NumPy arrays -- which is how the tests check every kernel
on machines without a GPU. Each file is compiled once per process (NVRTC through
`cupy.RawModule`, cached on disk by CuPy).

`empty(xp, shape, dtype)` allocates kernel outputs. Under the emulator it fills them with NaN
(or 0xCD bytes) and surrounds them with guard bytes that every launch checks afterwards, so an
element a kernel forgot to write shows up, and a write out of bounds is an error; with
`POISON = True` (the tests set it) CuPy outputs are filled with NaN too.
"""
import threading
import weakref

import numpy

from minicnn import devices
from minicnn.devices import is_cuda_array

from . import emulator, source

NVRTC_OPTIONS = ("-std=c++17",)
POISON = False
MAX_ELEMENTS = 2**31 - 2**25  # per array: i + a grid stride (<= 2**25 threads) stays below 2**31
DEFAULT_SHARED = 48 * 1024  # static + dynamic shared memory a launch gets without an opt-in

_modules = {}
_decls = {}
_lock = threading.Lock()


def _path(family):
    """A family name (kernels/<family>/<family>.cu) or a path to a .cu file (the tests' own)."""
    if hasattr(family, "suffix"):
        return family
    path = source.family_path(family)
    return path if path.exists() else source.CUDA_DIR / f"{family}.cu"  # not moved yet


def declarations(family):
    with _lock:
        if family not in _decls:
            _decls[family] = source.kernels(source.read(_path(family)))
        return _decls[family]


def _cupy_module(family):
    with _lock:
        if family not in _modules:
            text = source.read(_path(family))
            # template instances need name expressions; extern "C" names are found as they are
            names = [d.expression(T) for d in source.kernels(text).values() if d.template
                     for T in d.types]
            options = NVRTC_OPTIONS + source.include_options()
            _modules[family] = devices.cupy().RawModule(code=text, options=options,
                                              name_expressions=names or None)
        return _modules[family]


class Kernel:
    """One kernel of one family, for one element type when it is a template."""

    def __init__(self, family, decl, T):
        self.family, self.decl, self.T = family, decl, T
        self.name = decl.expression(T)
        self._fn = None
        self._shared_opt_in = 0
        self._static_shared = 0
        # per parameter, once: (name, pointer?, writes?, dtype, scalar cast)
        self._spec = tuple((p.name, p.pointer, not p.const, p.dtype(T), p.dtype(T).type)
                           for p in decl.params)

    def __repr__(self):
        return f"<CUDA kernel {self.family}.cu:{self.name}>"

    def __call__(self, grid, block, args, shared_mem=0):
        grid, block = _dims(grid, "grid", self.name), _dims(block, "block", self.name)
        args, arrays, on_gpu = self._check(args)
        if on_gpu == len(arrays) and arrays:
            if self._fn is None:
                self._fn = _cupy_module(self.family).get_function(self.name)
                self._static_shared = int(self._fn.shared_size_bytes)
            if shared_mem > self._shared_opt_in and \
                    shared_mem + self._static_shared > DEFAULT_SHARED:
                # static + dynamic shared memory over 48 KiB needs the kernel's opt-in
                self._fn.max_dynamic_shared_size_bytes = shared_mem
                self._shared_opt_in = shared_mem
            self._fn(grid, block, args, shared_mem=shared_mem)
        elif on_gpu == 0:
            emulator.launch(_path(self.family), self.decl, self.T, grid, block, args,
                            shared_mem)
            _check_guards(self.name, arrays)
        else:
            raise TypeError(f"kernel {self.name}: arrays on different devices (CuPy and NumPy)")

    def _check(self, args):
        """(args cast to the declared types, the array arguments, how many are CuPy arrays)."""
        spec = self._spec
        if len(args) != len(spec):
            raise TypeError(f"kernel {self.name} takes {len(spec)} arguments "
                            f"({', '.join(s[0] for s in spec)}), got {len(args)}")
        out, arrays, on_gpu = [], [], 0
        for (name, pointer, writes, want, cast), a in zip(spec, args):
            if not pointer:
                out.append(_scalar(cast, a))
                continue
            dtype = getattr(a, "dtype", None)
            if dtype is None or not hasattr(a, "flags"):
                raise TypeError(f"kernel {self.name}: {name} must be an array, "
                                f"got {type(a).__name__}")
            if dtype != want:
                raise TypeError(f"kernel {self.name}: {name} must be {want}, got {dtype}")
            flags = a.flags
            if not flags.c_contiguous:
                raise ValueError(f"kernel {self.name}: {name} {a.shape} is not C-contiguous")
            if writes and not getattr(flags, "writeable", True):   # CuPy has no such flag
                raise ValueError(f"kernel {self.name}: {name} is read-only")
            on_gpu += is_cuda_array(a)
            arrays.append(a)
            out.append(a)
        return tuple(out), arrays, on_gpu


_SCALAR_CACHE = {}
_SCALAR_CACHE_SIZE = 4096  # per C type; shapes and strides repeat from launch to launch


def _scalar(cast, value):
    """`cast(value)` (a NumPy scalar of the parameter's C type), memoised for Python ints:
    building one costs about 0.5 us, and a conv launch passes some 25 shapes and strides."""
    if type(value) is not int:  # floats: -0.0 == 0.0 would share an entry; NaN never hits
        return cast(value)
    cache = _SCALAR_CACHE.get(cast)
    if cache is None:
        cache = _SCALAR_CACHE[cast] = {}
    v = cache.get(value)
    if v is None:
        v = cast(value)
        if len(cache) < _SCALAR_CACHE_SIZE:
            cache[value] = v
    return v


def _dims(d, what, name):
    d = tuple(int(v) for v in (d if isinstance(d, (tuple, list)) else (d,)))
    if not 1 <= len(d) <= 3 or min(d) < 1:
        raise ValueError(f"kernel {name}: bad {what} shape {d}")
    return d + (1,) * (3 - len(d))


def kernel(family, name, dtype=None):
    """The kernel `name` of kernels/cuda/<family>.cu (for `dtype` if it is a template)."""
    key = (family, name, None if dtype is None else numpy.dtype(dtype).str)
    k = _kernels.get(key)
    if k is None:
        decl = declarations(family).get(name)
        if decl is None:
            raise KeyError(f"{family}.cu has no kernel {name}")
        T = None
        if decl.template:
            T = source.TEMPLATE_TYPES.get(numpy.dtype(dtype)) if dtype is not None else None
            if T not in decl.types:
                raise TypeError(f"kernel {name}: no instance for dtype "
                                f"{None if dtype is None else numpy.dtype(dtype)}")
        k = _kernels[key] = Kernel(family, decl, T)
    return k


_kernels = {}


def check_size(op, *shapes):
    """Kernels index with 32-bit ints: refuse arrays of MAX_ELEMENTS or more, which leaves a
    margin below 2**31 for index arithmetic a grid stride past the end."""
    for s in shapes:
        n = 1
        for v in s:
            n *= int(v)
        if n > MAX_ELEMENTS:
            raise ValueError(f"{op}: {tuple(s)} has {n} elements; the CUDA kernels index with "
                             f"32-bit integers (at most {MAX_ELEMENTS})")


# --- outputs: poisoned, and guarded under the emulator --------------------------------------
GUARD = 256          # guard bytes on each side of an emulated output
_POISON_BYTE = 0xCD
_guarded = {}        # id(base buffer) -> (weakref to it, nbytes of the payload)


def empty(xp, shape, dtype):
    """An output array for a kernel (see the module docstring)."""
    dtype = numpy.dtype(dtype)
    if xp is numpy:
        n = int(numpy.prod(shape, dtype=numpy.int64)) * dtype.itemsize
        base = numpy.full(n + 2 * GUARD, _POISON_BYTE, numpy.uint8)
        out = base[GUARD:GUARD + n].view(dtype).reshape(shape)
        if dtype.kind == "f":
            out.fill(numpy.nan)
        key = id(base)
        _guarded[key] = (weakref.ref(base, lambda _, k=key: _guarded.pop(k, None)), n)
        return out
    out = xp.empty(shape, dtype)
    if POISON and dtype.kind == "f":
        out.fill(numpy.nan)
    return out


def _root(a):
    while isinstance(getattr(a, "base", None), numpy.ndarray):
        a = a.base
    return a


def _check_guards(name, arrays):
    for a in arrays:
        root = _root(a)
        entry = _guarded.get(id(root))
        if entry is None or entry[0]() is not root:
            continue
        n = entry[1]
        if (root[:GUARD] != _POISON_BYTE).any() or (root[GUARD + n:] != _POISON_BYTE).any():
            raise RuntimeError(f"kernel {name} wrote outside an output buffer of {n} bytes")
