"""Op table entries for the 3-D convolutions and pools: conv3d, conv_transpose3d, max_pool3d
(with indices), avg_pool3d, adaptive_avg_pool3d; and the 1-D pools: max_pool1d, avg_pool1d,
adaptive_avg_pool1d, adaptive_max_pool1d. Shapes stay small: a 3-D gradcheck is costly."""
import numpy as np
from hypothesis import strategies as st

import minicnn.functional as F

from . import ErrorCase, OpInfo, Sample
from .conv import conv_sample, conv_transpose_sample
from .pool import _distinct


def _torch(name):
    def ref(torch, *args, **kwargs):
        return getattr(torch.nn.functional, name)(*args, **kwargs)
    return ref


@st.composite
def pool_sample(draw, kind, nd=3):
    N, C = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    k = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    s = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    d = tuple(draw(st.integers(1, 2)) for _ in range(nd)) if kind == "max" else (1,) * nd
    p = tuple(draw(st.integers(0, kk // 2)) for kk in k)
    # 3-D average pools: no smaller than the kernel (PyTorch's refuses less)
    least = [kk if kind == "avg" and nd == 3 else 1 for kk in k]
    spatial = tuple(max(m, dd * (kk - 1) + 1 - (2 * pp if dd == 1 else 0))
                    + draw(st.integers(0, 2)) for m, kk, dd, pp in zip(least, k, d, p))
    shape = (N, C) + spatial
    if nd == 1 and draw(st.booleans()):
        k, s, p, d = k[0], s[0], p[0], d[0]
    kw = {"kernel_size": k, "stride": None if draw(st.integers(0, 3)) == 0 else s,
          "padding": p, "ceil_mode": draw(st.booleans())}
    if kind == "max":
        kw["dilation"] = d
        kw["return_indices"] = draw(st.booleans())
        return Sample((_distinct(draw, shape),), kw)
    kw["count_include_pad"] = draw(st.booleans())
    if nd == 3 and draw(st.integers(0, 3)) == 0:
        kw["divisor_override"] = draw(st.integers(1, 5))
    x = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1))).uniform(-2, 2, shape)
    return Sample((x,), kw)


@st.composite
def adaptive3d_sample(draw):
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) + tuple(
        draw(st.integers(1, 5)) for _ in range(3))
    out = tuple(draw(st.one_of(st.none(), st.integers(1, 4))) for _ in range(3))
    x = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1))).uniform(-2, 2, shape)
    return Sample((x,), {"output_size": out if draw(st.booleans()) else out[0] or 2})


@st.composite
def adaptive1d_sample(draw, kind):
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 8)))
    kw = {"output_size": draw(st.integers(1, 5))}
    if kind == "max":
        kw["return_indices"] = draw(st.booleans())
        return Sample((_distinct(draw, shape),), kw)
    x = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1))).uniform(-2, 2, shape)
    return Sample((x,), kw)


def _a(*shape):
    return np.random.default_rng(0).standard_normal(shape)


CONV3D_ERRORS = [
    ErrorCase((_a(1, 3, 4, 4, 4), _a(5, 4, 3, 3, 3)), {}, ValueError,
              r"conv3d: Given groups=1, weight of size \[5, 4, 3, 3, 3\], expected "
              r"input\[1, 3, 4, 4, 4\] to have 4 channels, but got 3 channels instead",
              "channels"),
    ErrorCase((_a(3, 4, 4, 4), _a(5, 3, 3, 3, 3)), {}, ValueError,
              r"conv3d: expected a 5-D input \(N, C, D, H, W\), but got input of size "
              r"\[3, 4, 4, 4\]", "4d-input"),
    ErrorCase((_a(1, 3, 2, 4, 4), _a(5, 3, 3, 3, 3)), {}, ValueError,
              r"conv3d: Calculated padded input size per channel: \(2 x 4 x 4\). Kernel size: "
              r"\(3 x 3 x 3\)", "kernel-too-large"),
    ErrorCase((_a(1, 4, 4, 4, 4), _a(6, 2, 3, 3, 3)), {"groups": 4}, ValueError,
              r"conv3d: Given groups=4, expected weight to be divisible by 4", "groups"),
    ErrorCase((_a(1, 3, 4, 4, 4), _a(5, 3, 3, 3, 3)), {"stride": (1, 0, 1)}, ValueError,
              r"conv3d: non-positive stride", "stride-0"),
    ErrorCase((_a(1, 3, 4, 4, 4), _a(5, 3, 3, 3, 3), _a(4)), {}, ValueError,
              r"conv3d: expected bias of size \[5\], but got bias of size \[4\]", "bias"),
    ErrorCase((_a(1, 3, 4, 4, 4), _a(5, 3, 3, 3, 3)), {"padding": "same", "stride": 2},
              ValueError, r"padding='same' is not supported for strided", "same-stride"),
]

CONVT3D_ERRORS = [
    ErrorCase((_a(1, 3, 2, 2, 2), _a(4, 2, 3, 3, 3)), {}, ValueError,
              r"conv_transpose3d: Given transposed=1, weight of size \[4, 2, 3, 3, 3\], "
              r"expected input\[1, 3, 2, 2, 2\] to have 4 channels", "channels"),
    ErrorCase((_a(1, 4, 2, 2, 2), _a(4, 2, 3, 3, 3)), {"stride": 2, "output_padding": 2},
              ValueError, r"output padding must be smaller than either stride or dilation",
              "outpad"),
    ErrorCase((_a(1, 4, 1, 1, 1), _a(4, 2, 3, 3, 3)), {"padding": 2}, ValueError,
              r"conv_transpose3d: the output size .* is too small", "too-small"),
]

