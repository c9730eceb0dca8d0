"""Op table entries for the normalization ops: batch, layer, instance and group norm."""
import numpy as np
from hypothesis import strategies as st

import minicnn.functional as F
from minicnn.testing import noncontiguous
from minicnn.testing.strategies import arrays

from . import ErrorCase, OpInfo, Sample


def a64(*shape, low=-2.0, high=2.0, seed=1):
    return np.random.default_rng(seed).uniform(low, high, size=shape)


def spread(x, view, red):
    """x with every normalisation group (axes `red` of x viewed as `view`) of variance >= 0.1:
    a near-constant group makes the gradient ill-conditioned (float32 parity loses digits)."""
    y = np.array(x, copy=True, order="C").reshape(view)
    view = y.shape
    var = y.var(axis=red, keepdims=True)
    n = int(np.prod([view[a] for a in red]))
    ramp = np.linspace(-1.5, 1.5, n).reshape([view[a] for a in red])
    fill = np.expand_dims(ramp, [a for a in range(len(view)) if a not in red])
    y = np.where(var < 0.1, fill + 0 * y, y).reshape(x.shape)
    return y if x.flags.c_contiguous or y.ndim == 0 else noncontiguous(y)


def _tf(torch):
    return torch.nn.functional


@st.composite
def _affine(draw, C, shape=None):
    """(weight, bias) arrays or None, and the constant indices they need."""
    shape = (C,) if shape is None else shape
    kind = draw(st.sampled_from(["both", "weight", "none"]))
    w = draw(arrays(shape, low=0.5, high=2.0)) if kind != "none" else None
    b = draw(arrays(shape)) if kind == "both" else None
    return w, b


@st.composite
def batch_norm_sample(draw, training=True, stats=False):
    N = draw(st.integers(2 if training else 1, 4))
    C = draw(st.integers(1, 4))
    spatial = tuple(draw(st.lists(st.integers(1, 4), max_size=2)))
    x = draw(arrays((N, C) + spatial))
    if training:
        x = spread(x, (N, C, -1), (0, 2))
    w, b = draw(_affine(C))
    kw = {"eps": draw(st.sampled_from([1e-5, 1e-3]))}
    if stats or not training:
        kw["running_mean"] = draw(arrays((C,), low=-0.5, high=0.5, allow_noncontiguous=False))
        kw["running_var"] = draw(arrays((C,), low=0.5, high=2.0, allow_noncontiguous=False))
        kw["momentum"] = draw(st.sampled_from([0.1, 0.5]))
    return Sample((x, w, b), kw)


def _bn(training):
    def op(x, w, b, running_mean=None, running_var=None, **kw):
        return F.batch_norm(x, running_mean, running_var, w, b, training=training, **kw)

    def ref(torch, x, w, b, running_mean=None, running_var=None, **kw):
        return _tf(torch).batch_norm(x, running_mean, running_var, w, b, training=training, **kw)
    return op, ref


@st.composite
def layer_norm_sample(draw):
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=4)))
    k = draw(st.integers(1, len(shape)))
    ns = shape[len(shape) - k:]
    if np.prod(ns) < 2:
        shape, ns = shape[:-1] + (3,), ns[:-1] + (3,)
    w, b = draw(_affine(None, ns))
    x = spread(draw(arrays(shape)), (-1, int(np.prod(ns))), (1,))
    return Sample((x, w, b),
                  {"normalized_shape": ns, "eps": draw(st.sampled_from([1e-5, 1e-3]))})


@st.composite
def instance_norm_sample(draw, stats=False):
    N, C = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    spatial = tuple(draw(st.lists(st.integers(2, 4), min_size=1, max_size=2)))
    w, b = draw(_affine(C))
    kw = {"eps": draw(st.sampled_from([1e-5, 1e-3]))}
    if stats:
        kw["running_mean"] = draw(arrays((C,), low=-0.5, high=0.5, allow_noncontiguous=False))
        kw["running_var"] = draw(arrays((C,), low=0.5, high=2.0, allow_noncontiguous=False))
        kw["use_input_stats"] = draw(st.booleans())
    x = spread(draw(arrays((N, C) + spatial)), (N, C, -1), (2,))
    return Sample((x, w, b), kw)


