"""Image transforms on whole NumPy batches (N, C, H, W), vectorized over the batch.

    from minicnn.data import transforms as T
    aug = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(),
                     T.ColorJitter(0.2, 0.2, 0.2, 0.05), T.Normalize(mean, std)])
    batch = aug(images)          # images: float32 (N, C, H, W) in [0, 1]

Every transform also takes a single image (C, H, W) and a minicnn Tensor (CPU). Random
transforms draw per-sample parameters from the data generator (minicnn.data._random: the
framework's CPU generator, or the DataLoader's per-epoch generator), so `mc.manual_seed` makes
them repeatable; pass `generator=` to a transform to give it its own.

Geometry uses pixel-centre coordinates: pixel (i, j) covers [j, j+1) x [i, i+1) and its centre is
(j + 0.5, i + 0.5); the image centre is (W/2, H/2). Warps (rotation, affine, resized crop) sample
bilinearly (or nearest) with `fill` outside the image. Colour transforms assume values in [0, 1]
and clip to it.
"""
import math
import numbers

import numpy

from ..tensor import Tensor
from . import _random

__all__ = ["Compose", "Lambda", "ToTensor", "Normalize", "Resize", "CenterCrop", "Pad",
           "RandomHorizontalFlip", "RandomVerticalFlip", "RandomCrop", "RandomResizedCrop",
           "RandomRotation", "RandomAffine", "ColorJitter", "GaussianNoise", "RandomErasing",
           "Cutout", "mixup", "cutmix", "mixed_targets", "resize", "warp_affine"]


# --- helpers ------------------------------------------------------------------------------------

def _pair(v, name):
    if isinstance(v, numbers.Number):
        return int(v), int(v)
    if len(v) != 2:
        raise ValueError(f"{name}: expected an int or a pair (h, w), got {v!r}")
    return int(v[0]), int(v[1])


def _range(v, name, center=None, low=None):
    """A number d -> (center-d, center+d) (or (-d, d)); a pair stays a pair."""
    if v is None:
        return None
    if isinstance(v, numbers.Number):
        if v < 0:
            raise ValueError(f"{name}: if it is a single number it must be non-negative, got {v}")
        c = 0.0 if center is None else center
        lo = c - v if low is None else max(low, c - v)
        return float(lo), float(c + v)
    if len(v) != 2 or v[0] > v[1]:
        raise ValueError(f"{name}: expected a number or a (min, max) pair with min <= max, got "
                         f"{v!r}")
    return float(v[0]), float(v[1])


class Transform:
    """Base class. Subclasses implement `apply(x, rng)` on a float batch (N, C, H, W)."""

    batched = True

    def __init__(self, generator=None):
        self.generator = generator

    def _rng(self):
        return _random.resolve(self.generator)

    def __call__(self, x):
        was_tensor = isinstance(x, Tensor)
        a = x.array if was_tensor else numpy.asarray(x)
        single = a.ndim == 3
        if single:
            a = a[None]
        if a.ndim != 4:
            raise ValueError(f"{type(self).__name__}: expected an image batch (N, C, H, W) or an "
                             f"image (C, H, W), got shape {list(a.shape)}")
        out = self.apply(a, self._rng())
        if single:
            out = out[0]
        return Tensor(out) if was_tensor else out

    def apply(self, x, rng):
        raise NotImplementedError

    def _params(self):
        return {k: v for k, v in vars(self).items() if k != "generator"}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({args})"


def _float(x):
    return x if x.dtype.kind == "f" else x.astype(numpy.float32)


def _select(rng, n, p):
    """A boolean mask of the samples a transform with probability p applies to."""
    if p >= 1:
        return numpy.ones(n, bool)
    if p <= 0:
        return numpy.zeros(n, bool)
    return rng.random(n) < p


# --- sampling: the one warp every geometric transform uses -------------------------------------