POOL3D_ERRORS = [
    ErrorCase((_a(2, 4, 4, 4),), {"kernel_size": 2}, ValueError,
              r"max_pool3d: expected a 5-D input .* \[2, 4, 4, 4\]", "4d-input"),
    ErrorCase((_a(1, 1, 4, 4, 4),), {"kernel_size": (2, 0, 2)}, ValueError,
              r"max_pool3d: kernel_size must be greater than zero", "kernel-0"),
    ErrorCase((_a(1, 1, 4, 4, 4),), {"kernel_size": 3, "padding": 2}, ValueError,
              r"max_pool3d: pad should be smaller than or equal to half of kernel size",
              "pad-too-large"),
    ErrorCase((_a(1, 3, 2, 4, 4),), {"kernel_size": 3}, ValueError,
              r"max_pool3d: Given input size: \(3x2x4x4\). Calculated output size: "
              r"\(3x0x1x1\). Output size is too small", "too-small"),
]

AVG3D_ERRORS = [
    ErrorCase((_a(1, 1, 1, 4, 4),), {"kernel_size": 2, "padding": 1}, ValueError,
              r"avg_pool3d: input image \(T: 1 H: 4 W: 4\) smaller than kernel size "
              r"\(kT: 2 kH: 2 kW: 2\)", "smaller-than-kernel"),
    ErrorCase((_a(1, 1, 4, 4, 4),), {"kernel_size": 2, "divisor_override": 0}, ValueError,
              r"avg_pool3d: divisor must be a positive int", "divisor-0"),
    ErrorCase((_a(1, 1, 4, 4, 4),), {"kernel_size": 2, "stride": (1, 1, 0)}, ValueError,
              r"avg_pool3d: stride must be greater than zero", "stride-0"),
]

ADAPTIVE3D_ERRORS = [
    ErrorCase((_a(1, 4, 4, 4),), {"output_size": 2}, ValueError,
              r"adaptive_avg_pool3d: expected a 5-D input", "4d-input"),
    ErrorCase((_a(1, 1, 4, 4, 4),), {"output_size": (2, 0, 2)}, ValueError,
              r"adaptive_avg_pool3d: output_size must be positive", "size-0"),
]

POOL1D_ERRORS = [
    ErrorCase((_a(3, 8),), {"kernel_size": 2}, ValueError,
              r"max_pool1d: expected a 3-D input \(N, C, L\), but got input of size \[3, 8\]",
              "2d-input"),
    ErrorCase((_a(1, 2, 4),), {"kernel_size": 3, "padding": 2}, ValueError,
              r"max_pool1d: pad should be smaller than or equal to half of kernel size",
              "pad-too-large"),
    ErrorCase((_a(1, 2, 2),), {"kernel_size": 3}, ValueError,
              r"max_pool1d: Given input size: \(2x2\). Calculated output size: \(2x0\)",
              "too-small"),
]

ADAPTIVE1D_ERRORS = [
    ErrorCase((_a(1, 2, 4),), {"output_size": 0}, ValueError,
              r"adaptive_avg_pool1d: output_size must be positive", "size-0"),
    ErrorCase((_a(1, 2, 4),), {"output_size": (2, 2)}, TypeError,
              r"adaptive_avg_pool1d: output_size must be an int", "pair"),
]

OPS = [
    OpInfo("conv3d", F.conv3d, _torch("conv3d"), conv_sample(nd=3), CONV3D_ERRORS,
           directional=True),
    OpInfo("conv_transpose3d", F.conv_transpose3d, _torch("conv_transpose3d"),
           conv_transpose_sample(nd=3), CONVT3D_ERRORS, directional=True),
    OpInfo("max_pool3d", F.max_pool3d, _torch("max_pool3d"), pool_sample("max"),
           POOL3D_ERRORS, directional=True),
    OpInfo("avg_pool3d", F.avg_pool3d, _torch("avg_pool3d"), pool_sample("avg"),
           AVG3D_ERRORS, directional=True),
    OpInfo("adaptive_avg_pool3d", F.adaptive_avg_pool3d, _torch("adaptive_avg_pool3d"),
           adaptive3d_sample(), ADAPTIVE3D_ERRORS),
    OpInfo("max_pool1d", F.max_pool1d, _torch("max_pool1d"), pool_sample("max", nd=1),
           POOL1D_ERRORS),
    OpInfo("avg_pool1d", F.avg_pool1d, _torch("avg_pool1d"), pool_sample("avg", nd=1)),
    OpInfo("adaptive_avg_pool1d", F.adaptive_avg_pool1d, _torch("adaptive_avg_pool1d"),
           adaptive1d_sample("avg"), ADAPTIVE1D_ERRORS),
    OpInfo("adaptive_max_pool1d", F.adaptive_max_pool1d, _torch("adaptive_max_pool1d"),
           adaptive1d_sample("max")),
]
