"""Op table entries for the activation functions (inputs kept away from every kink)."""
import numpy as np
from hypothesis import strategies as st

import minicnn.functional as F
from minicnn.kernels.activation import names
from minicnn.testing.strategies import arrays, shapes

from . import ErrorCase, OpInfo, Sample


def a64(*shape, low=-2.0, high=2.0, seed=1):
    return np.random.default_rng(seed).uniform(low, high, size=shape)


def dodge(x, kinks, d=0.05):
    """Move values within d of a kink to d away from it (Chainer's dodge_nondifferentiable)."""
    x = np.array(x, copy=True)
    for k in kinks:
        near = np.abs(x - k) < d
        x[near] = k + np.where(x[near] >= k, d, -d)
    return x


@st.composite
def act_sample(draw, low=-3.0, high=3.0, kinks=(), kwargs=None, max_dims=4):
    x = draw(arrays(shapes(min_dims=0, max_dims=max_dims), low=low, high=high))
    if kinks:
        x = dodge(x, kinks)
    kw = {k: draw(v) for k, v in (kwargs or {}).items()}
    return Sample((x,), kw)


@st.composite
def prelu_sample(draw):
    shape = draw(shapes(min_dims=1, max_dims=4))
    C = shape[1] if len(shape) >= 2 else 1
    n = draw(st.sampled_from([1, C]))
    x = dodge(draw(arrays(shape)), [0.0])
    return Sample((x, draw(arrays((n,), low=-0.5, high=1.5))))


@st.composite
def softmax_sample(draw):
    shape = draw(shapes(min_dims=1, max_dims=4))
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    return Sample((draw(arrays(shape, low=-4.0, high=4.0)),), {"dim": dim})


_BIAS_ACTS = names()   # every activation the kernels know


@st.composite
def bias_act_sample(draw):
    shape = draw(shapes(min_dims=1, max_dims=4))
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    act = draw(st.sampled_from(_BIAS_ACTS))
    b = draw(arrays((shape[dim],), low=-1.0, high=1.0))
    bshape = [1] * len(shape)
    bshape[dim] = shape[dim]
    x = draw(arrays(shape, low=-3.0, high=3.0))
    kinks = {"relu": [0.0], "leaky_relu": [0.0], "hardswish": [-3.0, 3.0]}.get(act)
    if kinks:  # keep x + b away from the kinks
        x = dodge(x + b.reshape(bshape), kinks) - b.reshape(bshape)
    return Sample((x, b), {"activation": act, "dim": dim})


