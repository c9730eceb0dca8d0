"""Op table entries for the foundation ops: arithmetic, element-wise, reductions, matmul, shape."""
import math

import numpy as np
from hypothesis import strategies as st

import minicnn as mc
from minicnn.testing.strategies import arrays, broadcastable_shapes, shapes

from . import ErrorCase, OpInfo, Sample


def a64(*shape, low=-2.0, high=2.0):
    return np.random.default_rng(1).uniform(low, high, size=shape)


@st.composite
def binary(draw, low=-2.0, high=2.0, min_abs=0.0, b_low=None, b_high=None, b_min_abs=None):
    sa, sb = draw(broadcastable_shapes(2, max_dims=4, max_side=4))
    a = draw(arrays(sa, low=low, high=high, min_abs=min_abs))
    b = draw(arrays(sb, low=low if b_low is None else b_low, high=high if b_high is None else
                    b_high, min_abs=min_abs if b_min_abs is None else b_min_abs))
    return Sample((a, b))


@st.composite
def unary(draw, low=-2.0, high=2.0, min_abs=0.0, min_dims=0, max_dims=4, **kwargs):
    x = draw(arrays(shapes(min_dims=min_dims, max_dims=max_dims), low=low, high=high,
                    min_abs=min_abs))
    return Sample((x,), dict(kwargs))


@st.composite
def reduction(draw, min_side=1, int_dim=False, allow_none=True):
    shape = draw(shapes(min_dims=1, max_dims=4, min_side=min_side))
    x = draw(arrays(shape))
    nd = len(shape)
    if int_dim:
        dim = draw(st.integers(-nd, nd - 1))
    elif allow_none and draw(st.booleans()):
        dim = None
    else:
        dims = draw(st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd, unique=True))
        dim = tuple(d - nd if draw(st.booleans()) else d for d in dims)
    return Sample((x,), {"dim": dim, "keepdim": draw(st.booleans())})


@st.composite
def matmul_sample(draw):
    n, k, m = (draw(st.integers(1, 5)) for _ in range(3))
    kind = draw(st.sampled_from(["2d", "batched", "vec-mat", "mat-vec", "vec-vec"]))
    if kind == "2d":
        sa, sb = (n, k), (k, m)
    elif kind == "batched":
        ba, bb = draw(broadcastable_shapes(2, min_dims=0, max_dims=2, max_side=3))
        sa, sb = ba + (n, k), bb + (k, m)
    elif kind == "vec-mat":
        sa, sb = (k,), draw(st.sampled_from([(k, m), (2, k, m)]))
    elif kind == "mat-vec":
        sa, sb = draw(st.sampled_from([(n, k), (3, n, k)])), (k,)
    else:
        sa, sb = (k,), (k,)
    return Sample((draw(arrays(sa)), draw(arrays(sb))))


@st.composite
def reshape_sample(draw):
    shape = draw(shapes(min_dims=0, max_dims=4))
    size = math.prod(shape)
    new = draw(st.sampled_from([(-1,), tuple(reversed(shape)), (size, 1), (1, -1)]))
    return Sample((draw(arrays(shape)),), {"shape": new})


@st.composite
def permute_sample(draw):
    shape = draw(shapes(min_dims=1, max_dims=4))
    perm = tuple(draw(st.permutations(range(len(shape)))))
    return Sample((draw(arrays(shape)),), {"dims": perm})


@st.composite
def transpose_sample(draw):
    shape = draw(shapes(min_dims=1, max_dims=4))
    nd = len(shape)
    return Sample((draw(arrays(shape)),), {"dim0": draw(st.integers(-nd, nd - 1)),
                                          "dim1": draw(st.integers(-nd, nd - 1))})


@st.composite
def flatten_sample(draw):
    shape = draw(shapes(min_dims=1, max_dims=4))
    nd = len(shape)
    s = draw(st.integers(0, nd - 1))
    e = draw(st.integers(s, nd - 1))
    return Sample((draw(arrays(shape)),), {"start_dim": s, "end_dim": e})


@st.composite
def squeeze_sample(draw):
    shape = draw(shapes(min_dims=1, max_dims=4, max_side=3))
    dim = draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))
    return Sample((draw(arrays(shape)),), {"dim": dim})


@st.composite
def unsqueeze_sample(draw):
    shape = draw(shapes(min_dims=0, max_dims=3))
    return Sample((draw(arrays(shape)),), {"dim": draw(st.integers(-len(shape) - 1, len(shape)))})


