"""PyTorch's names for what the op table cannot draw: calls whose forms take no gradient, and
the places each name lives (mc.<name>, Tensor methods, nn.functional), each against torch."""
import numpy as np
import pytest

import minicnn as mc
from conftest import torch_or_skip


def test_tensor_methods_and_module_functions_are_the_same_ops():
    x = mc.arange(12.0).reshape(3, 4)
    for name, args in [("flip", (0,)), ("roll", (1, 1)), ("tril", ()), ("triu", (1,)),
                       ("diagonal", ()), ("movedim", (0, 1)), ("narrow", (1, 1, 2)),
                       ("unflatten", (1, (2, 2))), ("t", ()), ("nonzero", ()),
                       ("repeat_interleave", (2,))]:
        np.testing.assert_array_equal(getattr(x, name)(*args).numpy(),
                                      getattr(mc, name)(x, *args).numpy(), err_msg=name)
        assert getattr(mc.Tensor, name).__doc__ == getattr(mc, name).__doc__


def test_repeat_interleave_of_counts_alone():
    torch = torch_or_skip()
    counts = np.array([2, 0, 3, 1])
    np.testing.assert_array_equal(mc.repeat_interleave(mc.tensor(counts)).numpy(),
                                  torch.repeat_interleave(torch.from_numpy(counts)).numpy())


def test_scatter_reads_a_larger_src_over_the_index_shape():
    torch = torch_or_skip()
    x, src = np.zeros((3, 4)), np.arange(20.0).reshape(4, 5)
    index = np.array([[2, 0, 1], [1, 2, 0]])
    for op in ("scatter", "scatter_add"):
        got = getattr(mc, op)(mc.tensor(x), 0, mc.tensor(index), mc.tensor(src))
        want = getattr(torch, op)(torch.from_numpy(x), 0, torch.from_numpy(index),
                                  torch.from_numpy(src))
        np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=op)


def test_integer_scatter_reduce_mean_floors_like_torch():
    torch = torch_or_skip()
    x, src, index = np.array([1, 2, 3]), np.array([4, 5, 8]), np.array([0, 0, 2])
    for include_self in (True, False):
        got = mc.scatter_reduce(mc.tensor(x), 0, mc.tensor(index), mc.tensor(src), "mean",
                                include_self=include_self)
        want = torch.from_numpy(x).scatter_reduce(0, torch.from_numpy(index),
                                                  torch.from_numpy(src), "mean",
                                                  include_self=include_self)
        np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_bad_scatter_reduce_and_take_along_dim_arguments():
    with pytest.raises(ValueError, match="scatter_reduce: reduce argument must be one of"):
        mc.scatter_reduce(mc.zeros(3), 0, mc.tensor([0]), mc.ones(1), "max")
    with pytest.raises(IndexError, match="take_along_dim: index -1 is out of bounds"):
        mc.take_along_dim(mc.zeros(2, 3), mc.tensor([-1]))   # flattened: no wrapping, as torch


def test_upsample_layers_match_torch():
    torch = torch_or_skip()
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    for mc_layer, torch_layer in [
            (mc.nn.Upsample(scale_factor=2), torch.nn.Upsample(scale_factor=2)),
            (mc.nn.Upsample(size=(3, 7), mode="bicubic", align_corners=False),
             torch.nn.Upsample(size=(3, 7), mode="bicubic", align_corners=False)),
            (mc.nn.UpsamplingBilinear2d(scale_factor=1.5),
             torch.nn.UpsamplingBilinear2d(scale_factor=1.5)),
            (mc.nn.UpsamplingNearest2d(size=6), torch.nn.UpsamplingNearest2d(size=6))]:
        np.testing.assert_allclose(mc_layer(mc.tensor(x)).numpy(),
                                   torch_layer(torch.from_numpy(x)).numpy(), rtol=1e-5,
                                   atol=1e-6, err_msg=repr(mc_layer))
    assert repr(mc.nn.Upsample(scale_factor=2)) == "Upsample(scale_factor=2.0, mode='nearest')"
    assert mc.functional.upsample_nearest is not None and mc.functional.upsample is not None


