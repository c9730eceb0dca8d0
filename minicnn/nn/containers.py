"""Containers: Sequential, ModuleList and ModuleDict (PyTorch's semantics and key names)."""
import collections
import operator

from .module import Module


def _index(idx, n, what):
    """A Python index into n items, negative allowed; IndexError as PyTorch words it."""
    idx = operator.index(idx)
    if not -n <= idx < n:
        raise IndexError(f"index {idx} is out of range for {what} of length {n}")
    return idx % n


class _ModuleSequence(Module):
    """What Sequential and ModuleList share: an ordered run of child modules, indexed by
    position (negative allowed) and renumbered '0', '1', ... after a deletion or an insertion,
    as PyTorch does."""
    _kind = "_ModuleSequence"  # the class name in error messages

    def _check(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"{self._kind}: {type(module).__name__} is not a Module subclass")
        return module

    def _renumber(self, modules):
        self._modules.clear()
        for i, m in enumerate(modules):
            self._modules[str(i)] = m

    def _index(self, idx):
        return _index(idx, len(self), self._kind)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __delitem__(self, idx):
        modules = list(self._modules.values())
        del modules[idx if isinstance(idx, slice) else self._index(idx)]
        self._renumber(modules)

    def append(self, module):
        self._modules[str(len(self))] = self._check(module)
        return self

    def extend(self, modules):
        for m in modules:
            self.append(m)
        return self


class Sequential(_ModuleSequence):
    """Modules called in order: Sequential(m0, m1, ...) or Sequential(OrderedDict(name=m)).

    Children are named '0', '1', ... (or by the OrderedDict's keys), so state_dict keys read
    '0.weight' exactly as in PyTorch. Indexing returns a child, slicing a new Sequential that
    shares the children and keeps their names.
    """
    _kind = "Sequential"

    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], (dict, collections.OrderedDict)):
            for name, m in args[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(args):
                self.add_module(str(i), m)

    def add_module(self, name, module):
        super().add_module(name, self._check(module))

    def __getitem__(self, idx):
        items = list(self._modules.items())
        if isinstance(idx, slice):
            return type(self)(collections.OrderedDict(items[idx]))
        return items[self._index(idx)][1]

    def __setitem__(self, idx, module):
        key = list(self._modules)[self._index(idx)]  # keeps the child's name
        self._modules[key] = self._check(module)

    def insert(self, index, module):
        self._check(module)
        n = len(self)
        if not -n <= index <= n:
            raise IndexError(f"index {index} is out of range for Sequential of length {n}")
        modules = list(self._modules.values())  # list.insert: -1 goes before the last, as PyTorch
        modules.insert(index, module)
        self._renumber(modules)
        return self

    def __add__(self, other):
        if not isinstance(other, Sequential):
            raise TypeError("Sequential + expects another Sequential")
        return Sequential(*self, *other)

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x


class ModuleList(_ModuleSequence):
    """A list of modules whose parameters are registered (names '0', '1', ...)."""
    _kind = "ModuleList"

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __getitem__(self, idx):
        modules = list(self._modules.values())
        if isinstance(idx, slice):
            return type(self)(modules[idx])
        return modules[self._index(idx)]

    def __setitem__(self, idx, module):
        self._modules[str(self._index(idx))] = self._check(module)

    def insert(self, index, module):
        modules = list(self._modules.values())
        modules.insert(index, self._check(module))
        self._renumber(modules)

    def __add__(self, other):
        return ModuleList(list(self) + list(other))

    def __iadd__(self, other):
        return self.extend(other)

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleList is a container and has no forward(); iterate "
                                  "over it instead")


class ModuleDict(Module):
    """An ordered dict of modules whose parameters are registered under their keys."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key):
        return self._modules[key]

    def __setitem__(self, key, module):
        if not isinstance(key, str):
            raise TypeError(f"ModuleDict keys must be strings, got {type(key).__name__}")
        if not isinstance(module, Module):
            raise TypeError(f"ModuleDict: {type(module).__name__} is not a Module subclass")
        self.add_module(key, module)

    def __delitem__(self, key):
        del self._modules[key]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key):
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def pop(self, key):
        m = self._modules[key]
        del self._modules[key]
        return m

    def clear(self):
        self._modules.clear()

    def update(self, modules):
        items = modules.items() if hasattr(modules, "items") else modules
        for key, m in items:
            self[key] = m

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleDict is a container and has no forward()")
