"""Calls whose result differed from PyTorch's (issue 16's defects), each compared with torch.

The op table covers each op's ordinary inputs; these are the corners it does not draw: a zero
base in pow, no degrees of freedom in var, integer operands, every negative padding, and the
layout rule of mixed indexing.
"""
import itertools

import numpy as np
import pytest

import minicnn as mc
from conftest import DEVICES, torch_or_skip
from minicnn.devices import to_device

F = mc.functional


def _t(a, device="cpu", requires_grad=False):
    return mc.Tensor(to_device(np.asarray(a), device), requires_grad=requires_grad)


# --- indexing: integers are basic indices ------------------------------------------------------

@pytest.mark.parametrize("key", [
    lambda t: (0, slice(None), t), lambda t: (slice(None), t, 0), lambda t: (1, t, None),
    lambda t: (t, None, t), lambda t: (Ellipsis, 0, t), lambda t: (slice(None), 0, t),
    lambda t: (t, slice(None), -1)], ids=range(7))
def test_mixed_integer_and_tensor_index_has_pytorch_layout(key):
    torch = torch_or_skip()
    x = np.arange(24.0).reshape(2, 3, 4)
    i = np.array([0, 1])
    expected = torch.from_numpy(x)[key(torch.from_numpy(i))].numpy()
    got = _t(x)[key(_t(i))]
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got.numpy(), expected)
    # a 0-d integer tensor is an integer too
    assert _t(x)[_t(np.int64(0)), :, _t(i)].shape == (3, 2)


def test_mixed_index_gradient_and_assignment_match_torch():
    torch = torch_or_skip()
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    i = np.array([0, 2, 2])
    m, t = _t(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    gy = np.random.default_rng(1).standard_normal((3, 3))
    m[1, :, _t(i)].backward(_t(gy))
    t[1, :, torch.from_numpy(i)].backward(torch.from_numpy(gy))
    np.testing.assert_allclose(m.grad.numpy(), t.grad.numpy())
    m, t = _t(x.copy()), torch.tensor(x)
    v = np.arange(6.0).reshape(3, 2)
    m[0, :, _t(np.array([1, 3]))] = _t(v)
    t[0, :, torch.tensor([1, 3])] = torch.from_numpy(v)
    np.testing.assert_array_equal(m.numpy(), t.numpy())


# --- pow at a zero base ------------------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", ["x**0", "0**x", "x**y"])
def test_pow_gradients_at_a_zero_base_match_torch(case, device):
    torch = torch_or_skip()
    xs = {"x**0": ([0.0, 1.0, -2.0],), "0**x": ([1.0, 2.0, 0.0, 0.5],),
          "x**y": ([0.0, 0.0, 0.0, 2.0, -1.0], [0.0, 2.0, 0.5, 0.0, 0.0])}[case]
    fn = {"x**0": lambda x: x ** 0.0, "0**x": lambda x: 0.0 ** x, "x**y": lambda x, y: x ** y}[case]
    margs = [_t(np.array(v), device, requires_grad=True) for v in xs]
    targs = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in xs]
    fn(*margs).sum().backward()
    fn(*targs).sum().backward()
    for m, t in zip(margs, targs):
        np.testing.assert_array_equal(mc.devices.to_numpy(m.grad.array), t.grad.numpy())


# --- gather with an index smaller than the input -----------------------------------------------

def test_gather_with_a_smaller_index_in_the_other_dims():
    torch = torch_or_skip()
    x = np.arange(24.0).reshape(2, 3, 4)
    idx = np.array([[[3, 0], [1, 2]]])
    got = mc.tensor(x).gather(2, mc.tensor(idx))
    np.testing.assert_array_equal(got.numpy(), torch.from_numpy(x).gather(2, torch.from_numpy(idx)))
    assert mc.zeros(2, 3, 4).gather(2, mc.zeros(1, 2, 2, dtype=mc.int64)).shape == (1, 2, 2)


# --- var / std without degrees of freedom ------------------------------------------------------

@pytest.mark.parametrize("op", ["var", "std"])
@pytest.mark.parametrize("shape,correction", [((1, 3), 1), ((1, 3), 2), ((0, 3), 1),
                                              ((2, 3), 2)])