@st.composite
def expand_sample(draw):
    shape = draw(shapes(min_dims=1, max_dims=3, max_side=3))
    target = tuple(draw(st.integers(1, 3)) if s == 1 else s for s in shape)
    lead = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    target = lead + tuple(-1 if draw(st.booleans()) and s != 1 else t
                          for s, t in zip(shape, target))
    return Sample((draw(arrays(shape)),), {"sizes": target})


@st.composite
def cat_sample(draw, stack=False):
    shape = draw(shapes(min_dims=1, max_dims=3, max_side=3))
    nd = len(shape)
    n = draw(st.integers(1, 3))
    dim = draw(st.integers(-(nd + stack), nd - 1 + stack))
    xs = []
    for _ in range(n):
        s = list(shape)
        if not stack:
            s[dim % nd] = draw(st.integers(1, 3))
        xs.append(draw(arrays(tuple(s))))
    return Sample(tuple(xs), {"dim": dim})


@st.composite
def split_sample(draw):
    shape = draw(shapes(min_dims=1, max_dims=3, max_side=6))
    nd = len(shape)
    dim = draw(st.integers(-nd, nd - 1))
    n = shape[dim]
    if draw(st.booleans()):
        arg = draw(st.integers(1, n))
    else:
        cuts = sorted(draw(st.lists(st.integers(0, n), max_size=3)))
        bounds = [0] + cuts + [n]
        arg = [b - a for a, b in zip(bounds, bounds[1:])]
    return Sample((draw(arrays(shape)),), {"split": arg, "dim": dim})


@st.composite
def chunk_sample(draw):
    shape = draw(shapes(min_dims=1, max_dims=3, max_side=6))
    nd = len(shape)
    return Sample((draw(arrays(shape)),), {"chunks": draw(st.integers(1, 4)),
                                          "dim": draw(st.integers(-nd, nd - 1))})


@st.composite
def pad_sample(draw):
    mode = draw(st.sampled_from(["constant", "reflect", "replicate", "circular"]))
    npairs = draw(st.integers(1, 2))
    nd = npairs + draw(st.integers(1, 2))  # reflect etc. need batch (and channel) dims in torch
    shape = tuple(draw(st.integers(2, 4)) for _ in range(nd))
    limit = {"constant": 3, "reflect": None, "replicate": 3, "circular": None}[mode]
    pad = []
    for i in range(npairs):
        size = shape[nd - 1 - i]
        # a negative width crops (at most one side, leaving at least 2), then the other pads
        crop = draw(st.integers(0, size - 2))
        size -= crop
        hi = limit if limit is not None else (size - 1 if mode == "reflect" else size)
        pair = [-crop, draw(st.integers(0, hi))] if crop else \
            [draw(st.integers(0, hi)), draw(st.integers(0, hi))]
        pad += pair[::-1] if draw(st.booleans()) else pair
    kw = {"pad": tuple(pad), "mode": mode}
    if mode == "constant":
        kw["value"] = draw(st.sampled_from([0.0, 1.5]))
    return Sample((draw(arrays(shape)),), kw)


@st.composite
def basic_index_sample(draw):
    shape = draw(shapes(min_dims=1, max_dims=3, max_side=5))
    key = []
    for n in shape:
        kind = draw(st.sampled_from(["int", "slice", "full"]))
        if kind == "int":
            key.append(draw(st.integers(-n, n - 1)))
        elif kind == "slice":
            start = draw(st.integers(0, n - 1))
            key.append(slice(start, draw(st.integers(start + 1, n)), draw(st.integers(1, 2))))
        else:
            key.append(slice(None))
    if draw(st.booleans()):
        key.insert(draw(st.integers(0, len(key))), None)
    return Sample((draw(arrays(shape)),), {"key": tuple(key)})


@st.composite
def advanced_index_sample(draw):
    shape = draw(shapes(min_dims=1, max_dims=3, max_side=5))
    kind = draw(st.sampled_from(["ints", "ints-middle", "mask", "pair", "int-and-array"]))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    if kind == "ints":  # repeated indices must accumulate in backward
        key = (rng.integers(-shape[0], shape[0], size=draw(st.integers(1, 6))),)
    elif kind == "ints-middle" and len(shape) > 1:
        key = (slice(None), rng.integers(0, shape[1], size=draw(st.integers(1, 6))))
    elif kind == "mask":
        key = (rng.random(shape) < 0.5,)
    elif kind == "int-and-array" and len(shape) > 1:
        # integers are basic indices in PyTorch: x[0, :, t] is (3, 2) for x (2, 3, 4)
        key = [slice(None)] * len(shape)
        a, i = rng.choice(len(shape), 2, replace=False)
        key[i] = int(rng.integers(-shape[i], shape[i]))
        key[a] = rng.integers(0, shape[a], size=draw(st.integers(1, 4)))
        if draw(st.booleans()):
            key.insert(int(rng.integers(0, len(key) + 1)), None)
        key = tuple(key)
    else:
        n = draw(st.integers(1, 5))
        key = tuple(rng.integers(0, s, size=n) for s in shape[:2])
    return Sample((draw(arrays(shape)),), {"key": key})


