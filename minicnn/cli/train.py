"""`minicnn train`: train a CNN and write a run folder.

A run is four steps, one function each, called in order by `run`:

    load_run_data     the datasets, each loaded once, normalized and (train) augmented
    build_training    the model, its optimizer and LR schedule, the training loader
    fit               Trainer.fit with the CSV log and checkpoint callbacks
    report            the test metrics, plots, summary.json and the printed result

With --nproc N (or under `mpiexec -n N`) the ranks train data-parallel (cli/distributed.py):
a DistributedDataParallel model, a DistributedSampler's share of each batch, rank 0 writing.
"""
import argparse
import copy
import dataclasses
import datetime
import json
import math
import os
import platform
import sys
import time

import numpy

from .. import data as D
from .. import devices, optim
from ..optim import lr_scheduler
from ..random import manual_seed
from ..train import (CSVLogger, EarlyStopping, ModelCheckpoint, Profile, Trainer, load_checkpoint,
                     plots, save_checkpoint)
from ..train.metrics import confusion_matrix, precision_recall_f1
from ..distributed import get_world_size
from ..nn.parallel import DistributedDataParallel
from ..train.distributed import is_main
from . import distributed as ranks
from .common import (CLIError, build_model, check_device, load_data, positive_option,
                     set_threads)

DATASETS = ("digits", "shapes", "mnist", "fashion-mnist", "cifar10")
AUGMENT = ("none", "light", "standard", "strong")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("none", "cosine", "step", "onecycle", "plateau")


def add_parser(sub):
    p = sub.add_parser("train", help="train a model (default: LeNet-5 on the built-in digits)",
                       description="Train a CNN and write a run folder with a checkpoint, "
                                   "plots and a JSON summary.")
    p.add_argument("--model", default="lenet5",
                   help="model name (lenet5, simple_cnn, vgg11, vgg11_bn, vgg16, vgg16_bn, "
                        "resnet18, resnet34, resnet50, resnet18_cifar, densenet_small, ...)")
    p.add_argument("--dataset", default="digits", choices=DATASETS)
    p.add_argument("--data-dir", default=None,
                   help="folder with the MNIST / Fashion-MNIST IDX files or the CIFAR-10 "
                        "binary batches")
    p.add_argument("--image-size", type=int, default=None,
                   help="resize images to this side (default: digits 16, shapes 32, files as is)")
    p.add_argument("--num-samples", type=int, default=10000,
                   help="shapes: number of training images (the test set has a fifth as many)")
    p.add_argument("--augment", default=None, choices=AUGMENT,
                   help="augmentation preset (default: digits light, shapes/cifar10 standard, "
                        "mnist none)")
    p.add_argument("--mix", default="none", choices=("none", "mixup", "cutmix"))
    p.add_argument("--optimizer", default="adam", choices=OPTIMIZERS)
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (default: adam/adamw 3e-3, rmsprop 1e-3, sgd 0.05)")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=None,
                   help="default: 5e-4 for sgd, 0 for adam/rmsprop, 1e-2 for adamw")
    p.add_argument("--schedule", default="cosine", choices=SCHEDULES)
    p.add_argument("--epochs", type=int, default=None, help="default: digits 30, otherwise 10")
    p.add_argument("--batch-size", type=int, default=None, help="default: digits 32, else 128")
    p.add_argument("--val-fraction", type=float, default=0.0,
                   help="hold out this fraction of the training set for validation; then the "
                        "best epoch (val accuracy) is checkpointed and used for the test")
    p.add_argument("--patience", type=int, default=None,
                   help="early stopping patience in epochs (needs --val-fraction)")
    p.add_argument("--width", type=int, default=None,
                   help="base width of resnet/vgg models (64 as published; smaller is faster)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--precision", default="32", choices=["32", "bf16-mixed", "16-mixed"],
                   help="mixed precision: the forward pass under mc.autocast in bfloat16, or in "
                        "float16 with a gradient scaler (the weights stay float32)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", default="auto",
                   help="Numba threads for the CPU kernels: a number, or 'auto' (the default: "
                        "Numba's choice, but 1 when the machine is already busy, where parallel "
                        "kernels on tiny batches spend their time waiting for cores)")
    p.add_argument("--out", default=None, help="run folder (default: runs/<timestamp>)")
    p.add_argument("--steps-per-epoch", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--limit-test", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--no-plots", action="store_true", help="do not write PNG plots")
    p.add_argument("--profile", type=int, default=None, metavar="N",
                   help="profile N training steps after one warm-up step (mc.profiler): writes "
                        "trace.json (open it in ui.perfetto.dev or chrome://tracing) and "
                        "profile.txt (time per op and module) to the run folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar, only the result")
    p.add_argument("--nproc", type=int, default=None, metavar="N",
                   help="train data-parallel in N processes (MPI: pip install \"minicnn[mpi]\"),"
                        " each with a share of the cores; --batch-size is the global batch. "
                        "Also runs under `mpiexec -n N minicnn train ...`")
    return p


