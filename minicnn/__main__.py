"""The `minicnn` command (and `python -m minicnn`)."""
import argparse
import sys


def _bench(argv):
    """`minicnn bench ...` is `python -m bench ...` (bench/ sits next to the package in a checkout)."""
    import importlib.util  # noqa: PLC0415
    import os  # noqa: PLC0415
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if importlib.util.find_spec("bench") is None and os.path.isdir(os.path.join(root, "bench")):
        sys.path.insert(0, root)
    from bench.__main__ import main as bench_main  # noqa: PLC0415
    return bench_main(argv)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":   # forwarded whole: argparse's REMAINDER drops leading --options
        return _bench(argv[1:])
    parser = argparse.ArgumentParser(prog="minicnn", description="minicnn command line")
    sub = parser.add_subparsers(dest="command")
    bench = sub.add_parser("bench", help="benchmark minicnn against PyTorch (see python -m bench)")
    bench.add_argument("args", nargs=argparse.REMAINDER)
    from . import cli  # noqa: PLC0415 -- train / evaluate / predict
    cli.add_parsers(sub)
    args = parser.parse_args(argv)
    if args.command == "bench":
        return _bench(args.args)
    if args.command in cli.COMMANDS:
        return cli.run(args)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