@st.composite
def gather_sample(draw):
    shape = draw(shapes(min_dims=1, max_dims=3, max_side=4))
    nd = len(shape)
    dim = draw(st.integers(-nd, nd - 1))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    # the index may be shorter than the input in the other dims too
    out_shape = tuple(draw(st.integers(1, 4)) if i == dim % nd else draw(st.integers(1, s))
                      for i, s in enumerate(shape))
    index = rng.integers(0, shape[dim], size=out_shape)
    return Sample((draw(arrays(shape)),), {"dim": dim, "index": index})


@st.composite
def index_select_sample(draw):
    shape = draw(shapes(min_dims=1, max_dims=3, max_side=4))
    nd = len(shape)
    dim = draw(st.integers(-nd, nd - 1))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    index = rng.integers(0, shape[dim], size=draw(st.integers(1, 5)))
    return Sample((draw(arrays(shape)),), {"dim": dim, "index": index})


@st.composite
def where_sample(draw):
    sc, sa, sb = draw(broadcastable_shapes(3, max_dims=3, max_side=4))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    return Sample((draw(arrays(sa)), draw(arrays(sb))), {"cond": np.asarray(rng.random(sc) < 0.5)})


@st.composite
def var_sample(draw, std=False):
    s = draw(reduction(min_side=2))
    s.kwargs["correction"] = draw(st.sampled_from([0, 1]))
    if std:  # keep the std away from 0, where its derivative blows up
        s.args = (s.args[0] * 3.0,)
    return s


def _no_ties(sample):
    """maximum/minimum away from a == b: the first derivative jumps there, so second-order
    finite differences are meaningless (the first-order check passes either way)."""
    a, b = sample.args
    return bool(np.all(np.abs(a - b) > 1e-3))


# --- the table ---------------------------------------------------------------------------------

def _bin(name, fn, ref=None, **strategy):
    return OpInfo(name, op=fn, ref=ref or (lambda torch, a, b: fn(a, b)), samples=binary(**strategy))


