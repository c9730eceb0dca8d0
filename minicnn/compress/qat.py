"""Quantization-aware training: fake quantization with a straight-through estimator.

FakeQuantize rounds a float tensor onto the int8 grid and back (forward: (clip(rint(x/s) + zp,
qmin, qmax) - zp) * s); its backward passes the gradient straight through where the rounded value
fell inside [qmin, qmax] and blocks it where it was clamped (the STE of Bengio et al. 2013, as in
PyTorch's FakeQuantize). `prepare_qat` swaps every Conv2d / Linear for a QAT layer that fake-
quantizes its weight (per output channel, symmetric, scales from the current weights) and its
input (per tensor, affine, range from an exponential moving average of min/max seen in
training); `convert_qat` turns the trained model into the int8 model of mc.compress.quantize,
which computes the same quantized values with the int8 kernels.

    qat = mc.compress.prepare_qat(model)       # after folding batch norms, if any
    ... train qat a few epochs (small learning rate) ...
    qmodel = mc.compress.convert_qat(qat)
"""
from ..devices import get_array_module, to_numpy
from ..kernels.quant import symmetric_weight_scales
from ..nn.module import Module
from ..ops.quant import FakeQuantizeOp, fake_quantize  # noqa: F401 -- re-exported
from ._util import copy_model, is_conv2d, set_module
from .quantize import MinMaxObserver, QuantizedConv2d, QuantizedLinear, quantizable_layers


class FakeQuantize(Module):
    """Fake-quantizes activations per tensor; in training mode it first updates an EMA min/max
    observer with the batch. In eval mode the range is frozen."""

    def __init__(self, averaging_constant=0.01, observer=None):
        super().__init__()
        self.observer = observer or MinMaxObserver(averaging_constant=averaging_constant)
        self.enabled = True

    def qparams(self):
        return self.observer.qparams()

    def forward(self, x):
        if self.training or self.observer.min_val is None:
            self.observer.update(x.array)
        if not self.enabled:
            return x
        s, zp = self.qparams()
        return fake_quantize(x, s, zp)

    def extra_repr(self):
        if self.observer.min_val is None:
            return "uncalibrated"
        return f"range=[{self.observer.min_val:.4g}, {self.observer.max_val:.4g}]"


def fake_quantize_weight(w):
    """Per-output-channel symmetric int8 fake quantization (scales from the current values, no
    gradient through the scales)."""
    s = symmetric_weight_scales(to_numpy(w.array), 0)
    return fake_quantize(w, get_array_module(w.array).asarray(s), 0, -127, 127, axis=0)


class QATLinear(Module):
    def __init__(self, linear):
        super().__init__()
        self.weight, self.bias = linear.weight, linear.bias     # the same Parameters
        self.in_features, self.out_features = linear.weight.shape[1], linear.weight.shape[0]
        self.input_fq = FakeQuantize()

    def forward(self, x):
        from ..nn.functional import linear  # noqa: PLC0415
        return linear(self.input_fq(x), fake_quantize_weight(self.weight), self.bias)

    def to_quantized(self):
        s, zp = self.input_fq.qparams()
        return QuantizedLinear(self, s, zp)


class QATConv2d(Module):
    def __init__(self, conv):
        super().__init__()
        self.weight, self.bias = conv.weight, conv.bias
        self.stride, self.padding, self.dilation = conv.stride, conv.padding, conv.dilation
        self.groups = conv.groups
        self.padding_mode = getattr(conv, "padding_mode", "zeros")
        self.input_fq = FakeQuantize()

    def forward(self, x):
        from ..nn.functional import conv2d  # noqa: PLC0415
        return conv2d(self.input_fq(x), fake_quantize_weight(self.weight), self.bias,
                      self.stride, self.padding, self.dilation, self.groups)

    def to_quantized(self):
        s, zp = self.input_fq.qparams()
        return QuantizedConv2d(self, s, zp)


def prepare_qat(model, inplace=False, fold_bn=True, example_input=None):
    """Swap Conv2d / Linear for QAT layers (keeping their Parameters). Batch norms that follow a
    convolution are folded first when fold_bn (their running statistics are used as they are);
    pass example_input (one batch) to find the pairs inside blocks too, otherwise only adjacent
    children of Sequentials are folded (see fold.find_conv_bn_pairs)."""
    if not inplace:
        model = copy_model(model)
    if fold_bn:
        from ._util import is_bn2d  # noqa: PLC0415
        if any(is_bn2d(m) for m in model.modules()):
            from .fold import fold_batchnorm  # noqa: PLC0415
            was = model.training
            fold_batchnorm(model, example_input=example_input, inplace=True)
            model.train(was)
    for n, m in quantizable_layers(model):
        set_module(model, n, QATConv2d(m) if is_conv2d(m) else QATLinear(m))
    return model


def convert_qat(model, inplace=False):
    """QAT layers -> int8 QuantizedConv2d / QuantizedLinear (eval mode)."""
    if not inplace:
        model = copy_model(model)
    for n, m in list(model.named_modules()):
        if isinstance(m, (QATConv2d, QATLinear)):
            set_module(model, n, m.to_quantized())
    return model.eval()


__all__ = ["FakeQuantizeOp", "fake_quantize", "FakeQuantize", "fake_quantize_weight",
           "QATLinear", "QATConv2d", "prepare_qat", "convert_qat"]
