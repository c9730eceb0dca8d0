"""Op table entries for the losses."""
import numpy as np
from hypothesis import strategies as st

import minicnn.functional as F
from minicnn.testing.strategies import arrays, random_array, shapes

from . import ErrorCase, OpInfo, Sample

REDUCTIONS = st.sampled_from(["none", "mean", "sum"])


def a64(*shape, low=-2.0, high=2.0, seed=1):
    return np.random.default_rng(seed).uniform(low, high, size=shape)


def _tf(torch):
    return torch.nn.functional


@st.composite
def pair_sample(draw, kinks=(), kwargs=None, t_low=-2.0, t_high=2.0, x_low=-2.0, x_high=2.0):
    """input and target of one shape; |input - target| kept away from the kinks."""
    shape = draw(shapes(min_dims=0, max_dims=3))
    x = draw(arrays(shape, low=x_low, high=x_high))
    t = draw(arrays(shape, low=t_low, high=t_high))
    for k in kinks:
        d = x - t
        near = np.abs(np.abs(d) - k) < 0.05
        x = np.where(near, t + np.sign(d + (d == 0)) * (k + 0.1), x)
    kw = {"reduction": draw(REDUCTIONS)}
    kw.update({k: draw(v) for k, v in (kwargs or {}).items()})
    return Sample((x, t), kw)


@st.composite
def class_sample(draw, probs=False):
    """Logits (C,), (N, C) or (N, C, d...) and class-index (or probability) targets."""
    kind = draw(st.sampled_from(["1d", "2d", "nd"]))
    C = draw(st.integers(1, 5))
    N = draw(st.integers(1, 4))
    shape = {"1d": (C,), "2d": (N, C), "nd": (N, C) + tuple(
        draw(st.lists(st.integers(1, 3), min_size=1, max_size=2)))}[kind]
    x = draw(arrays(shape, low=-3.0, high=3.0))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    kw = {"reduction": draw(REDUCTIONS)}
    if draw(st.booleans()):
        kw["weight"] = random_array(seed, (C,), low=0.2, high=2.0)
    if probs:
        t = rng.uniform(0.1, 1.0, size=shape)
        t = t / t.sum(axis=0 if kind == "1d" else 1, keepdims=True)
        constant = ()  # the target is differentiable too
    else:
        tshape = () if kind == "1d" else (N,) + shape[2:]
        t = rng.integers(0, C, size=tshape).astype(np.int64)
        if draw(st.booleans()):
            ii = draw(st.sampled_from([-100, 0]))
            kw["ignore_index"] = ii
            if ii == -100 and t.ndim:
                t = np.where(rng.random(tshape) < 0.3, -100, t)
        constant = ()
        if kw["reduction"] == "mean" and np.all(t == kw.get("ignore_index", -100)):
            kw["reduction"] = "sum"  # all ignored: the mean is 0/0 = nan, tested elsewhere
    return Sample((x, t), kw, constant=constant)


@st.composite
def ce_sample(draw, probs=False):
    s = draw(class_sample(probs))
    s.kwargs["label_smoothing"] = draw(st.sampled_from([0.0, 0.0, 0.1, 0.3]))
    return s


def _ce(x, t, **kw):
    return F.cross_entropy(x, t, **kw)


def _ce_ref(torch, x, t, **kw):
    return _tf(torch).cross_entropy(x, t, **kw)


@st.composite
def bce_sample(draw, logits=False):
    shape = draw(shapes(min_dims=0, max_dims=3))
    x = draw(arrays(shape, low=-4.0, high=4.0) if logits else arrays(shape, low=0.05, high=0.95))
    t = draw(arrays(shape, low=0.0, high=1.0))
    kw = {"reduction": draw(REDUCTIONS)}
    if draw(st.booleans()):
        kw["weight"] = draw(arrays(shape, low=0.5, high=2.0))
    if logits and len(shape) and draw(st.booleans()):
        kw["pos_weight"] = draw(arrays(shape[-1:], low=0.5, high=3.0))
    return Sample((x, t), kw)


@st.composite
def multilabel_sample(draw):
    shape = draw(st.sampled_from([(3,), (2, 4), (3, 2)]))
    x = draw(arrays(shape, low=-3.0, high=3.0))
    t = (np.random.default_rng(draw(st.integers(0, 99))).random(shape) < 0.5).astype(np.float64)
    kw = {"reduction": draw(REDUCTIONS)}
    if draw(st.booleans()):
        kw["weight"] = draw(arrays(shape[-1:], low=0.5, high=2.0))
    return Sample((x, t), kw, constant=(1,))


