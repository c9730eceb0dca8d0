"""make_grid and save_image, torchvision.utils' two image helpers, with its arguments and layout.

    grid = make_grid(images, nrow=8, padding=2, normalize=False, value_range=None,
                     scale_each=False, pad_value=0.0)       # (C, H', W') Tensor
    save_image(images, "samples.png", normalize=True)       # the grid as a PNG (or JPEG, ...)

They work on values (outside the autograd graph). save_image writes through Pillow, imported on
first use: `pip install "minicnn[image]"` (Pillow is lighter than matplotlib, which needs it).
"""
import math
import os

import numpy

from .. import devices
from ..tensor import Tensor


def _array(x):
    if isinstance(x, Tensor):
        return devices.to_numpy(x.array)
    return devices.to_numpy(x) if devices.is_cuda_array(x) else numpy.asarray(x)


def _as_batch(tensor):
    """A float (N, C, H, W) array from a Tensor/array of 2, 3 or 4 dims, or a list of images."""
    if isinstance(tensor, (list, tuple)):
        if not tensor:
            raise ValueError("make_grid: got an empty list of images")
        shapes = {_array(t).shape for t in tensor}
        if len(shapes) > 1:
            raise ValueError(f"make_grid: the images have different shapes {sorted(shapes)}")
        a = numpy.stack([_array(t) for t in tensor])
    elif isinstance(tensor, Tensor) or hasattr(tensor, "shape"):
        a = _array(tensor)
    else:
        raise TypeError(f"make_grid: expected a Tensor, an array or a list of them, got "
                        f"{type(tensor).__name__}")
    if a.ndim == 2:                          # one grey image (H, W)
        a = a[None, None]
    elif a.ndim == 3:                        # one image (C, H, W)
        a = a[None]
    if a.ndim != 4:
        raise ValueError(f"make_grid: expected images (N, C, H, W), (C, H, W) or (H, W), got "
                         f"shape {list(a.shape)}")
    if a.shape[1] == 1:                      # grey to RGB, as torchvision
        a = numpy.concatenate([a, a, a], axis=1)
    return a.astype(numpy.float32) if a.dtype.kind != "f" else a.copy()


def _scale(a, low, high):
    numpy.clip(a, low, high, out=a)
    a -= low
    a /= max(high - low, 1e-5)


def make_grid(tensor, nrow=8, padding=2, normalize=False, value_range=None, scale_each=False,
              pad_value=0.0):
    """Images (N, C, H, W) laid out in a grid of `nrow` images per row, `padding` pixels of
    `pad_value` around each. normalize=True scales values to [0, 1] by `value_range` (low, high)
    or by the images' min and max (each image's own with scale_each). Returns a (C, H', W')
    Tensor; one image comes back as it is (normalized)."""
    if isinstance(nrow, bool) or not isinstance(nrow, int) or nrow < 1:
        raise ValueError(f"make_grid: nrow must be a positive int, got {nrow!r}")
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"make_grid: padding must be a non-negative int, got {padding!r}")
    if value_range is not None and (not isinstance(value_range, (tuple, list))
                                    or len(value_range) != 2):
        raise ValueError(f"make_grid: value_range must be a (low, high) pair, got "
                         f"{value_range!r}")
    a = _as_batch(tensor)
    if normalize:
        for part in (a if scale_each else [a]):
            low, high = value_range if value_range is not None else \
                (float(part.min()), float(part.max()))
            _scale(part, float(low), float(high))
    if a.shape[0] == 1:
        return Tensor(a[0])
    n, c, h, w = a.shape
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    cell_h, cell_w = h + padding, w + padding
    grid = numpy.full((c, rows * cell_h + padding, cols * cell_w + padding), pad_value, a.dtype)
    for k in range(n):
        y, x = divmod(k, cols)
        grid[:, y * cell_h + padding:(y + 1) * cell_h, x * cell_w + padding:(x + 1) * cell_w] = a[k]
    return Tensor(grid)


def _pillow():
    try:
        from PIL import Image  # noqa: PLC0415 -- optional dependency
    except ImportError:
        raise ImportError("save_image writes images with Pillow, which is not installed: "
                          "pip install \"minicnn[image]\" (or pillow)") from None
    return Image


def save_image(tensor, fp, format=None, **kwargs):  # noqa: A002 -- torchvision's argument
    """Save images as one picture: make_grid(tensor, **kwargs), values in [0, 1] scaled to
    0..255. `fp` is a path or a binary file; `format` ('PNG', 'JPEG', ...) defaults to the path's
    extension."""
    grid = make_grid(tensor, **kwargs).array
    pixels = numpy.clip(grid * 255 + 0.5, 0, 255).astype(numpy.uint8).transpose(1, 2, 0)
    if pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    elif pixels.shape[2] not in (3, 4):
        raise ValueError(f"save_image: images need 1, 3 or 4 channels to be saved, got "
                         f"{pixels.shape[2]}")
    image = _pillow().fromarray(numpy.ascontiguousarray(pixels))
    if isinstance(fp, (str, os.PathLike)) and format is None and not os.path.splitext(fp)[1]:
        raise ValueError(f"save_image: cannot tell the image format of {os.fspath(fp)!r}; give "
                         "the file an extension (.png) or pass format='PNG'")
    image.save(fp, format=format)
