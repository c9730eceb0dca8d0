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

Structured (`prune_channels`): the channels with the smallest filter L1 norms are removed from
the convolutions that write them, together with the matching batch-norm features and the
matching input channels of the convolutions that read them (or the columns of the Linear after a
flatten). The channel groups are found by tracing one forward pass: a plain chain conv -> [bn] ->
[ReLU/pool/dropout...] -> conv | flatten -> linear, or the residual stream of a ResNet stage,
whose channels are written by several convolutions joined by adds and are pruned together. The
result is a genuinely smaller (and faster) model with new Parameters (build the optimizer after
pruning).
"""
import numpy as np

from ..devices import get_array_module, to_numpy
from ..nn.parameter import Parameter
from ..tensor import Tensor
from ._util import (copy_model, get_module, is_bn2d, is_conv2d, is_flatten, is_linear,
                    is_passthrough, set_param, trace)


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
        old.array = old.array * get_array_module(old.array).asarray(mask, dtype=old.array.dtype)
        _compute_weight(module)
        return module
    p = module._parameters.get(name)
    if p is None:
        raise ValueError(f"prune: {type(module).__name__} has no parameter {name!r}")
    if tuple(mask.shape) != tuple(p.shape):
        raise ValueError(f"prune: mask of shape {list(mask.shape)} for {name} of shape "
                         f"{list(p.shape)}")
    xp = get_array_module(p.array)
    del module._parameters[name]
    module.register_parameter(name + "_orig", p)
    module.register_buffer(name + "_mask", Tensor(xp.asarray(mask, dtype=p.array.dtype)))
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
    return to_numpy(getattr(module, name).array)


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
    orig.array = orig.array * mask.array
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

class _Space:
    """A set of tensors that share one channel axis: the channels of its producer convolutions,
    joined by residual adds, carried through batch norms and channel-wise modules."""

    def __init__(self, producer, K):
        self.producers, self.bns, self.consumers, self.adds = [producer], [], [], []
        self.K, self.blocked = K, False


def find_channel_groups(model, example_input):
    """The channel groups that can be pruned together, found on one traced forward pass.

    Each group is a dict {"producers": [conv names], "bns": [batch-norm names], "consumers":
    [{"name", "kind": "conv" | "linear", "hw"}], "channels": K}: the convolutions in
    "producers" write the same K channels (one conv, or several joined by residual adds, as the
    convolutions writing a ResNet stage's residual stream); the tensors carrying them go only
    through batch norms, channel-wise modules with f(0) = 0 (ReLU, pooling, dropout...) and adds
    of two such tensors, and are read only by groups=1 convolutions or by a flatten followed by
    a Linear. Anything else reading them (a concat, the model's output, an unknown op) makes the
    group unprunable. This is checked on the recorded autograd graph, so functional code in a
    forward (`out + identity`, `x.flatten(1)`) is seen too.
    """
    calls = trace(model, example_input)
    reading = {}                                     # tensor id -> module calls reading it
    for i, (_, _, ins, _) in enumerate(calls):
        for t in dict.fromkeys(ins):
            reading.setdefault(t, []).append(i)
    parent, spaces, space_of, work = {}, {}, {}, []

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def union(a, b):
        a, b = find(a), find(b)
        if a == b:
            return a
        A, B = spaces[a], spaces.pop(b)
        parent[b] = a
        A.producers += B.producers
        A.bns += B.bns
        A.consumers += B.consumers
        A.adds += B.adds
        A.blocked = A.blocked or B.blocked or A.K != B.K
        return a

    def assign(tid, sp):
        if tid is None:
            return
        if tid in space_of:
            union(space_of[tid], sp)
            return
        space_of[tid] = sp
        work.append(tid)

    def linear_after_flatten(flat_id, shape):
        users = reading.get(flat_id, [])
        owned = set().union(*(calls.owned[u] for u in users)) if users else set()
        if len(users) != 1 or calls.readers.get(flat_id, set()) - owned:
            return None
        lname, lin = calls[users[0]][0], calls[users[0]][1]
        if not is_linear(lin) or len(shape) != 4 or \
                lin.weight.shape[1] != shape[1] * shape[2] * shape[3]:
            return None
        return {"name": lname, "kind": "linear", "hw": int(shape[2] * shape[3])}

    def consume_flattened(S, flat_id, shape):
        """The space's channels flattened: a Linear reading them consumes it, else it blocks."""
        c = linear_after_flatten(flat_id, shape)
        if c is None:
            S.blocked = True
        else:
            S.consumers.append(c)

    producer_space = {}
    for name, m, _, out in calls:
        if not is_conv2d(m) or out is None:
            continue
        sp = len(parent)
        parent[sp] = sp
        spaces[sp] = _Space(name, int(m.weight.shape[0]))
        if int(m.groups) != 1 or is_pruned(m):
            spaces[sp].blocked = True
        if name in producer_space:                   # a conv called twice: one channel space
            sp = union(producer_space[name], sp)
        producer_space[name] = sp
        assign(out, sp)

    while work:
        tid = work.pop()
        S = spaces[find(space_of[tid])]
        sp = find(space_of[tid])
        t = calls.tensors.get(tid)
        if tid in calls.output_ids or t is None or t.ndim != 4:
            S.blocked = True
            continue
        users = reading.get(tid, [])
        owned = set().union(*(calls.owned[u] for u in users)) if users else set()
        for u in users:
            uname, um, _, uout = calls[u]
            if is_bn2d(um):
                S.bns.append(uname)
                assign(uout, sp)
            elif is_passthrough(um):
                assign(uout, sp)
            elif is_conv2d(um):
                if int(um.groups) == 1 and not is_pruned(um):
                    S.consumers.append({"name": uname, "kind": "conv"})
                else:
                    S.blocked = True
            elif is_flatten(um):
                consume_flattened(S, uout, t.shape)
            else:
                S.blocked = True
            S = spaces[find(sp)]
            sp = find(sp)
        for f in calls.readers.get(tid, set()) - owned:
            fn = calls.functions[f]
            kind = type(fn).__name__
            outs = calls.outputs_of(f)
            if kind == "Add" and all(i is not None and tuple(i.shape) == tuple(t.shape)
                                     for i in fn.inputs) and len(outs) == 1:
                S.adds.append(fn)
                assign(id(outs[0]), sp)
            elif kind == "Reshape" and len(outs) == 1 and outs[0].ndim == 2 and \
                    outs[0].shape[0] == t.shape[0]:
                consume_flattened(S, id(outs[0]), t.shape)
            else:
                S.blocked = True
            S = spaces[find(sp)]
            sp = find(sp)

    groups = []
    for root, S in spaces.items():
        for fn in S.adds:                  # every input of an add must carry the same channels
            for i in fn.inputs:
                if id(i) not in space_of or find(space_of[id(i)]) != root:
                    S.blocked = True
        if S.blocked or not S.consumers:
            continue
        groups.append({"producers": list(dict.fromkeys(S.producers)),
                       "bns": list(dict.fromkeys(S.bns)),
                       "consumers": list({c["name"]: c for c in S.consumers}.values()),
                       "channels": S.K})
    groups.sort(key=lambda g: [n for n, _ in model.named_modules()].index(g["producers"][0]))
    return groups


def find_channel_chains(model, example_input):
    """Alias of find_channel_groups."""
    return find_channel_groups(model, example_input)


def _normalize_group(g):
    if "producers" in g:
        return g
    # the single-chain form {"conv", "bn", "next", "kind", "hw"}
    c = {"name": g["next"], "kind": g.get("kind", "conv")}
    if c["kind"] == "linear":
        c["hw"] = g["hw"]
    return {"producers": [g["conv"]], "bns": [g["bn"]] if g.get("bn") else [],
            "consumers": [c]}


def channel_l1_norms(conv):
    w = to_numpy(conv.weight.array)
    return np.abs(w).reshape(w.shape[0], -1).sum(axis=1)


def _keep_indices(model, group, amount, min_channels=1):
    """Channels kept: the largest summed filter L1 norms over the group's producers."""
    norms = sum(channel_l1_norms(get_module(model, p)) for p in group["producers"])
    K = len(norms)
    n_keep = min(K, max(min_channels, int(round(K * (1 - amount)))))
    return np.sort(np.argsort(-norms, kind="stable")[:n_keep])


def _take(param_or_tensor, idx, axis):
    xp = get_array_module(param_or_tensor.array)
    return xp.ascontiguousarray(xp.take(param_or_tensor.array, xp.asarray(idx), axis=axis))


def _set_param(module, name, array):
    old = getattr(module, name)
    set_param(module, name, Parameter(array, requires_grad=old.requires_grad))


def prune_channels(model, amount=0.5, example_input=None, groups=None, inplace=False,
                   min_channels=1, verify=True, chains=None):
    """Remove the `amount` fraction of the channels of every prunable channel group (see
    find_channel_groups: the smallest summed filter L1 norms go), rewriting the producer
    convolutions, their batch norms and the consumers (next convolutions' input channels, or
    the Linear's columns after a flatten). Returns the pruned model (a copy unless inplace) with
    `.pruned_channels` = {first producer: kept indices} and `.channel_groups`.

    verify: check on example_input (eval mode) that the pruned model gives the outputs of the
    original with the removed channels zeroed (conv filter, bias and batch-norm affine set to
    0); raise if not.
    """
    groups = chains if groups is None else groups
    if groups is None:
        if example_input is None:
            raise ValueError("prune_channels: pass example_input (one batch) or groups")
        groups = find_channel_groups(model, example_input)
    groups = [_normalize_group(g) for g in groups]
    if not inplace:
        model = copy_model(model)
    reference = copy_model(model) if verify and example_input is not None else None
    keeps = [_keep_indices(model, g, amount, min_channels) for g in groups]
    for g, keep in zip(groups, keeps):
        for pname in g["producers"]:
            conv = get_module(model, pname)
            _set_param(conv, "weight", _take(conv.weight, keep, 0))
            if conv.bias is not None:
                _set_param(conv, "bias", _take(conv.bias, keep, 0))
            if hasattr(conv, "out_channels"):
                conv.out_channels = len(keep)
        for bname in g["bns"]:
            bn = get_module(model, bname)
            for pn in ("weight", "bias"):
                if getattr(bn, pn, None) is not None:
                    _set_param(bn, pn, _take(getattr(bn, pn), keep, 0))
            for bn_buf in ("running_mean", "running_var"):
                if getattr(bn, bn_buf, None) is not None:
                    setattr(bn, bn_buf, Tensor(_take(getattr(bn, bn_buf), keep, 0)))
            if hasattr(bn, "num_features"):
                bn.num_features = len(keep)
        for c in g["consumers"]:
            nxt = get_module(model, c["name"])
            if c["kind"] == "conv":
                _set_param(nxt, "weight", _take(nxt.weight, keep, 1))
                if hasattr(nxt, "in_channels"):
                    nxt.in_channels = len(keep)
            else:
                hw = c["hw"]
                cols = (keep[:, None] * hw + np.arange(hw)[None, :]).reshape(-1)  # (keep*hw,)
                _set_param(nxt, "weight", _take(nxt.weight, cols, 1))
                if hasattr(nxt, "in_features"):
                    nxt.in_features = len(cols)
    model.pruned_channels = {g["producers"][0]: k for g, k in zip(groups, keeps)}
    model.channel_groups = groups
    if reference is not None:
        _verify(reference, model, groups, keeps, example_input)
    return model


def zero_channels(model, groups, keeps):
    """In place: zero the producer filters / biases and batch-norm affine of the channels not
    kept (the 'masked original' a channel-pruned model must agree with). keeps: a list (one
    per group) or the {first producer: indices} dict of a pruned model."""
    groups = [_normalize_group(g) for g in groups]
    if isinstance(keeps, dict):
        keeps = [keeps[g["producers"][0]] for g in groups]
    for g, keep in zip(groups, keeps):
        K = get_module(model, g["producers"][0]).weight.shape[0]
        drop = np.setdiff1d(np.arange(K), keep)
        for pname in g["producers"]:
            conv = get_module(model, pname)
            conv.weight.array[drop] = 0
            if conv.bias is not None:
                conv.bias.array[drop] = 0
        for bname in g["bns"]:
            bn = get_module(model, bname)
            for pn in ("weight", "bias"):
                if getattr(bn, pn, None) is not None:
                    getattr(bn, pn).array[drop] = 0
    return model


def _verify(reference, pruned, groups, keeps, example_input):
    from ..autograd import no_grad  # noqa: PLC0415
    zero_channels(reference, groups, keeps)
    x = example_input if isinstance(example_input, Tensor) else Tensor(example_input)
    rt, pt = reference.training, pruned.training
    reference.eval()
    pruned.eval()
    try:
        with no_grad():
            want = to_numpy(reference(x).array)
            got = to_numpy(pruned(x).array)
    except Exception as e:
        raise RuntimeError(f"prune_channels: the pruned model fails on the example input ({e}); "
                           "a pruned channel is probably used by an op the trace cannot see "
                           "(pass groups= explicitly)") from e
    finally:
        reference.train(rt)
        pruned.train(pt)
    scale = max(1.0, float(np.abs(want).max()))
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-4, atol=1e-4 * scale):
        raise RuntimeError("prune_channels: the pruned model does not reproduce the original with "
                           "the removed channels zeroed; pass groups= explicitly")