def run(args):
    status = ranks.relaunch_if_asked(args)
    if status is not None:
        return status
    with ranks.world(args):
        return run_here(args)


def run_here(args):
    started = time.perf_counter()
    device = prepare(args)
    manual_seed(args.seed)
    data = load_run_data(args)
    setup = build_training(args, data, device)
    run_dir = make_run_folder(args.out) if is_main() else ""   # the others write no file
    fitted = fit(args, data, setup, run_dir, device)
    if not is_main():
        return 0
    report(args, data, setup, fitted, run_dir, device, started)
    if fitted.nan_stop:
        print(f"minicnn: training stopped: {fitted.history.stopped}", file=sys.stderr)
        return 1
    return 0


# --- options ------------------------------------------------------------------------------------

def prepare(args):
    """Fill in the per-dataset defaults, check the options, apply --threads; return the device."""
    apply_defaults(args)
    check_options(args)
    device = check_device(args.device)
    args.threads = set_threads(args.threads)    # summary.json records the count in force
    return device


def check_options(args):
    """Every option in its range, before anything runs; each error names its flag."""
    for flag in ("epochs", "batch_size", "image_size", "num_samples", "width", "patience",
                 "profile", "steps_per_epoch", "limit_test"):
        positive_option(getattr(args, flag), "--" + flag.replace("_", "-"))
    for flag in ("lr", "momentum", "weight_decay"):
        value = getattr(args, flag)
        if not (math.isfinite(value) and value >= 0):
            raise CLIError(f"--{flag.replace('_', '-')} must be a finite number >= 0, got "
                           f"{value:g}")
    if args.seed < 0:
        raise CLIError(f"--seed must be >= 0, got {args.seed}")
    if not 0 <= args.val_fraction < 1:
        raise CLIError(f"--val-fraction must be in [0, 1), got {args.val_fraction:g}")
    if args.patience is not None and args.val_fraction == 0:
        raise CLIError("--patience needs a validation set: add --val-fraction 0.1")
    if args.out and os.path.exists(args.out) and not os.path.isdir(args.out):
        raise CLIError(f"--out {args.out} is a file: give a folder (made if missing)")


def apply_defaults(args):
    ds = args.dataset
    if args.image_size is None:
        args.image_size = {"digits": 16, "shapes": 32}.get(ds)
    if args.augment is None:
        args.augment = {"digits": "light", "shapes": "standard", "cifar10": "standard"}.get(
            ds, "none")
    if args.epochs is None:
        args.epochs = 30 if ds == "digits" else 10
    if args.batch_size is None:
        args.batch_size = 32 if ds == "digits" else 128
    if args.lr is None:
        args.lr = {"adam": 3e-3, "adamw": 3e-3, "rmsprop": 1e-3, "sgd": 0.05}[args.optimizer]
    if args.weight_decay is None:
        args.weight_decay = {"sgd": 5e-4, "adamw": 1e-2}.get(args.optimizer, 0.0)
    return args


# --- data ---------------------------------------------------------------------------------------

@dataclasses.dataclass
class RunData:
    """A run's datasets, each loaded from disk (or generated) once, and what it records of them."""
    config: dict            # how to load them again: stored in the checkpoint for `evaluate`
    train: object           # augmented and normalized, without the validation images
    val: object             # normalized, not augmented; None without --val-fraction
    test: object            # normalized; only the first --limit-test images when that is given
    images: numpy.ndarray   # the raw training images, for the augmentation preview
    image_shape: tuple
    classes: list
    mean: list
    std: list
    augment: object         # the augmentation transform, None for --augment none


