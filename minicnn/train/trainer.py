"""Trainer: a Keras-style fit / evaluate / predict loop over minicnn modules and optimizers.

    trainer = Trainer(model, mc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
                      loss="cross_entropy", metrics=["accuracy"])
    history = trainer.fit(train_loader, epochs=10, val_data=test_loader,
                          callbacks=[EarlyStopping(patience=3, restore_best_weights=True)])
    trainer.evaluate(test_loader)      # {'loss': ..., 'accuracy': ...}
    trainer.predict(images)            # NumPy logits (N, num_classes)

Data may be a DataLoader, a Dataset (batched with `batch_size`), or a tuple (x, y) of arrays.
A NaN or Inf loss stops training before the optimizer step, with a message naming the epoch
and step; checkpoints written so far (ModelCheckpoint) are kept. So does a non-finite gradient
norm where `grad_clip` computes it. The weights themselves (parameters and float buffers) are
checked every `sync_every` steps and at the end of every epoch, before the epoch's checkpoint:
a loss can stay finite while a weight it does not reach has gone NaN, and a checkpoint is only
written with finite weights.

On the GPU a training step makes no host-device synchronization: losses and metric counts stay
on the device and are read every `sync_every` steps (default 10) and at the end of each epoch,
in one transfer. Between reads the progress bar shows the last value read, and a NaN/Inf loss is
found at the next read (the message still names the step where it first appeared; the optimizer
steps since then were applied; checkpoints are written only after the epoch's losses are read,
so a saved checkpoint never follows a NaN). `sync_every=1` reads every loss before its
optimizer step, as on the CPU, at the cost of one synchronization per step.

Under mc.distributed (a DistributedDataParallel model, a DistributedSampler's loader) losses
and metrics are over every rank's samples, and only rank 0 prints and writes files
(train/distributed.py).
"""
import contextlib
import functools
import math
import numbers
import sys
import time

import numpy

from .. import devices, dtypes
from ..autograd import no_grad
from ..data import DataLoader, Dataset, TensorDataset
from ..tensor import Tensor
from . import distributed as ranks
from .callbacks import Callback, History, LRScheduler, ProgressBar
from .metrics import get_metric


class NonFiniteLossError(FloatingPointError):
    """Raised by fit(..., on_nan='raise') when the loss (or the clipped gradient norm, or a
    weight) becomes NaN or Inf."""


def _resolve_loss(loss):
    if callable(loss):
        return loss
    if isinstance(loss, str):
        from ..nn import functional as F  # noqa: PLC0415
        name = {"ce": "cross_entropy", "crossentropy": "cross_entropy", "mse": "mse_loss",
                "nll": "nll_loss", "l1": "l1_loss", "bce": "binary_cross_entropy_with_logits",
                "smooth_l1": "smooth_l1_loss", "huber": "huber_loss"}.get(loss.lower(),
                                                                           loss.lower())
        fn = getattr(F, name, None)
        if fn is None:
            raise ValueError(f"unknown loss {loss!r}; use a name from minicnn.functional "
                             "(cross_entropy, mse_loss, nll_loss, ...) or a callable")
        return fn
    raise TypeError(f"loss must be a name or a callable, got {type(loss).__name__}")


def _model_device(model):
    for p in model.parameters():
        return p.device
    return "cpu"


def _read_scalars(arrays):
    """Python floats of 0-d/1-element arrays: one transfer for CuPy arrays (one sync)."""
    if not arrays:
        return []
    xp = devices.get_array_module(*arrays)
    if xp is numpy:
        return [float(numpy.asarray(a).reshape(()).item()) for a in arrays]
    return devices.to_numpy(xp.stack([a.reshape(()) for a in arrays])).tolist()


def _to(t, device):
    if isinstance(t, Tensor):
        return t if t.device == device else Tensor(devices.to_device(t.array, device))
    if isinstance(t, (tuple, list)):
        return type(t)(_to(v, device) for v in t)
    if isinstance(t, numpy.ndarray):
        return Tensor(devices.to_device(t, device))
    return t


