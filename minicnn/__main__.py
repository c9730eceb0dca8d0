"""The `minicnn` command (and `python -m minicnn`)."""
import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="minicnn", description="minicnn command line")
    sub = parser.add_subparsers(dest="command")
    bench = sub.add_parser("bench", help="benchmark minicnn against PyTorch (see python -m bench)")
    bench.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command == "bench":
        from bench.__main__ import main as bench_main  # noqa: PLC0415
        return bench_main(args.args)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
