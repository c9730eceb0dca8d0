"""Callbacks for Trainer.fit: History, EarlyStopping, ModelCheckpoint, LRScheduler (per epoch or
per batch, ReduceLROnPlateau on a monitored value), CSVLogger, ProgressBar (tqdm), TerminateOnNaN.

A callback sees the trainer as `self.trainer` and may set `trainer.stop_training = True`.
Hooks: on_train_begin(logs), on_epoch_begin(epoch), on_batch_end(step, logs),
on_epoch_end(epoch, logs), on_train_end(logs). `logs` holds floats keyed 'loss', 'accuracy',
'val_loss', 'val_accuracy', 'lr', ...
"""
import csv
import math
import os
import sys
import time

import numpy

from .. import devices


class Callback:
    trainer = None

    def set_trainer(self, trainer):
        self.trainer = trainer

    def on_train_begin(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_batch_begin(self, step, logs=None):
        pass

    def on_batch_end(self, step, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass


class History(Callback):
    """Per-epoch values: `history.history['loss']`, `['val_accuracy']`, `['lr']`, ...; also
    `epoch` (epoch numbers), `lr_steps` (the learning rate at every optimizer step), `stopped`
    (why training stopped early, or None) and `summary()`."""

    def __init__(self):
        self.history, self.epoch, self.lr_steps = {}, [], []
        self.stopped = None

    def on_train_begin(self, logs=None):
        pass

    def on_batch_end(self, step, logs=None):
        if logs and "lr" in logs:
            self.lr_steps.append(float(logs["lr"]))

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(float(v))

    def __getitem__(self, key):
        return self.history[key]

    def __contains__(self, key):
        return key in self.history

    def best(self, monitor="val_loss", mode="auto"):
        values = self.history.get(monitor)
        if not values:
            return None
        better = _mode(monitor, mode)
        return min(values) if better == "min" else max(values)

    def to_dict(self):
        return {"epoch": list(self.epoch), "history": {k: list(v) for k, v in self.history.items()},
                "lr_steps": list(self.lr_steps), "stopped": self.stopped}

    def __repr__(self):
        last = {k: round(v[-1], 4) for k, v in self.history.items() if v}
        return f"History(epochs={len(self.epoch)}, last={last})"


def _mode(monitor, mode):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    return "min" if "loss" in monitor or "error" in monitor else "max"


class _Monitor(Callback):
    def __init__(self, monitor, mode, min_delta=0.0):
        self.monitor = monitor
        self.mode = _mode(monitor, mode)
        self.min_delta = abs(float(min_delta))
        self.best = math.inf if self.mode == "min" else -math.inf

    def _improved(self, value):
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def _value(self, logs):
        if not logs or self.monitor not in logs:
            known = ", ".join(sorted(logs or {}))
            raise KeyError(f"{type(self).__name__}: monitored value {self.monitor!r} is not "
                           f"available (available: {known}); pass val_data to fit() to get "
                           "'val_*' values")
        return float(logs[self.monitor])


def _snapshot(model):
    return {k: devices.get_array_module(v.array).array(v.array, copy=True)
            for k, v in model.state_dict().items()}


class EarlyStopping(_Monitor):
    """Stop when `monitor` has not improved by more than `min_delta` for `patience` epochs;
    with restore_best_weights=True, put back the weights of the best epoch at the end."""

    def __init__(self, monitor="val_loss", patience=0, min_delta=0.0, mode="auto",
                 restore_best_weights=False, verbose=0):
        super().__init__(monitor, mode, min_delta)
        self.patience = int(patience)
        self.restore_best_weights = restore_best_weights
        self.verbose = verbose
        self.wait, self.best_epoch, self.best_weights, self.stopped_epoch = 0, None, None, None

    def on_train_begin(self, logs=None):
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait, self.best_epoch, self.best_weights, self.stopped_epoch = 0, None, None, None

    def on_epoch_end(self, epoch, logs=None):
        value = self._value(logs)
        if self._improved(value) or self.best_epoch is None:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = _snapshot(self.trainer.model)
            return
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_epoch = epoch
            self.trainer.stop_training = True
            self.trainer.stop_reason = (f"early stopping: {self.monitor} did not improve for "
                                        f"{self.wait} epochs (best {self.best:.4g} at epoch "
                                        f"{self.best_epoch})")

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.trainer.model.load_state_dict(self.best_weights)
            if self.verbose:
                self.trainer._print(f"restored the weights of epoch {self.best_epoch} "
                                    f"({self.monitor}={self.best:.4g})")


class ModelCheckpoint(_Monitor):
    """Save a checkpoint (model, optimizer, epoch, logs) to `filepath` at the end of an epoch;
    with save_best_only=True only when `monitor` improves. `filepath` may use {epoch} and any log
    key, e.g. 'ckpt-{epoch:02d}-{val_loss:.3f}.npz'. The file is written atomically, so the last
    good checkpoint survives a crash or a NaN stop."""
    rank_zero_only = True   # under mc.distributed only rank 0 writes files

    def __init__(self, filepath, monitor="val_loss", save_best_only=True, mode="auto",
                 save_optimizer=True, verbose=0, extra=None):
        super().__init__(monitor, mode)
        self.filepath = os.fspath(filepath)
        self.save_best_only = save_best_only
        self.save_optimizer = save_optimizer
        self.verbose = verbose
        self.extra = extra or {}
        self.last_saved, self.best_epoch = None, None

    def on_train_begin(self, logs=None):
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            value = self._value(logs)
            if not self._improved(value):
                return
            self.best, self.best_epoch = value, epoch
        path = self.filepath.format(epoch=epoch, **logs)
        from .checkpoint import save_checkpoint  # noqa: PLC0415
        save_checkpoint(path, self.trainer.model,
                        self.trainer.optimizer if self.save_optimizer else None,
                        meta={**self.extra, "epoch": epoch, "logs": dict(logs)})
        self.last_saved = path
        if self.verbose:
            self.trainer._print(f"saved checkpoint {path}")


class LRScheduler(Callback):
    """Step an mc.optim.lr_scheduler scheduler after every epoch (interval='epoch') or every
    optimizer step (interval='step'). ReduceLROnPlateau is stepped at the end of an epoch with
    the value of `monitor` (default 'val_loss', or 'loss' when there is no validation)."""

    def __init__(self, scheduler, interval="epoch", monitor=None):
        if interval not in ("epoch", "step", "batch"):
            raise ValueError(f"LRScheduler: interval must be 'epoch' or 'step', got {interval!r}")
        self.scheduler = scheduler
        self.interval = "step" if interval == "batch" else interval
        self.monitor = monitor
        self.plateau = type(scheduler).__name__ == "ReduceLROnPlateau"

    def on_batch_end(self, step, logs=None):
        if self.interval == "step" and not self.plateau:
            self.scheduler.step()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.plateau:
            monitor = self.monitor or ("val_loss" if "val_loss" in logs else "loss")
            if monitor not in logs:
                raise KeyError(f"LRScheduler: ReduceLROnPlateau monitors {monitor!r}, which is "
                               f"not in the logs ({', '.join(sorted(logs))})")
            self.scheduler.step(float(logs[monitor]))
        elif self.interval == "epoch":
            self.scheduler.step()


class CSVLogger(Callback):
    """One CSV row per epoch: epoch and every log value."""
    rank_zero_only = True   # under mc.distributed only rank 0 writes files

    def __init__(self, filename, separator=",", append=False):
        self.filename, self.separator, self.append = os.fspath(filename), separator, append
        self.keys, self._file, self._writer = None, None, None

    def on_train_begin(self, logs=None):
        exists = self.append and os.path.exists(self.filename) and \
            os.path.getsize(self.filename) > 0
        self._file = open(self.filename, "a" if self.append else "w", newline="")
        self._has_header = exists

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            self._writer = csv.DictWriter(self._file, ["epoch"] + self.keys,
                                          delimiter=self.separator, extrasaction="ignore")
            if not self._has_header:
                self._writer.writeheader()
        row = {"epoch": epoch}
        row.update({k: (f"{logs[k]:.6g}" if isinstance(logs.get(k), float) else logs.get(k, ""))
                    for k in self.keys})
        self._writer.writerow(row)
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None


def _fmt_logs(logs, skip=()):
    parts = []
    for k, v in logs.items():
        if k in skip:
            continue
        if k == "lr":
            parts.append(f"lr {v:.3g}")
        elif isinstance(v, float):
            parts.append(f"{k} {v:.4f}")
    return "  ".join(parts)


class ProgressBar(Callback):
    """A tqdm bar per epoch with the running loss, metrics and throughput (images/s), and one
    summary line per epoch. Falls back to plain lines when tqdm is missing."""

    def __init__(self, file=None, leave=False):
        self.file = file
        self.leave = leave
        self.bar = None

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()
        total = self.trainer._steps_per_epoch
        try:
            from tqdm.auto import tqdm  # noqa: PLC0415
        except ImportError:  # pragma: no cover - tqdm is a dependency
            self.bar = None
            return
        self.bar = tqdm(total=total, desc=f"epoch {epoch}/{self.trainer._epochs}",
                        file=self.file or sys.stderr, leave=self.leave, unit="batch",
                        dynamic_ncols=True, mininterval=0.2)

    def on_batch_end(self, step, logs=None):
        if self.bar is None:
            return
        logs = logs or {}
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        post = {k: f"{v:.4f}" for k, v in logs.items() if k not in ("lr", "size", "samples")}
        post["img/s"] = f"{logs.get('samples', 0) / elapsed:.0f}"
        self.bar.set_postfix(post, refresh=False)
        self.bar.update(1)

    def on_epoch_end(self, epoch, logs=None):
        if self.bar is not None:
            self.bar.close()
        elapsed = time.perf_counter() - self.t0
        seen = self.trainer._samples_this_epoch
        self.trainer._print(f"epoch {epoch}/{self.trainer._epochs}  {_fmt_logs(logs or {})}  "
                            f"({elapsed:.1f} s, {seen / max(elapsed, 1e-9):.0f} img/s)")

    def on_train_end(self, logs=None):
        if self.bar is not None:
            self.bar.close()


class TerminateOnNaN(Callback):
    """Kept for Keras users: Trainer already stops on a NaN or Inf loss."""


def is_finite(value):
    return bool(numpy.isfinite(value))


class Profile(Callback):
    """Profile `steps` training steps (mc.profiler) after `skip` warm-up steps (the first step
    compiles the CPU kernels), then write the Chrome trace to `trace_path` and the
    key_averages table to `table_path`. Each profiled step includes loading its batch."""
    rank_zero_only = True   # under mc.distributed only rank 0 writes files

    def __init__(self, steps, trace_path, table_path=None, skip=1, row_limit=30):
        if steps < 1 or skip < 0:
            raise ValueError(f"Profile: steps must be positive and skip non-negative, got "
                             f"steps={steps}, skip={skip}")
        self.steps, self.skip, self.row_limit = int(steps), int(skip), row_limit
        self.trace_path, self.table_path = trace_path, table_path
        self.profiler, self.seen, self.profiled = None, 0, 0

    def _start(self):
        from ..profiler import profile  # noqa: PLC0415
        self.profiler = profile()
        self.profiler.__enter__()

    def _stop(self):
        prof, self.profiler = self.profiler, None
        prof.__exit__(None, None, None)
        prof.export_chrome_trace(self.trace_path)
        self.table = prof.key_averages().table(row_limit=self.row_limit)
        if self.table_path:
            from ..fileio import write_atomic  # noqa: PLC0415
            write_atomic(self.table_path, (f"minicnn.profiler: {self.profiled} training step(s) "
                                           f"after {self.skip} warm-up step(s)\n\n"
                                           + self.table).encode("utf-8"))

    def on_train_begin(self, logs=None):
        self.seen = self.profiled = 0
        if self.skip == 0:
            self._start()

    def on_batch_end(self, step, logs=None):
        self.seen += 1
        if self.profiler is not None:
            self.profiled += 1
            if self.profiled >= self.steps:
                self._stop()
        elif self.seen == self.skip and self.profiled == 0:
            self._start()

    def on_train_end(self, logs=None):
        if self.profiler is not None:   # training ended first: write what was recorded
            self._stop()

    def close(self):
        """Stop recording without writing (after an exception escaped fit, which then calls no
        on_train_end): the profiler's hooks must not stay installed."""
        if self.profiler is not None:
            prof, self.profiler = self.profiler, None
            prof.__exit__(None, None, None)
