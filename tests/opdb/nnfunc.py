"""Op table entries for the nn functions of issue 16: one_hot, norm, normalize, logsigmoid,
softmin, embedding, pixel_shuffle / pixel_unshuffle, cosine_similarity, pairwise_distance,
scaled_dot_product_attention and einsum."""
import math

import numpy as np
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn.testing.strategies import arrays

from . import ErrorCase, OpInfo, Sample


def _torch_f(name):
    def ref(torch, *args, **kwargs):
        return getattr(torch.nn.functional, name)(*args, **kwargs)
    return ref


def _shape(draw, ndim_lo=1, ndim_hi=3, hi=4):
    return tuple(draw(st.integers(1, hi)) for _ in range(draw(st.integers(ndim_lo, ndim_hi))))


def _a(*shape):
    return np.random.default_rng(0).standard_normal(shape)


# --- one_hot ------------------------------------------------------------------------------------

@st.composite
def one_hot_sample(draw):
    n = draw(st.integers(1, 5))
    idx = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1))).integers(
        0, n, _shape(draw, 0, 3))
    return Sample((idx,), {} if draw(st.booleans()) else {"num_classes": n +
                                                          draw(st.integers(0, 2))})


ONE_HOT_ERRORS = [
    ErrorCase((_a(3),), {}, TypeError, r"one_hot: expected an integer \(index\) tensor", "float"),
    ErrorCase((np.array([0, -1]),), {}, ValueError, r"one_hot: class values must be non-negative",
              "negative"),
    ErrorCase((np.array([0, 3]),), {"num_classes": 3}, ValueError,
              r"one_hot: class values must be smaller than num_classes \(3\)", "too-large"),
    ErrorCase((np.zeros(0, np.int64),), {}, ValueError,
              r"one_hot: can not infer the total number of classes", "empty"),
]


# --- norms and distances ------------------------------------------------------------------------

P_VALUES = [1.0, 2.0, 3.0, 0.5, -1.5, math.inf]


@st.composite
def norm_sample(draw):
    shape = _shape(draw)
    x = draw(arrays(shape, min_abs=0.1))      # away from |x| = 0, where p = 1 has a kink
    dim = None if draw(st.booleans()) else draw(st.integers(-len(shape), len(shape) - 1))
    if draw(st.sampled_from(P_VALUES)) == math.inf:     # distinct magnitudes: a single max
        x = _distinct_magnitudes(draw, shape)
        return Sample((x,), {"p": math.inf, "dim": dim, "keepdim": draw(st.booleans())})
    return Sample((x,), {"p": draw(st.sampled_from(P_VALUES[:-1] + ["fro"])), "dim": dim,
                         "keepdim": draw(st.booleans())})


def _distinct_magnitudes(draw, shape):
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    size = int(np.prod(shape))
    mags = 0.2 + 0.1 * rng.permutation(size)
    return (mags * rng.choice([-1.0, 1.0], size)).reshape(shape)


def _norm_ref(torch, x, p, dim, keepdim):
    return torch.norm(x, p, dim, keepdim)


@st.composite
def normalize_sample(draw):
    shape = _shape(draw)
    return Sample((draw(arrays(shape, min_abs=0.1)),),
                  {"p": draw(st.sampled_from([1.0, 2.0, 3.0])),
                   "dim": draw(st.integers(-len(shape), len(shape) - 1))})


@st.composite
def pair_sample(draw, kind):
    shape = _shape(draw, 1, 3)
    other = tuple(1 if draw(st.integers(0, 3)) == 0 else s for s in shape)    # broadcast
    x1, x2 = draw(arrays(shape)), draw(arrays(other))
    if kind == "cosine":
        return Sample((x1, x2), {"dim": draw(st.integers(-len(shape), len(shape) - 1))})
    x1 = x2 + draw(arrays(shape, min_abs=0.2))     # |x1 - x2| away from 0, the kink of p = 1
    return Sample((x1, x2), {"p": draw(st.sampled_from([1.0, 2.0, 3.0, -1.5])),
                             "keepdim": draw(st.booleans())})


PAIR_ERRORS = [
    ErrorCase((_a(2, 3), _a(4, 3)), {}, ValueError,
              r"cosine_similarity: the shapes of x1 \[2, 3\] and x2 \[4, 3\] cannot be broadcast",
              "shapes"),
]

PAIRWISE_ERRORS = [
    ErrorCase((_a(2, 3), _a(2, 3)), {"p": "2"}, ValueError,
              r"pairwise_distance: p must be a number \(or inf\), got '2'", "p-string"),
]

NORMALIZE_ERRORS = [
    ErrorCase((_a(2, 3),), {"dim": 2}, IndexError, r"normalize: dimension out of range", "dim"),
]


# --- activations ----------------------------------------------------------------------------------

