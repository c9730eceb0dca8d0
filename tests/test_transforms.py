"""Each transform's effect on a known image, batch vectorization and seeding."""
import numpy as np
import pytest

import minicnn as mc
from minicnn.data import transforms as T


def _ramp(n=2, c=1, h=6, w=6):
    return np.arange(n * c * h * w, dtype=np.float32).reshape(n, c, h, w) / (n * c * h * w)


def test_flips():
    x = _ramp()
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=1)(x), x[..., ::-1])
    np.testing.assert_array_equal(T.RandomVerticalFlip(p=1)(x), x[..., ::-1, :])
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=0)(x), x)
    out = T.RandomHorizontalFlip(p=0.5)(_ramp(n=64))
    flipped = [np.array_equal(o, i[..., ::-1]) for o, i in zip(out, _ramp(n=64))]
    kept = [np.array_equal(o, i) for o, i in zip(out, _ramp(n=64))]
    assert all(f or k for f, k in zip(flipped, kept)) and 10 < sum(flipped) < 54


def test_single_image_and_tensor_input():
    x = _ramp(n=1)[0]
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=1)(x), x[..., ::-1])
    t = T.RandomVerticalFlip(p=1)(mc.tensor(_ramp()))
    assert isinstance(t, mc.Tensor) and np.array_equal(t.numpy(), _ramp()[..., ::-1, :])
    with pytest.raises(ValueError, match=r"RandomHorizontalFlip: expected an image batch"):
        T.RandomHorizontalFlip()(np.zeros((2, 3)))


def test_random_crop_is_a_shifted_window():
    x = _ramp(n=8, h=5, w=5) + 1
    out = T.RandomCrop(5, padding=2)(x)
    assert out.shape == x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
    for o, p in zip(out, padded):
        assert any(np.array_equal(o, p[:, i:i + 5, j:j + 5]) for i in range(5) for j in range(5))
    np.testing.assert_array_equal(T.RandomCrop(5)(x), x)         # no padding, full size
    assert T.RandomCrop((3, 2))(x).shape == (8, 1, 3, 2)
    with pytest.raises(ValueError, match="larger than"):
        T.RandomCrop(9)(x)


def test_resized_crop_full_image_is_identity_and_sizes():
    x = _ramp(h=8, w=8)
    same = T.RandomResizedCrop(8, scale=(1, 1), ratio=(1, 1))(x)
    np.testing.assert_allclose(same, x, atol=1e-6)
    out = T.RandomResizedCrop((4, 6))(_ramp(n=5, c=3, h=10, w=10))
    assert out.shape == (5, 3, 4, 6)
    # the crop of a constant image is the constant
    np.testing.assert_allclose(T.RandomResizedCrop(5)(np.full((3, 2, 9, 9), 0.25, np.float32)),
                               0.25, atol=1e-6)


@pytest.mark.parametrize("side", [5, 6])
def test_rotation_by_90_is_rot90(side):
    x = _ramp(h=side, w=side)
    out = T.RandomRotation((90, 90))(x)
    np.testing.assert_allclose(out, np.rot90(x, 1, axes=(2, 3)), atol=1e-5)
    out = T.RandomRotation((180, 180))(x)
    np.testing.assert_allclose(out, x[..., ::-1, ::-1], atol=1e-5)
    out = T.RandomRotation((-90, -90))(x)
    np.testing.assert_allclose(out, np.rot90(x, -1, axes=(2, 3)), atol=1e-5)


def test_rotation_fill_and_nearest():
    x = np.ones((1, 1, 7, 7), np.float32)
    out = T.RandomRotation((45, 45), fill=0.0)(x)
    assert out[0, 0, 3, 3] == pytest.approx(1) and out[0, 0, 0, 0] == pytest.approx(0)
    out = T.RandomRotation((30, 30), mode="nearest")(_ramp(h=7, w=7))
    assert set(np.unique(out)).issubset(set(np.unique(_ramp(h=7, w=7))) | {0.0})


