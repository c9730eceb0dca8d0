"""Compile-check every kernel file with nvcc, without a GPU: `python -m minicnn.kernels.cuda.check`.

Each file is compiled as NVRTC will see it (headers inlined, no system headers) with every
template kernel explicitly instantiated for float and double, for sm_90 (Hopper) and sm_80
(Ampere), with warnings as errors. CI runs this, so a syntax error never lands.
"""
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
            for T in ("float", "double"):
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


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        print("check: nvcc not found; CUDA sources not compile-checked", file=sys.stderr)
        return 2
    paths = [Path(a) for a in argv] or source.sources()
    failed = 0
    for p in paths:
        ok, out = check(p, nvcc)
        print(f"{'ok  ' if ok else 'FAIL'} {p.name}")
        if not ok:
            failed += 1
            print(out)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