def _in_op(x, w, b, **kw):
    return F.instance_norm(x, weight=w, bias=b, **kw)


def _in_ref(torch, x, w, b, **kw):
    return _tf(torch).instance_norm(x, weight=w, bias=b, **kw)


@st.composite
def group_norm_sample(draw):
    N, G, per = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    spatial = tuple(draw(st.lists(st.integers(1, 4), max_size=2)))
    if per * int(np.prod(spatial)) < 2:
        spatial = spatial + (2,)
    C = G * per
    w, b = draw(_affine(C))
    x = spread(draw(arrays((N, C) + spatial)), (N, G, -1), (2,))
    return Sample((x, w, b),
                  {"num_groups": G, "eps": draw(st.sampled_from([1e-5, 1e-3]))})


# NaN and inf go into the input only (test_nan_inf_parity): with an infinite weight PyTorch's
# result follows its fused form, x * (w * rstd) + (b - mean * w * rstd), which gives NaN where a
# mean is exactly 0 (0 * inf): an artifact of its order of operations, not a value to match.
_INPUT_ONLY = (0,)

_bn_train, _bn_train_ref = _bn(True)
_bn_eval, _bn_eval_ref = _bn(False)

OPS = [
    OpInfo("batch_norm_train", op=_bn_train, ref=_bn_train_ref, samples=batch_norm_sample(),
           errors=[ErrorCase((a64(1, 4), None, None), {}, ValueError,
                             r"Expected more than 1 value per channel when training, got input "
                             r"size \[1, 4\]", id="one_value"),
                   ErrorCase((a64(2, 3, 4), a64(4), None), {}, ValueError,
                             r"batch_norm: weight should contain 3 elements", id="weight_size")]),
    OpInfo("batch_norm_train_stats", op=_bn_train, ref=_bn_train_ref,
           samples=batch_norm_sample(stats=True)),
    OpInfo("batch_norm_eval", op=_bn_eval, ref=_bn_eval_ref,
           samples=batch_norm_sample(training=False),
           errors=[ErrorCase((a64(2, 3), None, None), {"running_mean": a64(4),
                                                       "running_var": a64(4, low=1, high=2)},
                             ValueError, r"running_mean should contain 3 elements", id="stats")]),
    OpInfo("layer_norm", op=lambda x, w, b, **kw: F.layer_norm(x, weight=w, bias=b, **kw),
           ref=lambda torch, x, w, b, **kw: _tf(torch).layer_norm(x, weight=w, bias=b, **kw),
           samples=layer_norm_sample(),
           errors=[ErrorCase((a64(2, 3), None, None), {"normalized_shape": (4,)}, ValueError,
                             r"layer_norm: given normalized_shape=\[4\], expected input with "
                             r"shape \[\*, 4\], but got input of size \[2, 3\]", id="shape"),
                   ErrorCase((a64(2, 3), a64(4), None), {"normalized_shape": (3,)}, ValueError,
                             r"layer_norm: weight of shape \[4\] does not match", id="weight")]),
    OpInfo("instance_norm", op=_in_op, ref=_in_ref, samples=instance_norm_sample(),
           errors=[ErrorCase((a64(2, 3, 1), None, None), {}, ValueError,
                             r"Expected more than 1 spatial element when training, got input "
                             r"size \[2, 3, 1\]", id="one_value")]),
    OpInfo("instance_norm_stats", op=_in_op, ref=_in_ref,
           samples=instance_norm_sample(stats=True)),
    OpInfo("group_norm", op=lambda x, w, b, **kw: F.group_norm(x, weight=w, bias=b, **kw),
           ref=lambda torch, x, w, b, **kw: _tf(torch).group_norm(x, weight=w, bias=b, **kw),
           samples=group_norm_sample(),
           errors=[ErrorCase((a64(2, 6, 4), None, None), {"num_groups": 4}, ValueError,
                             r"group_norm: expected number of channels in input to be divisible "
                             r"by num_groups, but got input of shape \[2, 6, 4\] and "
                             r"num_groups=4", id="groups")]),
]

for _info in OPS:   # see _INPUT_ONLY
    _info.nan_args = _INPUT_ONLY