PRECISIONS = ("32", "bf16-mixed", "16-mixed")


def _precision(precision, device):
    """(name, a context-manager factory for the forward pass, a GradScaler or None)."""
    name = {"32-true": "32", "16": "16-mixed", "bf16": "bf16-mixed"}.get(str(precision),
                                                                         str(precision))
    if name not in PRECISIONS:
        raise ValueError(f"Trainer: precision must be one of {', '.join(PRECISIONS)}, got "
                         f"{precision!r}")
    if name == "32":
        return name, contextlib.nullcontext, None
    from .. import amp  # noqa: PLC0415
    device_type = "cuda" if str(device).startswith("cuda") else "cpu"
    dtype = dtypes.bfloat16 if name == "bf16-mixed" else dtypes.float16
    scaler = amp.GradScaler(device_type) if name == "16-mixed" else None
    return name, functools.partial(amp.autocast, device_type, dtype), scaler


class Trainer:
    """fit / evaluate / predict for a model, an optimizer, a loss and metrics.

    loss: a name in minicnn.functional ('cross_entropy', 'mse_loss', ...) or a callable
    (outputs, targets) -> scalar Tensor. metrics: names ('accuracy', 'top5', 'precision',
    'recall', 'f1') or Metric objects. scheduler (optional): an mc.optim.lr_scheduler object,
    stepped per 'epoch' or per 'step' (`scheduler_interval`), ReduceLROnPlateau on
    `scheduler_monitor`. mix: None, 'mixup' or 'cutmix' (with `mix_alpha`), applied to training
    batches. grad_clip: clip the global gradient norm to this value. sync_every: on the GPU,
    read the losses (and metrics) from the device every this many steps (see the module doc).
    precision: '32' (the default), 'bf16-mixed' (forward and loss under mc.autocast with
    bfloat16) or '16-mixed' (autocast with float16 and a GradScaler, whose skipped steps on inf
    gradients are not NaN stops), as PyTorch Lightning's; the weights stay float32.
    """

    def __init__(self, model, optimizer=None, loss="cross_entropy", metrics=("accuracy",),
                 device=None, scheduler=None, scheduler_interval="epoch", scheduler_monitor=None,
                 mix=None, mix_alpha=1.0, grad_clip=None, on_nan="stop", sync_every=10,
                 precision="32"):
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = _resolve_loss(loss)
        self.loss_name = loss if isinstance(loss, str) else getattr(loss, "__name__", "loss")
        self.metric_specs = list(metrics or ())
        for spec in self.metric_specs:
            get_metric(spec)                               # fail early on an unknown name
        self.device = devices.normalize_device(device) if device is not None else \
            _model_device(model)
        if device is not None:
            model.to(self.device)
        self.scheduler = scheduler
        self.scheduler_interval = scheduler_interval
        self.scheduler_monitor = scheduler_monitor
        if mix not in (None, "none", "mixup", "cutmix"):
            raise ValueError(f"mix must be None, 'mixup' or 'cutmix', got {mix!r}")
        self.mix = None if mix == "none" else mix
        self.mix_alpha = mix_alpha
        if grad_clip is not None and not (isinstance(grad_clip, numbers.Real) and
                                           math.isfinite(grad_clip) and grad_clip > 0):
            # a negative max norm would flip the gradients' sign (clip_grad_norm_ does not check)
            raise ValueError(f"Trainer: grad_clip must be a positive number or None, got "
                             f"{grad_clip!r}")
        self.grad_clip = grad_clip
        if on_nan not in ("stop", "raise"):
            raise ValueError(f"on_nan must be 'stop' or 'raise', got {on_nan!r}")
        self.on_nan = on_nan
        if isinstance(sync_every, bool) or not isinstance(sync_every, numbers.Integral) or \
                sync_every < 1:
            raise ValueError(f"Trainer: sync_every must be a positive number of steps, got "
                             f"{sync_every!r}")
        self.sync_every = int(sync_every)
        self.precision, self._autocast, self._scaler = _precision(precision, self.device)
        self.stop_training = False
        self.stop_reason = None
        self.history = None
        self.verbose = 1
        self._epochs = 0
        self._steps_per_epoch = 0
        self._samples_this_epoch = 0
        self.global_step = 0

    # --- data ---------------------------------------------------------------------------------

    def _loader(self, data, batch_size, shuffle):
        if data is None:
            return None
        if isinstance(data, DataLoader):
            return data
        if isinstance(data, (tuple, list)) and len(data) in (1, 2) and \
                all(hasattr(d, "shape") for d in data):
            data = TensorDataset(*data)
        if isinstance(data, Dataset) or hasattr(data, "__getitem__") and hasattr(data, "__len__"):
            return DataLoader(data, batch_size=batch_size, shuffle=shuffle)
        if hasattr(data, "__iter__"):
            return data
        raise TypeError(f"expected a DataLoader, a Dataset or a tuple (x, y) of arrays, got "
                        f"{type(data).__name__}")

    @staticmethod
    def _split(batch):
        if isinstance(batch, (tuple, list)):
            if len(batch) == 1:
                return batch[0], None
            return batch[0], batch[1]
        if isinstance(batch, dict):
            return batch.get("x", batch.get("image")), batch.get("y", batch.get("label"))
        return batch, None

    def _print(self, msg):
        if not self.verbose:
            return
        try:
            from tqdm.auto import tqdm  # noqa: PLC0415
            tqdm.write(msg, file=sys.stdout)
        except ImportError:  # pragma: no cover
            print(msg, flush=True)
        sys.stdout.flush()

    def _lr(self):
        if self.optimizer is None or not getattr(self.optimizer, "param_groups", None):
            return None
        return float(self.optimizer.param_groups[0]["lr"])

    # --- one step -----------------------------------------------------------------------------

    def _mixed(self, x, y):
        from ..data import transforms as T  # noqa: PLC0415
        fn = T.mixup if self.mix == "mixup" else T.cutmix
        # on x's device (the draws are made on the host): no transfer, no sync on the GPU
        return fn(x, _to(y, x.device), alpha=self.mix_alpha)

    def train_step(self, x, y):
        """One optimizer step; returns (loss value, outputs). The step is skipped when the loss
        (or, with grad_clip, the gradient norm) is not finite."""
        value, out, _ = self._step(x, y, read_loss=True)
        return value, out

    def _step(self, x, y, read_loss):
        """read_loss: read the loss (and the clipped gradient norm) on the host first (a sync on
        the GPU) and skip the step when one is not finite; otherwise return the loss as a device
        array and always step. Returns (loss, outputs, what stopped the step or None)."""
        with self._autocast():
            if self.mix is not None:
                x, ya, yb, lam = self._mixed(x, y)
                out = self.model(x)
                loss = self.loss_fn(out, ya) * lam + self.loss_fn(out, yb) * (1 - lam)
            else:
                out = self.model(x)
                loss = self.loss_fn(out, y)
        if read_loss:
            value = float(loss.item())
            if ranks.world_size() > 1:
                value = ranks.mean_over_ranks([value])[0]
            if not math.isfinite(value):
                return value, out, f"loss is {value}"
        else:
            value = loss.array
        self.optimizer.zero_grad()
        scaler = self._scaler
        (loss if scaler is None else scaler.scale(loss)).backward()
        if self.grad_clip is not None:
            from ..nn.utils import clip_grad_norm_  # noqa: PLC0415
            if scaler is not None:
                scaler.unscale_(self.optimizer)
            norm = clip_grad_norm_(self.model.parameters(), self.grad_clip)
            if read_loss and scaler is None and not math.isfinite(float(norm.item())):
                return value, out, f"gradient norm is {float(norm.item())} (loss {value:.6g})"
        if scaler is None:
            self.optimizer.step()
        else:           # skipped on inf / NaN gradients, the scale backs off
            scaler.step(self.optimizer)
            scaler.update()
        return value, out, None

    # --- fit ----------------------------------------------------------------------------------

    def fit(self, train_data, epochs=1, val_data=None, batch_size=32, shuffle=True,
            callbacks=(), verbose=1, validation_data=None, steps_per_epoch=None,
            initial_epoch=0):
        """Train for `epochs` epochs; returns a History (also kept as `trainer.history`).

        val_data / validation_data: evaluated after each epoch into 'val_<name>' logs.
        steps_per_epoch: stop each epoch after this many batches (quick runs, tests).
        verbose: 0 silent, 1 progress bar and a line per epoch, 2 a line per epoch.
        """
        if self.optimizer is None:
            raise ValueError("Trainer.fit needs an optimizer: Trainer(model, optimizer, ...)")
        if val_data is None:
            val_data = validation_data
        loader = self._loader(train_data, batch_size, shuffle)
        val_loader = self._loader(val_data, batch_size, False)
        if not ranks.is_main():
            verbose = 0
        self.verbose = verbose
        self.history = History()
        cbs = [self.history]
        if self.scheduler is not None:
            cbs.append(LRScheduler(self.scheduler, self.scheduler_interval,
                                   self.scheduler_monitor))
        cbs += ranks.main_only(list(callbacks or ()))
        if verbose == 1 and not any(isinstance(c, ProgressBar) for c in cbs):
            cbs.append(ProgressBar())
        elif verbose == 2 and not any(isinstance(c, ProgressBar) for c in cbs):
            cbs.append(_EpochLine())
        for c in cbs:
            if not isinstance(c, Callback):
                raise TypeError(f"callbacks must be Callback objects, got {type(c).__name__}")
            c.set_trainer(self)
        self.callbacks = cbs
        self.stop_training, self.stop_reason = False, None
        self._epochs = initial_epoch + epochs
        self._weights_finite_at = None          # the global step of the last good check
        try:
            n_batches = len(loader)
        except TypeError:
            n_batches = None
        self._steps_per_epoch = min(n_batches, steps_per_epoch) if steps_per_epoch and \
            n_batches else (steps_per_epoch or n_batches)
        self.epoch_times = []
        self.history.times = self.epoch_times
        self._call("on_train_begin", {})
        for epoch in range(initial_epoch + 1, initial_epoch + epochs + 1):
            t0 = time.perf_counter()
            self._call("on_epoch_begin", epoch)
            ranks.set_epoch(loader, epoch - 1)
            logs = self._train_epoch(loader, epoch, steps_per_epoch)
            if self.stop_reason is not None and logs is None:
                break                                         # NaN/Inf: no epoch-end events
            if val_loader is not None:
                val = self.evaluate(val_loader)
                logs.update({f"val_{k}": v for k, v in val.items()})
            lr = self._lr()
            if lr is not None:
                logs["lr"] = lr
            self.epoch_times.append(time.perf_counter() - t0)
            self._call("on_epoch_end", epoch, logs)
            if self.stop_training:
                break
        self.history.stopped = self.stop_reason
        self._call("on_train_end", {})
        return self.history

    def _call(self, hook, *args):
        for c in self.callbacks:
            getattr(c, hook)(*args)

    def _train_epoch(self, loader, epoch, steps_per_epoch):
        self.model.train()
        metrics = [get_metric(m) for m in self.metric_specs]
        total_loss, seen, read = 0.0, 0, 0       # read: samples whose loss has been read
        self._samples_this_epoch = 0
        self._batch_metrics = {}
        # CPU: every loss is read before its step (free). GPU: losses wait on the device in
        # `pending` and are read every `sync_every` steps and at the end of the epoch.
        every = getattr(self, "_read_every", None) or (
            1 if self.device == "cpu" else self.sync_every)   # _read_every: tests, on the CPU
        pending = []                              # (step, n, device loss), oldest first
        step = 0

        def read_pending(now_step):
            nonlocal total_loss, read
            values = ranks.mean_over_ranks(_read_scalars([v for _, _, v in pending]))
            for (s, n, _), value in zip(pending, values):
                if not math.isfinite(value):
                    later = now_step - s
                    self._stop_non_finite(
                        epoch, s, value, self.global_step - later,
                        f"training stopped at step {now_step}, where the loss was read (losses "
                        f"are read from the GPU every {every} steps): the {later + 1} optimizer "
                        f"step(s) from step {s} on were applied; Trainer(sync_every=1) stops "
                        "before the step")
                    return False
                total_loss += value * n
                read += n
            pending.clear()
            return True

        for step, batch in enumerate(loader, start=1):
            x, y = self._split(batch)
            x, y = _to(x, self.device), _to(y, self.device)
            value, out, trouble = self._step(x, y, read_loss=every == 1)
            n = len(y) if y is not None else len(x)
            if every == 1:
                if trouble:
                    self._stop_non_finite(epoch, step, value, self.global_step + 1, None,
                                          what=trouble)
                    return None
                total_loss += value * n
                read += n
            else:
                pending.append((step, n, value))
            seen += n
            self._samples_this_epoch = seen
            self.global_step += 1
            if y is not None:
                for m in metrics:
                    m.update(out.detach(), y)
            last = steps_per_epoch and step >= steps_per_epoch or step == self._steps_per_epoch
            if pending and (len(pending) >= every or last):
                if not read_pending(step):
                    return None
            if self.global_step % self.sync_every == 0 and not self._weights_ok(epoch, step):
                return None
            logs = {"loss": total_loss / read} if read else {}
            logs["samples"] = seen
            lr = self._lr()
            if lr is not None:
                logs["lr"] = lr
            # metrics read with the losses (GPU) or every 10 steps (CPU): cheap enough
            if (step % 10 == 1 if every == 1 else not pending) or last:
                self._batch_metrics = {m.name: float(m.result()) for m in metrics}
            logs.update(self._batch_metrics)
            self._call("on_batch_end", step, logs)
            if steps_per_epoch and step >= steps_per_epoch:
                break
        if pending and not read_pending(step):
            return None
        if seen == 0:
            raise ValueError("Trainer.fit: the training data gave no batches")
        if not self._weights_ok(epoch, step):           # before the epoch's checkpoint
            return None
        out = {"loss": ranks.global_mean(total_loss / read, read)}
        out.update({k: float(v) for k, v in ranks.global_results(metrics, seen).items()})
        return out

    def _weights_ok(self, epoch, step):
        """Whether every parameter and float buffer is finite (one reduction per tensor and one
        read); if not, stop as for a NaN loss, naming the tensors and the steps since the last
        check, where the weights were finite."""
        if self._weights_finite_at == self.global_step:     # checked after this step already
            return True
        model = ranks.unwrap(self.model)    # named as in the checkpoints
        named = [(k, t) for k, t in (*model.named_parameters(), *model.named_buffers())
                 if t.array.dtype.kind == "f" and t.array.size]
        if not named:
            return True
        xp = devices.get_array_module(*(t.array for _, t in named))
        extremes = xp.stack([e for _, t in named for e in (t.array.max(), t.array.min())])
        finite = _read_scalars([xp.isfinite(extremes).all()])
        if ranks.world_size() > 1:          # every rank stops alike (buffers may differ)
            finite = ranks.mean_over_ranks(finite)
        if finite[0] == 1.0:
            self._weights_finite_at = self.global_step
            return True
        bad = [k for k, t in named if not bool(xp.isfinite(t.array).all())]
        listed = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "") \
            or "on another rank"
        good = self._weights_finite_at
        since = "no earlier check" if good is None else \
            f"the last check that found them finite was at global step {good}"
        self._stop_non_finite(
            epoch, step, None, self.global_step,
            f"training stopped after this optimizer step; {since} (the weights are checked every "
            f"{self.sync_every} steps, Trainer(sync_every=...), and at the end of each epoch)",
            what=f"NaN or inf in the weights ({listed})")
        return False

    def _stop_non_finite(self, epoch, step, value, global_step, how, what=None):
        """Stop (or raise NonFiniteLossError) for `what` (by default: the loss `value` is not
        finite), found at this step; `how`: what happened to the optimizer steps."""
        msg = (f"{what or f'loss is {value}'} at epoch {epoch}, step {step}"
               f"{f' of {self._steps_per_epoch}' if self._steps_per_epoch else ''}"
               f" (global step {global_step}); "
               f"{how or 'training stopped before this optimizer step'}")
        saved = [c.last_saved for c in self.callbacks if getattr(c, "last_saved", None)]
        msg += f"; the last good checkpoint is {saved[-1]}" if saved else \
            "; no checkpoint was written before it"
        self.stop_reason = msg
        self.stop_training = True
        self.nan_info = {"epoch": epoch, "step": step, "loss": value}
        self.history.stopped = msg
        if self.on_nan == "raise":
            self._call("on_train_end", {})
            raise NonFiniteLossError(msg)
        self._print("stopped: " + msg)

    # --- evaluate / predict -------------------------------------------------------------------

    def evaluate(self, data, batch_size=256, verbose=0, metrics=None, steps=None):
        """Mean loss and metrics over `data` in eval mode, without gradients: {'loss': ...}."""
        loader = self._loader(data, batch_size, False)
        self.model.eval()
        ms = [get_metric(m) for m in (self.metric_specs if metrics is None else metrics)]
        total, seen = 0.0, 0
        losses = []                 # (loss array, batch size): read once at the end (GPU: 1 sync)
        with no_grad():
            for i, batch in enumerate(loader, start=1):
                x, y = self._split(batch)
                x, y = _to(x, self.device), _to(y, self.device)
                with self._autocast():
                    out = self.model(x)
                    loss = self.loss_fn(out, y) if y is not None else None
                n = len(x)
                if y is not None:
                    losses.append((loss.array, n))
                    for m in ms:
                        m.update(out, y)
                seen += n
                if steps and i >= steps:
                    break
        for value, (_, n) in zip(_read_scalars([a for a, _ in losses]), losses):
            total += value * n
        result = {"loss": total / seen if seen else float("nan")}
        results = {m.name: m.result() for m in ms}
        if ranks.sharded(loader):        # each rank read its part of the data
            result["loss"] = ranks.global_mean(result["loss"], seen)
            results = ranks.global_results(ms, seen)
        result.update({k: (float(r) if numpy.ndim(r) == 0 else r) for k, r in results.items()})
        if verbose:
            self._print("evaluate: " + "  ".join(f"{k} {v:.4f}" for k, v in result.items()
                                                 if numpy.ndim(v) == 0))
        return result

    def predict(self, data, batch_size=256):
        """Model outputs (NumPy, concatenated over batches) for `data`: a DataLoader, a Dataset,
        an array / Tensor of inputs (N, ...), or a tuple (x, y)."""
        if isinstance(data, Tensor):
            data = data.array
        if hasattr(data, "shape") and hasattr(data, "dtype"):
            data = (devices.to_numpy(data),)
        loader = self._loader(data, batch_size, False)
        self.model.eval()
        outs = []
        with no_grad():
            for batch in loader:
                x, _ = self._split(batch)
                outs.append(self.model(_to(x, self.device)).array)   # stays on the device
        if not outs:
            return numpy.zeros((0,), numpy.float32)
        return devices.to_numpy(devices.get_array_module(*outs).concatenate(outs))


class _EpochLine(ProgressBar):
    """verbose=2: only the per-epoch summary line."""

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()
        self.bar = None

    def on_batch_end(self, step, logs=None):
        pass
