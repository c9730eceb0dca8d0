"""Op table entries for pooling: max_pool2d (with indices), avg_pool2d, adaptive_avg_pool2d,
adaptive_max_pool2d, max_unpool2d, global_avg_pool2d.

Max-pool inputs are a permutation of well-separated values (gaps of 0.05 >> the gradcheck step),
so no window has a tie and finite differences never flip an argmax.
"""
import numpy as np
from hypothesis import strategies as st

import minicnn.functional as F

from . import ErrorCase, OpInfo, Sample


def _distinct(draw, shape):
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    x = (rng.permutation(size) - size / 2) * 0.05 + rng.uniform(-0.01, 0.01, size)
    x = x.reshape(shape)
    if draw(st.booleans()):  # a non-contiguous view with the same values
        wide = np.empty(shape[:-1] + (2 * shape[-1],))
        wide[..., ::2] = x
        x = wide[..., ::2]
    return x


def _torch(name):
    def ref(torch, *args, **kwargs):
        return getattr(torch.nn.functional, name)(*args, **kwargs)
    return ref


@st.composite
def pool_sample(draw, kind):
    N, C = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    k = tuple(draw(st.integers(1, 3)) for _ in range(2))
    s = tuple(draw(st.integers(1, 3)) for _ in range(2))
    d = tuple(draw(st.integers(1, 2)) for _ in range(2)) if kind == "max" else (1, 1)
    p = tuple(draw(st.integers(0, kk // 2)) for kk in k)
    ceil_mode = draw(st.booleans())
    # at least the dilated kernel, so that no window lies entirely in the padding
    spatial = tuple(max(1, dd * (kk - 1) + 1 - (2 * pp if dd == 1 else 0))
                    + draw(st.integers(0, 4)) for kk, dd, pp in zip(k, d, p))
    shape = (N, C) + spatial
    kw = {"kernel_size": k if draw(st.booleans()) or k[0] != k[1] else k[0],
          "stride": None if draw(st.integers(0, 3)) == 0 else s, "padding": p,
          "ceil_mode": ceil_mode}
    if kw["stride"] is None:
        s = k
    if kind == "max":
        kw["dilation"] = d
        kw["return_indices"] = draw(st.booleans())
        return Sample((_distinct(draw, shape),), kw)
    kw["count_include_pad"] = draw(st.booleans())
    if draw(st.integers(0, 4)) == 0:
        kw["divisor_override"] = draw(st.integers(1, 5))
    x = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1))).uniform(-2, 2, shape)
    return Sample((x,), kw)


@st.composite
def adaptive_sample(draw, kind):
    N, C = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    H, W = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    out = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    kw = {"output_size": out if draw(st.booleans()) or out[0] != out[1] else out[0]}
    if kind == "max":
        kw["return_indices"] = draw(st.booleans())
        return Sample((_distinct(draw, (N, C, H, W)),), kw)
    x = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1))).uniform(-2, 2, (N, C, H, W))
    return Sample((x,), kw)


@st.composite
def unpool_sample(draw):
    import torch  # noqa: PLC0415 -- only to make valid indices
    N, C = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    k = draw(st.integers(1, 3))
    s = k   # non-overlapping windows: unique indices (where an index repeats, the gradient
            # of the assignment is not PyTorch's gather; tests/test_pool.py covers that)
    H, W = k + draw(st.integers(0, 4)), k + draw(st.integers(0, 4))
    src = _distinct(draw, (N, C, H, W))
    _, idx = torch.nn.functional.max_pool2d(torch.from_numpy(np.ascontiguousarray(src)), k, s,
                                            return_indices=True)
    idx = idx.numpy()
    x = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1))).uniform(-2, 2, idx.shape)
    kw = {"kernel_size": k, "stride": s}
    default = ((idx.shape[2] - 1) * s + k, (idx.shape[3] - 1) * s + k)
    if default != (H, W) or draw(st.booleans()):
        kw["output_size"] = (H, W)
    return Sample((x, idx), kw)


def _global_ref(torch, x, keepdim=False):
    return x.mean(dim=(2, 3), keepdim=keepdim)