def test_affine_scale_translate_shear():
    x = np.ones((1, 1, 8, 8), np.float32)
    half = T.RandomAffine(0, scale=(0.5, 0.5))(x)
    assert half[0, 0, 3:5, 3:5].min() == pytest.approx(1) and half[0, 0, 0, 0] == 0
    assert half.sum() == pytest.approx(16, abs=1e-4)          # a 4x4 square of ones remains
    dot = np.zeros((1, 1, 9, 9), np.float32)
    dot[0, 0, 4, 4] = 1
    moved = T.RandomAffine(0, translate=(0.4, 0.4), mode="nearest")(np.repeat(dot, 20, 0))
    assert np.allclose(moved.sum(axis=(1, 2, 3)), 1)        # the dot moves, never vanishes
    assert (moved.reshape(20, -1).argmax(1) != 40).any()
    line = np.zeros((1, 1, 9, 9), np.float32)
    line[0, 0, :, 4] = 1
    sheared = T.RandomAffine(0, shear=(30, 30), mode="nearest")(line)
    cols = sheared[0, 0].argmax(1)
    assert cols[0] != cols[-1] and cols[4] == 4              # slanted, fixed at the centre row


def test_color_jitter_each_component():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.2, 0.8, (4, 3, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(T.ColorJitter(brightness=(0.5, 0.5))(x), x * 0.5, rtol=1e-6)
    flat = T.ColorJitter(contrast=(0.0, 0.0))(x)
    assert np.allclose(flat, flat[:, :1, :1, :1])            # contrast 0: one grey level
    gray = T.ColorJitter(saturation=(0.0, 0.0))(x)
    assert np.allclose(gray[:, 0], gray[:, 1]) and np.allclose(gray[:, 1], gray[:, 2])
    red = np.zeros((1, 3, 2, 2), np.float32)
    red[:, 0] = 1
    green = T.ColorJitter(hue=(1 / 3, 1 / 3))(red)
    np.testing.assert_allclose(green[0, :, 0, 0], [0, 1, 0], atol=1e-5)
    out = T.ColorJitter(0.4, 0.4, 0.4, 0.1)(x)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    g = T.ColorJitter(saturation=0.5, hue=0.2)(x[:, :1])     # grey images: nothing to do
    np.testing.assert_array_equal(g, x[:, :1])
    with pytest.raises(ValueError, match="hue"):
        T.ColorJitter(hue=0.7)


def test_hsv_roundtrip():
    x = np.random.default_rng(1).uniform(0, 1, (3, 3, 4, 4))
    np.testing.assert_allclose(T.hsv_to_rgb(T.rgb_to_hsv(x)), x, atol=1e-12)


def test_gaussian_noise_statistics():
    out = T.GaussianNoise(std=0.5, mean=0.1)(np.zeros((16, 3, 16, 16), np.float32))
    assert abs(out.mean() - 0.1) < 0.02 and abs(out.std() - 0.5) < 0.02
    clipped = T.GaussianNoise(std=1.0, clip=(0, 1))(np.zeros((2, 1, 8, 8), np.float32))
    assert clipped.min() >= 0 and clipped.max() <= 1
    np.testing.assert_array_equal(T.GaussianNoise(0.3, p=0)(_ramp()), _ramp())


def _is_rectangle(mask):
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return mask.sum() == len(rows) * len(cols) and mask[np.ix_(rows, cols)].all()


def test_random_erasing_erases_one_rectangle():
    x = np.ones((10, 3, 12, 12), np.float32)
    out = T.RandomErasing(p=1, value=0.5)(x)
    for o in out:
        erased = o[0] == 0.5
        assert erased.any() and _is_rectangle(erased)
        assert np.array_equal(o[0] == 0.5, o[2] == 0.5)        # all channels alike
    per_channel = T.RandomErasing(p=1, value=(0.1, 0.2, 0.3))(x)
    for ch, v in enumerate((0.1, 0.2, 0.3)):
        assert np.isclose(per_channel[:, ch], v).any()
    np.testing.assert_array_equal(T.RandomErasing(p=0)(x), x)


def test_cutout_square():
    x = np.ones((20, 1, 10, 10), np.float32)
    out = T.Cutout(4)(x)
    for o in out:
        hole = o[0] == 0
        assert 0 < hole.sum() <= 16 and _is_rectangle(hole)
    assert (out.reshape(20, -1).sum(1) == 84).any()            # at least one whole 4x4 hole


def test_normalize_and_to_tensor():
    x = np.stack([np.full((2, 2), 0.5), np.full((2, 2), 1.0)])[None].astype(np.float32)
    out = T.Normalize([0.5, 0.0], [0.25, 2.0])(x)
    np.testing.assert_allclose(out[0, 0], 0.0)
    np.testing.assert_allclose(out[0, 1], 0.5)
    with pytest.raises(ValueError, match="channels"):
        T.Normalize([0.1, 0.2, 0.3], [1, 1, 1])(x)
    with pytest.raises(ValueError, match="division by zero"):
        T.Normalize(0.1, 0.0)
    hwc = np.arange(2 * 4 * 5 * 3, dtype=np.uint8).reshape(2, 4, 5, 3)
    t = T.ToTensor()(hwc)
    assert isinstance(t, mc.Tensor) and t.shape == (2, 3, 4, 5) and t.dtype == np.float32
    np.testing.assert_allclose(t.numpy(), hwc.transpose(0, 3, 1, 2) / 255, rtol=1e-6)
    assert T.ToTensor()(np.zeros((7, 28, 28), np.uint8)).shape == (7, 1, 28, 28)
    assert T.ToTensor()(np.zeros((28, 28, 3), np.uint8)).shape == (3, 28, 28)
    composed = T.Compose([T.ToTensor(), T.Normalize(0.5, 0.5)])(np.full((1, 1, 2, 2), 255,
                                                                         np.uint8))
    np.testing.assert_allclose(composed.numpy(), 1.0)


def test_resize_matches_torch_bilinear():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 7)).astype(np.float32)
    for size in [(10, 14), (9, 11), (5, 7)]:
        ref = torch.nn.functional.interpolate(torch.from_numpy(x), size=size, mode="bilinear",
                                              align_corners=False).numpy()
        np.testing.assert_allclose(T.resize(x, size), ref, atol=1e-5)


