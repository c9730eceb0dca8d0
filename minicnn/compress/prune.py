"""Pruning: unstructured magnitude pruning with masks, and structured channel pruning.

Unstructured (PyTorch's torch.nn.utils.prune scheme): the pruned parameter `weight` becomes
`weight_orig` (the same Parameter object, so an existing optimizer keeps training it), a buffer
`weight_mask` holds the 0/1 mask, and a forward pre-hook sets `module.weight = weight_orig *
weight_mask` before every call, so pruned weights stay zero and get zero gradient while the model
is fine-tuned. `remove(module)` makes the pruning permanent (`weight` a plain Parameter again).

    mc.compress.magnitude_prune(model, amount=0.8, scope="global")   # 80% of conv/linear weights
    ... fine-tune ...
    mc.compress.remove_pruning(model)
    mc.compress.sparsity(model)

Structured (`prune_channels`): the output channels of a convolution with the smallest filter L1
norms are removed, together with the matching batch-norm features and the matching input
channels of the next convolution (or the matching columns of the Linear after a Flatten). The
chains conv -> [bn] -> [ReLU/pool/dropout...] -> conv | flatten -> linear are found by tracing
one forward pass, so the result is a genuinely smaller (and faster) model with new Parameters
(build the optimizer after pruning).
"""
import numpy as np

from ..backend import get_array_module, to_numpy
from ..nn.parameter import Parameter
from ..tensor import Tensor
from ._util import (consumers, copy_model, get_module, is_bn2d, is_conv2d, is_flatten,
                    is_linear, is_passthrough, set_param, sole_consumer, trace)


# --- unstructured ------------------------------------------------------------------------------

def _compute_weight(module, args=None):
    for name in module.__dict__.get("_pruned_names", ()):
        object.__setattr__(module, name, getattr(module, name + "_orig") *
                           getattr(module, name + "_mask"))


def is_pruned(module, name="weight"):
    return name in module.__dict__.get("_pruned_names", ())


def apply_mask(module, mask, name="weight"):
    """Prune `module.<name>` with a 0/1 mask (combined with an existing mask)."""
    if is_pruned(module, name):
        old = getattr(module, name + "_mask")
        old.data = old.data * get_array_module(old.data).asarray(mask, dtype=old.data.dtype)
        _compute_weight(module)
        return module
    p = module._parameters.get(name)
    if p is None:
        raise ValueError(f"prune: {type(module).__name__} has no parameter {name!r}")
    if tuple(mask.shape) != tuple(p.shape):
        raise ValueError(f"prune: mask of shape {list(mask.shape)} for {name} of shape "
                         f"{list(p.shape)}")
    xp = get_array_module(p.data)
    del module._parameters[name]
    module.register_parameter(name + "_orig", p)
    module.register_buffer(name + "_mask", Tensor(xp.asarray(mask, dtype=p.data.dtype)))
    names = module.__dict__.setdefault("_pruned_names", [])
    names.append(name)
    if "_prune_hook" not in module.__dict__:
        module.__dict__["_prune_hook"] = module.register_forward_pre_hook(_compute_weight)
    _compute_weight(module)
    return module


def _threshold_mask(values, amount):
    """0/1 mask keeping all but the round(amount * n) smallest |values| (ties by position)."""
    flat = np.abs(values).reshape(-1)
    n_prune = int(round(amount * flat.size))
    mask = np.ones(flat.size, np.float32)
    if n_prune > 0:
        mask[np.argsort(flat, kind="stable")[:n_prune]] = 0
    return mask.reshape(values.shape)


def _effective(module, name):
    return to_numpy(getattr(module, name).data)


def l1_unstructured(module, name="weight", amount=0.5):
    """Zero the `amount` fraction of module.<name> with the smallest magnitude."""
    if not 0 <= amount <= 1:
        raise ValueError(f"l1_unstructured: amount must be in [0, 1], got {amount}")
    return apply_mask(module, _threshold_mask(_effective(module, name), amount), name)


def prunable_layers(model, types=("conv", "linear")):
    out = []
    for n, m in model.named_modules():
        if ("conv" in types and is_conv2d(m)) or ("linear" in types and is_linear(m)):
            out.append((n, m))
    return out


def global_unstructured(modules, amount=0.5, name="weight"):
    """Zero the `amount` fraction of the smallest-magnitude weights over all `modules` together
    (layers with many small weights lose more)."""
    arrays = [_effective(m, name) for m in modules]
    flat = np.concatenate([np.abs(a).reshape(-1) for a in arrays])
    mask = _threshold_mask(flat, amount)
    start = 0
    for m, a in zip(modules, arrays):
        apply_mask(m, mask[start:start + a.size].reshape(a.shape), name)
        start += a.size
    return modules


