"""Optimizer: parameter groups, PyTorch-layout state dicts, and flat-buffer updates.

How the update stays a few array operations
-------------------------------------------
For every parameter group the optimizer keeps one *layout* per (device, dtype) bucket: a flat
1-D buffer holding all of the bucket's parameters back to back, with each parameter's `.array`
made a view into it, plus one flat buffer per state (exp_avg, momentum_buffer, ...). A step
runs one fused kernel over the whole bucket: on the CPU a parallel Numba kernel that reads the
per-parameter gradient arrays in place (a typed list and a chunk table, no gather copy) and
updates the flat parameter and state buffers in one pass (kernels/optim/); on the GPU the
gradients are gathered into one flat buffer (a single `concatenate(..., out=)`) and one fused
CUDA kernel updates the bucket. The Python work per step is a loop of identity checks
over the parameters (and building the list of gradient arrays), not array operations.

Correctness when things change under the optimizer:
- A parameter whose `.array` was replaced (Module.to(), `p.array = ...`, a read-only array) is
  noticed by an identity check (`p.array is view`) at the next step and the group is laid out
  again: the current values are copied into new flat buffers and the state is carried over
  (converted to the new dtype/device). Module.load_state_dict copies in place, so the views stay.
- Parameters whose `.grad` is None are skipped, as PyTorch does: no update, no state change,
  their step count does not advance. The update runs over maximal runs of consecutive
  parameters that have a gradient and the same step count (one run in the common case).
- Gradients are fresh arrays each backward; they are only read.
- A parameter shared by two optimizers works (each re-lays out when it sees the other's view),
  but slowly; give each parameter to one optimizer.
- A step counts as an in-place write of each parameter it updates (autograd/version.py): a
  Function that saved a parameter before the step raises in its backward, as in PyTorch. The flat
  buffer is partitioned, so a write to one parameter leaves the others' saved versions valid.
- Building an optimizer moves each parameter's values into its flat buffer: a tensor that shared
  memory with a NumPy array (mc.from_numpy, mc.as_tensor) no longer does afterwards; the
  optimizer's updates go to the tensor, not to the array.

State dict layout (PyTorch's): {'state': {index: {'step': 0-d float32 Tensor, 'exp_avg': Tensor,
...}}, 'param_groups': [{'lr': ..., ..., 'params': [indices]}]}, indices numbering the parameters
across groups in order. Only parameters that have taken a step have state (Adagrad's state
exists from the start, as in PyTorch).
"""
import collections
import itertools

import numpy

from minicnn.kernels import optim as K

from .. import devices
from ..autograd import enable_grad, no_grad
from ..autograd import version as autograd_version
from ..dtypes import HALF_FLOATS
from ..nn.parameter import zero_grads
from ..tensor import Tensor


class _RequiredParameter:
    def __repr__(self):
        return "<required parameter>"


required = _RequiredParameter()


class _Bucket:
    """Parameters of one group with one (device, dtype), laid out in one flat buffer.

    float16 / bfloat16 parameters get float32 master weights: `master`, a float32 copy of
    `flat`, is what the update kernels update (with the gradients widened to float32 and the
    state in float32), and `flat`, which the parameters view, receives it rounded after each
    step. So updates smaller than half an ulp of a weight accumulate instead of vanishing."""
    __slots__ = ("params", "views", "offsets", "flat", "master", "state", "gbuf", "xp")

    def __init__(self, params, xp, dtype):
        self.params = params
        self.xp = xp
        sizes = [int(p.array.size) for p in params]
        self.offsets = [0] + list(itertools.accumulate(sizes))
        self.flat = xp.empty(self.offsets[-1], dtype=dtype)
        self.views = []
        for p, o0, o1 in zip(params, self.offsets, self.offsets[1:]):
            self.flat[o0:o1] = p.array.reshape(-1)
            view = self.flat[o0:o1].reshape(p.array.shape)
            p.array = view
            self.views.append(view)
        autograd_version.partition(self.flat, self.offsets)  # each parameter counts its writes
        self.master = self.flat.astype(numpy.float32) if dtype in HALF_FLOATS else None
        self.state = {}
        self.gbuf = None

    @property
    def work(self):
        """The buffer the update kernels update: the master weights, or the parameters."""
        return self.flat if self.master is None else self.master

    def valid(self):
        for p, v in zip(self.params, self.views):
            if p.array is not v:
                return False
        return True

    def param_state(self, i):
        o0, o1 = self.offsets[i], self.offsets[i + 1]
        return {name: buf[o0:o1] for name, buf in self.state.items()}


