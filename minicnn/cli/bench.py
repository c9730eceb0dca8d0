"""`minicnn bench ...`: the benchmarks against PyTorch (minicnn.bench: bench/ in the repository).

Everything after `bench` goes to the benchmark's own parser (`minicnn bench --help`).
"""
import argparse


def add_parser(sub):
    p = sub.add_parser("bench", help="benchmark minicnn against PyTorch "
                                     "(see minicnn bench --help)")
    p.add_argument("args", nargs=argparse.REMAINDER)
    return p


def run(argv):
    # imported here: only this command needs the benchmark harness
    from ..bench.__main__ import main  # noqa: PLC0415
    return main(argv)