def test_var_without_degrees_of_freedom_is_nan_like_torch(op, shape, correction):
    torch = torch_or_skip()
    x = np.random.default_rng(0).standard_normal(shape)
    m, t = _t(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    with np.errstate(all="ignore"):
        mv = getattr(m, op)(dim=0, correction=correction)
        mv.sum().backward()
    with pytest.warns(UserWarning):
        tv = getattr(t, op)(dim=0, correction=correction)
    tv.sum().backward()
    np.testing.assert_array_equal(mv.numpy(), tv.detach().numpy())
    np.testing.assert_array_equal(m.grad.numpy(), t.grad.numpy())


# --- integer true division ---------------------------------------------------------------------

@pytest.mark.parametrize("default", [mc.float32, mc.float64])
def test_integer_true_division_gives_the_default_float_dtype(default):
    old = mc.get_default_dtype()
    mc.set_default_dtype(default)
    try:
        a, b = mc.tensor([1, 2, 7]), mc.tensor([2, 2, 4], dtype=mc.int32)
        for q in (a / b, a / 2, 3 / a, mc.div(a, b), mc.tensor([True]) / mc.tensor([True])):
            assert q.dtype == default
        np.testing.assert_allclose((a / b).numpy(), [0.5, 1.0, 1.75])
    finally:
        mc.set_default_dtype(old)


# --- F.pad: negative widths crop ---------------------------------------------------------------

@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_pad_with_negative_widths_matches_torch_everywhere(mode):
    """Every (left, right) in [-5, 4]^2 on a dim of size 1..5: the same values, or an error
    from both. Except: circular padding wider than what its crop leaves is an error here, where
    PyTorch returns uninitialised memory (or, cropping past the dim, sometimes an empty
    tensor)."""
    torch = torch_or_skip()
    for size in range(1, 6):
        x = np.arange(2.0 * size).reshape(1, 2, size)
        for lo, hi in itertools.product(range(-5, 5), repeat=2):
            left = size + min(lo, 0) + min(hi, 0)
            try:
                if mode == "circular" and (left < 0 or max(lo, hi) > left):
                    raise RuntimeError("wraps around more than what is left")
                expected = torch.nn.functional.pad(torch.from_numpy(x), (lo, hi), mode=mode)
            except RuntimeError:
                with pytest.raises(ValueError, match="pad: padding"):
                    F.pad(mc.tensor(x), (lo, hi), mode=mode)
                continue
            got = F.pad(mc.tensor(x), (lo, hi), mode=mode)
            np.testing.assert_array_equal(got.numpy(), expected.numpy(),
                                          err_msg=f"size {size}, pad {(lo, hi)}")


# --- clamp with min > max ----------------------------------------------------------------------

def test_clamp_with_min_above_max_gives_max_everywhere():
    torch = torch_or_skip()
    x = _t(np.arange(5.0), requires_grad=True)
    y = mc.clamp(x, min=3, max=0)
    np.testing.assert_array_equal(y.numpy(), torch.clamp(torch.arange(5.0), min=3, max=0))
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros(5))


# --- Tensor.view(dtype) ------------------------------------------------------------------------

def test_view_dtype_reinterprets_the_bytes_like_torch():
    torch = torch_or_skip()
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    for dtype, tdtype in [(mc.int32, torch.int32), (mc.float64, torch.float64),
                          (mc.int16, torch.int16), (mc.uint8, torch.uint8)]:
        got, expected = mc.tensor(x).view(dtype), torch.from_numpy(x).view(tdtype)
        assert got.dtype == dtype and got.shape == tuple(expected.shape)
        np.testing.assert_array_equal(got.numpy(), expected.numpy())
    t = mc.tensor(x, requires_grad=True)
    assert not t.view(mc.float32).requires_grad      # not differentiable, as in PyTorch
    shared = mc.tensor(x)
    shared.view(mc.int32)[0, 0] = 0
    assert shared[0, 0].item() == 0.0                # the same memory
    with pytest.raises(ValueError, match="view: the last dim must be divisible by 2 to view "
                                         "float32 as float64"):
        mc.zeros(2, 3).view(mc.float64)
    with pytest.raises(ValueError, match="view: the last dim must be contiguous"):
        mc.zeros(4, 2).T.view(mc.float64)
    with pytest.raises(ValueError, match="view: a 0-d tensor cannot view float32 as float64"):
        mc.tensor(1.0).view(mc.float64)
    assert mc.zeros(2, 3).view(3, 2).shape == (3, 2)     # a shape still reshapes