class _Layout:
    __slots__ = ("signature", "buckets")

    def __init__(self, signature, buckets):
        self.signature, self.buckets = signature, buckets


def _group_signature(group):
    return tuple(map(id, group["params"]))


class Optimizer:
    """Base class. Subclasses define `_state_spec(group)` (flat state buffers and their initial
    value), optionally `_scalar_spec` (per-parameter scalars such as NAdam's mu_product),
    `_validate(group)`, and `_apply(group, p, g, state, t, scalars)` which updates 1-D buffers
    in place for parameters at (new) step count t and returns the new scalars (or None)."""

    _scalar_spec = {}        # name -> initial value
    _has_step = True         # 'step' in the state dict (SGD has none)
    _eager_state = False     # state exists before the first step (Adagrad)

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.param_groups = []
        self._layouts = []
        self._steps = {}      # param -> number of steps it took
        self._scalars = {}    # param -> {name: value}
        # A user subclass that writes its own step() (PyTorch-style, with self.state[p] dicts)
        # gets a plain dict state and no flat layout.
        self._flat = type(self)._apply is not Optimizer._apply
        self._user_state = collections.defaultdict(dict)
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of "
                            f"Tensors or dicts, but got {type(params).__name__}")
        if isinstance(params, (set, frozenset)):
            raise TypeError("optimizer parameters need to be organized in ordered collections, "
                            "but the ordering of tensors in sets will change between runs. "
                            "Please use a list instead.")
        groups = list(params)
        if len(groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    # --- groups -------------------------------------------------------------------------------

    def add_param_group(self, param_group):
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        group = dict(param_group)
        params = group.get("params")
        if params is None:
            raise ValueError("param_group has no 'params' entry")
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError("optimizer parameters need to be organized in ordered collections, "
                            "but the ordering of tensors in sets will change between runs. "
                            "Please use a list instead.")
        params = list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError("optimizer can only optimize Tensors, but one of the params is "
                                f"{type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        if len({id(p) for p in params}) != len(params):
            raise ValueError("optimizer contains a parameter group with duplicate parameters")
        group["params"] = params
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError("parameter group didn't specify a value of required "
                                 f"optimization parameter {name}")
            group.setdefault(name, default)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        self._validate(group)
        self.param_groups.append(group)
        self._layouts.append(None)
        for p in params:
            self._steps.setdefault(p, 0)
            self._scalars.setdefault(p, dict(self._scalar_spec))
        if self._flat:
            self._layout(len(self.param_groups) - 1)

    def _validate(self, group):
        lr = group.get("lr")
        if isinstance(lr, (int, float)) and not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")

    # --- layouts ------------------------------------------------------------------------------

    def _state_spec(self, group):
        return []

    def _layout(self, index, carry=None):
        """The group's current layout, rebuilt when parameters or their arrays changed.
        carry: param -> {state name: array} to install (load_state_dict); by default the state
        is carried over from the previous layout."""
        group = self.param_groups[index]
        layout = self._layouts[index]
        sig = _group_signature(group)
        if carry is None and layout is not None and layout.signature == sig and \
                all(b.valid() for b in layout.buckets):
            return layout
        if carry is None:
            carry = {}
            if layout is not None:
                for b in layout.buckets:
                    for i, p in enumerate(b.params):
                        carry[p] = b.param_state(i)
        buckets = {}
        for p in group["params"]:
            key = (devices.device_of(p.array), p.array.dtype)   # not .str: bfloat16's is <V2
            buckets.setdefault(key, []).append(p)
        new = []
        spec = self._state_spec(group)
        for (device, dtype), params in buckets.items():
            xp = devices.get_array_module(params[0].array)
            b = _Bucket(params, xp, dtype)
            for name, fill in spec:
                b.state[name] = xp.full(b.offsets[-1], fill, dtype=b.work.dtype)
            for i, p in enumerate(params):
                for name, arr in carry.get(p, {}).items():
                    if name not in b.state:
                        b.state[name] = xp.full(b.offsets[-1], dict(spec).get(name, 0),
                                                dtype=b.work.dtype)
                    b.state[name][b.offsets[i]:b.offsets[i + 1]] = \
                        devices.to_device(arr, device).reshape(-1)
            new.append(b)
        layout = _Layout(sig, new)
        self._layouts[index] = layout
        return layout

    # --- stepping -----------------------------------------------------------------------------

    def _runs(self, bucket):
        """[i0, i1) runs of consecutive parameters with a grad and equal step/scalars."""
        runs, cur = [], None
        steps, scalars = self._steps, self._scalars
        for i, p in enumerate(bucket.params):
            if p.grad is None:
                cur = None
                continue
            key = (steps[p], tuple(scalars[p].values()))
            if cur is not None and cur[2] == key:
                cur[1] = i + 1
            else:
                cur = [i, i + 1, key]
                runs.append(cur)
        return runs

    def _gather(self, bucket, i0, i1):
        """The gradients of params[i0:i1] as one 1-D gradient: the per-parameter arrays
        themselves (kernels.optim.Pieces) where the kernels read them in place (the CPU's: no
        copy); otherwise one concatenate into a flat buffer."""
        params, offsets = bucket.params, bucket.offsets
        if bucket.master is not None:   # half gradients, widened into one float32 buffer
            if bucket.gbuf is None:
                bucket.gbuf = bucket.xp.empty_like(bucket.master)
            out = bucket.gbuf[offsets[i0]:offsets[i1]]
            for i in range(i0, i1):
                out[offsets[i] - offsets[i0]:offsets[i + 1] - offsets[i0]] = \
                    params[i].grad.array.reshape(-1)
            return out
        if K.reads_pieces(bucket.flat):
            o0 = offsets[i0]
            return K.Pieces([params[i].grad.array for i in range(i0, i1)],
                            [o - o0 for o in offsets[i0:i1 + 1]])
        if i1 - i0 == 1:
            return params[i0].grad.array.reshape(-1)
        if bucket.gbuf is None:
            bucket.gbuf = bucket.xp.empty_like(bucket.flat)
        out = bucket.gbuf[offsets[i0]:offsets[i1]]
        bucket.xp.concatenate([params[i].grad.array.reshape(-1) for i in range(i0, i1)], out=out)
        return out

    @no_grad()
    def _step(self):
        if not self._flat:
            raise NotImplementedError(f"{type(self).__name__} defines neither step() nor _apply()")
        layouts = [self._layout(index) for index in range(len(self.param_groups))]
        for group in self.param_groups:  # checked before any update: a failed step changes nothing
            for p in group["params"]:     # (and a wrong-sized grad is never read out of bounds)
                if p.grad is not None and p.grad.array.size != p.array.size:
                    raise RuntimeError(f"{type(self).__name__}.step: the gradient of a parameter "
                                       f"of shape {list(p.shape)} has shape {list(p.grad.shape)}")
        for group, layout in zip(self.param_groups, layouts):
            full_spec = self._state_spec(group)
            spec = [n for n, _ in full_spec]
            for b in layout.buckets:
                for name, fill in full_spec:
                    if name not in b.state:  # an option switched on after construction
                        b.state[name] = b.xp.full(b.offsets[-1], fill, dtype=b.work.dtype)
                for i0, i1, (step, scalars) in self._runs(b):
                    o0, o1 = b.offsets[i0], b.offsets[i1]
                    g = self._gather(b, i0, i1)
                    st = {name: b.state[name][o0:o1] for name in spec}
                    sc = dict(zip(self._scalar_spec, scalars))
                    new_sc = self._apply(group, b.work[o0:o1], g, st, step + 1, sc)
                    if b.master is not None:
                        b.flat[o0:o1] = b.master[o0:o1]   # rounded to the parameters' dtype
                    autograd_version.bump_parts(b.flat, i0, i1)
                    for p in b.params[i0:i1]:
                        self._steps[p] = step + 1
                        if new_sc:
                            self._scalars[p] = dict(new_sc)

    def step(self, closure=None):
        """One update of every parameter that has a gradient. closure: re-evaluates the model
        and returns the loss (run with gradients enabled)."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        self._step()
        return loss

    def zero_grad(self, set_to_none=True):
        zero_grads((p for group in self.param_groups for p in group["params"]), set_to_none)

    # --- state --------------------------------------------------------------------------------

    def _has_state(self, p):
        return self._eager_state or self._steps.get(p, 0) > 0

    def _param_state(self, p, b, i, group):
        """PyTorch-layout state of one parameter: Tensors viewing the flat buffers."""
        out = {}
        if self._has_step:
            out["step"] = Tensor(numpy.array(self._steps[p], dtype=numpy.float32))
        for name, value in self._scalars[p].items():
            out[name] = Tensor(numpy.array(value, dtype=numpy.float64))
        o0, o1 = b.offsets[i], b.offsets[i + 1]
        for name, _ in self._state_spec(group):
            if name in b.state:
                out[name] = Tensor(b.state[name][o0:o1].reshape(p.shape))
        return out

    def _apply(self, group, p, g, state, t, scalars):
        raise NotImplementedError

    @property
    def state(self):
        """{param: {name: Tensor}} for parameters that have state; the Tensors view the flat
        state buffers (in-place edits take effect). A user subclass with its own step() gets a
        plain defaultdict(dict), as in PyTorch."""
        if not self._flat:
            return self._user_state
        out = {}
        for index, group in enumerate(self.param_groups):
            for b in self._layout(index).buckets:
                for i, p in enumerate(b.params):
                    if self._has_state(p):
                        out[p] = self._param_state(p, b, i, group)
        return out

    def state_dict(self):
        if not self._flat:
            return self._plain_state_dict()
        groups, state, start = [], {}, 0
        for index, group in enumerate(self.param_groups):
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = list(range(start, start + len(group["params"])))
            groups.append(packed)
            where = {}
            for b in self._layout(index).buckets:
                for i, p in enumerate(b.params):
                    where[id(p)] = (b, i)
            for j, p in enumerate(group["params"]):
                if self._has_state(p):
                    b, i = where[id(p)]
                    state[start + j] = self._param_state(p, b, i, group)
            start += len(group["params"])
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Load a state dict in PyTorch's layout (ours, or torch's converted to arrays). Every
        check runs before anything changes."""
        if not isinstance(state_dict, dict) or "state" not in state_dict or \
                "param_groups" not in state_dict:
            raise ValueError("optimizer state dict must be a dict with 'state' and "
                             "'param_groups' entries")
        saved_groups = state_dict["param_groups"]
        if not self._flat:
            return self._plain_load_state_dict(state_dict)
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has a different number of parameter groups "
                             f"({len(saved_groups)}) than the optimizer "
                             f"({len(self.param_groups)})")
        id_map = {}
        for gi, (g, s) in enumerate(zip(self.param_groups, saved_groups)):
            if len(g["params"]) != len(s["params"]):
                raise ValueError("loaded state dict contains a parameter group that doesn't "
                                 f"match the size of optimizer's group ({len(s['params'])} vs "
                                 f"{len(g['params'])} parameters)")
            for old, p in zip(s["params"], g["params"]):
                id_map[int(old)] = (p, gi)
        steps, scalars, carry = {}, {}, {}
        for key, st in state_dict["state"].items():
            try:
                key = int(key)
            except (TypeError, ValueError):
                raise ValueError(f"optimizer state dict: state key {key!r} is not a parameter "
                                 "index") from None
            if key not in id_map:
                raise ValueError(f"optimizer state dict: state for parameter {key}, which is in "
                                 "no parameter group")
            p, gi = id_map[key]
            merged = dict(self.param_groups[gi], **self._saved_options(saved_groups[gi]))
            names = {n for n, _ in self._state_spec(merged)}
            arrays = {}
            for name, value in st.items():
                if value is None:
                    continue
                if name == "step":
                    steps[p] = int(round(float(_scalar(value))))
                elif name in self._scalar_spec:
                    scalars.setdefault(p, dict(self._scalar_spec))[name] = float(_scalar(value))
                elif name in names:
                    arr = _array(value)
                    if arr.size != p.array.size or tuple(arr.shape) not in (tuple(p.shape),
                                                                           (p.array.size,)):
                        raise ValueError(f"optimizer state dict: state {name!r} of parameter "
                                         f"{key} has shape {list(arr.shape)}, but the parameter "
                                         f"has shape {list(p.shape)}")
                    arrays[name] = arr
                else:
                    raise ValueError(f"optimizer state dict: unknown state {name!r} for parameter "
                                     f"{key} ({type(self).__name__} keeps "
                                     f"{sorted(names | set(self._scalar_spec))})")
            if not self._has_step and arrays:
                steps[p] = 1  # SGD: a momentum buffer means at least one step was taken
            carry[p] = arrays
        # -- everything checked: apply
        for g, s in zip(self.param_groups, saved_groups):
            g.update(self._saved_options(s))
        for g in self.param_groups:
            for p in g["params"]:
                self._steps[p] = steps.get(p, 0)
                self._scalars[p] = scalars.get(p, dict(self._scalar_spec))
        for index, g in enumerate(self.param_groups):
            self._layout(index, carry={p: carry[p] for p in g["params"] if p in carry})

    def _plain_state_dict(self):
        groups, index, start = [], {}, 0
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = list(range(start, start + len(group["params"])))
            index.update({id(p): start + j for j, p in enumerate(group["params"])})
            groups.append(packed)
            start += len(group["params"])
        state = {index[id(p)]: dict(st) for p, st in self._user_state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def _plain_load_state_dict(self, state_dict):
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        id_map = {}
        for g, s in zip(self.param_groups, saved_groups):
            if len(g["params"]) != len(s["params"]):
                raise ValueError("loaded state dict contains a parameter group that doesn't "
                                 "match the size of optimizer's group")
            id_map.update({int(old): p for old, p in zip(s["params"], g["params"])})
        unknown = [k for k in state_dict["state"] if int(k) not in id_map]
        if unknown:
            raise ValueError(f"optimizer state dict: state for parameters {unknown}, which are in "
                             "no parameter group")
        for g, s in zip(self.param_groups, saved_groups):
            g.update(self._saved_options(s))
        self._user_state = collections.defaultdict(dict)
        for k, st in state_dict["state"].items():
            self._user_state[id_map[int(k)]] = dict(st)

    @staticmethod
    def _saved_options(saved_group):
        out = {k: v for k, v in saved_group.items() if k != "params"}
        if "betas" in out:
            out["betas"] = tuple(float(b) for b in out["betas"])
        return out

    def __repr__(self):
        lines = [type(self).__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(group):
                if key != "params":
                    lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)


def _array(value):
    if isinstance(value, Tensor):
        return value.array
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor
        return value.detach().cpu().numpy()
    if devices.is_cuda_array(value):
        return value
    return numpy.asarray(value)


def _scalar(value):
    a = _array(value)
    return devices.to_numpy(a).reshape(()).item() if hasattr(a, "reshape") else a