@st.composite
def global_sample(draw):
    shape = tuple(draw(st.integers(1, 4)) for _ in range(4))
    x = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1))).uniform(-2, 2, shape)
    return Sample((x,), {"keepdim": draw(st.booleans())})


def _a(*shape):
    return np.random.default_rng(0).standard_normal(shape)


MAX_ERRORS = [
    ErrorCase((_a(3, 8, 8),), {"kernel_size": 2}, ValueError,
              r"max_pool2d: expected a 4-D input .* \[3, 8, 8\]", "3d-input"),
    ErrorCase((_a(1, 1, 4, 4),), {"kernel_size": 0}, ValueError,
              r"kernel_size must be greater than zero", "kernel-0"),
    ErrorCase((_a(1, 1, 4, 4),), {"kernel_size": 2, "stride": 0}, ValueError,
              r"stride must be greater than zero", "stride-0"),
    ErrorCase((_a(1, 1, 4, 4),), {"kernel_size": 2, "dilation": 0}, ValueError,
              r"dilation must be greater than zero", "dilation-0"),
    ErrorCase((_a(1, 1, 4, 4),), {"kernel_size": 3, "padding": 2}, ValueError,
              r"pad should be smaller than or equal to half of kernel size, but got pad=\(2, 2\)",
              "pad-too-large"),
    ErrorCase((_a(1, 1, 4, 4),), {"kernel_size": 3, "padding": -1}, ValueError,
              r"negative padding", "pad-neg"),
    ErrorCase((_a(1, 3, 2, 2),), {"kernel_size": 3}, ValueError,
              r"Given input size: \(3x2x2\). Calculated output size: \(3x0x0\). Output size is "
              r"too small", "too-small"),
]

AVG_ERRORS = [
    ErrorCase((_a(3, 8, 8),), {"kernel_size": 2}, ValueError, r"avg_pool2d: expected a 4-D",
              "3d-input"),
    ErrorCase((_a(1, 1, 4, 4),), {"kernel_size": 2, "padding": 2}, ValueError,
              r"pad should be smaller than or equal to half", "pad-too-large"),
    ErrorCase((_a(1, 1, 4, 4),), {"kernel_size": 2, "divisor_override": 0}, ValueError,
              r"divisor must be a positive int", "divisor-0"),
    ErrorCase((_a(1, 1, 1, 1),), {"kernel_size": 2}, ValueError, r"Output size is too small",
              "too-small"),
]

ADAPTIVE_ERRORS = [
    ErrorCase((_a(3, 8, 8),), {"output_size": 2}, ValueError,
              r"adaptive_avg_pool2d: expected a 4-D", "3d-input"),
    ErrorCase((_a(1, 3, 8, 8),), {"output_size": 0}, ValueError,
              r"output_size must be positive", "size-0"),
]

UNPOOL_ERRORS = [
    ErrorCase((_a(1, 1, 2, 2), np.array([[[[0, 1], [2, 99]]]])), {"kernel_size": 2},
              ValueError, r"max_unpool2d: found an invalid max index 99", "bad-index"),
    ErrorCase((_a(1, 1, 2, 2), np.zeros((1, 1, 2, 1), np.int64)), {"kernel_size": 2},
              ValueError, r"expected indices of the input's shape", "index-shape"),
]

OPS = [
    OpInfo("max_pool2d", F.max_pool2d, _torch("max_pool2d"), pool_sample("max"), MAX_ERRORS),
    OpInfo("avg_pool2d", F.avg_pool2d, _torch("avg_pool2d"), pool_sample("avg"), AVG_ERRORS),
    OpInfo("adaptive_avg_pool2d", F.adaptive_avg_pool2d, _torch("adaptive_avg_pool2d"),
           adaptive_sample("avg"), ADAPTIVE_ERRORS),
    OpInfo("adaptive_max_pool2d", F.adaptive_max_pool2d, _torch("adaptive_max_pool2d"),
           adaptive_sample("max")),
    OpInfo("max_unpool2d", F.max_unpool2d, _torch("max_unpool2d"), unpool_sample(),
           UNPOOL_ERRORS),
    OpInfo("global_avg_pool2d", F.global_avg_pool2d, _global_ref, global_sample()),
]