def load_run_data(args):
    config = {"dataset": args.dataset, "image_size": args.image_size,
              "num_samples": args.num_samples, "data_seed": args.seed,
              "data_dir": os.path.abspath(args.data_dir) if args.data_dir else None}
    train_set, test_set = load_data(config, train=True), load_data(config, train=False)
    image_shape = tuple(int(s) for s in train_set.data.shape[1:])
    mean, std = channel_stats(train_set.data)
    normalize = D.transforms.Normalize(mean, std)
    augment = augmentation(args.augment, image_shape)
    images = train_set.data
    classes = list(train_set.classes) if train_set.classes else \
        [str(i) for i in range(train_set.num_classes)]

    train_set.transform = normalize
    if augment is not None:
        train_set.transform = D.transforms.Compose([augment, normalize])
    test_set.transform = normalize
    if args.limit_test:
        test_set = D.Subset(test_set, numpy.arange(min(args.limit_test, len(test_set))))
    val_set = None
    if args.val_fraction > 0:
        train_set, val_set = hold_out_validation(train_set, args.val_fraction, args.seed,
                                                 normalize)
    return RunData(config, train_set, val_set, test_set, images, image_shape, classes, mean, std,
                   augment)


def channel_stats(images):
    """Per-channel mean and std of (N, C, H, W) images, as plain floats (std at least 1e-6)."""
    mean = [float(v) for v in images.mean(axis=(0, 2, 3))]
    std = [float(max(v, 1e-6)) for v in images.std(axis=(0, 2, 3))]
    return mean, std


def hold_out_validation(train_set, fraction, seed, normalize):
    """Split off a random fraction of the training images as (train, val) Subsets.

    The validation images are the same arrays seen through normalization only: no augmentation.
    """
    n_val = max(1, int(round(len(train_set) * fraction)))
    perm = numpy.random.Generator(numpy.random.PCG64(seed + 7)).permutation(len(train_set))
    plain = copy.copy(train_set)    # shares the arrays: a second view, not a second load
    plain.transform = normalize
    return D.Subset(train_set, perm[n_val:]), D.Subset(plain, perm[:n_val])