def vectorized(fn):
    """fn(x) computed as PyTorch's vectorized CPU loop computes every element: x flattened and
    padded to a multiple of 128 elements, so that no element falls in the scalar tail loop,
    whose answer for a NaN input differs from the vector body's in several activations (elu's
    and hardswish's backward: NaN in the body, the gradient passed through in the tail;
    hardtanh's: 0 and the gradient). minicnn follows the body everywhere."""
    def ref(torch, x, *args, **kwargs):
        flat = x.reshape(-1)
        n = flat.numel()
        padded = torch.cat([flat, flat.new_zeros(-(-max(n, 1) // 128) * 128 - n)])
        return fn(torch, padded, *args, **kwargs)[:n].reshape(x.shape)
    return ref


def _bias_act_ref(torch, x, b, activation, dim):
    shape = [1] * x.ndim
    shape[dim] = x.shape[dim]
    f = torch.nn.functional
    act = {"identity": lambda z: z, "relu": f.relu,
           "leaky_relu": lambda z: f.leaky_relu(z, 0.01), "gelu": f.gelu,
           "gelu_tanh": lambda z: f.gelu(z, approximate="tanh"),
           "sigmoid": torch.sigmoid, "silu": f.silu, "mish": f.mish, "hardswish": f.hardswish,
           "tanh": torch.tanh}[activation]
    return vectorized(lambda _, z: act(z))(torch, x + b.reshape(shape))


def _t(name):
    return lambda torch, x, **kw: getattr(torch.nn.functional, name)(x, **kw)


def _elementwise(name):
    return vectorized(_t(name))


def _op(name):
    return lambda x, **kw: getattr(F, name)(x, **kw)


def simple(name, **strategy):
    return OpInfo(name, op=_op(name), ref=_elementwise(name), samples=act_sample(**strategy),
                  errors=[ErrorCase((np.arange(3),), {}, TypeError,
                                    f"{name}: expected a floating point tensor")])


OPS = [
    simple("relu", kinks=(0.0,)),
    simple("relu6", low=-2.0, high=8.0, kinks=(0.0, 6.0)),
    simple("leaky_relu", kinks=(0.0,),
           kwargs={"negative_slope": st.sampled_from([0.01, 0.2, 1.5])}),
    OpInfo("prelu", op=lambda x, w: F.prelu(x, w),
           ref=lambda torch, x, w: torch.nn.functional.prelu(x, w), samples=prelu_sample(),
           errors=[ErrorCase((a64(2, 3, 4), a64(2)), {}, ValueError,
                             r"prelu: weight of shape \[2\] must have 1 element or one per "
                             r"channel \(3\)")]),
    simple("elu", kinks=(0.0,), kwargs={"alpha": st.sampled_from([1.0, 0.5, 2.0])}),
    simple("selu", kinks=(0.0,)),
    simple("celu", kinks=(0.0,), kwargs={"alpha": st.sampled_from([1.0, 0.5, 2.0])}),
    simple("gelu", kwargs={"approximate": st.sampled_from(["none", "tanh"])}),
    simple("sigmoid", low=-6.0, high=6.0),
    simple("tanh"),
    OpInfo("hardtanh", op=_op("hardtanh"), ref=_elementwise("hardtanh"),
           samples=st.sampled_from([(-1.0, 1.0), (-0.5, 2.0)]).flatmap(
               lambda mm: act_sample(kinks=mm, kwargs={"min_val": st.just(mm[0]),
                                                       "max_val": st.just(mm[1])})),
           errors=[ErrorCase((a64(3),), {"min_val": 1.0, "max_val": 0.0}, ValueError,
                             "hardtanh: min_val 1.0 cannot be greater than max_val 0.0")]),
    # torch has no double backward for hardsigmoid; its definition written with clamp has one
    OpInfo("hardsigmoid", op=_op("hardsigmoid"),
           ref=lambda torch, x: torch.clamp(x / 6.0 + 0.5, 0.0, 1.0),
           samples=act_sample(low=-5.0, high=5.0, kinks=(-3.0, 3.0))),
    simple("hardswish", low=-5.0, high=5.0, kinks=(-3.0, 3.0)),
    simple("silu", low=-5.0, high=5.0),
    simple("mish", low=-5.0, high=5.0),
    OpInfo("softplus", op=_op("softplus"), ref=_elementwise("softplus"),
           samples=st.sampled_from([(1.0, 20.0), (2.0, 1.0), (0.5, 3.0)]).flatmap(
               lambda bt: act_sample(low=-5.0, high=5.0, kinks=(bt[1] / bt[0],),
                                     kwargs={"beta": st.just(bt[0]),
                                             "threshold": st.just(bt[1])}))),
    simple("softsign", kinks=(0.0,)),
    OpInfo("bias_act", op=lambda x, b, **kw: F.bias_act(x, b, **kw), ref=_bias_act_ref,
           samples=bias_act_sample(),
           errors=[ErrorCase((a64(2, 3, 4), a64(4)), {}, ValueError,
                             r"bias_act: bias of shape \[4\] must be 1-D with 3 elements"),
                   ErrorCase((a64(2, 3), a64(3)), {"activation": "elu"}, ValueError,
                             "bias_act: unknown activation 'elu'"),
                   ErrorCase((a64(2, 3), a64(3)), {"dim": 2}, IndexError,
                             "bias_act: dimension out of range"),
                   ErrorCase((np.arange(6).reshape(2, 3), a64(3)), {}, TypeError,
                             "bias_act: expected a floating point tensor")]),
    OpInfo("softmax", op=_op("softmax"), ref=_t("softmax"), samples=softmax_sample(),
           errors=[ErrorCase((a64(2, 3),), {"dim": 2}, IndexError,
                             r"softmax: dimension out of range")]),
    OpInfo("log_softmax", op=_op("log_softmax"), ref=_t("log_softmax"),
           samples=softmax_sample()),
]