@st.composite
def kl_sample(draw):
    shape = draw(shapes(min_dims=1, max_dims=3))
    x = draw(arrays(shape, low=-3.0, high=0.0))
    log_target = draw(st.booleans())
    t = draw(arrays(shape, low=-3.0, high=0.0) if log_target else arrays(shape, low=0.05, high=1.0))
    return Sample((x, t), {"reduction": draw(st.sampled_from(["none", "mean", "sum", "batchmean"])),
                           "log_target": log_target})


def _loss(name):
    return (lambda x, t, **kw: getattr(F, name)(x, t, **kw),
            lambda torch, x, t, **kw: getattr(_tf(torch), name)(x, t, **kw))


def entry(name, samples, **extra):
    op, ref = _loss(name)
    return OpInfo(name, op=op, ref=ref, samples=samples, **extra)


_int = np.array([0, 3, 1])

OPS = [
    entry("mse_loss", pair_sample(),
          errors=[ErrorCase((a64(2), a64(2)), {"reduction": "avg"}, ValueError,
                            "mse_loss: 'avg' is not a valid value for reduction")]),
    entry("l1_loss", pair_sample(kinks=(0.0,))),
    entry("smooth_l1_loss", pair_sample(kinks=(0.0, 0.5, 1.0, 2.0),
                                        kwargs={"beta": st.sampled_from([0.5, 1.0, 2.0])})),
    entry("huber_loss", pair_sample(kinks=(0.0, 0.5, 1.0, 2.0),
                                    kwargs={"delta": st.sampled_from([0.5, 1.0, 2.0])})),
    OpInfo("cross_entropy", op=_ce, ref=_ce_ref, samples=ce_sample(),
           errors=[ErrorCase((a64(3, 3), _int), {}, IndexError,
                             "cross_entropy: target 3 is out of bounds for 3 classes",
                             id="out_of_range"),
                   ErrorCase((a64(3, 3), np.array([0, -1, 1])), {}, IndexError,
                             "cross_entropy: target -1 is out of bounds", id="negative"),
                   ErrorCase((a64(3, 4), np.array([0, 1])), {}, ValueError,
                             r"cross_entropy: expected input batch_size \(3\) to match target "
                             r"batch_size \(2\)", id="batch"),
                   ErrorCase((a64(2, 4, 5), np.zeros((2, 4), np.int64)), {}, ValueError,
                             r"cross_entropy: expected target size \[2, 5\], got \[2, 4\]",
                             id="spatial"),
                   ErrorCase((a64(2, 4), a64(2, 3)), {}, ValueError,
                             r"class-probability target of shape \[2, 3\] must match",
                             id="probs_shape"),
                   ErrorCase((a64(2, 4), np.array([0, 1])), {"weight": a64(3)}, ValueError,
                             "cross_entropy: weight should be a 1D tensor of 4 elements",
                             id="weight")]),
    OpInfo("cross_entropy_probs", op=_ce, ref=_ce_ref, samples=ce_sample(probs=True)),
    entry("nll_loss", class_sample(),
          errors=[ErrorCase((a64(3, 3), _int), {}, IndexError,
                            "nll_loss: target 3 is out of bounds for 3 classes")]),
    entry("binary_cross_entropy", bce_sample(),
          errors=[ErrorCase((a64(3, low=0.1, high=0.9), a64(3, 1, low=0, high=1)), {}, ValueError,
                            r"binary_cross_entropy: using a target size \(\[3, 1\]\) that is "
                            r"different to the input size \(\[3\]\)", id="shape"),
                  ErrorCase((a64(3, low=1.1, high=2), a64(3, low=0, high=1)), {}, ValueError,
                            "all elements of input should be between 0 and 1", id="range")]),
    entry("binary_cross_entropy_with_logits", bce_sample(logits=True),
          errors=[ErrorCase((a64(3), a64(2)), {}, ValueError,
                            "binary_cross_entropy_with_logits: using a target size")]),
    entry("multilabel_soft_margin_loss", multilabel_sample()),
    entry("kl_div", kl_sample()),
]
