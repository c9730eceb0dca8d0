"""GradScaler: PyTorch's torch.amp.GradScaler, step for step.

    scaler = mc.amp.GradScaler()
    with mc.autocast("cuda"):
        loss = loss_fn(model(x), y)
    scaler.scale(loss).backward()
    scaler.unscale_(opt)                 # optional: to clip the true gradients
    scaler.step(opt)                     # skipped when a gradient is inf or NaN
    scaler.update()                      # halve the scale after a skip, double it after
                                         # growth_interval clean steps

The scale is a float32 value, updated as torch._amp_update_scale_ does (backoff on a non-finite
gradient, growth after growth_interval finite steps, growth only to a finite scale); unscale_
multiplies by the float32 reciprocal of the scale computed in float64, as PyTorch's does. The
unscale and the finite check are one pass over each parameter bucket of the optimizer
(kernels.optim.unscale_: a fused Numba kernel on the CPU, a CUDA kernel on the GPU).

One difference: PyTorch refuses float16 gradients ("Attempting to unscale FP16 gradients"),
since its optimizers would update float16 weights in float16. minicnn's optimizers keep float32
master weights for half parameters, so half gradients are unscaled (in float32, rounded back).
"""
import enum
import warnings

import numpy

from .. import devices
from ..kernels import optim as K


class _Stage(enum.Enum):
    READY = 0
    UNSCALED = 1
    STEPPED = 2