def warp_affine(x, matrices, out_size=None, mode="bilinear", fill=0.0, padding_mode="constant"):
    """Sample x (N, C, H, W) through per-sample affine maps.

    matrices: (N, 2, 3) or (N, 3, 3) mapping OUTPUT pixel coordinates (x, y) to SOURCE
    coordinates (pixel-centre convention); out_size: (OH, OW), default (H, W).
    mode: 'bilinear' or 'nearest'; outside the image: `fill` (padding_mode='constant') or the
    nearest edge pixel (padding_mode='edge').
    """
    x = _float(x)
    n, c, h, w = x.shape
    oh, ow = (h, w) if out_size is None else _pair(out_size, "warp_affine")
    m = numpy.asarray(matrices, dtype=numpy.float64)
    if m.shape[0] != n:
        raise ValueError(f"warp_affine: {m.shape[0]} matrices for a batch of {n}")
    oy, ox = numpy.meshgrid(numpy.arange(oh) + 0.5, numpy.arange(ow) + 0.5, indexing="ij")
    ox, oy = ox.ravel(), oy.ravel()                                  # (OH*OW,)
    sx = m[:, 0, 0, None] * ox + m[:, 0, 1, None] * oy + m[:, 0, 2, None] - 0.5   # (N, OH*OW)
    sy = m[:, 1, 0, None] * ox + m[:, 1, 1, None] * oy + m[:, 1, 2, None] - 0.5
    # pad by one pixel so every out-of-range corner reads the fill (or the edge) value
    if padding_mode == "edge":
        padded = numpy.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
    elif padding_mode == "constant":
        padded = numpy.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="constant",
                           constant_values=fill)
    else:
        raise ValueError(f"warp_affine: padding_mode must be 'constant' or 'edge', got "
                         f"{padding_mode!r}")
    flat = padded.reshape(n, c, (h + 2) * (w + 2))                  # (N, C, (H+2)*(W+2))

    def gather(iy, ix):
        iy = numpy.clip(iy, -1, h) + 1
        ix = numpy.clip(ix, -1, w) + 1
        idx = (iy * (w + 2) + ix)[:, None, :]                       # (N, 1, OH*OW)
        return numpy.take_along_axis(flat, numpy.broadcast_to(idx, (n, c, idx.shape[2])), axis=2)

    if mode == "nearest":
        out = gather(numpy.floor(sy + 0.5).astype(numpy.int64),
                     numpy.floor(sx + 0.5).astype(numpy.int64))
    elif mode == "bilinear":
        x0, y0 = numpy.floor(sx), numpy.floor(sy)
        wx, wy = (sx - x0)[:, None, :], (sy - y0)[:, None, :]
        x0, y0 = x0.astype(numpy.int64), y0.astype(numpy.int64)
        out = ((gather(y0, x0) * (1 - wx) + gather(y0, x0 + 1) * wx) * (1 - wy)
               + (gather(y0 + 1, x0) * (1 - wx) + gather(y0 + 1, x0 + 1) * wx) * wy)
    else:
        raise ValueError(f"warp_affine: mode must be 'bilinear' or 'nearest', got {mode!r}")
    return out.reshape(n, c, oh, ow).astype(x.dtype, copy=False)


def _inverse_about_center(linear, translate, h, w):
    """Source <- output maps for `out = linear @ (src - c) + c + translate`, batched."""
    n = linear.shape[0]
    inv = numpy.linalg.inv(linear)                                   # (N, 2, 2)
    c = numpy.array([w / 2.0, h / 2.0])
    m = numpy.zeros((n, 2, 3))
    m[:, :, :2] = inv
    # src = inv @ (out - c - t) + c = inv @ out + (c - inv @ (c + t))
    m[:, :, 2] = c - numpy.einsum("nij,nj->ni", inv, c[None] + translate)
    return m


