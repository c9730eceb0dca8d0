"""The `minicnn train | evaluate | predict` commands (wired into minicnn/__main__.py).

    minicnn train                      # LeNet-5 on the built-in digits, on the CPU
    minicnn train --model resnet18_cifar --dataset shapes --epochs 10 --device cuda
    minicnn evaluate runs/<stamp>/model.mc
    minicnn predict runs/<stamp>/model.mc images.npy

A run folder holds model.mc (weights, optimizer state and everything needed to rebuild the model
and its preprocessing), summary.json (configuration, measured accuracy, times, environment),
history.csv, and PNG plots (curves, learning rate, confusion matrix, predictions, augmentation
preview) when matplotlib is installed.
"""
import argparse
import datetime
import json
import os
import platform
import sys
import time

import numpy

DATASETS = ("digits", "shapes", "mnist", "fashion-mnist", "cifar10")
AUGMENT = ("none", "light", "standard", "strong")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("none", "cosine", "step", "onecycle", "plateau")


class CLIError(Exception):
    """A user-facing error: printed as `minicnn: error: ...`, exit status 2."""


# --- arguments ----------------------------------------------------------------------------------

def add_train_parser(sub):
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
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", default="auto",
                   help="Numba threads for the CPU kernels: a number, or 'auto' (the default: "
                        "Numba's choice, but 1 when the machine is already busy, where parallel "
                        "kernels on tiny batches spend their time waiting for cores)")
    p.add_argument("--out", default=None, help="run folder (default: runs/<timestamp>)")
    p.add_argument("--steps-per-epoch", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--limit-test", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--no-plots", action="store_true", help="do not write PNG plots")
    p.add_argument("--quiet", action="store_true", help="no progress bar, only the result")
    return p


def add_evaluate_parser(sub):
    p = sub.add_parser("evaluate", help="evaluate a checkpoint on its dataset's test split")
    p.add_argument("checkpoint")
    p.add_argument("--data-dir", default=None, help="override the dataset folder of the run")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    _add_inference_args(p)
    return p


def add_predict_parser(sub):
    p = sub.add_parser("predict", help="classify images from a .npy / .npz file")
    p.add_argument("checkpoint")
    p.add_argument("images", help=".npy or .npz of images (N, C, H, W), (N, H, W) or one image; "
                                  "float values in [0, 1] or uint8 0..255")
    p.add_argument("--top-k", type=int, default=1)
    p.add_argument("--output", default=None, help="write the predictions to a .json or .csv file")
    _add_inference_args(p)
    return p


def _add_inference_args(p):
    """The options evaluate and predict share."""
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", default="auto", help="CPU threads (see minicnn train --help)")


# --- data ---------------------------------------------------------------------------------------

def _defaults(args):
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


def load_data(data_cfg, train=True):
    """The (un-normalized) dataset described by a run's data config."""
    from . import data as D  # noqa: PLC0415
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


