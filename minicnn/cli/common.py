"""What several subcommands share: the user-error type, --threads, datasets and saved runs."""
import os
import sys

import numpy

from .. import data as D
from .. import devices, models
from ..serialization import CheckpointError
from ..train import load_checkpoint


class CLIError(Exception):
    """A user-facing error: printed as `minicnn <command>: error: ...`, exit status 2."""


def add_inference_args(p):
    """The options evaluate and predict share (check_inference_args checks them)."""
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", default="auto", help="CPU threads (see minicnn train --help)")


def check_inference_args(args):
    positive_option(args.batch_size, "--batch-size")
    check_device(args.device)
    set_threads(args.threads)


def positive_option(value, flag):
    """A count option (None where it is optional): at least 1."""
    if value is not None and value < 1:
        raise CLIError(f"{flag} must be a positive integer, got {value}")


def check_output_file(path, flag):
    """A file the command will write (--out, --output): not a folder, in a folder that exists."""
    if path is None:
        return
    if os.path.isdir(path):
        raise CLIError(f"{flag} {path} is a folder: give a file name")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CLIError(f"{flag} {path}: the folder {folder} does not exist")


def check_device(device):
    """The --device as a device name ('cpu', 'cuda'), or a one-line error naming the option (an
    unknown device, or cuda where CUDA is not available)."""
    try:
        return devices.normalize_device(device)
    except (ValueError, TypeError, RuntimeError) as e:
        raise CLIError(f"--device {device!r}: {e}") from None


def set_threads(threads):
    """Apply --threads ('auto' or a number) to Numba and the BLAS (mc.set_num_threads); return
    the Numba thread count (None without Numba)."""
    try:
        import numba  # noqa: PLC0415 -- optional at run time
    except ImportError:
        return None
    n = _requested_threads(threads, numba.config.NUMBA_NUM_THREADS)
    if n is not None:
        from ..threads import set_num_threads  # noqa: PLC0415
        set_num_threads(n)
    return numba.get_num_threads()


def _requested_threads(threads, most):
    """The thread count to set, or None to keep Numba's own choice."""
    if threads == "auto":
        # parallel kernels on tiny batches only wait for cores when the machine is already busy
        try:
            busy = os.getloadavg()[0] >= (os.cpu_count() or 1)
        except OSError:
            busy = False
        return 1 if busy else None
    try:
        n = int(threads)
    except ValueError:
        raise CLIError(f"--threads must be a number or 'auto', got {threads!r}") from None
    if not 1 <= n <= most:
        raise CLIError(f"--threads must be between 1 and {most}")
    return n


def load_data(data_cfg, train=True):
    """The (un-normalized) dataset described by a run's data config."""
    name = data_cfg["dataset"]
    size = data_cfg.get("image_size")
    if name == "digits":
        return D.Digits(train=train, image_size=size or 8)
    if name == "shapes":
        n = data_cfg["num_samples"] if train else max(data_cfg["num_samples"] // 5, 1)
        return D.Shapes(n, image_size=size or 32, seed=data_cfg.get("data_seed", 0), train=train)
    if data_cfg.get("data_dir") is None:
        what = "the MNIST IDX files" if "mnist" in name else "the CIFAR-10 binary batches"
        raise CLIError(f"--dataset {name} reads files from a folder: pass --data-dir FOLDER "
                       f"({what})")
    cls = {"mnist": D.MNIST, "fashion-mnist": D.FashionMNIST, "cifar10": D.CIFAR10}[name]
    ds = cls(data_cfg["data_dir"], train=train)
    if size and size != ds.data.shape[-1]:
        ds.data = D.transforms.resize(ds.data, size)
    return ds


def normalizer(meta):
    """The input normalization a run was trained with (its per-channel mean and std)."""
    return D.transforms.Normalize(meta["mean"], meta["std"])


def build_model(name, kwargs):
    try:
        return models.get_model(name, **kwargs)
    except ValueError as e:     # an unknown name: the message lists the known ones
        raise CLIError(str(e)) from None


# what `minicnn train` stores in a checkpoint's meta so that evaluate / predict can rebuild the run
RUN_META_KEYS = ("model", "model_kwargs", "image_shape", "mean", "std", "classes")


def load_run(path, device):
    """The trained model of a `minicnn train` checkpoint (in eval mode, on device) and its meta."""
    if not os.path.exists(path):
        raise CLIError(f"checkpoint not found: {path}")
    try:
        ck = load_checkpoint(path)
    except CheckpointError as e:
        raise CLIError(f"cannot read checkpoint {path}: {e}") from None
    meta = ck["meta"]
    missing = [k for k in RUN_META_KEYS if k not in meta]
    if missing:
        raise CLIError(f"{path} is a checkpoint without the run information minicnn needs "
                       f"({', '.join(missing)}); was it written by `minicnn train`?")
    model = build_model(meta["model"], meta["model_kwargs"])
    model.load_state_dict(ck["model"])
    warn_if_not_finite(ck["model"], path)
    model.to(devices.normalize_device(device)).eval()
    return model, meta


def warn_if_not_finite(state, path):
    """A warning on stderr when a checkpoint's weights hold NaN or inf (a diverged run's, written
    before Trainer checked the weights): every output of such a model is meaningless."""
    arrays = {k: numpy.asarray(getattr(v, "array", v)) for k, v in state.items()}
    bad = [k for k, a in arrays.items() if a.dtype.kind == "f" and not numpy.isfinite(a).all()]
    if bad:
        listed = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        print(f"minicnn: warning: {path} holds NaN or inf in {listed}: its outputs are "
              "meaningless (the run that wrote it diverged)", file=sys.stderr)
