"""The `minicnn` command (also `python -m minicnn`): one module per subcommand.

    minicnn train                      # LeNet-5 on the built-in digits, on the CPU
    minicnn train --model resnet18_cifar --dataset shapes --epochs 10 --device cuda
    minicnn evaluate runs/<stamp>/model.mc
    minicnn predict runs/<stamp>/model.mc images.npy
    minicnn export runs/<stamp>/model.mc --format onnx   # or safetensors
    minicnn bench --list               # benchmarks against PyTorch (bench/README.md)

A run folder holds model.mc (weights, optimizer state and everything needed to rebuild the model
and its preprocessing), summary.json (configuration, measured accuracy, times, environment),
history.csv, and PNG plots (curves, learning rate, confusion matrix, predictions, augmentation
preview) when matplotlib is installed.
"""
import argparse
import sys

from ..data import CorruptDatasetError, DatasetNotFoundError
from ..serialization import CheckpointError
from . import bench, evaluate, export, predict, train
from .common import CLIError

# every subcommand module has add_parser(sub) and run(args)
COMMANDS = {"train": train, "evaluate": evaluate, "predict": predict, "export": export}

# errors that are the user's (a bad option, a missing file): one line on stderr, exit status 2
USER_ERRORS = (CLIError, DatasetNotFoundError, CorruptDatasetError, CheckpointError)


def build_parser():
    parser = argparse.ArgumentParser(prog="minicnn", description="minicnn command line")
    sub = parser.add_subparsers(dest="command")
    bench.add_parser(sub)
    for module in COMMANDS.values():
        module.add_parser(sub)
    return parser


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:   # passed on whole: argparse's REMAINDER drops leading --options
        return bench.run(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "bench":     # `minicnn -- bench ...`
        return bench.run(args.args)
    return run(args)


def run(args):
    """Run a parsed train / evaluate / predict / export command; a user error is one line, exit
    code 2."""
    try:
        return COMMANDS[args.command].run(args)
    except USER_ERRORS as e:
        return _user_error(args.command, e)
    except RuntimeError as e:
        if "CUDA is not available" in str(e) or "size mismatch" in str(e):
            return _user_error(args.command, e)
        raise


def _user_error(command, e):
    print(f"minicnn {command}: error: {e}", file=sys.stderr)
    return 2
