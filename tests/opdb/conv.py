"""Op table entries for convolutions: conv2d (plain, grouped, depthwise, 1x1, 'same'/'valid'),
conv1d, conv_transpose2d and conv_transpose1d."""
import numpy as np
from hypothesis import strategies as st

import minicnn.functional as F
from conftest import conv_direct_off
from minicnn.testing.strategies import arrays

from . import ErrorCase, OpInfo, Sample


def _torch_conv(name):
    def ref(torch, *args, **kwargs):
        return getattr(torch.nn.functional, name)(*args, **kwargs)
    return ref


@st.composite
def conv_sample(draw, nd=2, kind="any"):
    """x (N, C, *S), w (K, C/G, *KS), b; hyperparameters with a valid output (size 1 included).
    kind 'dense': one window as large as the unpadded input (the CPU's 'dense' algorithm)."""
    kind = draw(st.sampled_from(["plain", "grouped", "depthwise", "pointwise"])) \
        if kind == "any" else kind
    N = draw(st.integers(1, 2))
    if kind == "depthwise":
        G = C = draw(st.integers(2, 3))
        Cg, Kg = 1, draw(st.integers(1, 2))
    else:
        G = draw(st.integers(2, 3)) if kind == "grouped" else 1
        Cg, Kg = draw(st.integers(1, 2)), draw(st.integers(1, 3))
        C = G * Cg
    K = G * Kg
    if kind == "pointwise":
        ks = (1,) * nd
        pad = (0,) * nd
        dil = (1,) * nd
    elif kind == "dense":
        ks = tuple(draw(st.integers(1, 4)) for _ in range(nd))
        pad, dil = (0,) * nd, (1,) * nd
    else:
        ks = tuple(draw(st.integers(1, 3)) for _ in range(nd))
        dil = tuple(draw(st.integers(1, 2)) for _ in range(nd))
        pad = tuple(draw(st.integers(0, 2)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    spatial = []
    for k, d, p in zip(ks, dil, pad):
        eff = d * (k - 1) + 1
        spatial.append(max(1, eff - 2 * p) + (0 if kind == "dense" else draw(st.integers(0, 4))))
    x = draw(arrays((N, C) + tuple(spatial)))
    w = draw(arrays((K, Cg) + ks))
    b = draw(arrays((K,))) if draw(st.booleans()) else None
    kw = {"stride": stride if draw(st.booleans()) else stride[0] if len(set(stride)) == 1
          else stride, "dilation": dil, "groups": G}
    if all(s == 1 for s in stride) and kind != "dense" and draw(st.integers(0, 3)) == 0:
        kw["padding"] = draw(st.sampled_from(["same", "valid"]))
        if kw["padding"] == "valid":  # the kernel must fit without padding
            spatial = [max(s, d * (k - 1) + 1) for s, k, d in zip(spatial, ks, dil)]
            x = draw(arrays((N, C) + tuple(spatial)))
    else:
        kw["padding"] = pad
    return Sample((x, w, b), kw)


@st.composite
def conv_transpose_sample(draw, nd=2, dense=False):
    """dense: a 1-pixel input and no padding, so the adjoint conv's one window covers the
    output (DCGAN's first generator layer; the CPU's 'dense' algorithm)."""
    N = draw(st.integers(1, 2))
    G = 1 if dense else draw(st.integers(1, 2))
    Cin, Cout_g = G * draw(st.integers(1, 2)), draw(st.integers(1, 2))
    ks = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dil = (1,) * nd if dense else tuple(draw(st.integers(1, 2)) for _ in range(nd))
    outpad = (0,) * nd if dense else \
        tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dil))
    spatial, pad = [], []
    for k, s, d, o in zip(ks, stride, dil, outpad):
        i = 1 if dense else draw(st.integers(1, 4))
        full = (i - 1) * s + d * (k - 1) + o + 1
        pad.append(0 if dense else draw(st.integers(0, max(0, (full - 1) // 2))))
        spatial.append(i)
    x = draw(arrays((N, Cin) + tuple(spatial)))
    w = draw(arrays((Cin, Cout_g) + ks))
    b = draw(arrays((G * Cout_g,))) if draw(st.booleans()) else None
    return Sample((x, w, b), {"stride": stride, "padding": tuple(pad), "output_padding": outpad,
                              "groups": G, "dilation": dil})


def _a(*shape):
    return np.random.default_rng(0).standard_normal(shape)


CONV2D_ERRORS = [
    ErrorCase((_a(1, 3, 8, 8), _a(16, 4, 3, 3)), {}, ValueError,
              r"conv2d: Given groups=1, weight of size \[16, 4, 3, 3\], expected "
              r"input\[1, 3, 8, 8\] to have 4 channels, but got 3 channels instead", "channels"),
    ErrorCase((_a(1, 4, 8, 8), _a(6, 2, 3, 3)), {"groups": 4}, ValueError,
              r"conv2d: Given groups=4, expected weight to be divisible by 4", "groups-weight"),
    ErrorCase((_a(1, 6, 8, 8), _a(6, 2, 3, 3)), {"groups": 2}, ValueError,
              r"expected input\[1, 6, 8, 8\] to have 4 channels", "groups-channels"),
    ErrorCase((_a(1, 2, 2, 2), _a(3, 2, 3, 3)), {}, ValueError,
              r"Calculated padded input size per channel: \(2 x 2\). Kernel size: \(3 x 3\)",
              "kernel-too-large"),
    ErrorCase((_a(1, 2, 4, 4), _a(3, 2, 3, 3)), {"dilation": 2, "padding": 0}, ValueError,
              r"padded input size per channel: \(4 x 4\). Kernel size: \(5 x 5\). "
              r"Kernel size can't be greater", "dilated-too-large"),
    ErrorCase((_a(1, 2, 5, 5), _a(3, 2, 3, 3)), {"stride": 0}, ValueError,
              r"conv2d: non-positive stride", "stride-0"),
    ErrorCase((_a(1, 2, 5, 5), _a(3, 2, 3, 3)), {"stride": (1, -1)}, ValueError,
              r"non-positive stride", "stride-neg"),
    ErrorCase((_a(1, 2, 5, 5), _a(3, 2, 3, 3)), {"dilation": 0}, ValueError,
              r"conv2d: dilation should be greater than zero", "dilation-0"),
    ErrorCase((_a(1, 2, 5, 5), _a(3, 2, 3, 3)), {"padding": -1}, ValueError,
              r"conv2d: negative padding is not supported", "padding-neg"),
    ErrorCase((_a(1, 2, 5, 5), _a(3, 2, 3, 3)), {"padding": "same", "stride": 2}, ValueError,
              r"padding='same' is not supported for strided convolutions", "same-stride"),
    ErrorCase((_a(1, 2, 5, 5), _a(3, 2, 3, 3)), {"padding": "full"}, ValueError,
              r"invalid padding string", "padding-str"),
    ErrorCase((_a(2, 5, 5), _a(3, 2, 3, 3)), {}, ValueError,
              r"conv2d: expected a 4-D input .* input of size \[2, 5, 5\]", "3d-input"),
    ErrorCase((_a(1, 2, 5, 5), _a(3, 2, 3)), {}, ValueError,
              r"conv2d: expected a 4-D weight", "3d-weight"),
    ErrorCase((_a(1, 2, 5, 5), _a(3, 2, 3, 3), _a(4)), {}, ValueError,
              r"conv2d: expected bias of size \[3\], but got bias of size \[4\]", "bias"),
    ErrorCase((_a(1, 2, 5, 5), _a(3, 2, 3, 3).astype(np.float32)), {}, TypeError,
              r"conv2d: input \(float64\) and weight \(float32\) must have the same dtype",
              "dtype"),
    ErrorCase((_a(1, 2, 5, 5), _a(3, 2, 3, 3)), {"groups": 0}, ValueError,
              r"non-positive groups", "groups-0"),
]

CONV1D_ERRORS = [
    ErrorCase((_a(1, 3, 8), _a(16, 4, 3)), {}, ValueError,
              r"conv1d: Given groups=1, weight of size \[16, 4, 3\], expected input\[1, 3, 8\] "
              r"to have 4 channels, but got 3 channels instead", "channels"),
    ErrorCase((_a(3, 8), _a(16, 3, 3)), {}, ValueError, r"conv1d: expected a 3-D input",
              "2d-input"),
]

CONVT_ERRORS = [
    ErrorCase((_a(1, 3, 4, 4), _a(4, 2, 3, 3)), {}, ValueError,
              r"conv_transpose2d: Given transposed=1, weight of size \[4, 2, 3, 3\], expected "
              r"input\[1, 3, 4, 4\] to have 4 channels, but got 3 channels instead", "channels"),
    ErrorCase((_a(1, 4, 4, 4), _a(4, 2, 3, 3)), {"stride": 2, "output_padding": 2}, ValueError,
              r"output padding must be smaller than either stride or dilation", "outpad"),
    ErrorCase((_a(1, 3, 4, 4), _a(3, 2, 3, 3)), {"groups": 2}, ValueError,
              r"groups=2 must divide the input channels \(3\)", "groups"),
    ErrorCase((_a(1, 4, 4, 4), _a(4, 2, 3, 3)), {"stride": 0}, ValueError,
              r"non-positive stride", "stride-0"),
    ErrorCase((_a(4, 4, 4), _a(4, 2, 3, 3)), {}, ValueError, r"expected a 4-D input",
              "3d-input"),
    ErrorCase((_a(1, 4, 1, 1), _a(4, 2, 3, 3)), {"padding": 2}, ValueError,
              r"output size .* is too small", "too-small"),
]

OPS = [
    OpInfo("conv2d", F.conv2d, _torch_conv("conv2d"), conv_sample(), CONV2D_ERRORS),
    # the small stride-1 samples above take the CPU's direct kernel; these take im2col_gemm
    OpInfo("conv2d_im2col", F.conv2d, _torch_conv("conv2d"), conv_sample(kind="plain"),
           setting=conv_direct_off),
    OpInfo("conv2d_depthwise", F.conv2d, _torch_conv("conv2d"), conv_sample(kind="depthwise")),
    OpInfo("conv2d_pointwise", F.conv2d, _torch_conv("conv2d"), conv_sample(kind="pointwise")),
    OpInfo("conv2d_dense", F.conv2d, _torch_conv("conv2d"), conv_sample(kind="dense")),
    OpInfo("conv1d", F.conv1d, _torch_conv("conv1d"), conv_sample(nd=1), CONV1D_ERRORS),
    OpInfo("conv_transpose2d", F.conv_transpose2d, _torch_conv("conv_transpose2d"),
           conv_transpose_sample(), CONVT_ERRORS),
    OpInfo("conv_transpose2d_im2col", F.conv_transpose2d, _torch_conv("conv_transpose2d"),
           conv_transpose_sample(), setting=conv_direct_off),
    OpInfo("conv_transpose2d_dense", F.conv_transpose2d, _torch_conv("conv_transpose2d"),
           conv_transpose_sample(dense=True)),
    OpInfo("conv_transpose1d", F.conv_transpose1d, _torch_conv("conv_transpose1d"),
           conv_transpose_sample(nd=1)),
]