def test_reduction_dtypes_follow_torch():
    torch = torch_or_skip()
    for a in (np.array([[1, 2], [3, 4]], np.int32), np.array([[1, 0]], np.uint8),
              np.array([[True, False]])):
        t, m = torch.from_numpy(a), mc.tensor(a)
        for name in ("sum", "prod", "cumsum", "cumprod"):
            args = (1,) if name.startswith("cum") else ()
            got, want = getattr(m, name)(*args), getattr(t, name)(*args)
            assert got.dtype == np.dtype(str(want.dtype).replace("torch.", "")), (name, a.dtype)
            np.testing.assert_array_equal(got.numpy(), want.numpy())
        for name in ("all", "any"):
            assert getattr(m, name)().dtype == np.dtype(
                str(getattr(t, name)().dtype).replace("torch.", ""))
    x = np.random.default_rng(0).standard_normal((3, 4))
    got = mc.tensor(x).mean(1, dtype=mc.float32)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got.numpy(), torch.from_numpy(x).mean(1, dtype=torch.float32))


def test_integer_cummax_and_order_statistics_match_torch():
    torch = torch_or_skip()
    a = np.random.default_rng(1).integers(-3, 4, (4, 9))
    t, m = torch.from_numpy(a), mc.tensor(a)
    for op in ("cummax", "cummin"):
        got, want = getattr(m, op)(1), getattr(t, op)(1)
        np.testing.assert_array_equal(got.values.numpy(), want.values.numpy())
        np.testing.assert_array_equal(got.indices.numpy(), want.indices.numpy())
    got, want = m.sort(1, descending=True), t.sort(stable=True, dim=1, descending=True)
    np.testing.assert_array_equal(got.indices.numpy(), want.indices.numpy())
    np.testing.assert_array_equal(m.topk(3).values.numpy(), t.topk(3).values.numpy())
    assert m.median().item() == t.median().item()


def test_nan_in_order_statistics_as_torch():
    torch = torch_or_skip()
    x = np.array([[1.0, np.nan, 3.0, 2.0, np.nan], [4.0, 1.0, 0.5, 2.0, 3.0]])
    t, m = torch.from_numpy(x), mc.tensor(x)
    for fn in (lambda u: u.median(1), lambda u: u.sort(1), lambda u: u.sort(1, descending=True),
               lambda u: u.cummax(1)):
        got, want = fn(m), fn(t)
        np.testing.assert_array_equal(got.values.numpy(), want.values.numpy())
        np.testing.assert_array_equal(got.indices.numpy(), want.indices.numpy())
    assert np.isnan(m.median().item()) and np.isnan(t.median().item())


# --- nn layers and functions of the nn section of issue 16 ---------------------------------------

def _pair_of_layers(torch, name, *args, **kwargs):
    """The same layer in both frameworks, minicnn's with torch's parameters."""
    theirs = getattr(torch.nn, name)(*args, **kwargs).double()
    ours = getattr(mc.nn, name)(*args, **kwargs).double()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


