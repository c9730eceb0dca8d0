"""The package list, found rather than written out; everything else is in pyproject.toml.

kernels/ and bench/ sit at the top of the repository but install as minicnn.kernels and
minicnn.bench. setuptools' own discovery ([tool.setuptools.packages.find]) names a package after
its folder, so it cannot find them under those names: each folder is searched here and its
packages are named under minicnn.
"""
from setuptools import find_packages, setup

# installed name -> the folder it is built from
PACKAGE_DIR = {"minicnn.kernels": "kernels", "minicnn.bench": "bench"}


def packages():
    found = find_packages(include=["minicnn", "minicnn.*"])
    for name, folder in PACKAGE_DIR.items():
        found += [name] + [f"{name}.{sub}" for sub in find_packages(folder)]
    return found


setup(packages=packages(), package_dir=PACKAGE_DIR)
