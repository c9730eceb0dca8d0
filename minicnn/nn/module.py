"""nn.Module: parameters, buffers and submodules registered by attribute, PyTorch-style."""
import collections
import collections.abc

from .. import devices, dtypes
from ..autograd.version import bump as bump_version
from ..tensor import Tensor
from .parameter import Parameter, zero_grads


class _RemovableHandle:
    def __init__(self, registry, key):
        self.registry, self.key = registry, key

    def remove(self):
        self.registry.pop(self.key, None)


class Module:
    """Base class of layers and models. Subclasses define forward(); call the module itself."""

    training = True
    # True for layers that map each channel to itself and a zero channel to zero (f(0) = 0,
    # channels kept apart): pruning a channel before such a layer prunes it after (mc.compress)
    preserves_channels = False

    def __init__(self):
        object.__setattr__(self, "_parameters", collections.OrderedDict())
        object.__setattr__(self, "_buffers", collections.OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", collections.OrderedDict())
        object.__setattr__(self, "_forward_hooks", collections.OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", collections.OrderedDict())
        object.__setattr__(self, "training", True)

    # --- registration -------------------------------------------------------------------------

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {name!r} before Module.__init__() is called "
                                 f"in {type(self).__name__}")
        if isinstance(value, (Parameter, Module)):
            self._forget(name)
            self.__dict__.pop(name, None)
            table = self._parameters if isinstance(value, Parameter) else self._modules
            table[name] = value
        elif name in self._parameters or name in self._modules:
            kind = "parameter" if name in self._parameters else "child module"
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as {kind} {name!r} "
                                f"of {type(self).__name__} (a {kind} or None is expected)")
            (self._parameters if name in self._parameters else self._modules)[name] = None
        elif name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} as buffer {name!r} "
                                "(a Tensor or None is expected)")
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name):
        for table in (self._parameters, self._buffers, self._modules):
            table.pop(name, None)

    def __getattr__(self, name):
        d = self.__dict__
        for table in ("_parameters", "_buffers", "_modules"):
            if table in d and name in d[table]:
                return d[table][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for table in (self._parameters, self._buffers, self._modules):
            if name in table:
                del table[name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name, param):
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name!r} must be a Parameter or None, got "
                            f"{type(param).__name__}")
        self.__dict__.pop(name, None)
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer: {name!r} must be a Tensor or None, got "
                            f"{type(tensor).__name__}")
        self.__dict__.pop(name, None)
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)

    def add_module(self, name, module):
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} is not a Module")
        self.__dict__.pop(name, None)
        self._modules[name] = module

    register_module = add_module

    # --- traversal ----------------------------------------------------------------------------

    def named_modules(self, memo=None, prefix=""):
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(memo, f"{prefix}.{name}" if prefix else name)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def children(self):
        for _, m in self.named_children():
            yield m

    def _named_members(self, table, prefix, recurse):
        seen = set()
        modules = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mod_prefix, m in modules:
            for name, t in getattr(m, table).items():
                if t is None or id(t) in seen:
                    continue
                seen.add(id(t))
                yield (f"{mod_prefix}.{name}" if mod_prefix else name), t

    def named_parameters(self, prefix="", recurse=True):
        yield from self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix="", recurse=True):
        yield from self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse=True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def get_submodule(self, target):
        """The submodule at a dotted path ('layer1.0.conv1'); '' is the module itself."""
        mod = self
        for item in target.split(".") if target else []:
            if item not in mod._modules or mod._modules[item] is None:
                raise AttributeError(f"{mod._get_name()} has no attribute `{item}` "
                                     f"(looking up {target!r})")
            mod = mod._modules[item]
        return mod

    def get_parameter(self, target):
        mod_path, _, name = target.rpartition(".")
        mod = self.get_submodule(mod_path)
        if name not in mod._parameters:
            raise AttributeError(f"{mod._get_name()} has no parameter `{name}`")
        return mod._parameters[name]

    def num_parameters(self, trainable_only=False):
        """The number of parameter elements (shared parameters counted once)."""
        return sum(p.numel() for p in self.parameters()
                   if p.requires_grad or not trainable_only)

    # --- modes, devices, grads ----------------------------------------------------------------

    def train(self, mode=True):
        """Set training mode here and (through each child's own train()) below."""
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        object.__setattr__(self, "training", mode)
        for m in self.children():
            m.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        zero_grads(self.parameters(), set_to_none)

    def apply(self, fn):
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def _map_tensors(self, fn):
        """Replace every parameter's and buffer's array by fn(array), keeping the objects."""
        for m in self.modules():
            for p in m._parameters.values():
                if p is not None:
                    p.array = fn(p.array)
                    if p.grad is not None:
                        p.grad = Tensor(fn(p.grad.array))
            for name, b in m._buffers.items():
                if b is not None:
                    b.array = fn(b.array)
        return self

    def to(self, *args, **kwargs):
        """to(device), to(dtype), to(device, dtype) or to(tensor): floating point parameters and
        buffers (and gradients) change in place: the Parameter objects stay the same, their
        arrays are replaced."""
        import numpy  # noqa: PLC0415
        device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
        kwargs.pop("non_blocking", None)       # PyTorch's; the copies are ordered anyway
        if kwargs:
            raise TypeError(f"to: unexpected arguments {sorted(kwargs)}")
        for a in args:
            if isinstance(a, bool):                 # to(device, dtype, non_blocking)
                continue
            if isinstance(a, Tensor):
                device, dtype = a.device, a.dtype
            elif isinstance(a, str) and a.split(":")[0].lower() in ("cpu", "cuda"):
                device = a
            elif hasattr(a, "type") and not isinstance(a, (type, numpy.dtype)):
                device = a  # a device object (torch.device-like)
            else:
                dtype = a
        if device is not None:
            device = devices.normalize_device(device)
            self._map_tensors(lambda a: devices.to_device(a, device))
        if dtype is not None:
            dtype = numpy.dtype(dtype)
            if not dtypes.is_floating(dtype):
                raise TypeError(f"nn.Module.to only accepts floating point dtypes, but got "
                                f"desired dtype={dtype}")
            self._map_tensors(lambda a: a.astype(dtype) if dtypes.is_floating(a.dtype) and
                              a.dtype != dtype else a)
        return self

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=None):
        return self.to("cuda")

    def float(self):
        return self.to("float32")

    def double(self):
        return self.to("float64")

    def half(self):
        """float16 parameters and buffers (PyTorch's Module.half: the BatchNorm running
        statistics too)."""
        return self.to(dtypes.float16)

    def bfloat16(self):
        return self.to(dtypes.bfloat16)

    # --- state dict ---------------------------------------------------------------------------

    def state_dict(self, destination=None, prefix="", keep_vars=False):
        """Parameters and persistent buffers under PyTorch's dotted names ('0.weight',
        'layer1.0.bn1.running_mean'). Values are detached Tensors sharing memory with the module
        (keep_vars=True gives the Parameters themselves)."""
        if isinstance(destination, str):  # state_dict(prefix) positional misuse guard
            destination, prefix = None, destination
        out = collections.OrderedDict() if destination is None else destination
        for name, p in self._parameters.items():
            if p is not None:
                out[prefix + name] = p if keep_vars else p.detach()
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent:
                out[prefix + name] = b if keep_vars else b.detach()
        for name, m in self._modules.items():
            if m is not None:
                m.state_dict(out, prefix + name + ".", keep_vars)
        return out

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays into parameters and buffers. Every check runs before anything changes,
        so a failed load leaves the module as it was."""
        if not isinstance(state_dict, collections.abc.Mapping):
            raise TypeError(f"Expected state_dict to be dict-like, got "
                            f"{type(state_dict).__name__} (load_state_dict of "
                            f"{type(self).__name__})")
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        errors = []
        if strict:
            if missing:
                errors.append("Missing key(s) in state_dict: "
                              + ", ".join(f'"{k}"' for k in missing))
            if unexpected:
                errors.append("Unexpected key(s) in state_dict: "
                              + ", ".join(f'"{k}"' for k in unexpected))
        arrays = {}
        for k, target in own.items():
            if k not in state_dict:
                continue
            value = state_dict[k]
            array = value.array if isinstance(value, Tensor) else value
            array = devices.to_numpy(array) if not hasattr(array, "shape") or \
                devices.is_cuda_array(array) and not target.is_cuda else array
            shape = tuple(getattr(array, "shape", ()))
            if shape != tuple(target.shape):
                errors.append(f"size mismatch for {k}: copying a param with shape {list(shape)} "
                              f"from checkpoint, the shape in current model is "
                              f"{list(target.shape)}")
                continue
            arrays[k] = array
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t"
                               + "\n\t".join(errors))
        for k, array in arrays.items():
            # Copy in place (as PyTorch's param.copy_), so views of the arrays (an optimizer's
            # flat buffers) stay valid; a read-only array is replaced instead.
            target = own[k]
            array = devices.to_device(array, target.device)
            # (CuPy arrays have no writeable flag: they are always writable)
            if getattr(getattr(target.array, "flags", None), "writeable", True):
                target.array[...] = array
                bump_version(target.array)   # a Function that saved it must notice
            else:
                xp = devices.get_array_module(target.array)
                target.array = xp.array(array, dtype=target.array.dtype, copy=True)
        return collections.namedtuple("IncompatibleKeys", "missing_keys unexpected_keys")(
            missing, unexpected)

    # --- calling ------------------------------------------------------------------------------

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        for hook in list(self._forward_pre_hooks.values()):
            out = hook(self, args)
            if out is not None:
                args = out if isinstance(out, tuple) else (out,)
        result = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            out = hook(self, args, result)
            if out is not None:
                result = out
        return result

    def register_forward_hook(self, hook):
        key = object()
        self._forward_hooks[key] = hook
        return _RemovableHandle(self._forward_hooks, key)

    def register_forward_pre_hook(self, hook):
        key = object()
        self._forward_pre_hooks[key] = hook
        return _RemovableHandle(self._forward_pre_hooks, key)

    # --- printing -----------------------------------------------------------------------------

    def extra_repr(self):
        return ""

    def _get_name(self):
        return type(self).__name__

    def __repr__(self):
        """PyTorch's layout: extra_repr, then one '(name): child' line per child, indented."""
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = []
        for name, m in self._modules.items():
            body = repr(m).replace("\n", "\n  ")
            child_lines.append(f"({name}): {body}")
        lines = extra_lines + child_lines
        main = self._get_name() + "("
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                main += extra_lines[0]
            else:
                main += "\n  " + "\n  ".join(lines) + "\n"
        return main + ")"

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers)
                      | set(self._modules))
