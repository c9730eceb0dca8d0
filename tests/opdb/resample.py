"""Op table entries for F.interpolate, one per mode (nearest, nearest-exact, linear, bilinear,
bicubic, trilinear, area), with size or scale_factor, align_corners and
recompute_scale_factor drawn."""
import math

import numpy as np
from hypothesis import strategies as st

import minicnn.functional as F
from minicnn.testing.strategies import arrays

from . import ErrorCase, OpInfo, Sample

DIMS = {"nearest": (1, 2, 3), "nearest-exact": (1, 2, 3), "area": (1, 2, 3), "linear": (1,),
        "bilinear": (2,), "bicubic": (2,), "trilinear": (3,)}
SCALES = [0.5, 0.7, 1.0, 1.5, 2.0, 2.1, 3.0]


def _torch_bug(mode, dims, n, scale):
    """PyTorch's 1-D and 3-D nearest backward takes out == in and out == 2 in as exact copies
    where its forward uses the scale factor (its own gradcheck fails there;
    tests/test_torch_semantics.py): such samples are not drawn."""
    out = math.floor(n * scale)
    return mode == "nearest" and dims != 2 and out in (n, 2 * n) and scale not in (1.0, 2.0)


@st.composite
def interpolate_sample(draw, mode):
    dims = draw(st.sampled_from(DIMS[mode]))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) + tuple(
        draw(st.integers(1, 5 if dims < 3 else 3)) for _ in range(dims))
    kw = {"mode": mode}
    scales = [draw(st.sampled_from(SCALES)) for _ in range(dims)]
    if draw(st.booleans()) or any(math.floor(n * s) < 1 or _torch_bug(mode, dims, n, s)
                                  for n, s in zip(shape[2:], scales)):
        size = tuple(draw(st.integers(1, 7 if dims < 3 else 4)) for _ in range(dims))
        kw["size"] = size[0] if dims == 1 and draw(st.booleans()) else size
    else:
        kw["scale_factor"] = scales[0] if len(set(scales)) == 1 and draw(st.booleans()) \
            else tuple(scales)
        if draw(st.integers(0, 3)) == 0:
            kw["recompute_scale_factor"] = True
    if mode in ("linear", "bilinear", "bicubic", "trilinear"):
        kw["align_corners"] = draw(st.booleans())
    return Sample((draw(arrays(shape)),), kw)


def a64(*shape):
    return np.random.default_rng(1).uniform(-2, 2, size=shape)


ERRORS = [
    ErrorCase((a64(1, 1, 4),), {"mode": "bilinear", "size": 3}, ValueError,
              "interpolate: got 3D input, but bilinear mode needs 4D input"),
    ErrorCase((a64(1, 1, 4),), {"mode": "nearest", "size": 3, "align_corners": True}, ValueError,
              "interpolate: align_corners option can only be set with the interpolating modes"),
    ErrorCase((a64(1, 1, 4),), {"mode": "nearest"}, ValueError,
              "interpolate: either size or scale_factor should be defined"),
    ErrorCase((a64(1, 1, 4),), {"mode": "nearest", "size": 2, "scale_factor": 2.0}, ValueError,
              "interpolate: only one of size or scale_factor should be defined"),
    ErrorCase((a64(1, 1, 4, 4),), {"mode": "nearest", "size": (2, 2, 2)}, ValueError,
              "interpolate: Input and output must have the same number of spatial dimensions"),
    ErrorCase((a64(1, 1, 4),), {"mode": "cubic", "size": 3}, ValueError,
              "interpolate: mode must be one of"),
    ErrorCase((a64(1, 1, 4),), {"mode": "linear", "scale_factor": 0.1}, ValueError,
              "interpolate: input and output sizes should be greater than 0"),
]

OPS = [OpInfo(f"interpolate_{mode}", op=lambda x, **kw: F.interpolate(x, **kw),
              ref=lambda t, x, **kw: t.nn.functional.interpolate(x, **kw),
              samples=interpolate_sample(mode), errors=ERRORS if mode == "nearest" else [])
       for mode in DIMS]
