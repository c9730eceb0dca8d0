"""`minicnn bench ...`: the benchmarks against PyTorch (bench/ in the repository).

Everything after `bench` goes to the benchmark's own parser (`minicnn bench --help`).
"""
import argparse
import importlib.util
import os
import sys


def add_parser(sub):
    p = sub.add_parser("bench", help="benchmark minicnn against PyTorch "
                                     "(see minicnn bench --help)")
    p.add_argument("args", nargs=argparse.REMAINDER)
    return p


def run(argv):
    # bench/ sits next to the package in a checkout
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if importlib.util.find_spec("bench") is None and os.path.isdir(os.path.join(root, "bench")):
        sys.path.insert(0, root)
    from bench.__main__ import main  # noqa: PLC0415
    return main(argv)