@pytest.mark.parametrize("name,args,kwargs,shape", [
    ("Conv3d", (4, 6, (3, 2, 3)), {"stride": (2, 1, 1), "padding": 1, "groups": 2},
     (2, 4, 5, 4, 6)),
    ("Conv3d", (2, 3, 2), {"padding": "same", "padding_mode": "reflect"}, (1, 2, 4, 5, 3)),
    ("ConvTranspose3d", (4, 2, 3), {"stride": 2, "output_padding": 1}, (1, 4, 2, 3, 2)),
    ("MaxPool3d", (3,), {"stride": 2, "padding": 1, "ceil_mode": True}, (2, 2, 5, 6, 7)),
    ("AvgPool3d", ((2, 3, 2),), {"count_include_pad": False, "padding": 1}, (1, 3, 4, 5, 6)),
    ("AdaptiveAvgPool3d", ((2, None, 3),), {}, (1, 2, 5, 4, 7)),
    ("MaxPool1d", (3,), {"stride": 2, "dilation": 2, "padding": 1}, (2, 3, 9)),
    ("AvgPool1d", (2,), {"ceil_mode": True}, (2, 3, 7)),
    ("AdaptiveAvgPool1d", (3,), {}, (2, 3, 7)),
    ("AdaptiveMaxPool1d", (3,), {}, (2, 3, 7)),
    ("PixelShuffle", (2,), {}, (2, 8, 3, 4)),
    ("PixelUnshuffle", (3,), {}, (1, 2, 6, 3)),
    ("LogSigmoid", (), {}, (3, 5)),
    ("Softmin", (1,), {}, (3, 5)),
])
def test_new_layers_match_torch(name, args, kwargs, shape):
    torch = torch_or_skip()
    ours, theirs = _pair_of_layers(torch, name, *args, **kwargs)
    x = np.random.default_rng(0).standard_normal(shape)
    xt = torch.tensor(x, requires_grad=True)
    xm = mc.tensor(x, requires_grad=True)
    y, yt = ours(xm), theirs(xt)
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    y.sum().backward()
    yt.sum().backward()
    np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert repr(ours).split("(")[0] == name


def test_distance_layers_match_torch():
    torch = torch_or_skip()
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    for name, kwargs in [("CosineSimilarity", {"dim": 0}), ("PairwiseDistance", {"p": 1.0})]:
        ours, theirs = getattr(mc.nn, name)(**kwargs), getattr(torch.nn, name)(**kwargs)
        np.testing.assert_allclose(ours(mc.tensor(a), mc.tensor(b)).numpy(),
                                   theirs(torch.tensor(a), torch.tensor(b)).numpy(), rtol=1e-12)


def test_embedding_layer_as_torch():
    torch = torch_or_skip()
    layer = mc.nn.Embedding(6, 3, padding_idx=-2)
    assert layer.padding_idx == 4 and not layer.weight.numpy()[4].any()
    weights = np.random.default_rng(2).standard_normal((6, 3)) * 3
    idx = np.array([[0, 4, 2], [2, 5, 0]])
    ours = mc.nn.Embedding.from_pretrained(mc.tensor(weights), freeze=False, max_norm=1.5,
                                           scale_grad_by_freq=True, padding_idx=4)
    theirs = torch.nn.Embedding.from_pretrained(torch.tensor(weights), freeze=False,
                                                max_norm=1.5, scale_grad_by_freq=True,
                                                padding_idx=4)
    y, yt = ours(mc.tensor(idx)), theirs(torch.tensor(idx))
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-12)
    # max_norm renormalised the rows looked up, in place, as torch does
    np.testing.assert_allclose(ours.weight.numpy(), theirs.weight.detach().numpy(), rtol=1e-12)
    (y * y).sum().backward()
    (yt * yt).sum().backward()
    np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(), rtol=1e-12)
    frozen = mc.nn.Embedding.from_pretrained(mc.tensor(weights))
    assert not frozen.weight.requires_grad and repr(frozen) == "Embedding(6, 3)"


def test_norm_einsum_and_one_hot_forms():
    torch = torch_or_skip()
    x = np.random.default_rng(3).standard_normal((2, 3, 4))
    for p, dim in [("fro", None), (1, (0, 2)), (float("inf"), -1), (0, 1)]:
        np.testing.assert_allclose(mc.tensor(x).norm(p, dim).numpy(),
                                   torch.tensor(x).norm(p, dim).numpy(), rtol=1e-12)
    a, b = mc.tensor(x), mc.tensor(x[0])
    np.testing.assert_allclose(mc.einsum("bij,jk->bik", [a, b.t()]).numpy(),
                               torch.einsum("bij,jk->bik", torch.tensor(x),
                                            torch.tensor(x[0]).t()).numpy(), rtol=1e-12)
    labels = mc.tensor(np.array([2, 0, 1]))
    assert mc.nn.functional.one_hot(labels).dtype == mc.int64
    with pytest.raises(TypeError, match="einsum: operand 1 must be a Tensor"):
        mc.einsum("i,i", a, x)