def augmentation(preset, image_shape):
    from .data import transforms as T  # noqa: PLC0415
    c, h, _ = image_shape
    if preset == "none":
        return None
    if preset == "light":
        return T.RandomAffine(degrees=10, translate=(0.08, 0.08), scale=(0.9, 1.1))
    crop = T.RandomCrop(h, padding=max(1, h // 8), padding_mode="reflect")
    if preset == "standard":
        return T.Compose([crop, T.RandomHorizontalFlip()])
    parts = [crop, T.RandomHorizontalFlip()]
    parts.append(T.ColorJitter(0.2, 0.2, 0.2 if c == 3 else 0, 0.05 if c == 3 else 0))
    parts.append(T.RandomErasing(p=0.25))
    return T.Compose(parts)


def _normalizer(meta):
    from .data import transforms as T  # noqa: PLC0415
    return T.Normalize(meta["mean"], meta["std"])


def model_kwargs(name, num_classes, image_shape, width=None):
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


def build_model(name, kwargs):
    from . import models  # noqa: PLC0415
    try:
        return models.get_model(name, **kwargs)
    except ValueError as e:
        raise CLIError(str(e)) from None


# --- train --------------------------------------------------------------------------------------

def _optimizer(args, params):
    from . import optim  # noqa: PLC0415
    if args.optimizer == "sgd":
        return optim.SGD(params, lr=args.lr, momentum=args.momentum,
                         weight_decay=args.weight_decay, nesterov=args.momentum > 0)
    cls = {"adam": optim.Adam, "adamw": optim.AdamW, "rmsprop": optim.RMSprop}[args.optimizer]
    return cls(params, lr=args.lr, weight_decay=args.weight_decay)


def _scheduler(args, opt, steps_per_epoch):
    from .optim import lr_scheduler as S  # noqa: PLC0415
    if args.schedule == "none":
        return None, "epoch"
    if args.schedule == "cosine":
        return S.CosineAnnealingLR(opt, T_max=args.epochs * steps_per_epoch), "step"
    if args.schedule == "step":
        return S.StepLR(opt, step_size=max(1, args.epochs // 3), gamma=0.1), "epoch"
    if args.schedule == "onecycle":
        return S.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch), "step"
    return S.ReduceLROnPlateau(opt, factor=0.5, patience=2), "epoch"


def _run_folder(out):
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


def _environment(device):
    env = {"python": platform.python_version(), "numpy": numpy.__version__,
           "platform": platform.platform(), "cpu_count": os.cpu_count(), "device": device}
    try:
        import numba  # noqa: PLC0415
        env["numba"] = numba.__version__
        env["numba_threads"] = numba.get_num_threads()
    except ImportError:
        pass
    try:
        env["load_average_1min"] = os.getloadavg()[0]
    except OSError:
        pass
    return env


def _set_threads(threads):
    """Apply --threads; returns the number of Numba threads in use (None without Numba)."""
    try:
        import numba  # noqa: PLC0415
    except ImportError:
        return None
    n = None
    if threads == "auto":
        try:
            busy = os.getloadavg()[0] >= (os.cpu_count() or 1)
        except OSError:
            busy = False
        n = 1 if busy else None
    else:
        try:
            n = int(threads)
        except ValueError:
            raise CLIError(f"--threads must be a number or 'auto', got {threads!r}") from None
        if not 1 <= n <= numba.config.NUMBA_NUM_THREADS:
            raise CLIError(f"--threads must be between 1 and {numba.config.NUMBA_NUM_THREADS}")
    if n is not None:
        numba.set_num_threads(n)
        try:        # the BLAS under NumPy's matmul too (its idle threads spin on a busy machine)
            from threadpoolctl import threadpool_limits  # noqa: PLC0415
            threadpool_limits(n)
        except ImportError:
            pass
    return numba.get_num_threads()


def _say(args, msg):
    if not args.quiet:
        print(msg, flush=True)


def cmd_train(args):
    t_start = time.perf_counter()
    args = _defaults(args)
    import minicnn as mc  # noqa: PLC0415
    from . import data as D  # noqa: PLC0415
    from .train import (CSVLogger, EarlyStopping, ModelCheckpoint, Trainer,  # noqa: PLC0415
                        load_checkpoint, plots)
    from .train.metrics import confusion_matrix, precision_recall_f1  # noqa: PLC0415

    args.threads = _set_threads(args.threads)
    device = mc.devices.normalize_device(args.device)
    if args.epochs < 1 or args.batch_size < 1:
        raise CLIError("--epochs and --batch-size must be positive")
    if not 0 <= args.val_fraction < 1:
        raise CLIError("--val-fraction must be in [0, 1)")
    if args.patience is not None and args.val_fraction == 0:
        raise CLIError("--patience needs a validation set: add --val-fraction 0.1")
    mc.manual_seed(args.seed)

    data_cfg = {"dataset": args.dataset, "image_size": args.image_size,
                "num_samples": args.num_samples, "data_seed": args.seed,
                "data_dir": os.path.abspath(args.data_dir) if args.data_dir else None}
    train_set, test_set = load_data(data_cfg, True), load_data(data_cfg, False)
    image_shape = tuple(int(s) for s in train_set.data.shape[1:])
    classes = list(train_set.classes) if train_set.classes else \
        [str(i) for i in range(train_set.num_classes)]
    mean = [float(v) for v in train_set.data.mean(axis=(0, 2, 3))]
    std = [float(max(v, 1e-6)) for v in train_set.data.std(axis=(0, 2, 3))]
    norm = D.transforms.Normalize(mean, std)
    aug = augmentation(args.augment, image_shape)
    train_set.transform = D.transforms.Compose([aug, norm]) if aug is not None else norm
    test_set.transform = norm
    if args.limit_test:
        test_set = D.Subset(test_set, numpy.arange(min(args.limit_test, len(test_set))))

    val_set = None
    if args.val_fraction > 0:
        n_val = max(1, int(round(len(train_set) * args.val_fraction)))
        plain = load_data(data_cfg, True)
        plain.transform = norm
        perm = numpy.random.Generator(numpy.random.PCG64(args.seed + 7)).permutation(
            len(train_set))
        val_set = D.Subset(plain, perm[:n_val])
        train_set = D.Subset(train_set, perm[n_val:])

    kwargs = model_kwargs(args.model, len(classes), image_shape, args.width)
    model = build_model(args.model, kwargs).to(device)
    opt = _optimizer(args, model.parameters())
    loader = D.DataLoader(train_set, batch_size=args.batch_size, shuffle=True, prefetch=True)
    steps = min(len(loader), args.steps_per_epoch) if args.steps_per_epoch else len(loader)
    sched, interval = _scheduler(args, opt, steps)

    run = _run_folder(args.out)
    ckpt_path = os.path.join(run, "model.mc")
    meta = {"model": args.model, "model_kwargs": kwargs, "data": data_cfg, "classes": classes,
            "image_shape": list(image_shape), "mean": mean, "std": std,
            "input_range": "float in [0, 1] (uint8 is divided by 255)"}
    callbacks = [CSVLogger(os.path.join(run, "history.csv"))]
    if val_set is not None:
        callbacks.append(ModelCheckpoint(ckpt_path, monitor="val_accuracy", save_best_only=True,
                                         extra=meta))
        if args.patience is not None:
            callbacks.append(EarlyStopping("val_accuracy", patience=args.patience))
    else:
        callbacks.append(ModelCheckpoint(ckpt_path, monitor="loss", save_best_only=False,
                                         extra=meta))

    n_params = model.num_parameters()
    _say(args, f"minicnn train: {args.model} ({n_params:,} parameters) on {args.dataset} "
               f"({len(train_set)} train{f' / {len(val_set)} val' if val_set else ''} / "
               f"{len(test_set)} test images of {'x'.join(map(str, image_shape))}, "
               f"{len(classes)} classes), {args.epochs} epochs, batch {args.batch_size}, "
               f"{args.optimizer} lr {args.lr:g}, {args.schedule} schedule, augment "
               f"{args.augment}, device {device}, seed {args.seed}"
               f"{f', {args.threads} CPU thread(s)' if device == 'cpu' and args.threads else ''}")
    _say(args, f"run folder: {run}")
    trainer = Trainer(model, opt, loss="cross_entropy", metrics=["accuracy"], device=device,
                      scheduler=sched, scheduler_interval=interval,
                      scheduler_monitor="val_loss" if val_set is not None else "loss",
                      mix=None if args.mix == "none" else args.mix)
    t_fit = time.perf_counter()
    history = trainer.fit(loader, epochs=args.epochs, val_data=val_set,
                          batch_size=args.batch_size, callbacks=callbacks,
                          verbose=0 if args.quiet else 1, steps_per_epoch=args.steps_per_epoch)
    train_seconds = time.perf_counter() - t_fit
    nan_stop = getattr(trainer, "nan_info", None)

    if val_set is not None and os.path.exists(ckpt_path) and not nan_stop:
        model.load_state_dict(load_checkpoint(ckpt_path)["model"])     # the best epoch
    elif not os.path.exists(ckpt_path) and not nan_stop:
        from .train import save_checkpoint  # noqa: PLC0415
        save_checkpoint(ckpt_path, model, opt, meta={**meta, "epoch": len(history.epoch)})

    t_eval = time.perf_counter()
    test_loader = D.DataLoader(test_set, batch_size=256)
    logits = trainer.predict(test_loader)
    y_true = numpy.asarray(test_set.targets if not isinstance(test_set, D.Subset)
                           else test_set.dataset.targets[test_set.indices])
    result = trainer.evaluate(test_loader)
    eval_seconds = time.perf_counter() - t_eval
    pred = logits.argmax(1)
    cm = confusion_matrix(y_true, pred, len(classes))
    prec, rec, f1 = precision_recall_f1(cm, average=None)
    samples = len(train_set) if not args.steps_per_epoch else \
        min(len(train_set), args.steps_per_epoch * args.batch_size)
    summary = {
        "command": "minicnn train " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["train"]
        else "minicnn train",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "config": {k: v for k, v in vars(args).items() if k not in ("func", "command")},
        "model": {"name": args.model, "kwargs": kwargs, "parameters": n_params},
        "data": {**data_cfg, "train_images": len(train_set),
                 "val_images": len(val_set) if val_set else 0, "test_images": len(test_set),
                 "image_shape": list(image_shape), "classes": classes},
        "test": {"accuracy": float(result["accuracy"]), "loss": float(result["loss"]),
                 "correct": int((pred == y_true).sum()), "total": int(len(y_true)),
                 "macro_precision": float(prec.mean()), "macro_recall": float(rec.mean()),
                 "macro_f1": float(f1.mean()),
                 "per_class": {c: {"precision": float(p), "recall": float(r), "f1": float(f)}
                               for c, p, r, f in zip(classes, prec, rec, f1)},
                 "confusion_matrix": cm.tolist()},
        "history": history.to_dict(),
        "epochs_run": len(history.epoch),
        "stopped": history.stopped,
        "timing": {"train_seconds": round(train_seconds, 3),
                   "epoch_seconds": [round(t, 3) for t in getattr(history, "times", [])],
                   "train_images_per_second": round(samples * len(history.epoch) /
                                                    max(train_seconds, 1e-9), 1),
                   "test_seconds": round(eval_seconds, 3),
                   "total_seconds": round(time.perf_counter() - t_start, 3)},
        "environment": _environment(device),
        "files": {"checkpoint": "model.mc", "history": "history.csv"},
    }
    if not args.no_plots:
        written = {
            "curves": plots.plot_history(history, os.path.join(run, "curves.png"),
                                         title=f"{args.model} on {args.dataset}"),
            "lr": plots.plot_lr(history, os.path.join(run, "lr.png")),
            "confusion_matrix": plots.plot_confusion_matrix(
                cm, os.path.join(run, "confusion_matrix.png"), classes=classes),
            "predictions": plots.plot_image_grid(
                test_set.dataset.data[test_set.indices[:32]] if isinstance(test_set, D.Subset)
                else test_set.data[:32], os.path.join(run, "predictions.png"),
                labels=y_true[:32], predictions=pred[:32], classes=classes),
        }
        if aug is not None:
            written["augmentation"] = plots.plot_augmentations(
                load_data(data_cfg, True).data[:4], aug, os.path.join(run, "augmentation.png"))
        summary["files"].update({k: os.path.basename(v) for k, v in written.items() if v})
    summary["timing"]["total_seconds"] = round(time.perf_counter() - t_start, 3)
    with open(os.path.join(run, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)

    acc = summary["test"]["accuracy"]
    print(f"test accuracy: {acc * 100:.2f}% ({summary['test']['correct']}/"
          f"{summary['test']['total']}), test loss {result['loss']:.4f}, macro F1 "
          f"{summary['test']['macro_f1']:.4f}")
    print(f"trained {len(history.epoch)} epochs in {train_seconds:.1f} s "
          f"({summary['timing']['train_images_per_second']:.0f} images/s); total "
          f"{summary['timing']['total_seconds']:.1f} s")
    print(f"wrote {run}/: " + ", ".join(sorted(set(summary['files'].values()) |
                                              {"summary.json"})))
    if nan_stop:
        print(f"minicnn: training stopped: {history.stopped}", file=sys.stderr)
        return 1
    return 0


# --- evaluate / predict -------------------------------------------------------------------------

def _load_run(path, device):
    import minicnn as mc  # noqa: PLC0415
    from .train import load_checkpoint  # noqa: PLC0415
    if not os.path.exists(path):
        raise CLIError(f"checkpoint not found: {path}")
    try:
        ck = load_checkpoint(path)
    except mc.serialization.CheckpointError as e:
        raise CLIError(f"cannot read checkpoint {path}: {e}") from None
    meta = ck["meta"]
    needed = ("model", "model_kwargs", "image_shape", "mean", "std", "classes")
    missing = [k for k in needed if k not in meta]
    if missing:
        raise CLIError(f"{path} is a checkpoint without the run information minicnn needs "
                       f"({', '.join(missing)}); was it written by `minicnn train`?")
    model = build_model(meta["model"], meta["model_kwargs"])
    model.load_state_dict(ck["model"])
    model.to(mc.devices.normalize_device(device)).eval()
    return model, meta


def cmd_evaluate(args):
    from . import data as D  # noqa: PLC0415
    from .train import Trainer  # noqa: PLC0415
    from .train.metrics import confusion_matrix, precision_recall_f1  # noqa: PLC0415
    _set_threads(args.threads)
    model, meta = _load_run(args.checkpoint, args.device)
    cfg = dict(meta["data"])
    if args.data_dir:
        cfg["data_dir"] = os.path.abspath(args.data_dir)
    test_set = load_data(cfg, train=False)
    test_set.transform = _normalizer(meta)
    trainer = Trainer(model, None, metrics=["accuracy"], device=args.device)
    loader = D.DataLoader(test_set, batch_size=args.batch_size)
    logits = trainer.predict(loader)
    res = trainer.evaluate(loader)
    cm = confusion_matrix(test_set.targets, logits.argmax(1), len(meta["classes"]))
    p, r, f = precision_recall_f1(cm)
    out = {"checkpoint": args.checkpoint, "dataset": cfg["dataset"], "images": len(test_set),
           "accuracy": float(res["accuracy"]), "loss": float(res["loss"]),
           "macro_precision": p, "macro_recall": r, "macro_f1": f,
           "correct": int(cm.trace())}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"{meta['model']} on {cfg['dataset']} test split ({len(test_set)} images): "
              f"accuracy {out['accuracy'] * 100:.2f}% ({out['correct']}/{len(test_set)}), "
              f"loss {out['loss']:.4f}, macro precision {p:.4f}, recall {r:.4f}, F1 {f:.4f}")
    return 0


def load_images(path, image_shape):
    """Images from .npy / .npz, as float32 (N, C, H, W) in [0, 1]; clear errors otherwise."""
    if not os.path.exists(path):
        raise CLIError(f"images file not found: {path}")
    if not path.endswith((".npy", ".npz")):
        raise CLIError(f"{path}: expected a .npy or .npz file of images (PNG/JPEG are not read; "
                       "convert them with numpy first)")
    try:
        loaded = numpy.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001
        raise CLIError(f"cannot read {path} as a NumPy file: {e}") from None
    if isinstance(loaded, numpy.lib.npyio.NpzFile):
        with loaded:
            keys = loaded.files
            key = next((k for k in ("images", "x", "X", "data") if k in keys),
                       keys[0] if keys else None)
            if key is None:
                raise CLIError(f"{path}: the .npz file holds no arrays")
            a = loaded[key]
    else:
        a = loaded
    c, h, w = image_shape
    original = list(a.shape)
    if a.ndim == 2:
        a = a[None, None]
    elif a.ndim == 3:
        a = a[None] if a.shape[0] == c and c != 1 or tuple(a.shape) == (c, h, w) else a[:, None]
    if a.ndim != 4 or tuple(a.shape[1:]) != (c, h, w):
        raise CLIError(f"images of the wrong shape: the model expects (N, {c}, {h}, {w}) "
                       f"(or (N, {h}, {w}) for one channel), got {original} from {path}")
    if a.dtype == numpy.uint8:
        a = a.astype(numpy.float32) / 255.0
    elif a.dtype.kind not in "fiu":
        raise CLIError(f"{path}: images must be numbers, got dtype {a.dtype}")
    return numpy.ascontiguousarray(a, dtype=numpy.float32)


def cmd_predict(args):
    from .train import Trainer  # noqa: PLC0415
    _set_threads(args.threads)
    model, meta = _load_run(args.checkpoint, args.device)
    images = load_images(args.images, tuple(meta["image_shape"]))
    x = _normalizer(meta)(images)
    logits = Trainer(model, None, device=args.device).predict(x, batch_size=args.batch_size)
    z = logits - logits.max(1, keepdims=True)
    prob = numpy.exp(z) / numpy.exp(z).sum(1, keepdims=True)
    k = max(1, min(args.top_k, prob.shape[1]))
    top = numpy.argsort(-prob, axis=1)[:, :k]
    classes = meta["classes"]
    rows = [{"index": i, "prediction": classes[int(top[i, 0])], "class_index": int(top[i, 0]),
             "probability": float(prob[i, top[i, 0]]),
             "top_k": [[classes[int(j)], float(prob[i, j])] for j in top[i]]}
            for i in range(len(prob))]
    for r in rows:
        extra = "" if k == 1 else "  (" + ", ".join(f"{c} {p:.3f}" for c, p in r["top_k"]) + ")"
        print(f"{r['index']}\t{r['prediction']}\t{r['probability']:.4f}{extra}")
    if args.output:
        if args.output.endswith(".json"):
            with open(args.output, "w") as f:
                json.dump(rows, f, indent=2)
        else:
            with open(args.output, "w") as f:
                f.write("index,prediction,class_index,probability\n")
                for r in rows:
                    f.write(f"{r['index']},{r['prediction']},{r['class_index']},"
                            f"{r['probability']:.6f}\n")
    return 0


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict}


def add_parsers(sub):
    add_train_parser(sub)
    add_evaluate_parser(sub)
    add_predict_parser(sub)


def run(args):
    """Run a parsed train/evaluate/predict command; user errors print one line, exit code 2."""
    from .data import CorruptDatasetError, DatasetNotFoundError  # noqa: PLC0415
    from .serialization import CheckpointError  # noqa: PLC0415
    try:
        return COMMANDS[args.command](args)
    except (CLIError, DatasetNotFoundError, CorruptDatasetError, CheckpointError) as e:
        print(f"minicnn {args.command}: error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        if "CUDA is not available" in str(e) or "size mismatch" in str(e):
            print(f"minicnn {args.command}: error: {e}", file=sys.stderr)
            return 2
        raise
