"""Post-training int8 quantization of Conv2d and Linear.

Scheme (the common "weight per-channel symmetric, activation per-tensor affine" one):

  weights      int8 in [-127, 127], one scale per output channel: s_w[k] = max|W[k]| / 127
  activations  int8 in [-128, 127], one (scale, zero point) per layer input, from observers that
               watched a few calibration batches (min/max, or a percentile of the values)
  compute      y[m, k] = s_x * s_w[k] * sum_j (xq[m, j] - zp_x) * wq[k, j] + b[k]
               the sum in int32 by the int8 GEMM kernel (minicnn.kquant.qgemm_nt); convolutions
               go through an int8 im2col whose padding holds zp_x (the code of 0.0).

Each quantized layer takes and returns float32 Tensors (quantize on the way in, dequantize in
the GEMM epilogue), so it drops into any model in place of the float layer. Inference only: the
quantized layers record no graph.

    qmodel = mc.compress.quantize_model(model, calib_loader, num_batches=8)
    report = mc.compress.compare_models(model, qmodel, test_set)
"""
import time

import numpy as np

from ..kernels import quant as kquant
from ..autograd import no_grad
from ..devices import get_array_module, to_numpy
from ..kernels.quant import symmetric_weight_scales
from ..nn.module import Module
from ..tensor import Tensor
from ._util import (copy_model, is_bn2d, is_conv2d, is_linear, iterate_inputs, model_size_bytes,
                    pair, set_module)

QMIN, QMAX = -128, 127


# --- observers ---------------------------------------------------------------------------------