def magnitude_prune(model, amount=0.5, scope="global", types=("conv", "linear"), name="weight"):
    """Magnitude-prune the weights of the model's Conv2d / Linear layers to sparsity `amount`,
    globally (one threshold for all) or per layer (each layer to `amount`). In place; returns
    the model."""
    layers = [m for _, m in prunable_layers(model, types)]
    if not layers:
        raise ValueError("magnitude_prune: the model has no Conv2d / Linear layers")
    if scope == "global":
        global_unstructured(layers, amount, name)
    elif scope in ("layer", "local"):
        for m in layers:
            l1_unstructured(m, name, amount)
    else:
        raise ValueError(f"magnitude_prune: scope must be 'global' or 'layer', got {scope!r}")
    return model


def remove(module, name="weight"):
    """Make the pruning of module.<name> permanent: a plain Parameter holding the masked values."""
    if not is_pruned(module, name):
        raise ValueError(f"remove: {name!r} of {type(module).__name__} is not pruned")
    orig = getattr(module, name + "_orig")
    mask = getattr(module, name + "_mask")
    del module._parameters[name + "_orig"]
    del module._buffers[name + "_mask"]
    module.__dict__.pop(name, None)
    module.__dict__["_pruned_names"].remove(name)
    orig.data = orig.data * mask.data
    module.register_parameter(name, orig)
    if not module.__dict__["_pruned_names"]:
        module.__dict__.pop("_prune_hook").remove()
    return module


def remove_pruning(model):
    for m in model.modules():
        for name in list(m.__dict__.get("_pruned_names", ())):
            remove(m, name)
    return model


def sparsity(model, types=("conv", "linear"), name="weight"):
    """Fraction of zeros among the (effective) weights of the model's Conv2d / Linear layers, and
    per layer: (total, {layer name: fraction})."""
    per, zeros, total = {}, 0, 0
    for n, m in prunable_layers(model, types):
        w = _effective(m, name)
        per[n] = float((w == 0).mean())
        zeros += int((w == 0).sum())
        total += w.size
    return zeros / max(total, 1), per


# --- structured: channel pruning ---------------------------------------------------------------