OPS = [
    OpInfo("add", op=lambda a, b: a + b, ref=lambda t, a, b: a + b, samples=binary(),
           errors=[ErrorCase((a64(2, 3), a64(4)), {}, ValueError,
                             r"add: the shapes \[2, 3\] and \[4\] cannot be broadcast")]),
    _bin("sub", lambda a, b: a - b),
    _bin("mul", lambda a, b: a * b),
    _bin("div", lambda a, b: a / b, b_low=0.5, b_high=2.0),
    OpInfo("rsub_scalar", op=lambda x: 2.5 - x, ref=lambda t, x: 2.5 - x, samples=unary()),
    OpInfo("rdiv_scalar", op=lambda x: 3.0 / x, ref=lambda t, x: 3.0 / x,
           samples=unary(min_abs=0.5)),
    OpInfo("neg", op=lambda x: -x, ref=lambda t, x: -x, samples=unary()),
    _bin("pow", lambda a, b: a ** b, low=0.5, high=2.0, b_low=-2.0, b_high=2.0),
    OpInfo("pow_scalar", op=lambda x, p: x ** p, ref=lambda t, x, p: x ** p,
           samples=unary(low=0.3, high=2.0).flatmap(
               lambda s: st.sampled_from([2, 3, 0.5, -1.5]).map(
                   lambda p: Sample(s.args + (p,))))),
    OpInfo("rpow_scalar", op=lambda x: 2.0 ** x, ref=lambda t, x: 2.0 ** x, samples=unary()),
    OpInfo("maximum", op=mc.maximum, ref=lambda t, a, b: t.maximum(a, b),
           samples=binary().filter(_no_ties)),
    OpInfo("minimum", op=mc.minimum, ref=lambda t, a, b: t.minimum(a, b),
           samples=binary().filter(_no_ties)),
    OpInfo("exp", op=mc.exp, ref=lambda t, x: t.exp(x), samples=unary()),
    OpInfo("log", op=mc.log, ref=lambda t, x: t.log(x), samples=unary(low=0.2, high=3.0)),
    OpInfo("sqrt", op=mc.sqrt, ref=lambda t, x: t.sqrt(x), samples=unary(low=0.2, high=3.0)),
    OpInfo("abs", op=mc.abs, ref=lambda t, x: t.abs(x), samples=unary(min_abs=0.05)),
    OpInfo("clamp", op=lambda x, **kw: mc.clamp(x, **kw), ref=lambda t, x, **kw: t.clamp(x, **kw),
           samples=unary(min_abs=0.0).flatmap(lambda s: st.sampled_from(
               [{"min": -0.71}, {"max": 0.63}, {"min": -0.9, "max": 0.77},
                {"min": 0.77, "max": -0.9}]).map(   # min > max: max everywhere
               lambda kw: Sample(s.args, kw))),
           errors=[ErrorCase((a64(3),), {}, ValueError,
                             "clamp: at least one of min and max must be given")]),
    OpInfo("where", op=lambda a, b, cond: mc.where(cond, a, b),
           ref=lambda t, a, b, cond: t.where(cond, a, b), samples=where_sample(),
           errors=[ErrorCase((a64(3), a64(3)), {"cond": np.ones(3)}, TypeError,
                             "where: condition must be a bool tensor")]),
    OpInfo("sum", op=lambda x, **kw: x.sum(**kw), ref=lambda t, x, **kw: x.sum(**kw),
           samples=reduction(),
           errors=[ErrorCase((a64(2, 3),), {"dim": 2}, IndexError,
                             r"sum: dimension out of range \(expected to be in range of \[-2, 1\], "
                             r"but got 2\)")]),
    OpInfo("mean", op=lambda x, **kw: x.mean(**kw),
           ref=lambda t, x, **kw: x.mean(**kw), samples=reduction()),
    OpInfo("amax", op=lambda x, **kw: x.amax(**kw),
           ref=lambda t, x, dim, keepdim: x.amax(dim=() if dim is None else dim, keepdim=keepdim),
           samples=reduction()),
    OpInfo("amin", op=lambda x, **kw: x.amin(**kw),
           ref=lambda t, x, dim, keepdim: x.amin(dim=() if dim is None else dim, keepdim=keepdim),
           samples=reduction()),
    OpInfo("max_dim", op=lambda x, **kw: x.max(**kw), ref=lambda t, x, **kw: x.max(**kw),
           samples=reduction(int_dim=True)),
    OpInfo("min_dim", op=lambda x, **kw: x.min(**kw), ref=lambda t, x, **kw: x.min(**kw),
           samples=reduction(int_dim=True)),
    OpInfo("var", op=lambda x, **kw: x.var(**kw), ref=lambda t, x, **kw: x.var(**kw),
           samples=var_sample()),
    OpInfo("std", op=lambda x, **kw: x.std(**kw), ref=lambda t, x, **kw: x.std(**kw),
           samples=var_sample(std=True)),
    OpInfo("matmul", op=lambda a, b: a @ b, ref=lambda t, a, b: a @ b, samples=matmul_sample(),
           errors=[ErrorCase((a64(2, 7), a64(10, 5)), {}, ValueError,
                             r"mat1 and mat2 shapes cannot be multiplied \(2x7 and 10x5\)"),
                   ErrorCase((a64(2, 3).astype(np.float32), a64(3, 2)), {}, TypeError,
                             "matmul: expected both operands to have the same dtype"),
                   ErrorCase((a64(2, 2, 3), a64(3, 3, 2)), {}, ValueError,
                             "matmul: batch dimensions")]),
    OpInfo("reshape", op=lambda x, shape: x.reshape(shape), ref=lambda t, x, shape: x.reshape(shape),
           samples=reshape_sample(),
           errors=[ErrorCase((a64(2, 3),), {"shape": (4, -1)}, ValueError,
                             r"reshape: shape \(4, -1\) is invalid for input of size 6")]),
    OpInfo("view", op=lambda x, shape: x.view(*shape), ref=lambda t, x, shape: x.reshape(shape),
           samples=reshape_sample()),
    OpInfo("permute", op=lambda x, dims: x.permute(*dims), ref=lambda t, x, dims: x.permute(*dims),
           samples=permute_sample(),
           errors=[ErrorCase((a64(2, 3),), {"dims": (0, 0)}, ValueError,
                             r"permute: \(0, 0\) is not a permutation")]),
    OpInfo("transpose", op=lambda x, **kw: x.transpose(**kw),
           ref=lambda t, x, **kw: x.transpose(**kw), samples=transpose_sample()),
    OpInfo("flatten", op=lambda x, **kw: x.flatten(**kw), ref=lambda t, x, **kw: x.flatten(**kw),
           samples=flatten_sample()),
    OpInfo("squeeze", op=lambda x, dim: x.squeeze(dim),
           ref=lambda t, x, dim: x.squeeze() if dim is None else x.squeeze(dim),
           samples=squeeze_sample()),
    OpInfo("unsqueeze", op=lambda x, dim: x.unsqueeze(dim), ref=lambda t, x, dim: x.unsqueeze(dim),
           samples=unsqueeze_sample()),
    OpInfo("expand", op=lambda x, sizes: x.expand(*sizes),
           ref=lambda t, x, sizes: x.expand(*sizes), samples=expand_sample(),
           errors=[ErrorCase((a64(2, 3),), {"sizes": (4, 3)}, ValueError,
                             r"expand: the shape \[2, 3\] cannot be broadcast to \[4, 3\]")]),
    OpInfo("cat", op=lambda *xs, dim: mc.cat(xs, dim), ref=lambda t, *xs, dim: t.cat(xs, dim),
           samples=cat_sample(),
           errors=[ErrorCase((a64(2, 3), a64(3, 4)), {"dim": 0}, ValueError,
                             r"cat: sizes of tensors must match except in dimension 0")]),
    OpInfo("stack", op=lambda *xs, dim: mc.stack(xs, dim), ref=lambda t, *xs, dim: t.stack(xs, dim),
           samples=cat_sample(stack=True),
           errors=[ErrorCase((a64(2, 3), a64(3, 3)), {"dim": 0}, ValueError,
                             r"stack: expects each tensor to be of equal size")]),
    OpInfo("split", op=lambda x, split, dim: mc.split(x, split, dim),
           ref=lambda t, x, split, dim: t.split(x, split, dim), samples=split_sample(),
           errors=[ErrorCase((a64(5, 2),), {"split": [2, 2], "dim": 0}, ValueError,
                             r"split: sections \[2, 2\] do not add up to size 5")]),
    OpInfo("chunk", op=lambda x, chunks, dim: mc.chunk(x, chunks, dim),
           ref=lambda t, x, chunks, dim: t.chunk(x, chunks, dim), samples=chunk_sample()),
    OpInfo("pad", op=lambda x, **kw: mc.functional.pad(x, **kw),
           ref=lambda t, x, **kw: t.nn.functional.pad(x, **kw), samples=pad_sample(),
           errors=[ErrorCase((a64(1, 2, 3),), {"pad": (3, 0), "mode": "reflect"}, ValueError,
                             r"pad: padding \(3, 0\) is too large for reflect padding"),
                   ErrorCase((a64(2, 3),), {"pad": (1,)}, ValueError, "pad: padding of length 1")]),
    OpInfo("getitem_basic", op=lambda x, key: x[key], ref=lambda t, x, key: x[key],
           samples=basic_index_sample()),
    OpInfo("getitem_advanced", op=lambda x, key: x[key],
           ref=lambda t, x, key: x[key], samples=advanced_index_sample()),
    OpInfo("gather", op=lambda x, dim, index: mc.gather(x, dim, index),
           ref=lambda t, x, dim, index: t.gather(x, dim, index),
           samples=gather_sample(),
           errors=[ErrorCase((a64(2, 3),), {"dim": 1, "index": np.zeros((3, 1), int)}, ValueError,
                             r"gather: index of shape \[3, 1\] is larger than the input of "
                             r"shape \[2, 3\] apart from dim 1"),
                   ErrorCase((a64(2, 3),), {"dim": 1, "index": np.full((2, 1), 3)}, IndexError,
                             "gather: index 3 is out of bounds for dim 1 with size 3"),
                   ErrorCase((a64(2, 3),), {"dim": 0, "index": np.zeros(2, int)}, ValueError,
                             r"gather: index of shape \[2\] must have as many dims")]),
    OpInfo("index_select", op=lambda x, dim, index: mc.index_select(x, dim, index),
           ref=lambda t, x, dim, index: t.index_select(x, dim, index),
           samples=index_select_sample()),
    OpInfo("clone", op=lambda x: x.clone(), ref=lambda t, x: x.clone(), samples=unary()),
]