@st.composite
def unary_sample(draw, with_dim=False):
    shape = _shape(draw)
    x = draw(arrays(shape, low=-25.0, high=25.0))
    if not with_dim:
        return Sample((x,))
    return Sample((x / 8,), {"dim": draw(st.integers(-len(shape), len(shape) - 1))})


# --- embedding ------------------------------------------------------------------------------------

@st.composite
def embedding_sample(draw, grad_options):
    """grad_options: padding_idx and scale_grad_by_freq, which change the gradient on purpose
    (so only the parity with PyTorch's gradients checks them, not gradcheck)."""
    V, D = draw(st.integers(1, 5)), draw(st.integers(1, 3))
    idx = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1))).integers(
        0, V, _shape(draw, 0, 2))
    kw = {}
    if grad_options and draw(st.booleans()):
        kw["padding_idx"] = draw(st.integers(-V, V - 1))
    if grad_options and (draw(st.booleans()) or not kw):
        kw["scale_grad_by_freq"] = True
    return Sample((draw(arrays((V, D))), idx), kw)


def _embedding(weight, input, **kw):      # the differentiable argument first, for the parity
    return F.embedding(input, weight, **kw)     # test's gradients


def _embedding_ref(torch, weight, input, **kw):
    return torch.nn.functional.embedding(input, weight, **kw)


EMBEDDING_ERRORS = [
    ErrorCase((_a(5, 2), np.array([0, 5])), {}, IndexError,
              r"embedding: index 5 is out of range for weight of size \[5, 2\]", "range"),
    ErrorCase((_a(5, 2), _a(2)), {}, TypeError,
              r"embedding: expected an integer \(index\) tensor for input", "float-index"),
    ErrorCase((_a(5, 2), np.array([0])), {"padding_idx": 5}, ValueError,
              r"embedding: padding_idx must be within num_embeddings \(5\)", "padding-idx"),
]


# --- pixel shuffle --------------------------------------------------------------------------------

@st.composite
def shuffle_sample(draw, up):
    r = draw(st.integers(1, 3))
    lead = _shape(draw, 0, 2, 2)
    C, H, W = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    shape = lead + ((C * r * r, H, W) if up else (C, H * r, W * r))
    return Sample((draw(arrays(shape)), r))


SHUFFLE_ERRORS = [
    ErrorCase((_a(1, 5, 2, 2), 2), {}, ValueError,
              r"pixel_shuffle: .* divisible by upscale_factor\^2 = 4, but input.size\(-3\)=5",
              "channels"),
    ErrorCase((_a(4, 2), 2), {}, ValueError,
              r"pixel_shuffle: expected an input of at least 3 dimensions", "2d"),
    ErrorCase((_a(1, 4, 2, 2), 0), {}, ValueError,
              r"pixel_shuffle: expected a positive upscale_factor, but got 0", "factor-0"),
]

UNSHUFFLE_ERRORS = [
    ErrorCase((_a(1, 1, 5, 4), 2), {}, ValueError,
              r"pixel_unshuffle: expected the height and width of the input to be divisible by "
              r"downscale_factor=2, but got input \[1, 1, 5, 4\]", "height"),
]


# --- attention ------------------------------------------------------------------------------------

@st.composite
def attention_sample(draw):
    lead = _shape(draw, 0, 2, 2)
    L, S, E, Ev = (draw(st.integers(1, 4)) for _ in range(4))
    q, k, v = draw(arrays(lead + (L, E))), draw(arrays(lead + (S, E))), draw(arrays(lead + (S, Ev)))
    kw, constant = {}, ()
    mask = draw(st.sampled_from(["none", "bool", "float", "causal"]))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    args = (q, k, v)
    if mask == "bool":        # rows without any key included give 0 (PyTorch's safe softmax)
        kw["attn_mask"] = rng.random((L, S)) < 0.7
    elif mask == "float":
        args, constant = (q, k, v, rng.uniform(-1, 1, (L, S))), (3,)
    elif mask == "causal":
        kw["is_causal"] = True
    if draw(st.booleans()):
        kw["scale"] = draw(st.floats(0.1, 2.0))
    return Sample(args, kw, constant)


@st.composite
def gqa_sample(draw):
    Hk, g = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    N, L, S, E = (draw(st.integers(1, 3)) for _ in range(4))
    q = draw(arrays((N, Hk * g, L, E)))
    return Sample((q, draw(arrays((N, Hk, S, E))), draw(arrays((N, Hk, S, E)))),
                  {"enable_gqa": True})


def _sdpa(q, k, v, attn_mask=None, **kw):
    return F.scaled_dot_product_attention(q, k, v, attn_mask, **kw)


