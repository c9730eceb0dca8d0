"""Batch-norm folding: Conv2d followed by BatchNorm2d (eval mode) becomes one Conv2d.

    y = gamma * (conv(x, W) + b - mean) / sqrt(var + eps) + beta
      = conv(x, W * a) + (b - mean) * a + beta,        a = gamma / sqrt(var + eps)  (per channel)

The folded model gives the eval-mode outputs of the original (up to float rounding) with one
layer less per pair; the BatchNorm2d is replaced by Identity.
"""
from ..devices import get_array_module
from ..nn.parameter import Parameter
from ._util import (consumers, copy_model, get_module, is_bn2d, is_conv2d, set_module,
                    set_param, sole_consumer, trace)


def find_conv_bn_pairs(model, example_input=None):
    """[(conv name, bn name)] of the Conv2d -> BatchNorm2d pairs where the BatchNorm2d's input
    is exactly the convolution's output and nothing else reads that output (checked on the
    recorded graph, so `bn(h) + h` is not folded).

    With example_input the pairs come from a traced forward pass (works for any model: blocks
    with attributes conv1/bn1, nested Sequentials, ...); without it, from adjacent children of
    Sequential containers only.
    """
    pairs = []
    if example_input is not None:
        calls = trace(model, example_input)
        cons = consumers(calls)
        for name, m, _, out in calls:
            if not is_conv2d(m) or out is None:
                continue
            u = sole_consumer(calls, cons, out)
            if u is not None and is_bn2d(calls[u][1]):
                pairs.append((name, calls[u][0]))
        return list(dict.fromkeys(pairs))
    from ..nn import Sequential  # noqa: PLC0415
    for pname, parent in model.named_modules():
        if not isinstance(parent, Sequential):
            continue
        kids = list(parent._modules.items())
        for (n1, a), (n2, b) in zip(kids, kids[1:]):
            if is_conv2d(a) and is_bn2d(b):
                pre = f"{pname}." if pname else ""
                pairs.append((pre + n1, pre + n2))
    return pairs


def fold_conv_bn(conv, bn):
    """Fold bn's eval-mode affine map into conv's weight and bias (in place)."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("fold_conv_bn: the BatchNorm2d tracks no running statistics")
    w = conv.weight.array
    xp = get_array_module(w)
    K = w.shape[0]
    if bn.running_mean.shape[0] != K:
        raise ValueError(f"fold_conv_bn: conv has {K} output channels but the batch norm has "
                         f"{bn.running_mean.shape[0]} features")
    var = bn.running_var.array.astype(xp.float64)
    a = 1.0 / xp.sqrt(var + float(bn.eps))
    if getattr(bn, "weight", None) is not None:
        a = a * bn.weight.array.astype(xp.float64)
    b = conv.bias.array.astype(xp.float64) if conv.bias is not None else xp.zeros(K)
    b = (b - bn.running_mean.array.astype(xp.float64)) * a
    if getattr(bn, "bias", None) is not None:
        b = b + bn.bias.array.astype(xp.float64)
    set_param(conv, "weight",
              Parameter((w.astype(xp.float64) * a.reshape(K, 1, 1, 1)).astype(w.dtype)))
    set_param(conv, "bias", Parameter(b.astype(w.dtype)))
    return conv


def fold_batchnorm(model, example_input=None, inplace=False, pairs=None):
    """Fold every Conv2d -> BatchNorm2d pair (see find_conv_bn_pairs) and replace the batch
    norms by Identity. Returns the folded model (a copy unless inplace), in eval mode."""
    from ..nn import Identity  # noqa: PLC0415
    if not inplace:
        model = copy_model(model)
    model.eval()
    pairs = find_conv_bn_pairs(model, example_input) if pairs is None else pairs
    for conv_name, bn_name in pairs:
        fold_conv_bn(get_module(model, conv_name), get_module(model, bn_name))
        set_module(model, bn_name, Identity())
    model.folded_pairs = pairs
    return model


__all__ = ["find_conv_bn_pairs", "fold_conv_bn", "fold_batchnorm"]