def augmentation(preset, image_shape):
    """The training transform of an --augment preset (None for 'none')."""
    T = D.transforms
    c, h, _ = image_shape
    if preset == "none":
        return None
    if preset == "light":
        return T.RandomAffine(degrees=10, translate=(0.08, 0.08), scale=(0.9, 1.1))
    parts = [T.RandomCrop(h, padding=max(1, h // 8), padding_mode="reflect"),
             T.RandomHorizontalFlip()]
    if preset == "strong":
        parts.append(T.ColorJitter(0.2, 0.2, 0.2 if c == 3 else 0, 0.05 if c == 3 else 0))
        parts.append(T.RandomErasing(p=0.25))
    return T.Compose(parts)


# --- model --------------------------------------------------------------------------------------

@dataclasses.dataclass
class Training:
    """What trains: the model and how its optimizer walks through the training set."""
    model: object
    model_kwargs: dict      # get_model's arguments, stored in the checkpoint to rebuild it
    optimizer: object
    loader: object
    scheduler: object       # None for --schedule none
    scheduler_interval: str     # 'step' or 'epoch'


def build_training(args, data, device):
    kwargs = model_kwargs(args.model, len(data.classes), data.image_shape, args.width)
    model = build_model(args.model, kwargs).to(device)
    opt = make_optimizer(args, model.parameters())
    world = get_world_size()
    if world > 1:       # this rank's share of each (global) batch
        loader = D.DataLoader(data.train, batch_size=ranks.per_rank_batch(args.batch_size, world),
                              sampler=D.DistributedSampler(data.train, seed=args.seed),
                              prefetch=True)
    else:
        loader = D.DataLoader(data.train, batch_size=args.batch_size, shuffle=True, prefetch=True)
    steps = min(len(loader), args.steps_per_epoch) if args.steps_per_epoch else len(loader)
    scheduler, interval = make_scheduler(args, opt, steps)
    return Training(model, kwargs, opt, loader, scheduler, interval)


def model_kwargs(name, num_classes, image_shape, width=None):
    """get_model arguments that fit the data: classes, channels, and small-image variants."""
    c, h, _ = image_shape
    kw = {"num_classes": num_classes, "in_channels": c}
    key = name.lower().replace("-", "_")
    if key in ("lenet5", "simple_cnn"):
        kw["image_size"] = h
    elif key.startswith("vgg"):
        kw["small_input"] = h < 64
        if width:
            kw["width_mult"] = width / 64
    elif key.startswith("resnet"):
        if not key.endswith("_cifar"):
            kw["cifar"] = h < 64
        if width:
            kw["width"] = width
    elif key.startswith("densenet") and key != "densenet_small":
        kw["cifar"] = h < 64
    return kw


def make_optimizer(args, params):
    if args.optimizer == "sgd":
        return optim.SGD(params, lr=args.lr, momentum=args.momentum,
                         weight_decay=args.weight_decay, nesterov=args.momentum > 0)
    cls = {"adam": optim.Adam, "adamw": optim.AdamW, "rmsprop": optim.RMSprop}[args.optimizer]
    return cls(params, lr=args.lr, weight_decay=args.weight_decay)


def make_scheduler(args, opt, steps_per_epoch):
    """The LR scheduler and whether it steps per batch ('step') or per epoch ('epoch')."""
    if args.schedule == "none":
        return None, "epoch"
    if args.schedule == "cosine":
        return lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs * steps_per_epoch), "step"
    if args.schedule == "step":
        return lr_scheduler.StepLR(opt, step_size=max(1, args.epochs // 3), gamma=0.1), "epoch"
    if args.schedule == "onecycle":
        return lr_scheduler.OneCycleLR(opt, max_lr=args.lr,
                                       total_steps=args.epochs * steps_per_epoch), "step"
    return lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2), "epoch"


# --- fit ----------------------------------------------------------------------------------------

@dataclasses.dataclass
class Fitted:
    trainer: object
    history: object
    seconds: float
    nan_stop: object        # the trainer's report of a non-finite loss, None when training ended
    tested_weights: str     # what the test measures: 'final', 'last good checkpoint' or None


def make_run_folder(out):
    """--out, or a new runs/<timestamp>[-i] folder."""
    if out:
        os.makedirs(out, exist_ok=True)
        return out
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = os.path.join("runs", stamp)
    i = 1
    while os.path.exists(path):
        i += 1
        path = os.path.join("runs", f"{stamp}-{i}")
    os.makedirs(path)
    return path


def checkpoint_meta(args, data, training):
    """What evaluate / predict need besides the weights to rebuild the model and its input."""
    return {"model": args.model, "model_kwargs": training.model_kwargs, "data": data.config,
            "classes": data.classes, "image_shape": list(data.image_shape), "mean": data.mean,
            "std": data.std, "input_range": "float in [0, 1] (uint8 is divided by 255)"}


def fit(args, data, training, run_dir, device):
    checkpoint = os.path.join(run_dir, "model.mc")
    meta = checkpoint_meta(args, data, training)
    callbacks = make_callbacks(args, run_dir, checkpoint, meta, validated=data.val is not None)
    _say(args, _header(args, data, training, device))
    _say(args, f"run folder: {run_dir}")
    model = training.model
    if get_world_size() > 1:
        model = DistributedDataParallel(model)
    trainer = Trainer(model, training.optimizer, loss="cross_entropy",
                      metrics=["accuracy"], device=device, scheduler=training.scheduler,
                      scheduler_interval=training.scheduler_interval,
                      scheduler_monitor="val_loss" if data.val is not None else "loss",
                      mix=None if args.mix == "none" else args.mix, precision=args.precision)
    started = time.perf_counter()
    try:
        history = trainer.fit(training.loader, epochs=args.epochs, val_data=data.val,
                              batch_size=args.batch_size, callbacks=callbacks,
                              verbose=0 if args.quiet else 1, steps_per_epoch=args.steps_per_epoch)
    finally:
        for c in callbacks:         # a profiler left recording by an exception stops
            if isinstance(c, Profile):
                c.close()
    seconds = time.perf_counter() - started
    nan_stop = getattr(trainer, "nan_info", None)
    if not is_main():       # rank 0 keeps the checkpoint and reports
        return Fitted(trainer, history, seconds, nan_stop, None)
    tested_weights = "final"
    if not nan_stop:
        keep_checkpoint(checkpoint, training, meta, history, validated=data.val is not None)
    elif os.path.exists(checkpoint):   # a NaN stop: test the last good weights, not the broken
        training.model.load_state_dict(load_checkpoint(checkpoint)["model"])
        tested_weights = "last good checkpoint"
    else:
        tested_weights = None
    return Fitted(trainer, history, seconds, nan_stop, tested_weights)


def make_callbacks(args, run_dir, checkpoint, meta, validated):
    """history.csv always; with a validation set the best epoch is kept, otherwise the last."""
    callbacks = [CSVLogger(os.path.join(run_dir, "history.csv"))]
    if args.profile:
        callbacks.append(Profile(args.profile, os.path.join(run_dir, "trace.json"),
                                 os.path.join(run_dir, "profile.txt")))
    if not validated:
        callbacks.append(ModelCheckpoint(checkpoint, monitor="loss", save_best_only=False,
                                         extra=meta))
        return callbacks
    callbacks.append(ModelCheckpoint(checkpoint, monitor="val_accuracy", save_best_only=True,
                                     extra=meta))
    if args.patience is not None:
        callbacks.append(EarlyStopping("val_accuracy", patience=args.patience))
    return callbacks


def keep_checkpoint(checkpoint, training, meta, history, validated):
    """Test the best epoch's weights when validation chose one; make sure model.mc exists."""
    if not os.path.exists(checkpoint):
        save_checkpoint(checkpoint, training.model, training.optimizer,
                        meta={**meta, "epoch": len(history.epoch)})
    elif validated:
        training.model.load_state_dict(load_checkpoint(checkpoint)["model"])


def _header(args, data, training, device):
    sizes = f"{len(data.train)} train{f' / {len(data.val)} val' if data.val else ''} / " \
            f"{len(data.test)} test images of {'x'.join(map(str, data.image_shape))}"
    threads = f", {args.threads} CPU thread(s)" if device == "cpu" and args.threads else ""
    if get_world_size() > 1:
        threads += f" in each of {get_world_size()} processes"
    return (f"minicnn train: {args.model} ({training.model.num_parameters():,} parameters) on "
            f"{args.dataset} ({sizes}, {len(data.classes)} classes), {args.epochs} epochs, batch "
            f"{args.batch_size}, {args.optimizer} lr {args.lr:g}, {args.schedule} schedule, "
            f"augment {args.augment}, device {device}, seed {args.seed}{threads}")


def _say(args, msg):
    if not args.quiet:
        print(msg, flush=True)


# --- report -------------------------------------------------------------------------------------

@dataclasses.dataclass
class Tested:
    """The trained model on the test set."""
    scores: dict            # Trainer.evaluate: loss and accuracy
    labels: numpy.ndarray
    predictions: numpy.ndarray
    confusion: numpy.ndarray
    precision: numpy.ndarray    # per class, as recall and f1
    recall: numpy.ndarray
    f1: numpy.ndarray
    seconds: float


def report(args, data, training, fitted, run_dir, device, started):
    tested = None if fitted.tested_weights is None else \
        evaluate_on_test(fitted.trainer, data.test, len(data.classes))
    files = {"history": "history.csv"}
    if os.path.exists(os.path.join(run_dir, "model.mc")):
        files["checkpoint"] = "model.mc"
    if os.path.exists(os.path.join(run_dir, "trace.json")) and args.profile:
        files.update(profile_trace="trace.json", profile_table="profile.txt")
    if not args.no_plots:
        files.update(write_plots(args, data, fitted, tested, run_dir))
    summary = make_summary(args, data, training, fitted, tested, device, files)
    summary["timing"]["total_seconds"] = round(time.perf_counter() - started, 3)
    with open(os.path.join(run_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print_result(summary, fitted, run_dir)


def evaluate_on_test(trainer, test_set, num_classes):
    started = time.perf_counter()
    loader = D.DataLoader(test_set, batch_size=256)
    logits = trainer.predict(loader)
    _, labels = raw_arrays(test_set)
    scores = trainer.evaluate(loader)
    seconds = time.perf_counter() - started
    predictions = logits.argmax(1)
    cm = confusion_matrix(labels, predictions, num_classes)
    precision, recall, f1 = precision_recall_f1(cm, average=None)
    return Tested(scores, labels, predictions, cm, precision, recall, f1, seconds)


def raw_arrays(dataset):
    """The un-transformed images and labels of an array dataset or of a Subset of one."""
    if isinstance(dataset, D.Subset):
        return dataset.dataset.data[dataset.indices], dataset.dataset.targets[dataset.indices]
    return dataset.data, numpy.asarray(dataset.targets)


def write_plots(args, data, fitted, tested, run_dir):
    """The PNG plots (none without matplotlib); returns {kind: file name} of those written."""
    def path(name):
        return os.path.join(run_dir, name)
    images, _ = raw_arrays(data.test)
    written = {}
    if fitted.history.epoch:        # none when training stopped in its first epoch
        written["curves"] = plots.plot_history(fitted.history, path("curves.png"),
                                               title=f"{args.model} on {args.dataset}")
        written["lr"] = plots.plot_lr(fitted.history, path("lr.png"))
    if tested is not None:
        written["confusion_matrix"] = plots.plot_confusion_matrix(
            tested.confusion, path("confusion_matrix.png"), classes=data.classes)
        written["predictions"] = plots.plot_image_grid(
            images[:32], path("predictions.png"), labels=tested.labels[:32],
            predictions=tested.predictions[:32], classes=data.classes)
    if data.augment is not None:
        written["augmentation"] = plots.plot_augmentations(data.images[:4], data.augment,
                                                           path("augmentation.png"))
    return {kind: os.path.basename(p) for kind, p in written.items() if p}


def make_summary(args, data, training, fitted, tested, device, files):
    history = fitted.history
    return {
        "command": "minicnn train " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["train"]
        else "minicnn train",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "config": {k: v for k, v in vars(args).items() if k not in ("func", "command", "argv")},
        "model": {"name": args.model, "kwargs": training.model_kwargs,
                  "parameters": training.model.num_parameters()},
        "data": {**data.config, "train_images": len(data.train),
                 "val_images": len(data.val) if data.val else 0, "test_images": len(data.test),
                 "image_shape": list(data.image_shape), "classes": data.classes},
        "test": summarize_test(tested, data.classes, fitted.tested_weights),
        "history": history.to_dict(),
        "epochs_run": len(history.epoch),
        "stopped": history.stopped,
        "timing": {"train_seconds": round(fitted.seconds, 3),
                   "epoch_seconds": [round(t, 3) for t in getattr(history, "times", [])],
                   "train_images_per_second": round(images_trained(args, data, history) /
                                                    max(fitted.seconds, 1e-9), 1),
                   "test_seconds": round(tested.seconds, 3) if tested else None},
        "environment": environment(device),
        "files": files,
    }


def summarize_test(tested, classes, weights="final"):
    """The test metrics (None without a test: training stopped before a checkpoint); `weights`:
    which weights were tested."""
    if tested is None:
        return None
    per_class = zip(classes, tested.precision, tested.recall, tested.f1)
    return {"weights": weights,
            "accuracy": float(tested.scores["accuracy"]), "loss": float(tested.scores["loss"]),
            "correct": int((tested.predictions == tested.labels).sum()),
            "total": int(len(tested.labels)),
            "macro_precision": float(tested.precision.mean()),
            "macro_recall": float(tested.recall.mean()), "macro_f1": float(tested.f1.mean()),
            "per_class": {c: {"precision": float(p), "recall": float(r), "f1": float(f)}
                          for c, p, r, f in per_class},
            "confusion_matrix": tested.confusion.tolist()}


def images_trained(args, data, history):
    """Training images seen in all epochs (--steps-per-epoch cuts an epoch short)."""
    per_epoch = len(data.train)
    if args.steps_per_epoch:
        per_epoch = min(per_epoch, args.steps_per_epoch * args.batch_size)
    return per_epoch * len(history.epoch)


def environment(device):
    env = {"python": platform.python_version(), "numpy": numpy.__version__,
           "platform": platform.platform(), "cpu_count": os.cpu_count(), "device": device}
    try:
        import numba  # noqa: PLC0415 -- optional at run time
        env["numba"] = numba.__version__
        env["numba_threads"] = numba.get_num_threads()
    except ImportError:
        pass
    try:
        env["load_average_1min"] = os.getloadavg()[0]
    except OSError:
        pass
    return env


def print_result(summary, fitted, run_dir):
    result, timing = summary["test"], summary["timing"]
    if result is None:
        print("no test result: training stopped on a non-finite value before a checkpoint was "
              "written")
    else:
        of = " (the last good checkpoint)" if result["weights"] != "final" else ""
        print(f"test accuracy{of}: {result['accuracy'] * 100:.2f}% ({result['correct']}/"
              f"{result['total']}), test loss {result['loss']:.4f}, macro F1 "
              f"{result['macro_f1']:.4f}")
    print(f"trained {len(fitted.history.epoch)} epochs in {fitted.seconds:.1f} s "
          f"({timing['train_images_per_second']:.0f} images/s); total "
          f"{timing['total_seconds']:.1f} s")
    written = sorted(set(summary["files"].values()) | {"summary.json"})
    print(f"wrote {run_dir}/: " + ", ".join(written))