def _sdpa_ref(torch, q, k, v, attn_mask=None, **kw):
    """PyTorch's math backend: the definition (its fused CPU kernel has no second derivative,
    and gives a row of NaN scores output 0 but NaN gradients)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: PLC0415
    with sdpa_kernel(SDPBackend.MATH):
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask, **kw)


SDPA_ERRORS = [
    ErrorCase((_a(2, 3, 4), _a(2, 5, 3), _a(2, 5, 6)), {}, ValueError,
              r"scaled_dot_product_attention: expected query and key of the same embedding size",
              "embed"),
    ErrorCase((_a(2, 3, 4), _a(2, 5, 4), _a(2, 5, 6)), {"is_causal": True,
                                                         "attn_mask": np.ones((3, 5), bool)},
              ValueError, r"explicit attn_mask should not be set when is_causal=True", "causal"),
    ErrorCase((_a(2, 3, 4), _a(3, 5, 4), _a(3, 5, 6)), {}, ValueError,
              r"the batch dimensions do not broadcast", "batch"),
]


# --- einsum ---------------------------------------------------------------------------------------

EQUATIONS = [("ij,jk->ik", "ij,jk"), ("ii->i", "ii"), ("ii", "ii"), ("i,i", "i,i"),
             ("bij,bjk->bik", "bij,bjk"), ("...ij,...jk", "xij,jk"), ("i,j->ij", "i,j"),
             ("ijk->kji", "ijk"), ("ij,jk,kl->il", "ij,jk,kl"), ("iij->j", "iij"),
             ("bhqd,bhkd->bhqk", "bhqd,bhkd"), ("ij,ij->", "ij,ij"), ("i...->...", "ixy"),
             ("Ab,bA->A", "Ab,bA"), ("nchw,kc->nkhw", "nchw,kc")]


@st.composite
def einsum_sample(draw):
    equation, shapes = draw(st.sampled_from(EQUATIONS))
    size = {c: draw(st.integers(1, 3)) for c in set(shapes) - {","}}
    return Sample(tuple(draw(arrays(tuple(size[c] for c in term)))
                        for term in shapes.split(",")), {"equation": equation})


def _einsum(*operands, equation):
    return mc.einsum(equation, *operands)


def _einsum_ref(torch, *operands, equation):
    return torch.einsum(equation, *operands)


EINSUM_ERRORS = [
    ErrorCase((_a(2, 3),), {"equation": "ijk"}, ValueError,
              r"einsum: the number of subscripts in the equation \(3\) does not match the number "
              r"of dimensions \(2\) for operand 0", "subscripts"),
    ErrorCase((_a(2, 3), _a(4, 5)), {"equation": "ij,jk"}, ValueError,
              r"einsum: subscript j has size 4 for operand 1", "sizes"),
    ErrorCase((_a(2, 3),), {"equation": "ij->ii"}, ValueError,
              r"einsum: output subscript i appears more than once", "output-twice"),
    ErrorCase((_a(2, 3),), {"equation": "ij->k"}, ValueError,
              r"einsum: output subscript k does not appear", "output-unknown"),
    ErrorCase((_a(2, 3),), {"equation": "i1"}, ValueError, r"einsum: invalid subscript '1'",
              "bad-char"),
    ErrorCase((_a(2, 3), _a(3)), {"equation": "ij"}, ValueError,
              r"einsum: the equation 'ij' has 1 operand\(s\) but 2 were given", "count"),
]


OPS = [
    OpInfo("one_hot", F.one_hot, _torch_f("one_hot"), one_hot_sample(), ONE_HOT_ERRORS,
           gradcheck=False),
    OpInfo("norm", mc.norm, _norm_ref, norm_sample()),
    OpInfo("normalize", F.normalize, _torch_f("normalize"), normalize_sample(),
           NORMALIZE_ERRORS),
    OpInfo("logsigmoid", F.logsigmoid, _torch_f("logsigmoid"), unary_sample()),
    OpInfo("softmin", F.softmin, _torch_f("softmin"), unary_sample(with_dim=True)),
    OpInfo("embedding", _embedding, _embedding_ref, embedding_sample(False), EMBEDDING_ERRORS),
    OpInfo("embedding_padding_freq", _embedding, _embedding_ref, embedding_sample(True),
           gradcheck=False),
    OpInfo("pixel_shuffle", F.pixel_shuffle, _torch_f("pixel_shuffle"), shuffle_sample(True),
           SHUFFLE_ERRORS),
    OpInfo("pixel_unshuffle", F.pixel_unshuffle, _torch_f("pixel_unshuffle"),
           shuffle_sample(False), UNSHUFFLE_ERRORS),
    OpInfo("cosine_similarity", F.cosine_similarity, _torch_f("cosine_similarity"),
           pair_sample("cosine"), PAIR_ERRORS),
    OpInfo("pairwise_distance", F.pairwise_distance, _torch_f("pairwise_distance"),
           pair_sample("pairwise"), PAIRWISE_ERRORS),
    OpInfo("scaled_dot_product_attention", _sdpa, _sdpa_ref, attention_sample(), SDPA_ERRORS),
    OpInfo("scaled_dot_product_attention_gqa", _sdpa, _sdpa_ref, gqa_sample()),
    OpInfo("einsum", _einsum, _einsum_ref, einsum_sample(), EINSUM_ERRORS),
]