def test_center_crop_pad_and_compose():
    x = _ramp(h=6, w=6)
    np.testing.assert_array_equal(T.CenterCrop(2)(x), x[:, :, 2:4, 2:4])
    np.testing.assert_array_equal(T.Compose([T.Pad(1), T.CenterCrop(6)])(x), x)
    assert "RandomCrop" in repr(T.Compose([T.RandomCrop(4, padding=1)]))


def test_random_transforms_follow_manual_seed():
    aug = T.Compose([T.RandomAffine(20, translate=(0.1, 0.1), scale=(0.9, 1.1), shear=5),
                     T.ColorJitter(0.3, 0.3, 0.3, 0.05), T.RandomErasing(p=0.5),
                     T.GaussianNoise(0.05)])
    x = np.random.default_rng(0).uniform(0, 1, (6, 3, 8, 8)).astype(np.float32)
    mc.manual_seed(11)
    a = aug(x)
    mc.manual_seed(11)
    b = aug(x)
    c = aug(x)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(b, c)
    own = T.RandomHorizontalFlip(generator=5)
    np.testing.assert_array_equal(own(_ramp(n=16)), T.RandomHorizontalFlip(generator=5)(
        _ramp(n=16)))


def test_mixup_and_cutmix():
    x = np.zeros((4, 1, 6, 6), np.float32)
    x[np.arange(4), 0, 0, np.arange(4)] = 1                       # each image marks its index
    y = np.arange(4)
    xm, ya, yb, lam = T.mixup(x, y, alpha=0.4, generator=0)
    assert 0 <= lam <= 1 and np.array_equal(ya, y)
    for i in range(4):
        expected = lam * x[i] + (1 - lam) * x[list(y).index(yb[i])]
        np.testing.assert_allclose(xm[i], expected, atol=1e-6)
    soft = T.mixed_targets(ya, yb, lam, 4)
    np.testing.assert_allclose(soft.sum(1), 1, atol=1e-6)
    img = np.stack([np.full((1, 8, 8), float(i)) for i in range(4)]).astype(np.float32)
    xc, ya, yb, lam = T.cutmix(img, y, alpha=1.0, generator=3)
    assert 0 < lam < 1 and (yb != y).any()
    for i in range(4):
        if yb[i] != i:
            assert np.mean(xc[i] == i) == pytest.approx(lam)   # lam = the area kept
            assert np.isin(xc[i], [i, yb[i]]).all()
    t = T.mixup(mc.tensor(x), mc.tensor(y), generator=1)
    assert isinstance(t[0], mc.Tensor)