def choose_qparams(lo, hi, symmetric=False, qmin=QMIN, qmax=QMAX):
    """(scale, zero_point) mapping [lo, hi] (widened to include 0.0) onto [qmin, qmax]."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if symmetric:
        amax = max(-lo, hi)
        scale = amax / ((qmax - qmin) / 2) if amax > 0 else 1.0
        return float(np.float32(scale)), 0
    scale = (hi - lo) / (qmax - qmin) if hi > lo else 1.0
    scale = float(np.float32(scale))
    zp = int(np.clip(round(qmin - lo / scale), qmin, qmax))
    return scale, zp


class MinMaxObserver:
    """Running min and max of everything it sees (averaging_constant: an EMA instead, for QAT)."""

    def __init__(self, symmetric=False, averaging_constant=None):
        self.symmetric, self.c = symmetric, averaging_constant
        self.min_val = self.max_val = None

    def update(self, x):
        x = to_numpy(getattr(x, "data", x))
        lo, hi = float(x.min()), float(x.max())
        if self.min_val is None:
            self.min_val, self.max_val = lo, hi
        elif self.c is None:
            self.min_val, self.max_val = min(self.min_val, lo), max(self.max_val, hi)
        else:
            self.min_val += self.c * (lo - self.min_val)
            self.max_val += self.c * (hi - self.max_val)

    def qparams(self):
        if self.min_val is None:
            raise RuntimeError("observer has seen no data: run calibration batches first")
        return choose_qparams(self.min_val, self.max_val, self.symmetric)


class PercentileObserver(MinMaxObserver):
    """Clips outliers: the range is [percentile(100 - p), percentile(p)] of a sample of the
    values of every batch seen (up to `max_samples` values per batch)."""

    def __init__(self, percentile=99.99, symmetric=False, max_samples=200_000, seed=0):
        super().__init__(symmetric)
        self.percentile, self.max_samples = percentile, max_samples
        self.rng = np.random.default_rng(seed)
        self.samples = []

    def update(self, x):
        x = to_numpy(getattr(x, "data", x)).reshape(-1)
        if x.size > self.max_samples:
            x = x[self.rng.integers(0, x.size, self.max_samples)]
        self.samples.append(x.astype(np.float32))
        allv = np.concatenate(self.samples)
        self.min_val = float(np.percentile(allv, 100 - self.percentile))
        self.max_val = float(np.percentile(allv, self.percentile))


def make_observer(kind, **kw):
    if kind == "minmax":
        return MinMaxObserver(**kw)
    if kind == "percentile":
        return PercentileObserver(**kw)
    raise ValueError(f"unknown observer {kind!r}: expected 'minmax' or 'percentile'")


# --- quantized layers --------------------------------------------------------------------------

def quantize_weight(w, axis=0):
    """Per-channel symmetric int8 weights: (int8 array, float32 scales)."""
    xp = get_array_module(w)
    scale = symmetric_weight_scales(to_numpy(w), axis)
    scale = xp.asarray(scale)
    return kquant.quantize_per_channel(w, scale, axis=axis), scale


class _QuantizedBase(Module):
    def _init_q(self, weight, bias, input_scale, input_zero_point):
        wq, ws = quantize_weight(weight.array, 0)
        xp = get_array_module(wq)
        self.register_buffer("weight_int8", Tensor(wq))                       # int8
        self.register_buffer("weight_scale", Tensor(ws.astype(xp.float32)))   # (K,)
        self.register_buffer("bias", None if bias is None else
                             Tensor(bias.array.astype(xp.float32).copy()))
        self.register_buffer("input_scale", Tensor(xp.asarray(input_scale, xp.float32)))
        self.register_buffer("input_zero_point", Tensor(xp.asarray(input_zero_point, xp.int32)))

    @property
    def qparams(self):
        return float(self.input_scale.item()), int(self.input_zero_point.item())

    def dequantized_weight(self):
        return kquant.dequantize(self.weight_int8.array, self.weight_scale.array, 0, axis=0)

    def _quantize_input(self, x):
        s, zp = self.qparams
        return kquant.quantize_per_tensor(x, s, zp), s, zp

    def _epilogue(self, acc, s):
        """int32 (M, K) -> float32 (M, K): acc * s_x * s_w[k] + b[k]."""
        xp = get_array_module(acc)
        y = acc.astype(xp.float32)
        y *= (xp.float32(s) * self.weight_scale.array)[None, :]
        if self.bias is not None:
            y += self.bias.array[None, :]
        return y


class QuantizedLinear(_QuantizedBase):
    """int8 Linear: y = dequant(int8 GEMM(quant(x), Wq)) + b. Input (*, in), output (*, out)."""

    def __init__(self, linear, input_scale, input_zero_point):
        super().__init__()
        self.in_features, self.out_features = linear.weight.shape[1], linear.weight.shape[0]
        self._init_q(linear.weight, linear.bias, input_scale, input_zero_point)

    def forward(self, x):
        x = x.array if isinstance(x, Tensor) else x
        lead = x.shape[:-1]
        xq, s, zp = self._quantize_input(x.reshape(-1, x.shape[-1]))    # (*, in) -> (M, in)
        acc = kquant.qgemm_nt(xq, self.weight_int8.array, zp)          # (M, out) int32
        return Tensor(self._epilogue(acc, s).reshape(*lead, self.out_features))

    def extra_repr(self):
        s, zp = self.qparams
        return f"in_features={self.in_features}, out_features={self.out_features}, " \
               f"input_scale={s:.4g}, input_zero_point={zp}"


class QuantizedConv2d(_QuantizedBase):
    """int8 Conv2d through int8 im2col + int8 GEMM (int32 accumulation), groups supported."""

    def __init__(self, conv, input_scale, input_zero_point):
        super().__init__()
        K, Cg, KH, KW = conv.weight.shape
        self.out_channels, self.in_channels = K, Cg * int(conv.groups)
        self.kernel_size = (KH, KW)
        self.stride, self.dilation = pair(conv.stride), pair(conv.dilation)
        padding = conv.padding
        if isinstance(padding, str):
            if padding == "valid":
                padding = 0
            elif padding == "same" and all(s == 1 for s in self.stride):
                padding = tuple(d * (k - 1) // 2 for d, k in zip(self.dilation, (KH, KW)))
                if any(d * (k - 1) % 2 for d, k in zip(self.dilation, (KH, KW))):
                    raise NotImplementedError("QuantizedConv2d: asymmetric 'same' padding")
            else:
                raise NotImplementedError(f"QuantizedConv2d: padding={padding!r}")
        if getattr(conv, "padding_mode", "zeros") != "zeros":
            raise NotImplementedError("QuantizedConv2d: only padding_mode='zeros'")
        self.padding = pair(padding)
        self.groups = int(conv.groups)
        self._init_q(conv.weight, conv.bias, input_scale, input_zero_point)

    def forward(self, x):
        x = x.array if isinstance(x, Tensor) else x
        xp = get_array_module(x)
        N, C, H, W = x.shape
        if C != self.in_channels:
            raise ValueError(f"QuantizedConv2d: expected input[{', '.join(map(str, x.shape))}] "
                             f"to have {self.in_channels} channels, but got {C} channels instead")
        xq, s, zp = self._quantize_input(x)
        KH, KW = self.kernel_size
        G, K = self.groups, self.out_channels
        Cg, Kg = C // G, K // G
        w = self.weight_int8.array.reshape(K, -1)                        # (K, Cg*KH*KW)
        accs = []
        for g in range(G):
            xg = xq if G == 1 else xq[:, g * Cg:(g + 1) * Cg]
            cols, OH, OW = kquant.im2col_int8(xg, KH, KW, *self.stride, *self.padding,
                                               *self.dilation, pad_value=zp)
            accs.append(kquant.qgemm_nt(cols, w[g * Kg:(g + 1) * Kg], zp))  # (N*OH*OW, Kg)
        acc = accs[0] if G == 1 else xp.concatenate(accs, axis=1)       # (N*OH*OW, K)
        y = self._epilogue(acc, s)
        y = y.reshape(N, OH, OW, K).transpose(0, 3, 1, 2)               # -> (N, K, OH, OW)
        return Tensor(xp.ascontiguousarray(y))

    def extra_repr(self):
        s, zp = self.qparams
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
                f"groups={self.groups}, input_scale={s:.4g}, input_zero_point={zp}")


# --- whole-model quantization ------------------------------------------------------------------

def quantizable_layers(model):
    return [(n, m) for n, m in model.named_modules() if n and (is_conv2d(m) or is_linear(m))]


def calibrate(model, data, num_batches=8, observer="minmax", batch_size=64, layers=None,
              **observer_kwargs):
    """Watch the inputs of every Conv2d / Linear over `num_batches` batches (eval mode, no grad);
    return {layer name: observer}."""
    layers = quantizable_layers(model) if layers is None else layers
    observers = {n: make_observer(observer, **observer_kwargs) for n, _ in layers}
    handles = []
    for n, m in layers:
        def hook(mod, args, _n=n):
            observers[_n].update(args[0])
        handles.append(m.register_forward_pre_hook(hook))
    was_training = model.training
    model.eval()
    seen = 0
    try:
        with no_grad():
            for xb in iterate_inputs(data, num_batches, batch_size):
                model(Tensor(xb))
                seen += 1
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if seen == 0:
        raise ValueError("calibrate: no calibration batches")
    return observers


def quantize_model(model, calibration_data, num_batches=8, observer="minmax", fold_bn=True,
                   example_input=None, batch_size=64, inplace=False, **observer_kwargs):
    """Post-training static int8 quantization: fold batch norms into convolutions, calibrate the
    activation ranges on a few batches, replace every Conv2d / Linear by its int8 version.
    Returns the quantized model (a copy unless inplace) in eval mode."""
    if not inplace:
        model = copy_model(model)
    model.eval()
    if fold_bn and any(is_bn2d(m) for m in model.modules()):
        from .fold import fold_batchnorm  # noqa: PLC0415
        if example_input is None:
            example_input = next(iter(iterate_inputs(calibration_data, 1, batch_size)))[:1]
        fold_batchnorm(model, example_input=example_input, inplace=True)
    layers = quantizable_layers(model)
    observers = calibrate(model, calibration_data, num_batches, observer, batch_size, layers,
                          **observer_kwargs)
    for n, m in layers:
        s, zp = observers[n].qparams()
        q = QuantizedConv2d(m, s, zp) if is_conv2d(m) else QuantizedLinear(m, s, zp)
        set_module(model, n, q)
    return model.eval()


# --- reports -----------------------------------------------------------------------------------

def accuracy(model, dataset, batch_size=256):
    from ..tune.ensemble import iterate_batches  # noqa: PLC0415
    model.eval()
    correct = total = 0
    with no_grad():
        for xb, yb in iterate_batches(dataset, batch_size):
            pred = to_numpy(model(Tensor(xb)).array).argmax(axis=1)
            correct += int((pred == to_numpy(yb)).sum())
            total += len(yb)
    return correct / max(total, 1)


def time_forward(model, x, repeats=10, warmup=2):
    """Median seconds of one forward pass on x (eval, no grad)."""
    model.eval()
    x = x if isinstance(x, Tensor) else Tensor(x)
    with no_grad():
        for _ in range(warmup):
            model(x)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def compare_models(original, compressed, dataset=None, example_input=None, batch_size=256,
                   repeats=10):
    """Size (bytes), accuracy on `dataset` and median forward time on `example_input` of both
    models (timed alternately), with ratios. Returns a dict (and prints nothing)."""
    out = {"size_bytes": model_size_bytes(original),
           "compressed_size_bytes": model_size_bytes(compressed)}
    out["size_ratio"] = out["compressed_size_bytes"] / out["size_bytes"]
    if dataset is not None:
        out["accuracy"] = accuracy(original, dataset, batch_size)
        out["compressed_accuracy"] = accuracy(compressed, dataset, batch_size)
        out["accuracy_drop"] = out["accuracy"] - out["compressed_accuracy"]
    if example_input is not None:
        a, b = time_forward_pair(original, compressed, example_input, repeats)
        out["forward_s"], out["compressed_forward_s"] = a, b
        out["speedup"] = a / b
    return out


def time_forward_pair(model_a, model_b, x, repeats=10, warmup=2):
    """Median forward seconds of two models timed alternately (a, b, a, b, ...), so that a
    change in the machine's load affects both the same way."""
    x = x if isinstance(x, Tensor) else Tensor(x)
    model_a.eval()
    model_b.eval()
    ta, tb = [], []
    with no_grad():
        for _ in range(warmup):
            model_a(x)
            model_b(x)
        for _ in range(repeats):
            for m, ts in ((model_a, ta), (model_b, tb)):
                t0 = time.perf_counter()
                m(x)
                ts.append(time.perf_counter() - t0)
    return float(np.median(ta)), float(np.median(tb))