def test_attention_dropout_and_fully_masked_rows():
    torch = torch_or_skip()
    rng = np.random.default_rng(4)
    q, k, v = (rng.standard_normal(s) for s in [(2, 3, 4), (2, 5, 4), (2, 5, 6)])
    mask = np.ones((3, 5), bool)
    mask[1] = False                 # a row that attends to nothing gives zeros, as torch
    xs = [mc.tensor(a, requires_grad=True) for a in (q, k, v)]
    y = mc.nn.functional.scaled_dot_product_attention(*xs, attn_mask=mc.tensor(mask))
    yt = torch.nn.functional.scaled_dot_product_attention(
        *(torch.tensor(a) for a in (q, k, v)), attn_mask=torch.tensor(mask))
    np.testing.assert_allclose(y.numpy(), yt.numpy(), rtol=1e-10, atol=1e-12)
    y.sum().backward()
    assert np.isfinite(xs[0].grad.numpy()).all() and not xs[0].grad.numpy()[:, 1].any()
    mc.manual_seed(0)
    dropped = mc.nn.functional.scaled_dot_product_attention(*xs, dropout_p=0.5)
    assert dropped.shape == (2, 3, 6)


# --- the names issue 16 asks for, and the API reference ------------------------------------------

ISSUE_16_NAMES = {
    "": "tensor no_grad inference_mode set_num_threads get_num_threads device accelerator "
        "backends cuda flip roll repeat_interleave tril triu diagonal unflatten meshgrid "
        "movedim narrow masked_fill masked_select scatter scatter_add scatter_reduce index_add "
        "nonzero take_along_dim all any prod logsumexp cumsum cumprod cummax cummin "
        "logcumsumexp std_mean var_mean sort argsort topk kthvalue median sin cos tan asin "
        "acos atan sinh cosh tanh asinh acosh atanh erf erfc log2 log10 log1p expm1 exp2 "
        "rsqrt reciprocal floor ceil round trunc frac fmod remainder div copysign lerp "
        "logaddexp isnan isinf isfinite isclose allclose nan_to_num logical_and logical_or "
        "logical_xor bitwise_and bitwise_or bitwise_xor bitwise_left_shift "
        "bitwise_right_shift einsum",
    "Tensor": "eq ne lt le gt ge t topk unfold repeat data to sum",
    "nn.functional": "interpolate unfold fold pad one_hot normalize logsigmoid softmin "
                     "embedding pixel_shuffle pixel_unshuffle cosine_similarity "
                     "pairwise_distance scaled_dot_product_attention conv3d conv_transpose3d "
                     "max_pool3d avg_pool3d adaptive_avg_pool3d",
    "nn": "Upsample Softmin Embedding Unflatten Conv3d ConvTranspose3d MaxPool3d AvgPool3d "
          "AdaptiveAvgPool3d PixelShuffle PixelUnshuffle",
    "utils.data": "DataLoader Sampler RandomSampler FakeData",
    "utils": "make_grid save_image",
    "backends.cudnn": "benchmark deterministic",
    "cuda": "is_available",
    "accelerator": "is_available current_accelerator",
}


@pytest.mark.parametrize("namespace", list(ISSUE_16_NAMES))
def test_the_names_issue_16_lists_exist(namespace):
    ns = mc
    for part in filter(None, namespace.split(".")):
        ns = getattr(ns, part)
    missing = [n for n in ISSUE_16_NAMES[namespace].split() if not hasattr(ns, n)]
    assert not missing, f"mc.{namespace} lacks {missing}"


def test_the_api_reference_is_up_to_date():
    """docs/API.md equals what docs/make_api.py writes now (in a fresh process, so that no other
    test's imports or patches show in it)."""
    torch_or_skip()
    import pathlib  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415
    root = pathlib.Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, str(root / "docs" / "make_api.py"), "--check"],
                          cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
