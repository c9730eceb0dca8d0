"""Compile-check every kernel file without a GPU: `python -m minicnn.kernels.cuda.check`.

Two compilers, two checks:
- NVRTC, the compiler CuPy's RawModule runs at first use on the GPU: the very text the loader
  hands it (headers inlined), the same options, the template instances as name expressions, for
  compute_90 and compute_80. NVRTC has no host headers, so this catches what nvcc lets through
  (INFINITY, <stdint.h> names, ...). Its library comes from the `nvidia-cuda-nvrtc` wheel (the
  test extra) or a CUDA toolkit.
- nvcc, with every template kernel explicitly instantiated for float and double, for sm_90 and
  sm_80 with warnings as errors (ptxas runs too: register limits, shared memory).
CI runs both, so a kernel that would not compile on the GPU machine never lands.
"""
import ctypes
import glob
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from . import source

ARCHS = ("90", "80")


def instantiations(text):
    lines = []
    for decl in source.kernels(text).values():
        if decl.template:
            for T in decl.types:
                params = ", ".join(p.c_decl(T) for p in decl.params)
                lines.append(f"template __global__ void {decl.name}<{T}>({params});")
    return "\n".join(lines)


def check(path, nvcc="nvcc"):
    """Compile one file; returns (ok, compiler output)."""
    path = Path(path)
    try:
        text = source.read(path)
        unit = f'#line 1 "{path.name}"\n{text}\n{instantiations(text)}\n'
    except ValueError as e:
        return False, str(e)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / path.name
        src.write_text(unit)
        cmd = [nvcc, "-std=c++17", "-c", "-o", str(Path(tmp) / "out.o"), "-Werror",
               "all-warnings", *[f"-gencode=arch=compute_{a},code=sm_{a}" for a in ARCHS],
               str(src)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
    return proc.returncode == 0, (proc.stdout + proc.stderr).strip()


# --- NVRTC -----------------------------------------------------------------------------------
_nvrtc = None


def nvrtc_library():
    """The NVRTC shared library (ctypes), or None when it is not installed."""
    global _nvrtc
    if _nvrtc is None:
        candidates = []
        spec = importlib.util.find_spec("nvidia")
        for root in (spec.submodule_search_locations or []) if spec else []:
            candidates += sorted(glob.glob(os.path.join(root, "*", "lib", "libnvrtc.so*")))
        for root in (os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
            if root:
                candidates += sorted(glob.glob(os.path.join(root, "lib64", "libnvrtc.so*")))
        for c in candidates:
            if "builtins" in c or ".alt." in c:
                continue
            try:
                # NVRTC dlopens its builtins library by name at compile time: load the one
                # beside it first (a wheel's folder is not on the loader's search path)
                for b in sorted(glob.glob(os.path.join(os.path.dirname(c),
                                                       "libnvrtc-builtins.so*"))):
                    if ".alt." not in b:
                        ctypes.CDLL(b, mode=ctypes.RTLD_GLOBAL)
                _nvrtc = ctypes.CDLL(c)
                break
            except OSError:
                continue
        else:
            _nvrtc = False
        if _nvrtc:
            _nvrtc.nvrtcGetErrorString.restype = ctypes.c_char_p
    return _nvrtc or None


def nvrtc_check(path, arch="90"):
    """Compile one file with NVRTC as the loader does on the GPU; returns (ok, log)."""
    from . import module  # noqa: PLC0415
    lib = nvrtc_library()
    if lib is None:
        raise RuntimeError("NVRTC is not installed (pip install nvidia-cuda-nvrtc)")
    path = Path(path)
    try:
        text = source.read(path)
        decls = source.kernels(text)
    except ValueError as e:
        return False, str(e)
    names = [d.expression(T) for d in decls.values() for T in d.types]
    prog = ctypes.c_void_p()

    def ok(rc, what):
        if rc != 0:
            raise RuntimeError(f"{what}: {lib.nvrtcGetErrorString(rc).decode()}")

    ok(lib.nvrtcCreateProgram(ctypes.byref(prog), text.encode(), path.name.encode(), 0, None,
                              None), "nvrtcCreateProgram")
    try:
        for n in names:
            ok(lib.nvrtcAddNameExpression(prog, n.encode()), "nvrtcAddNameExpression")
        opts = [o.encode() for o in module.NVRTC_OPTIONS + source.include_options() +
                (f"--gpu-architecture=compute_{arch}",)]
        rc = lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        buf = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, buf)
        log = buf.value.decode(errors="replace").strip()
        if rc != 0:
            return False, log or lib.nvrtcGetErrorString(rc).decode()
        for n in names:  # every kernel the loader will ask CuPy for exists under its name
            lowered = ctypes.c_char_p()
            if lib.nvrtcGetLoweredName(prog, n.encode(), ctypes.byref(lowered)) != 0:
                return False, f"NVRTC has no kernel {n}"
        return True, log
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    nvcc = shutil.which("nvcc")
    nvrtc = nvrtc_library()
    if nvcc is None and nvrtc is None:
        print("check: neither nvcc nor NVRTC found; CUDA sources not compile-checked",
              file=sys.stderr)
        return 2
    paths = [Path(a) for a in argv] or source.sources()
    failed = 0
    for p in paths:
        runs = ([("nvrtc", lambda p=p: nvrtc_check(p, a)) for a in ARCHS] if nvrtc else []) + \
            ([("nvcc", lambda p=p: check(p, nvcc))] if nvcc else [])
        for what, run in runs:
            ok, out = run()
            print(f"{'ok  ' if ok else 'FAIL'} {p.name} ({what})")
            if not ok:
                failed += 1
                print(out)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
