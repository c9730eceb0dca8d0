"""Tensor: an array (NumPy or CuPy) with a gradient and a place in the autograd graph.

`array` is the raw array (Chainer's name); `data` is, as in PyTorch, a Tensor sharing that array
outside the graph (`p.data.add_(...)` changes `p`; `p.data = t` replaces p's array); `grad` is a
Tensor or None. Operators and methods call the differentiable ops in minicnn.ops.
"""
import numpy

from . import devices, dtypes
from .autograd import engine
from .dtypes import kind as dtype_kind
from .autograd.function import Variable
from .autograd.mode import _GradMode
from .autograd.version import bump as bump_version
from .autograd.version import carry_over as carry_versions
from .autograd.version import version as array_version


class _HookHandle:
    def __init__(self, hooks, hook):
        self.hooks, self.hook = hooks, hook

    def remove(self):
        if self.hook in self.hooks:
            self.hooks.remove(self.hook)


class Tensor(Variable):
    __slots__ = ("__weakref__",)
    __array_ufunc__ = None  # numpy_array * tensor defers to Tensor.__rmul__
    __hash__ = object.__hash__  # __eq__ is element-wise, identity stays the hash

    def __init__(self, data, requires_grad=False):
        if isinstance(data, Tensor):
            data = data.array
        if type(data) is not numpy.ndarray and not devices.is_cuda_array(data):
            data = numpy.asarray(data)
        self.array = data
        self.grad = None
        self.creator = None
        self.output_index = 0
        self._hooks = None
        self._requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # --- construction fast paths used by Function ---------------------------------------------

    @staticmethod
    def _wrap(array):
        """A constant Tensor around an op's output (no graph, no checks beyond array type)."""
        t = Tensor.__new__(Tensor)
        if type(array) is not numpy.ndarray and not devices.is_cuda_array(array):
            array = numpy.asarray(array)
        t.array = array
        t.grad = t.creator = t._hooks = None
        t.output_index = 0
        t._requires_grad = False
        return t

    @staticmethod
    def _from_op(array, fn, index):
        t = Tensor._wrap(array)
        k = t.array.dtype.kind
        if k in "fc" or (k == "V" and dtype_kind(t.array.dtype) == "f"):   # V: bfloat16
            t.creator = fn
            t.output_index = index
            t._requires_grad = True
        return t

    # --- attributes ---------------------------------------------------------------------------

    @property
    def data(self):
        """A Tensor sharing this tensor's array, outside the graph (PyTorch's `.data`)."""
        return Tensor._wrap(self.array)

    @data.setter
    def data(self, value):
        """Replace this tensor's array with another tensor's (or an array), as PyTorch's
        `t.data = other`: the new array is shared, not copied, and may have another shape."""
        array = value.array if isinstance(value, Tensor) else value
        if type(array) is not numpy.ndarray and not devices.is_cuda_array(array):
            array = numpy.asarray(array)
        self.array = array

    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        self.requires_grad_(value)

    def requires_grad_(self, requires_grad=True):
        if requires_grad and dtype_kind(self.array.dtype) not in "fc":
            raise TypeError(f"only Tensors of floating point dtype can require gradients, got "
                            f"dtype {self.array.dtype} (shape {list(self.shape)})")
        if not requires_grad and self.creator is not None:
            raise RuntimeError("requires_grad_(False) is only allowed on leaf tensors; use "
                               "detach() for a non-leaf")
        self._requires_grad = bool(requires_grad)
        return self

    @property
    def dtype(self):
        return self.array.dtype

    @property
    def device(self):
        return devices.device_of(self.array)

    @property
    def is_cuda(self):
        return devices.is_cuda_array(self.array)

    @property
    def is_cpu(self):
        return not devices.is_cuda_array(self.array)

    @property
    def is_xpu(self):       # PyTorch's other accelerators, which minicnn does not drive
        return False

    is_mps = is_xpu

    @property
    def shape(self):
        return self.array.shape

    @property
    def ndim(self):
        return self.array.ndim

    def dim(self):
        return self.array.ndim

    def size(self, dim=None):
        """The shape (PyTorch's `size()`), or one dimension's length."""
        if dim is None:
            return self.array.shape
        from .ops.util import normalize_axis  # noqa: PLC0415
        return self.array.shape[normalize_axis(dim, self.ndim, "size")]

    def numel(self):
        return int(self.array.size)

    def nelement(self):
        return int(self.array.size)

    @property
    def is_leaf(self):
        return self.creator is None

    @property
    def grad_fn(self):
        return self.creator

    @property
    def T(self):  # noqa: N802 -- PyTorch's name
        return ops.permute(self, tuple(reversed(range(self.ndim))))

    @property
    def mT(self):  # noqa: N802
        return ops.transpose(self, -2, -1)

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.array.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.array.shape[0]))

    def __repr__(self):
        body = numpy.array2string(devices.to_numpy(self.array), separator=", ", prefix="tensor(",
                                  precision=4)
        extras = []
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self.array.dtype not in (numpy.float32, numpy.int64, numpy.bool_):
            extras.append(f"dtype={self.array.dtype}")
        if self.creator is not None:
            extras.append(f"grad_fn=<{self.creator.name}>")
        elif self._requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    # --- conversion ---------------------------------------------------------------------------

    def numpy(self):
        """The NumPy array (shared, not copied). CUDA tensors must be moved with .cpu() first."""
        if self.is_cuda:
            raise TypeError("can't convert a cuda tensor to numpy; use tensor.cpu().numpy()")
        return self.array

    def __array__(self, dtype=None, copy=None):
        a = devices.to_numpy(self.array)
        return a if dtype is None else a.astype(dtype)

    def item(self):
        if self.array.size != 1:
            raise ValueError(f"item: a Tensor with {self.array.size} elements cannot be converted "
                             "to a Python scalar")
        return self.array.reshape(()).item()

    def tolist(self):
        return devices.to_numpy(self.array).tolist()

    def __bool__(self):
        return bool(self.item())

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self.array.dtype.kind not in "iub":
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __format__(self, spec):
        """f"{loss:.4f}": a 0-d tensor formats as its value; others only with an empty spec, as
        in PyTorch."""
        if self.ndim == 0:
            return format(self.item(), spec)
        return object.__format__(self, spec)

    def to(self, *args, **kwargs):
        """to(device), to(dtype), to(device, dtype) or to(other_tensor), then PyTorch's
        non_blocking and copy (positional or by name); differentiable. non_blocking is accepted
        and changes nothing (CuPy's copies keep the stream's order); copy=True returns a new
        tensor even when device and dtype are already right."""
        device = kwargs.pop("device", None)
        dtype = kwargs.pop("dtype", None)
        flags = [kwargs.pop("non_blocking", False), kwargs.pop("copy", False)]
        if kwargs:
            raise TypeError(f"to: unexpected arguments {sorted(kwargs)}")
        given = 0
        for a in args:
            if isinstance(a, bool):                  # to(dtype, non_blocking, copy)
                if given == 2:
                    raise TypeError("to: at most two flags (non_blocking, copy) after the "
                                    "device and dtype")
                flags[given], given = a, given + 1
            elif isinstance(a, Tensor):
                device, dtype = a.device, a.dtype
            elif isinstance(a, str) and (a.startswith("cpu") or a.startswith("cuda")):
                device = a
            elif isinstance(a, int):                 # to(0): the first GPU
                device = devices.Device(a)
            elif hasattr(a, "type") and not isinstance(a, (type, numpy.dtype)):
                device = a
            else:
                dtype = a
        out = self
        if dtype is not None:
            out = ops.cast(out, dtype)
        if device is not None and devices.normalize_device(device) != out.device:
            out = ops.ToDevice(devices.normalize_device(device))(out)
        if flags[1] and out is self:
            out = self.clone()
        return out

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=None, non_blocking=False):
        """To the GPU (`device`: None, an index or a device, all meaning minicnn's one GPU)."""
        return self.to("cuda" if device is None else device, non_blocking=non_blocking)

    def float(self):
        return ops.cast(self, numpy.float32)

    def double(self):
        return ops.cast(self, numpy.float64)

    def half(self):
        return ops.cast(self, numpy.float16)

    def bfloat16(self):
        return ops.cast(self, dtypes.bfloat16)

    def long(self):
        return ops.cast(self, numpy.int64)

    def int(self):
        return ops.cast(self, numpy.int32)

    def bool(self):
        return ops.cast(self, numpy.bool_)

    def type(self, dtype):
        return ops.cast(self, dtype)

    # --- DLPack -------------------------------------------------------------------------------

    def __dlpack__(self, *args, **kwargs):
        return self.array.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self.array.__dlpack_device__()

    # --- graph --------------------------------------------------------------------------------

    def detach(self):
        return Tensor._wrap(self.array)

    def detach_(self):
        self.creator = None
        self._requires_grad = False
        return self

    def clone(self):
        return ops.Clone()(self)

    def contiguous(self):
        if self.array.flags.c_contiguous:
            return self
        return ops.Clone()(self)

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        if inputs is None:
            engine.backward(self, gradient, retain_graph, create_graph)
            return
        inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
        grads = engine.grad(self, inputs, gradient, retain_graph, create_graph,
                              allow_unused=True)
        for t, g in zip(inputs, grads):
            if g is not None:
                g = g if create_graph else Tensor(g.array.copy())
                t.grad = g if t.grad is None else t.grad + g

    def register_hook(self, hook):
        """hook(grad) -> new grad or None, called when this tensor's gradient is computed."""
        if not self._requires_grad:
            raise RuntimeError("register_hook: cannot register a hook on a tensor that doesn't "
                               "require gradient")
        if self.creator is None:
            if self._hooks is None:
                self._hooks = []
            hooks = self._hooks
        else:
            if self.creator.out_hooks is None:
                self.creator.out_hooks = {}
            hooks = self.creator.out_hooks.setdefault(self.output_index, [])
        hooks.append(hook)
        return _HookHandle(hooks, hook)

    def retain_grad(self):
        """Keep .grad on a non-leaf tensor after backward."""
        if self.creator is None:
            return

        def keep(g):
            self.grad = g.detach() if self.grad is None else self.grad + g.detach()
        self.register_hook(keep)

    # --- in-place updates (outside the graph) -------------------------------------------------

    def _check_inplace(self, op):
        """Every in-place method calls this first: refuses a tensor in the graph, and counts
        the write on the array's memory (autograd/version.py), so that a Function that saved
        this memory for its backward notices."""
        if _GradMode.enabled and self._requires_grad:
            raise RuntimeError(
                f"{op}: a tensor that requires grad is being used in an in-place operation; "
                "wrap the update in mc.no_grad() or use .data")
        bump_version(self.array)

    @property
    def _version(self):
        """The number of in-place writes this tensor's memory has seen (PyTorch's _version)."""
        return array_version(self.array)

    def _update(self, op, other, in_place, out_of_place):
        """An in-place update as PyTorch does it: the same Tensor object changes. Outside the
        graph (grad mode off, or neither side requires grad) `in_place(array, value)` writes the
        array. In the graph, a leaf that requires grad is refused, as PyTorch refuses it; any
        other tensor takes the value of `out_of_place(old, other)`, in its own dtype, and
        becomes its node (so gradients flow through the update). Either way the write counts
        on the tensor's memory, so an earlier op that saved this tensor for its backward raises
        there, as in PyTorch."""
        in_graph = _GradMode.enabled and (
            self._requires_grad or (isinstance(other, Tensor) and other._requires_grad))
        if in_graph and self._requires_grad and self.creator is None:
            raise RuntimeError(f"{op}: a leaf Variable that requires grad is being used in an "
                               "in-place operation (wrap the update in mc.no_grad())")
        before = self.array
        bump_version(before)
        if not in_graph:
            in_place(before, other.array if isinstance(other, Tensor) else other)
            return self
        old = Tensor._wrap(self.array)    # this tensor's current node, as another object, so
        old.creator, old.output_index = self.creator, self.output_index  # the graph has no loop
        old._requires_grad = self._requires_grad
        result = out_of_place(old, old if other is self else other)
        if result.dtype != self.dtype:
            if dtype_kind(result.dtype) == "f" and dtype_kind(self.dtype) != "f":
                raise RuntimeError(f"{op} in place: result type {result.dtype} cannot be cast to "
                                   f"the tensor's dtype {self.dtype}")
            result = ops.cast(result, self.dtype)
        carry_versions(result.array, before)   # ops that saved this tensor see the write
        self.array, self.creator, self.output_index = result.array, result.creator, \
            result.output_index
        self._requires_grad = result._requires_grad
        return self

    def _augmented(self, other, op, out_of_place):
        """`self op= other` and the arithmetic in-place methods: `_update` with the ufunc `op`
        writing in place, keeping the dtype (a float result into an int tensor is refused)."""
        def in_place(array, value):
            try:
                getattr(devices.get_array_module(array), op)(array, value, out=array,
                                                             casting="same_kind")
            except TypeError as e:  # NumPy's UFuncTypeError: a float result into an int tensor
                raise RuntimeError(f"{op} in place: result type cannot be cast to the tensor's "
                                   f"dtype {self.dtype} ({e})") from None
        return self._update(op, other, in_place, out_of_place)

    def __iadd__(self, other):
        return self._augmented(other, "add", ops.add)

    def __isub__(self, other):
        return self._augmented(other, "subtract", ops.sub)

    def __imul__(self, other):
        return self._augmented(other, "multiply", ops.mul)

    def __itruediv__(self, other):
        return self._augmented(other, "true_divide", ops.div)

    def __ipow__(self, other):
        return self._augmented(other, "power", ops.pow)

    def add_(self, other, alpha=1):
        return self._augmented(other if alpha == 1 else other * alpha, "add", ops.add)

    def sub_(self, other, alpha=1):
        return self._augmented(other if alpha == 1 else other * alpha, "subtract", ops.sub)

    def mul_(self, other):
        return self._augmented(other, "multiply", ops.mul)

    def div_(self, other):
        return self._augmented(other, "true_divide", ops.div)

    def zero_(self):
        return self.fill_(0)

    def fill_(self, value):
        def in_place(array, v):
            array[...] = v
        return self._update("fill_", value, in_place, _replaced_by)

    def copy_(self, src):
        def in_place(array, s):
            array[...] = devices.to_device(s, self.device) if self.is_cuda else \
                devices.to_numpy(s)
        return self._update("copy_", src, in_place, _replaced_by)

    def clamp_(self, min=None, max=None):  # noqa: A002
        def in_place(array, _):
            devices.get_array_module(array).clip(array, min, max, out=array)
        return self._update("clamp_", None, in_place, lambda old, _: ops.clamp(old, min, max))

    def __setitem__(self, key, value):
        self._check_inplace("setitem")
        from .ops.indexing import _key_to_arrays, split_key  # noqa: PLC0415
        xp = devices.get_array_module(self.array)
        value = value.array if isinstance(value, Tensor) else value
        if xp is not numpy and isinstance(value, numpy.ndarray):
            value = xp.asarray(value)            # CuPy does not take NumPy arrays here
        basic, advanced = split_key(_key_to_arrays(key, xp))  # PyTorch's layout (ops/indexing)
        if advanced is None:
            self.array[basic] = value
        else:
            self.array[basic][advanced] = value  # the basic key gives a view

    # --- operators ----------------------------------------------------------------------------

    def __add__(self, other):
        return ops.add(self, other)

    def __radd__(self, other):
        return ops.add(other, self)

    def __sub__(self, other):
        return ops.sub(self, other)

    def __rsub__(self, other):
        return ops.sub(other, self)

    def __mul__(self, other):
        return ops.mul(self, other)

    def __rmul__(self, other):
        return ops.mul(other, self)

    def __truediv__(self, other):
        return ops.div(self, other)

    def __rtruediv__(self, other):
        return ops.div(other, self)

    def __pow__(self, other):
        return ops.pow(self, other)

    def __rpow__(self, other):
        return ops.pow(other, self)

    def __matmul__(self, other):
        return ops.matmul(self, other)

    def __rmatmul__(self, other):
        return ops.matmul(other, self)

    def __neg__(self):
        return ops.neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return ops.abs(self)

    def __getitem__(self, key):
        return ops.getitem(self, key)

    def __eq__(self, other):
        return ops.compare(self, other, "equal")

    def __ne__(self, other):
        return ops.compare(self, other, "not_equal")

    def __lt__(self, other):
        return ops.compare(self, other, "less")

    def __le__(self, other):
        return ops.compare(self, other, "less_equal")

    def __gt__(self, other):
        return ops.compare(self, other, "greater")

    def __ge__(self, other):
        return ops.compare(self, other, "greater_equal")

    def __invert__(self):
        return ops.bitwise_not(self)

    def __mod__(self, other):
        return ops.remainder(self, other)

    def __rmod__(self, other):
        return ops.remainder(other, self)

    def __floordiv__(self, other):
        return ops.floor_divide(self, other)

    def __rfloordiv__(self, other):
        return ops.floor_divide(other, self)

    def __lshift__(self, other):
        return ops.bitwise_left_shift(self, other)

    def __rshift__(self, other):
        return ops.bitwise_right_shift(self, other)

    def __and__(self, other):
        return ops.compare(self, other, "logical_and" if self.dtype == bool else "bitwise_and")

    def __or__(self, other):
        return ops.compare(self, other, "logical_or" if self.dtype == bool else "bitwise_or")

    def __xor__(self, other):
        return ops.compare(self, other, "logical_xor" if self.dtype == bool else "bitwise_xor")

    # --- methods that mirror functions --------------------------------------------------------

    def add(self, other):
        return ops.add(self, other)

    def sub(self, other):
        return ops.sub(self, other)

    def mul(self, other):
        return ops.mul(self, other)

    def div(self, other, *, rounding_mode=None):
        return ops.div(self, other, rounding_mode=rounding_mode)

    def pow(self, exponent):
        return ops.pow(self, exponent)

    def matmul(self, other):
        return ops.matmul(self, other)

    def neg(self):
        return ops.neg(self)

    def exp(self):
        return ops.exp(self)

    def log(self):
        return ops.log(self)

    def sqrt(self):
        return ops.sqrt(self)

    def relu(self):
        from .ops.activation import relu  # noqa: PLC0415
        return relu(self)

    def sigmoid(self):
        from .ops.activation import sigmoid  # noqa: PLC0415
        return sigmoid(self)

    def tanh(self):
        from .ops.activation import tanh  # noqa: PLC0415
        return tanh(self)

    def softmax(self, dim):
        from .ops.activation import softmax  # noqa: PLC0415
        return softmax(self, dim)

    def log_softmax(self, dim):
        from .ops.activation import log_softmax  # noqa: PLC0415
        return log_softmax(self, dim)

    def abs(self):
        return ops.abs(self)

    def sign(self):
        return ops.sign(self)

    def clamp(self, min=None, max=None):  # noqa: A002
        return ops.clamp(self, min, max)

    clip = clamp

    def maximum(self, other):
        return ops.maximum(self, other)

    def minimum(self, other):
        return ops.minimum(self, other)

    def sum(self, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=False):
        return ops.sum(self, *ops.reduce_args(dim, keepdim, axis, keepdims), dtype=dtype)

    def mean(self, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=False):
        return ops.mean(self, *ops.reduce_args(dim, keepdim, axis, keepdims), dtype=dtype)

    def max(self, dim=None, keepdim=False, *, axis=None, keepdims=False):
        return ops.max(self, *ops.reduce_args(dim, keepdim, axis, keepdims))

    def min(self, dim=None, keepdim=False, *, axis=None, keepdims=False):
        return ops.min(self, *ops.reduce_args(dim, keepdim, axis, keepdims))

    def amax(self, dim=None, keepdim=False, *, axis=None, keepdims=False):
        return ops.amax(self, *ops.reduce_args(dim, keepdim, axis, keepdims))

    def amin(self, dim=None, keepdim=False, *, axis=None, keepdims=False):
        return ops.amin(self, *ops.reduce_args(dim, keepdim, axis, keepdims))

    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None,
            keepdims=False):
        dim, keepdim = ops.reduce_args(dim, keepdim, axis, keepdims)
        return ops.var(self, dim, unbiased, keepdim, correction)

    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None,
            keepdims=False):
        dim, keepdim = ops.reduce_args(dim, keepdim, axis, keepdims)
        return ops.std(self, dim, unbiased, keepdim, correction)

    def argmax(self, dim=None, keepdim=False):
        return ops.argmax(self, dim, keepdim)

    def argmin(self, dim=None, keepdim=False):
        return ops.argmin(self, dim, keepdim)

    def reshape(self, *shape):
        return ops.reshape(self, *shape)

    def view(self, *shape):
        return ops.view(self, *shape)

    def view_as(self, other):
        return ops.reshape(self, other.shape)

    def reshape_as(self, other):
        return ops.reshape(self, other.shape)

    def flatten(self, start_dim=0, end_dim=-1):
        return ops.flatten(self, start_dim, end_dim)

    def squeeze(self, dim=None):
        return ops.squeeze(self, dim)

    def unsqueeze(self, dim):
        return ops.unsqueeze(self, dim)

    def transpose(self, dim0, dim1):
        return ops.transpose(self, dim0, dim1)

    def permute(self, *dims):
        return ops.permute(self, *dims)

    def expand(self, *sizes):
        return ops.expand(self, *sizes)

    def expand_as(self, other):
        return ops.broadcast_to(self, other.shape)

    def split(self, split_size_or_sections, dim=0):
        return ops.split(self, split_size_or_sections, dim)

    def chunk(self, chunks, dim=0):
        return ops.chunk(self, chunks, dim)

    def gather(self, dim, index):
        return ops.gather(self, dim, index)

    def index_select(self, dim, index):
        return ops.index_select(self, dim, index)


def _replaced_by(old, value):
    """`value` broadcast to old's shape, as a graph node: what fill_ and copy_ compute in the
    graph (the gradient goes to value; old gets none)."""
    xp = devices.get_array_module(old.array)
    return ops.where(Tensor._wrap(xp.zeros(old.shape, bool)), old, value)


from . import ops  # noqa: E402 -- the ops import Tensor, so they load after the class exists


def _method(name):
    fn = getattr(ops, name)

    def method(self, *args, **kwargs):
        return fn(self, *args, **kwargs)
    method.__name__ = method.__qualname__ = name
    method.__doc__ = fn.__doc__
    return method


for _name in ops.TENSOR_METHODS:   # x.flip(0) is mc.flip(x, 0), and so on
    setattr(Tensor, _name, _method(_name))