def find_channel_chains(model, example_input):
    """The prunable chains, found by tracing one forward pass. Each is a dict
    {"conv": name, "bn": name | None, "next": name, "kind": "conv" | "linear", "hw": int}: the
    output of `conv` flows (only: no other module and no op outside them reads it, checked on the
    recorded graph, so a channel that also feeds a residual add is never pruned) through an optional BatchNorm2d and channel-wise modules with
    f(0) = 0 into `next` (a groups=1 Conv2d, or a Flatten followed by a Linear)."""
    calls = trace(model, example_input)
    cons = consumers(calls)
    chains = []
    for name, m, _, out in calls:
        if not is_conv2d(m) or int(m.groups) != 1 or is_pruned(m):
            continue
        t, bn = out, None
        while True:
            u = sole_consumer(calls, cons, t)
            if u is None:
                break
            uname, um, _, uout = calls[u]
            if is_bn2d(um) and bn is None:
                bn, t = uname, uout
            elif is_passthrough(um):
                t = uout
            elif is_conv2d(um) and int(um.groups) == 1 and not is_pruned(um):
                chains.append({"conv": name, "bn": bn, "next": uname, "kind": "conv"})
                break
            elif is_flatten(um):
                lu = sole_consumer(calls, cons, uout)
                if lu is not None and is_linear(calls[lu][1]):
                    lin = calls[lu][1]
                    K = m.weight.shape[0]
                    if lin.weight.shape[1] % K == 0:
                        chains.append({"conv": name, "bn": bn, "next": calls[lu][0],
                                       "kind": "linear", "hw": lin.weight.shape[1] // K})
                break
            else:
                break
    seen, unique = set(), []
    for c in chains:                      # a module called twice gives the same chain twice
        if c["conv"] not in seen:
            seen.add(c["conv"])
            unique.append(c)
    return unique


def channel_l1_norms(conv):
    w = to_numpy(conv.weight.data)
    return np.abs(w).reshape(w.shape[0], -1).sum(axis=1)


def _keep_indices(conv, amount, min_channels=1):
    norms = channel_l1_norms(conv)
    K = len(norms)
    n_keep = max(min_channels, int(round(K * (1 - amount))))
    n_keep = min(K, n_keep)
    keep = np.sort(np.argsort(-norms, kind="stable")[:n_keep])
    return keep


def _take(param_or_tensor, idx, axis):
    xp = get_array_module(param_or_tensor.data)
    return xp.ascontiguousarray(xp.take(param_or_tensor.data, xp.asarray(idx), axis=axis))


def _set_param(module, name, array):
    old = getattr(module, name)
    set_param(module, name, Parameter(array, requires_grad=old.requires_grad))


def prune_channels(model, amount=0.5, example_input=None, chains=None, inplace=False,
                   min_channels=1, verify=True):
    """Remove the `amount` fraction of output channels (smallest filter L1 norm) of every
    convolution in a prunable chain (see find_channel_chains), rewriting the batch norm and the
    next layer. Returns the pruned model (a copy unless inplace) with `.pruned_channels`
    = {conv name: kept channel indices}.

    verify: check on example_input (eval mode) that the pruned model gives the outputs of the
    original with the removed channels zeroed (conv filter, bias and batch-norm affine set to 0),
    and raise if not (e.g. a channel also used by an add the trace could not see).
    """
    if chains is None:
        if example_input is None:
            raise ValueError("prune_channels: pass example_input (one batch) or chains")
        chains = find_channel_chains(model, example_input)
    if not inplace:
        model = copy_model(model)
    reference = copy_model(model) if verify and example_input is not None else None
    keeps = {}
    for ch in chains:
        keeps[ch["conv"]] = _keep_indices(get_module(model, ch["conv"]), amount, min_channels)
    for ch in chains:
        keep = keeps[ch["conv"]]
        conv = get_module(model, ch["conv"])
        _set_param(conv, "weight", _take(conv.weight, keep, 0))
        if conv.bias is not None:
            _set_param(conv, "bias", _take(conv.bias, keep, 0))
        if hasattr(conv, "out_channels"):
            conv.out_channels = len(keep)
        if ch["bn"] is not None:
            bn = get_module(model, ch["bn"])
            for pname in ("weight", "bias"):
                if getattr(bn, pname, None) is not None:
                    _set_param(bn, pname, _take(getattr(bn, pname), keep, 0))
            for bname in ("running_mean", "running_var"):
                if getattr(bn, bname, None) is not None:
                    setattr(bn, bname, Tensor(_take(getattr(bn, bname), keep, 0)))
            if hasattr(bn, "num_features"):
                bn.num_features = len(keep)
        nxt = get_module(model, ch["next"])
        if ch["kind"] == "conv":
            _set_param(nxt, "weight", _take(nxt.weight, keep, 1))
            if hasattr(nxt, "in_channels"):
                nxt.in_channels = len(keep)
        else:
            hw = ch["hw"]
            cols = (keep[:, None] * hw + np.arange(hw)[None, :]).reshape(-1)   # (keep*hw,)
            _set_param(nxt, "weight", _take(nxt.weight, cols, 1))
            if hasattr(nxt, "in_features"):
                nxt.in_features = len(cols)
    model.pruned_channels = keeps
    if reference is not None:
        _verify(reference, model, chains, keeps, example_input)
    return model


def zero_channels(model, chains, keeps):
    """In place: zero the conv filters / biases and batch-norm affine of the channels not kept
    (the 'masked original' a channel-pruned model must agree with)."""
    for ch in chains:
        conv = get_module(model, ch["conv"])
        drop = np.setdiff1d(np.arange(conv.weight.shape[0]), keeps[ch["conv"]])
        conv.weight.data[drop] = 0
        if conv.bias is not None:
            conv.bias.data[drop] = 0
        if ch["bn"] is not None:
            bn = get_module(model, ch["bn"])
            for pname in ("weight", "bias"):
                if getattr(bn, pname, None) is not None:
                    getattr(bn, pname).data[drop] = 0
    return model


def _verify(reference, pruned, chains, keeps, example_input):
    from ..autograd import no_grad  # noqa: PLC0415
    zero_channels(reference, chains, keeps)
    x = example_input if isinstance(example_input, Tensor) else Tensor(example_input)
    rt, pt = reference.training, pruned.training
    reference.eval()
    pruned.eval()
    try:
        with no_grad():
            want = to_numpy(reference(x).data)
            got = to_numpy(pruned(x).data)
    except Exception as e:
        raise RuntimeError(f"prune_channels: the pruned model fails on the example input ({e}); "
                           "a pruned channel is probably used by an op the trace cannot see "
                           "(pass chains= explicitly)") from e
    finally:
        reference.train(rt)
        pruned.train(pt)
    scale = max(1.0, float(np.abs(want).max()))
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-4, atol=1e-4 * scale):
        raise RuntimeError("prune_channels: the pruned model does not reproduce the original with "
                           "the removed channels zeroed; pass chains= explicitly")