# --- linspace ----------------------------------------------------------------------------------

def test_linspace_matches_torch_value_for_value_for_integer_dtypes():
    torch = torch_or_skip()
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(mc.linspace(5, -5, 20, dtype=mc.int32).numpy(),
                                  torch.linspace(5, -5, 20, dtype=torch.int32).numpy())
    for _ in range(300):
        a, b = (int(v) for v in rng.integers(-60, 60, 2))
        a = a + float(rng.random()) if rng.random() < 0.3 else a
        n = int(rng.integers(0, 40))
        for dtype, tdtype in [(mc.int32, torch.int32), (mc.int64, torch.int64)]:
            np.testing.assert_array_equal(mc.linspace(a, b, n, dtype=dtype).numpy(),
                                          torch.linspace(a, b, n, dtype=tdtype).numpy(),
                                          err_msg=f"linspace({a}, {b}, {n})")
        np.testing.assert_allclose(mc.linspace(a, b, n, dtype=mc.float64).numpy(),
                                   torch.linspace(a, b, n, dtype=torch.float64).numpy(),
                                   rtol=1e-15, atol=1e-13)
    with pytest.raises(TypeError, match="linspace: not implemented for dtype bool"):
        mc.linspace(0, 1, 5, dtype=mc.bool)
    with pytest.raises(ValueError, match="linspace: number of steps must be non-negative"):
        mc.linspace(0, 1, -1)


# --- max_pool2d on integers --------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int32, np.int64])
def test_max_pool2d_takes_integer_input_like_torch(dtype):
    torch = torch_or_skip()
    rng = np.random.default_rng(0)
    lo = max(np.iinfo(dtype).min, -4)
    for k, s, p, d, ceil in [(2, 2, 0, 1, False), (3, 2, 1, 1, True), (3, 1, 1, 2, False),
                             ((2, 3), (1, 2), (1, 1), (2, 1), True)]:
        x = rng.integers(lo, 4, (2, 3, 7, 6)).astype(dtype)
        x[0, 0] = np.iinfo(dtype).min            # ties at the lowest value, next to padding
        y, i = F.max_pool2d(mc.tensor(x), k, s, p, d, ceil, return_indices=True)
        ty, ti = torch.nn.functional.max_pool2d(torch.from_numpy(x), k, s, p, d, ceil,
                                                return_indices=True)
        assert y.dtype == dtype and i.dtype == np.int64
        np.testing.assert_array_equal(y.numpy(), ty.numpy())
        np.testing.assert_array_equal(i.numpy(), ti.numpy())


# --- interpolate: where PyTorch's own gradient is wrong -----------------------------------------

def test_nearest_1d_3d_gradient_is_the_true_one_where_torchs_is_not():
    """PyTorch's 1-D and 3-D nearest forward reads floor(dst / scale) even where out == 2 in,
    but its backward takes out == 2 in as an exact doubling (its own gradcheck fails): minicnn
    matches the forward and gives the forward's gradient."""
    torch = torch_or_skip()
    x = np.arange(3.0).reshape(1, 1, 3)
    want = torch.nn.functional.interpolate(torch.from_numpy(x), scale_factor=2.1, mode="nearest")
    t = mc.tensor(x, requires_grad=True)
    y = F.interpolate(t, scale_factor=2.1, mode="nearest")
    np.testing.assert_array_equal(y.numpy(), want.numpy())       # [0, 0, 0, 1, 1, 2]
    y.sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), [[[3.0, 2.0, 1.0]]])
    assert mc.testing.gradcheck(lambda u: F.interpolate(u, scale_factor=2.1, mode="nearest"),
                                [mc.tensor(x, requires_grad=True)])
