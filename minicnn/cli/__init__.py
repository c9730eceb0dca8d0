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
import traceback

import numpy

from ..data import CorruptDatasetError, DatasetNotFoundError
from ..serialization import CheckpointError
from . import bench, evaluate, export, predict, train
from .common import CLIError

# every subcommand module has add_parser(sub) and run(args)
COMMANDS = {"train": train, "evaluate": evaluate, "predict": predict, "export": export}

# errors that are the user's (a bad option, a missing file): one line on stderr, exit status 2;
# any other error (a full disk, a bug) is one line too, exit status 1 (--debug adds the traceback)
USER_ERRORS = (CLIError, DatasetNotFoundError, CorruptDatasetError, CheckpointError)


class _Parser(argparse.ArgumentParser):
    """argparse's parser with its errors on one line (not after the whole usage block)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser():
    parser = _Parser(prog="minicnn", description="minicnn command line")
    sub = parser.add_subparsers(dest="command")
    bench.add_parser(sub)
    for module in COMMANDS.values():
        module.add_parser(sub).add_argument(
            "--debug", action="store_true", help="on an error, print its Python traceback too")
    return parser


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:   # passed on whole: argparse's REMAINDER drops leading --options
        return bench.run(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv        # `train --nproc N` runs the same command again under mpiexec
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "bench":     # `minicnn -- bench ...`
        return bench.run(args.args)
    return run(args)


def run(args):
    """Run a parsed train / evaluate / predict / export command. Every error is one line on
    stderr: exit status 2 for the user's (see USER_ERRORS), 1 for any other."""
    try:
        # NumPy's overflow / invalid-value warnings would only repeat, with its file names, what
        # the commands report themselves: train stops on a non-finite loss or weight with one
        # line, predict names the images whose output is not finite
        with numpy.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return COMMANDS[args.command].run(args)
    except USER_ERRORS as e:
        return _error(args, e, 2)
    except KeyboardInterrupt:
        print(f"minicnn {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 -- the command's one line instead of a traceback
        user = isinstance(e, RuntimeError) and (
            "CUDA is not available" in str(e) or "size mismatch" in str(e))
        return _error(args, e, 2 if user else 1)


def _error(args, e, status):
    debug = getattr(args, "debug", False)
    if debug:
        traceback.print_exc()
    hint = "" if debug or status == 2 else " (--debug prints the traceback)"
    print(f"minicnn {args.command}: error: {_one_line(e)}{hint}", file=sys.stderr)
    return status


def _one_line(e):
    """The error as one line: an OSError as its reason and file (a full disk under --out), the
    user's errors as their message, anything else with its type."""
    if isinstance(e, USER_ERRORS):
        text = str(e)
    elif isinstance(e, OSError) and e.strerror:
        named = e.filename and str(e.filename) not in e.strerror
        text = f"{e.strerror}: {e.filename}" if named else e.strerror
    else:
        text = f"{type(e).__name__}: {e}"
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())
