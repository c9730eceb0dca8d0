"""The wheel holds every package under its installed name, the CUDA sources and the data files.

What should be in it is read from the source tree, so a new subpackage or .cu file is checked
without editing this test. The wheel is built by pip (a few seconds, no network) from a copy of
the sources: a build in the checkout would leave build/ behind, and setuptools puts stale files
from there into later wheels.
"""
import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD_INPUTS = ("pyproject.toml", "setup.py", "setup.cfg", "README.md", "minicnn", "kernels",
                "bench")
# source folder -> where it lands in the wheel
INSTALLED_AS = {"minicnn": "minicnn", "kernels": "minicnn/kernels", "bench": "minicnn/bench"}


def _setuptools_builds_wheels():
    # without build isolation the environment's setuptools builds: it needs bdist_wheel (built in
    # since setuptools 70.1, before that from the `wheel` package)
    return (importlib.util.find_spec("setuptools") is not None and
            (importlib.util.find_spec("setuptools.command.bdist_wheel") is not None or
             importlib.util.find_spec("wheel") is not None))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The built wheel, open."""
    if not _setuptools_builds_wheels():
        pytest.skip("this environment's setuptools cannot build wheels (upgrade setuptools)")
    tmp = tmp_path_factory.mktemp("wheel")
    for name in BUILD_INPUTS:
        src, dst = os.path.join(ROOT, name), tmp / "src" / name
        if os.path.isdir(src):
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            os.makedirs(dst.parent, exist_ok=True)
            shutil.copy(src, dst)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", str(tmp / "src"), "-w", str(tmp / "out")],
                   check=True, timeout=600)
    (path,) = (tmp / "out").iterdir()
    with zipfile.ZipFile(path) as z:
        yield z


def _expected(folder, keep):
    """{path in the wheel: path in the repository} of the files under folder that keep(dir, file)
    takes (dir relative to the repository root)."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, folder)):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        rel = os.path.relpath(dirpath, ROOT)
        installed = os.path.normpath(os.path.join(INSTALLED_AS[folder],
                                                  os.path.relpath(rel, folder)))
        for f in filenames:
            if keep(rel, f):
                found[os.path.join(installed, f).replace(os.sep, "/")] = os.path.join(rel, f)
    return found


def _missing(wheel, expected):
    names = set(wheel.namelist())
    return sorted(src for name, src in expected.items() if name not in names)


def test_every_module_of_every_package(wheel):
    def in_a_package(rel, f):
        return f.endswith(".py") and os.path.exists(os.path.join(ROOT, rel, "__init__.py"))
    expected = {}
    for folder in INSTALLED_AS:
        expected.update(_expected(folder, in_a_package))
    assert {"minicnn/cli/__init__.py", "minicnn/kernels/__init__.py",
            "minicnn/bench/__main__.py", "minicnn/bench/cases/overhead.py"} <= set(expected)
    assert _missing(wheel, expected) == []


def test_cuda_sources_emulator_and_data_files(wheel):
    def cuda_or_emulator(rel, f):
        return f.endswith((".cu", ".cuh")) or rel == os.path.join("kernels", "cuda", "emu")

    def data_file(rel, f):
        return rel == os.path.join("minicnn", "data") and not f.endswith(".py")
    expected = {**_expected("kernels", cuda_or_emulator), **_expected("minicnn", data_file)}
    assert {"minicnn/kernels/cuda/common.cuh", "minicnn/data/digits.csv.gz"} <= set(expected)
    assert any(name.startswith("minicnn/kernels/cuda/emu/") for name in expected)
    assert _missing(wheel, expected) == []


def test_one_top_level_package_and_the_command(wheel):
    tops = {name.split("/")[0] for name in wheel.namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"minicnn"}
    assert not any("/results/" in name for name in wheel.namelist())  # bench/results stays home
    (entry_points,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    assert "minicnn = minicnn.cli:main" in wheel.read(entry_points).decode()