class GradScaler:
    def __init__(self, device="cuda", init_scale=2.0 ** 16, growth_factor=2.0,
                 backoff_factor=0.5, growth_interval=2000, enabled=True):
        if growth_factor <= 1.0:
            raise ValueError(f"GradScaler: growth_factor must be > 1, got {growth_factor}")
        if not 0.0 < backoff_factor < 1.0:
            raise ValueError(f"GradScaler: backoff_factor must be in (0, 1), got "
                             f"{backoff_factor}")
        if int(growth_interval) != growth_interval or growth_interval <= 0:
            raise ValueError(f"GradScaler: growth_interval must be a positive int, got "
                             f"{growth_interval}")
        self.device = str(device).split(":")[0]
        if enabled and self.device == "cuda" and not devices.is_cuda_available():
            warnings.warn("GradScaler is enabled, but CUDA is not available. Disabling.")
            enabled = False
        self._enabled = bool(enabled)
        self._scale = numpy.float32(init_scale)
        self._growth_factor = float(growth_factor)
        self._backoff_factor = float(backoff_factor)
        self._growth_interval = int(growth_interval)
        self._growth_tracker = 0
        self._per_optimizer = {}   # id(optimizer) -> {"stage": _Stage, "found_inf": bool}

    # --- the four calls of a step -------------------------------------------------------------

    def scale(self, outputs):
        """outputs (a Tensor, or a list / tuple / dict of them) times the scale, each in its own
        dtype (a float32 loss stays float32)."""
        if not self._enabled:
            return outputs
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(o) for o in outputs)
        if isinstance(outputs, dict):
            return {k: self.scale(v) for k, v in outputs.items()}
        if not hasattr(outputs, "array"):
            raise TypeError(f"GradScaler.scale: expected a Tensor or a collection of Tensors, "
                            f"got {type(outputs).__name__}")
        return outputs * float(self._scale)

    def unscale_(self, optimizer):
        """Divide the optimizer's gradients by the scale, in place, and note whether any is inf
        or NaN (at most once per optimizer between updates)."""
        if not self._enabled:
            return
        state = self._state(optimizer)
        if state["stage"] is _Stage.UNSCALED:
            raise RuntimeError("unscale_() has already been called on this optimizer since the "
                               "last update().")
        if state["stage"] is _Stage.STEPPED:
            raise RuntimeError("unscale_() is being called after step().")
        inv_scale = numpy.float32(1.0 / numpy.float64(self._scale))
        found, seen = False, False
        for group in optimizer.param_groups:
            for grads in _grad_buckets(group["params"]):
                seen = True
                found = K.unscale_(K.Pieces(grads, _offsets(grads)), inv_scale) | found
        state["found_inf"] = found if seen else None
        state["stage"] = _Stage.UNSCALED

    def step(self, optimizer, *args, **kwargs):
        """optimizer.step(*args, **kwargs) unless a gradient was inf or NaN (unscaling first if
        unscale_ was not called); returns what step returned, or None when skipped."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("Closure use is not currently supported if GradScaler is enabled.")
        state = self._state(optimizer)
        if state["stage"] is _Stage.STEPPED:
            raise RuntimeError("step() has already been called since the last update().")
        if state["stage"] is _Stage.READY:
            self.unscale_(optimizer)
        if state["found_inf"] is None:
            raise AssertionError("No inf checks were recorded for this optimizer.")
        result = None
        if not bool(state["found_inf"]):
            result = optimizer.step(*args, **kwargs)
        state["stage"] = _Stage.STEPPED
        return result

    def update(self, new_scale=None):
        """The next scale: new_scale if given (a float or a 1-element Tensor), else the backoff
        or growth rule over the optimizers stepped since the last update."""
        if not self._enabled:
            return
        if new_scale is not None:
            value = new_scale.item() if hasattr(new_scale, "item") else new_scale
            if not isinstance(value, (int, float, numpy.floating)):
                raise TypeError("GradScaler.update: new_scale should be a float or a 1-element "
                                "Tensor")
            self._scale = numpy.float32(value)
        else:
            found = [s["found_inf"] for s in self._per_optimizer.values()
                     if s["found_inf"] is not None]
            if not found:
                raise AssertionError("No inf checks were recorded prior to update.")
            if any(bool(f) for f in found):
                self._scale = numpy.float32(self._scale * numpy.float32(self._backoff_factor))
                self._growth_tracker = 0
            else:
                self._growth_tracker += 1
                if self._growth_tracker == self._growth_interval:
                    grown = numpy.float32(self._scale * numpy.float32(self._growth_factor))
                    if numpy.isfinite(grown):
                        self._scale = grown
                    self._growth_tracker = 0
        self._per_optimizer = {}

    # --- queries and state --------------------------------------------------------------------

    def get_scale(self):
        return float(self._scale) if self._enabled else 1.0

    def get_growth_factor(self):
        return self._growth_factor

    def set_growth_factor(self, new_factor):
        self._growth_factor = float(new_factor)

    def get_backoff_factor(self):
        return self._backoff_factor

    def set_backoff_factor(self, new_factor):
        self._backoff_factor = float(new_factor)

    def get_growth_interval(self):
        return self._growth_interval

    def set_growth_interval(self, new_interval):
        self._growth_interval = int(new_interval)

    def is_enabled(self):
        return self._enabled

    def state_dict(self):
        """PyTorch's keys: scale, growth_factor, backoff_factor, growth_interval and
        _growth_tracker ({} when disabled)."""
        if not self._enabled:
            return {}
        return {"scale": float(self._scale), "growth_factor": self._growth_factor,
                "backoff_factor": self._backoff_factor,
                "growth_interval": self._growth_interval,
                "_growth_tracker": self._growth_tracker}

    def load_state_dict(self, state_dict):
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError("The source state dict is empty, possibly because it was saved "
                               "from a disabled instance of GradScaler.")
        self._scale = numpy.float32(state_dict["scale"])
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._growth_tracker = int(state_dict["_growth_tracker"])

    def _state(self, optimizer):
        return self._per_optimizer.setdefault(
            id(optimizer), {"stage": _Stage.READY, "found_inf": None})


def _grad_buckets(params):
    """The gradients of params with one, grouped by (device, dtype): one unscale pass each."""
    buckets = {}
    for p in params:
        if p.grad is not None:
            g = p.grad.array
            if not (g.flags.writeable and g.flags.c_contiguous):   # a broadcast view
                g = p.grad.array = g.copy()
            buckets.setdefault((type(g), g.dtype.str), []).append(g)
    return buckets.values()


def _offsets(arrays):
    offsets = [0]
    for a in arrays:
        offsets.append(offsets[-1] + int(a.size))
    return offsets