def _rotation(deg):
    a = numpy.deg2rad(deg)
    cos, sin = numpy.cos(a), numpy.sin(a)
    # counter-clockwise as seen on screen (y points down), as torchvision's rotate
    return numpy.stack([numpy.stack([cos, sin], -1), numpy.stack([-sin, cos], -1)], -2)


def resize(x, size, mode="bilinear"):
    """Resize a batch (N, C, H, W) to `size` (int or (h, w)); bilinear with half-pixel centres
    (PyTorch's interpolate(mode='bilinear', align_corners=False) when upsampling)."""
    x = _float(numpy.asarray(x))
    n, _, h, w = x.shape
    oh, ow = _pair(size, "resize")
    m = numpy.zeros((n, 2, 3))
    m[:, 0, 0], m[:, 1, 1] = w / ow, h / oh
    return warp_affine(x, m, (oh, ow), mode=mode, padding_mode="edge")


# --- deterministic transforms -------------------------------------------------------------------

class Compose(Transform):
    """Apply transforms in order."""

    def __init__(self, transforms):
        super().__init__()
        self.transforms = list(transforms)

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self):
        inner = "".join(f"\n    {t!r}," for t in self.transforms)
        return f"Compose([{inner}\n])"


class Lambda(Transform):
    """Wrap a function of the batch."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def apply(self, x, rng):
        return self.fn(x)


class ToTensor(Transform):
    """uint8 images -> float32 in [0, 1]; (N, H, W, C) channels-last -> (N, C, H, W); (N, H, W)
    grey -> (N, 1, H, W); returns a minicnn Tensor (float arrays keep their values).

    layout: 'auto' (channels-last when the last axis has 1, 3 or 4 entries and the channel axis
    does not, or when both could be channels and the data is uint8), 'NCHW' or 'NHWC'.
    """

    def __init__(self, layout="auto"):
        super().__init__()
        if layout not in ("auto", "NCHW", "NHWC"):
            raise ValueError(f"ToTensor: layout must be 'auto', 'NCHW' or 'NHWC', got {layout!r}")
        self.layout = layout

    def _channels_last(self, a):
        if self.layout != "auto":
            return self.layout == "NHWC"
        # channels-last when the last axis looks like channels and the channel axis does not
        # (or, when both could be, for uint8 data: files and PIL give (H, W, C) bytes)
        return a.shape[-1] in (1, 3, 4) and (a.shape[-3] not in (1, 3, 4)
                                             or a.dtype == numpy.uint8)

    def __call__(self, x):
        a = x.array if isinstance(x, Tensor) else numpy.asarray(x)
        if a.ndim == 2:                                             # (H, W) -> (1, H, W)
            return Tensor(self._scale(a[None]))
        if a.ndim == 3:
            if self._channels_last(a):                              # (H, W, C) -> (C, H, W)
                return Tensor(self._scale(a.transpose(2, 0, 1)))
            if self.layout == "auto" and a.shape[0] not in (1, 3, 4):
                return Tensor(self._scale(a[:, None]))              # (N, H, W) -> (N, 1, H, W)
            return Tensor(self._scale(a))                           # (C, H, W)
        if a.ndim != 4:
            raise ValueError(f"ToTensor: expected images (N, C, H, W), (N, H, W, C), (N, H, W) or "
                             f"one image, got shape {list(a.shape)}")
        if self._channels_last(a):
            a = a.transpose(0, 3, 1, 2)                             # (N, H, W, C) -> (N, C, H, W)
        return Tensor(self._scale(a))

    @staticmethod
    def _scale(a):
        if a.dtype == numpy.uint8:
            return numpy.ascontiguousarray(a, dtype=numpy.float32) / numpy.float32(255)
        return numpy.ascontiguousarray(a, dtype=numpy.float32 if a.dtype.kind != "f" else a.dtype)


class Normalize(Transform):
    """(x - mean) / std per channel."""

    def __init__(self, mean, std):
        super().__init__()
        self.mean = [float(v) for v in numpy.atleast_1d(mean)]
        self.std = [float(v) for v in numpy.atleast_1d(std)]
        if any(s == 0 for s in self.std):
            raise ValueError(f"Normalize: std evaluated to zero ({self.std}), leading to division "
                             "by zero")

    def apply(self, x, rng):
        x = _float(x)
        c = x.shape[1]
        if len(self.mean) not in (1, c) or len(self.std) not in (1, c):
            raise ValueError(f"Normalize: {len(self.mean)} means / {len(self.std)} stds for "
                             f"images with {c} channels")
        mean = numpy.asarray(self.mean, x.dtype).reshape(1, -1, 1, 1)
        std = numpy.asarray(self.std, x.dtype).reshape(1, -1, 1, 1)
        return (x - mean) / std


class Resize(Transform):
    """Resize to `size` (int or (h, w)), bilinear."""

    def __init__(self, size, mode="bilinear"):
        super().__init__()
        self.size, self.mode = _pair(size, "Resize"), mode

    def apply(self, x, rng):
        return resize(x, self.size, self.mode)


class CenterCrop(Transform):
    def __init__(self, size):
        super().__init__()
        self.size = _pair(size, "CenterCrop")

    def apply(self, x, rng):
        h, w = x.shape[2:]
        ch, cw = self.size
        if ch > h or cw > w:
            raise ValueError(f"CenterCrop: crop size {list(self.size)} is larger than the image "
                             f"[{h}, {w}]")
        top, left = (h - ch) // 2, (w - cw) // 2
        return x[:, :, top:top + ch, left:left + cw].copy()


class Pad(Transform):
    def __init__(self, padding, fill=0.0, padding_mode="constant"):
        super().__init__()
        self.padding, self.fill, self.padding_mode = int(padding), fill, padding_mode

    def apply(self, x, rng):
        p = self.padding
        kw = {"constant_values": self.fill} if self.padding_mode == "constant" else {}
        return numpy.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), mode=self.padding_mode, **kw)


# --- random geometric transforms ----------------------------------------------------------------

class RandomHorizontalFlip(Transform):
    """Mirror left-right each image with probability p."""

    def __init__(self, p=0.5, generator=None):
        super().__init__(generator)
        self.p = float(p)

    def apply(self, x, rng):
        flip = _select(rng, x.shape[0], self.p)
        out = x.copy()
        out[flip] = x[flip][..., ::-1]
        return out


class RandomVerticalFlip(RandomHorizontalFlip):
    """Mirror top-bottom each image with probability p."""

    def apply(self, x, rng):
        flip = _select(rng, x.shape[0], self.p)
        out = x.copy()
        out[flip] = x[flip][..., ::-1, :]
        return out


class RandomCrop(Transform):
    """Pad by `padding` (fill or 'reflect'/'edge'), then crop `size` at a random place per image."""

    def __init__(self, size, padding=0, fill=0.0, padding_mode="constant", generator=None):
        super().__init__(generator)
        self.size = _pair(size, "RandomCrop")
        self.padding, self.fill, self.padding_mode = int(padding), fill, padding_mode

    def apply(self, x, rng):
        p = self.padding
        if p:
            kw = {"constant_values": self.fill} if self.padding_mode == "constant" else {}
            x = numpy.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), mode=self.padding_mode, **kw)
        n, c, h, w = x.shape
        ch, cw = self.size
        if ch > h or cw > w:
            raise ValueError(f"RandomCrop: crop size {list(self.size)} is larger than the padded "
                             f"image [{h}, {w}]")
        top = rng.integers(0, h - ch + 1, n)
        left = rng.integers(0, w - cw + 1, n)
        rows = (top[:, None] + numpy.arange(ch))[:, None, :, None]       # (N, 1, CH, 1)
        cols = (left[:, None] + numpy.arange(cw))[:, None, None, :]      # (N, 1, 1, CW)
        return x[numpy.arange(n)[:, None, None, None], numpy.arange(c)[None, :, None, None],
                 rows, cols]


class RandomResizedCrop(Transform):
    """Crop a random area fraction (`scale`) and aspect ratio (`ratio`), resize to `size`."""

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), mode="bilinear",
                 generator=None):
        super().__init__(generator)
        self.size = _pair(size, "RandomResizedCrop")
        self.scale, self.ratio, self.mode = tuple(scale), tuple(ratio), mode

    def apply(self, x, rng):
        n, _, h, w = x.shape
        tries = 10
        area = h * w * rng.uniform(*self.scale, (n, tries))
        logr = rng.uniform(math.log(self.ratio[0]), math.log(self.ratio[1]), (n, tries))
        ar = numpy.exp(logr)
        cw = numpy.sqrt(area * ar)
        ch = numpy.sqrt(area / ar)
        ok = (cw <= w) & (ch <= h)
        first = numpy.argmax(ok, axis=1)
        has = ok[numpy.arange(n), first]
        cw = numpy.where(has, cw[numpy.arange(n), first], w)        # fall back to the whole image
        ch = numpy.where(has, ch[numpy.arange(n), first], h)
        left = rng.uniform(0, 1, n) * (w - cw)
        top = rng.uniform(0, 1, n) * (h - ch)
        oh, ow = self.size
        m = numpy.zeros((n, 2, 3))
        m[:, 0, 0], m[:, 0, 2] = cw / ow, left
        m[:, 1, 1], m[:, 1, 2] = ch / oh, top
        return warp_affine(x, m, (oh, ow), mode=self.mode, padding_mode="edge")


class RandomAffine(Transform):
    """Random rotation (degrees), translation (fractions of width/height), scale and shear
    (degrees, x or (x_min, x_max) or (x_min, x_max, y_min, y_max)) about the image centre."""

    def __init__(self, degrees=0, translate=None, scale=None, shear=None, mode="bilinear",
                 fill=0.0, generator=None):
        super().__init__(generator)
        self.degrees = _range(degrees, "RandomAffine degrees")
        self.translate = None if translate is None else tuple(float(t) for t in translate)
        if self.translate is not None and (len(self.translate) != 2 or
                                           not all(0 <= t <= 1 for t in self.translate)):
            raise ValueError(f"RandomAffine: translate must be (a, b) with 0 <= a, b <= 1, got "
                             f"{translate!r}")
        self.scale = None if scale is None else _range(scale, "RandomAffine scale")
        if self.scale is not None and self.scale[0] <= 0:
            raise ValueError(f"RandomAffine: scale values must be positive, got {scale!r}")
        if shear is None:
            self.shear = None
        elif isinstance(shear, numbers.Number):
            self.shear = (-float(shear), float(shear), 0.0, 0.0)
        elif len(shear) == 2:
            self.shear = (float(shear[0]), float(shear[1]), 0.0, 0.0)
        elif len(shear) == 4:
            self.shear = tuple(float(s) for s in shear)
        else:
            raise ValueError(f"RandomAffine: shear must be a number or a sequence of 2 or 4, got "
                             f"{shear!r}")
        self.mode, self.fill = mode, fill

    def _linear(self, rng, n, h, w):
        angle = rng.uniform(*self.degrees, n) if self.degrees else numpy.zeros(n)
        lin = _rotation(angle)
        if self.shear is not None:
            shx = numpy.tan(numpy.deg2rad(rng.uniform(self.shear[0], self.shear[1], n)))
            shy = numpy.tan(numpy.deg2rad(rng.uniform(self.shear[2], self.shear[3], n)))
            sh = numpy.zeros((n, 2, 2))
            sh[:, 0, 0] = sh[:, 1, 1] = 1
            sh[:, 0, 1], sh[:, 1, 0] = shx, shy
            lin = lin @ sh
        if self.scale is not None:
            lin = lin * rng.uniform(*self.scale, n)[:, None, None]
        t = numpy.zeros((n, 2))
        if self.translate is not None:
            t[:, 0] = rng.uniform(-1, 1, n) * self.translate[0] * w
            t[:, 1] = rng.uniform(-1, 1, n) * self.translate[1] * h
        return lin, t

    def apply(self, x, rng):
        n, _, h, w = x.shape
        lin, t = self._linear(rng, n, h, w)
        return warp_affine(x, _inverse_about_center(lin, t, h, w), mode=self.mode, fill=self.fill)


class RandomRotation(RandomAffine):
    """Rotate by an angle drawn from `degrees` (d -> (-d, d)), counter-clockwise on screen."""

    def __init__(self, degrees, mode="bilinear", fill=0.0, generator=None):
        super().__init__(degrees=degrees, mode=mode, fill=fill, generator=generator)


# --- colour and noise ---------------------------------------------------------------------------

def _gray(x):
    """Luminance (ITU-R 601-2, as torchvision) of (N, C, H, W) -> (N, 1, H, W)."""
    if x.shape[1] == 1:
        return x
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return 0.299 * r + 0.587 * g + 0.114 * b


def rgb_to_hsv(x):
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    maxc, minc = x.max(1), x.min(1)
    v = maxc
    delta = maxc - minc
    s = numpy.where(maxc > 0, delta / numpy.where(maxc > 0, maxc, 1), 0)
    d = numpy.where(delta > 0, delta, 1)
    rc, gc, bc = (maxc - r) / d, (maxc - g) / d, (maxc - b) / d
    h = numpy.where(maxc == r, bc - gc, numpy.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = numpy.where(delta > 0, (h / 6.0) % 1.0, 0.0)
    return numpy.stack([h, s, v], 1)


def hsv_to_rgb(x):
    h, s, v = x[:, 0], x[:, 1], x[:, 2]
    i = numpy.floor(h * 6.0)
    f = h * 6.0 - i
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    i = i.astype(numpy.int64) % 6
    r = numpy.choose(i, [v, q, p, p, t, v])
    g = numpy.choose(i, [t, v, v, q, p, p])
    b = numpy.choose(i, [p, p, t, v, v, q])
    return numpy.stack([r, g, b], 1)


class ColorJitter(Transform):
    """Random brightness, contrast, saturation (factors in [max(0, 1-v), 1+v]) and hue (shift in
    [-v, v], v <= 0.5), per image, applied in a random order per batch. Saturation and hue need
    3 channels and leave grey images unchanged."""

    def __init__(self, brightness=0, contrast=0, saturation=0, hue=0, generator=None):
        super().__init__(generator)
        self.brightness = _range(brightness, "ColorJitter brightness", center=1.0, low=0.0)
        self.contrast = _range(contrast, "ColorJitter contrast", center=1.0, low=0.0)
        self.saturation = _range(saturation, "ColorJitter saturation", center=1.0, low=0.0)
        self.hue = _range(hue, "ColorJitter hue")
        if self.hue is not None and not (-0.5 <= self.hue[0] <= self.hue[1] <= 0.5):
            raise ValueError(f"ColorJitter: hue values should be between (-0.5, 0.5), got {hue!r}")

    def apply(self, x, rng):
        x = _float(x)
        n = x.shape[0]
        out = x
        for op in rng.permutation(4):
            if op == 0 and self.brightness and self.brightness != (1.0, 1.0):
                f = rng.uniform(*self.brightness, n).astype(x.dtype)[:, None, None, None]
                out = numpy.clip(out * f, 0, 1)
            elif op == 1 and self.contrast and self.contrast != (1.0, 1.0):
                f = rng.uniform(*self.contrast, n).astype(x.dtype)[:, None, None, None]
                mean = _gray(out).mean(axis=(1, 2, 3), keepdims=True)
                out = numpy.clip(mean + f * (out - mean), 0, 1)
            elif op == 2 and self.saturation and self.saturation != (1.0, 1.0) and \
                    out.shape[1] == 3:
                f = rng.uniform(*self.saturation, n).astype(x.dtype)[:, None, None, None]
                g = _gray(out)
                out = numpy.clip(g + f * (out - g), 0, 1)
            elif op == 3 and self.hue and self.hue != (0.0, 0.0) and out.shape[1] == 3:
                shift = rng.uniform(*self.hue, n)[:, None, None]
                hsv = rgb_to_hsv(out)
                hsv[:, 0] = (hsv[:, 0] + shift) % 1.0
                out = hsv_to_rgb(hsv).astype(x.dtype)
        return out.astype(x.dtype, copy=False)


class GaussianNoise(Transform):
    """Add N(mean, std^2) noise per pixel (to each image with probability p); clip to `clip`
    (a (low, high) pair) if given."""

    def __init__(self, std=0.1, mean=0.0, p=1.0, clip=None, generator=None):
        super().__init__(generator)
        if std < 0:
            raise ValueError(f"GaussianNoise: std must be non-negative, got {std}")
        self.std, self.mean, self.p, self.clip = float(std), float(mean), float(p), clip

    def apply(self, x, rng):
        x = _float(x)
        sel = _select(rng, x.shape[0], self.p)[:, None, None, None]
        noise = rng.standard_normal(x.shape).astype(x.dtype) * self.std + self.mean
        out = x + noise * sel
        if self.clip is not None:
            out = numpy.clip(out, *self.clip)
        return out.astype(x.dtype, copy=False)


def _box_masks(rows_lo, rows_hi, cols_lo, cols_hi, h, w):
    """(N,) box bounds (half-open) -> boolean masks (N, 1, H, W)."""
    r = numpy.arange(h)
    c = numpy.arange(w)
    rm = (r[None] >= rows_lo[:, None]) & (r[None] < rows_hi[:, None])      # (N, H)
    cm = (c[None] >= cols_lo[:, None]) & (c[None] < cols_hi[:, None])      # (N, W)
    return (rm[:, :, None] & cm[:, None, :])[:, None]


class RandomErasing(Transform):
    """Erase a random rectangle (area fraction in `scale`, aspect ratio in `ratio`) with `value`
    (a number, per-channel values, or 'random' for normal noise), each image with probability p."""

    def __init__(self, p=0.5, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0.0, generator=None):
        super().__init__(generator)
        self.p, self.scale, self.ratio, self.value = float(p), tuple(scale), tuple(ratio), value

    def apply(self, x, rng):
        x = _float(x)
        n, c, h, w = x.shape
        area = h * w * rng.uniform(*self.scale, n)
        ar = numpy.exp(rng.uniform(math.log(self.ratio[0]), math.log(self.ratio[1]), n))
        eh = numpy.clip(numpy.round(numpy.sqrt(area * ar)), 1, h).astype(numpy.int64)
        ew = numpy.clip(numpy.round(numpy.sqrt(area / ar)), 1, w).astype(numpy.int64)
        top = (rng.uniform(0, 1, n) * (h - eh + 1)).astype(numpy.int64)
        left = (rng.uniform(0, 1, n) * (w - ew + 1)).astype(numpy.int64)
        mask = _box_masks(top, top + eh, left, left + ew, h, w)
        mask &= _select(rng, n, self.p)[:, None, None, None]
        if isinstance(self.value, str):
            if self.value != "random":
                raise ValueError(f"RandomErasing: value must be a number, a sequence or 'random', "
                                 f"got {self.value!r}")
            fill = rng.standard_normal(x.shape).astype(x.dtype)
        else:
            fill = numpy.asarray(self.value, x.dtype).reshape(1, -1, 1, 1) \
                if numpy.ndim(self.value) else numpy.asarray(self.value, x.dtype)
        return numpy.where(mask, fill, x).astype(x.dtype, copy=False)


class Cutout(Transform):
    """Blank `n_holes` squares of side `size` (centred anywhere, clipped at the border) with
    `fill`, each image with probability p (DeVries & Taylor, 2017)."""

    def __init__(self, size, n_holes=1, fill=0.0, p=1.0, generator=None):
        super().__init__(generator)
        self.size, self.n_holes, self.fill, self.p = int(size), int(n_holes), fill, float(p)

    def apply(self, x, rng):
        x = _float(x)
        n, c, h, w = x.shape
        mask = numpy.zeros((n, 1, h, w), bool)
        for _ in range(self.n_holes):
            cy, cx = rng.integers(0, h, n), rng.integers(0, w, n)
            half = self.size // 2
            mask |= _box_masks(cy - half, cy - half + self.size, cx - half, cx - half + self.size,
                               h, w)
        mask &= _select(rng, n, self.p)[:, None, None, None]
        return numpy.where(mask, numpy.asarray(self.fill, x.dtype), x)


# --- batch mixing -------------------------------------------------------------------------------

def _unwrap(x):
    return (x.array, True) if isinstance(x, Tensor) else (numpy.asarray(x), False)


def _index_like(perm, a):
    """The host permutation as an index for `a` (moved to the GPU for a CuPy batch: the mix
    then runs on the device, with the same draws as on the CPU)."""
    from ..devices import get_array_module  # noqa: PLC0415
    return get_array_module(a).asarray(perm)


def mixup(x, y, alpha=1.0, generator=None):
    """mixup (Zhang et al., 2018): x' = lam*x + (1-lam)*x[perm], lam ~ Beta(alpha, alpha).

    Returns (x', y, y[perm], lam); the loss is lam*loss(out, y) + (1-lam)*loss(out, y[perm])
    (or use mixed_targets for soft labels)."""
    rng = _random.resolve(generator)
    xa, was_tensor = _unwrap(x)
    ya, _ = _unwrap(y)
    lam = float(rng.beta(alpha, alpha)) if alpha > 0 else 1.0
    perm = _index_like(rng.permutation(len(xa)), xa)
    out = (lam * xa + (1 - lam) * xa[perm]).astype(xa.dtype, copy=False)
    yb = ya[perm]
    if was_tensor:
        return Tensor(out), Tensor(ya), Tensor(yb), lam
    return out, ya, yb, lam


def cutmix(x, y, alpha=1.0, generator=None):
    """CutMix (Yun et al., 2019): paste a box from x[perm] whose area is 1-lam; lam is corrected
    to the box that fits. Returns (x', y, y[perm], lam) like mixup."""
    rng = _random.resolve(generator)
    xa, was_tensor = _unwrap(x)
    ya, _ = _unwrap(y)
    n, _, h, w = xa.shape
    lam = float(rng.beta(alpha, alpha)) if alpha > 0 else 1.0
    perm = _index_like(rng.permutation(n), xa)
    cut = math.sqrt(1.0 - lam)
    ch, cw = int(h * cut), int(w * cut)
    cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
    y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
    x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
    out = xa.copy()
    out[:, :, y0:y1, x0:x1] = xa[perm][:, :, y0:y1, x0:x1]
    lam = 1.0 - (y1 - y0) * (x1 - x0) / float(h * w)
    yb = ya[perm]
    if was_tensor:
        return Tensor(out), Tensor(ya), Tensor(yb), lam
    return out, ya, yb, lam


def mixed_targets(y_a, y_b, lam, num_classes):
    """Soft labels lam*onehot(y_a) + (1-lam)*onehot(y_b), float32 (N, num_classes)."""
    ya, was_tensor = _unwrap(y_a)
    yb, _ = _unwrap(y_b)
    eye = numpy.eye(num_classes, dtype=numpy.float32)
    out = lam * eye[ya] + (1 - lam) * eye[yb]
    return Tensor(out) if was_tensor else out
