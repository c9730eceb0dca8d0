"""nn.init: formulas, gain table, sample statistics, seeding, in-place writes, errors."""
import math

import numpy as np
import pytest

import minicnn as mc
from conftest import torch_or_skip
from minicnn.nn import init

N_SIGMA = 5  # statistical bounds: 5 standard errors (fixed seed, so deterministic anyway)


def check_moments(a, mean, var, mu4=None):
    """Sample mean and variance within N_SIGMA standard errors of the formulas. mu4: the
    distribution's fourth central moment (default: normal's 3 var^2)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    n = a.size
    mu4 = 3 * var ** 2 if mu4 is None else mu4
    assert abs(a.mean() - mean) <= N_SIGMA * math.sqrt(var / n), (a.mean(), mean)
    se_var = math.sqrt((mu4 - var ** 2) / n)
    assert abs(a.var() - var) <= N_SIGMA * se_var, (a.var(), var)


def uniform_moments(bound):
    """var and fourth central moment of U(-bound, bound)."""
    return bound ** 2 / 3, bound ** 4 / 5


def test_calculate_gain_matches_pytorch_table():
    torch = torch_or_skip()
    for name in ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                 "conv_transpose3d", "sigmoid", "tanh", "relu", "leaky_relu", "selu"]:
        assert init.calculate_gain(name) == pytest.approx(torch.nn.init.calculate_gain(name))
    for slope in (0, 0.2, 1):
        assert init.calculate_gain("leaky_relu", slope) == pytest.approx(
            torch.nn.init.calculate_gain("leaky_relu", slope))
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("selu") == pytest.approx(0.75)
    with pytest.raises(ValueError, match="Unsupported nonlinearity gelu"):
        init.calculate_gain("gelu")
    with pytest.raises(ValueError, match="not a valid number"):
        init.calculate_gain("leaky_relu", "x")


@pytest.mark.parametrize("shape", [(4, 3), (8, 4, 3, 3), (2, 5, 7)])
def test_fans_match_pytorch(shape):
    torch = torch_or_skip()
    expected = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    assert init.calculate_fan_in_and_fan_out(mc.empty(*shape)) == expected


def test_uniform_normal_constant():
    t = mc.empty(200, 300)
    init.uniform_(t, -2.0, 3.0)
    assert t.array.min() >= -2 and t.array.max() < 3
    check_moments(t.array, 0.5, 25 / 12, 5 ** 4 / 80)
    init.normal_(t, 1.5, 0.5)
    check_moments(t.array, 1.5, 0.25)
    init.constant_(t, 0.3)
    assert np.all(t.array == np.float32(0.3))
    init.ones_(t)
    assert np.all(t.array == 1)
    init.zeros_(t)
    assert not t.array.any()


@pytest.mark.parametrize("fn", ["xavier_uniform_", "xavier_normal_"])
def test_xavier_variance(fn):
    t = mc.empty(256, 64, 3, 3)
    gain = 1.7
    getattr(init, fn)(t, gain=gain)
    fan_in, fan_out = 64 * 9, 256 * 9
    var = gain ** 2 * 2 / (fan_in + fan_out)
    if fn == "xavier_uniform_":
        bound = math.sqrt(3 * var)
        assert np.abs(t.array).max() <= bound
        check_moments(t.array, 0, *uniform_moments(bound))
    else:
        check_moments(t.array, 0, var)


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize("nonlinearity,a", [("relu", 0), ("leaky_relu", 0.2), ("tanh", 0),
                                             ("leaky_relu", math.sqrt(5))])
@pytest.mark.parametrize("kind", ["uniform", "normal"])
def test_kaiming_variance(mode, nonlinearity, a, kind):
    t = mc.empty(128, 32, 5, 5)
    getattr(init, f"kaiming_{kind}_")(t, a=a, mode=mode, nonlinearity=nonlinearity)
    fan = 32 * 25 if mode == "fan_in" else 128 * 25
    var = init.calculate_gain(nonlinearity, a) ** 2 / fan
    if kind == "uniform":
        bound = math.sqrt(3 * var)
        assert np.abs(t.array).max() <= bound * (1 + 1e-6)
        check_moments(t.array, 0, *uniform_moments(bound))
    else:
        check_moments(t.array, 0, var)


def test_trunc_normal_bounds_and_moments():
    t = mc.empty(100000, dtype=mc.float64)
    mean, std, a, b = 0.5, 2.0, -1.0, 3.0
    init.trunc_normal_(t, mean, std, a, b)
    assert t.array.min() >= a and t.array.max() <= b
    # moments of the truncated normal
    alpha, beta = (a - mean) / std, (b - mean) / std
    pdf = lambda x: math.exp(-x * x / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))  # noqa: E731
    z = cdf(beta) - cdf(alpha)
    tmean = mean + std * (pdf(alpha) - pdf(beta)) / z
    tvar = std ** 2 * (1 + (alpha * pdf(alpha) - beta * pdf(beta)) / z
                       - ((pdf(alpha) - pdf(beta)) / z) ** 2)
    # a bounded distribution: mu4 <= (b - a)^2 var is a safe bound for the standard error
    check_moments(t.array, tmean, tvar, mu4=tvar * (b - a) ** 2)
    with pytest.raises(ValueError, match="a < b"):
        init.trunc_normal_(t, a=1, b=0)


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (5, 2, 3, 3)])
def test_orthogonal(shape):
    t = mc.empty(*shape, dtype=mc.float64)
    init.orthogonal_(t, gain=2.0)
    m = t.array.reshape(shape[0], -1)
    rows, cols = m.shape
    gram = m @ m.T if rows <= cols else m.T @ m
    np.testing.assert_allclose(gram, 4.0 * np.eye(min(rows, cols)), atol=1e-12)
    with pytest.raises(ValueError, match="2 or more dimensions"):
        init.orthogonal_(mc.empty(3))


def test_eye_and_dirac_match_pytorch():
    torch = torch_or_skip()
    t = mc.empty(3, 5)
    init.eye_(t)
    np.testing.assert_array_equal(t.array, torch.nn.init.eye_(torch.empty(3, 5)).numpy())
    t = mc.empty(6, 2, 3, 3)
    init.dirac_(t, groups=2)
    np.testing.assert_array_equal(t.array, torch.nn.init.dirac_(torch.empty(6, 2, 3, 3),
                                                               groups=2).numpy())


def test_seeded_in_place_and_outside_the_graph():
    p = mc.nn.Parameter(mc.empty(4, 5))
    array = p.array
    mc.manual_seed(7)
    init.kaiming_normal_(p)
    first = p.array.copy()
    mc.manual_seed(7)
    out = init.kaiming_normal_(p)
    assert out is p and p.array is array  # in place, same array
    np.testing.assert_array_equal(p.array, first)
    assert p.creator is None and p.requires_grad
    g = mc.random.Generator(11)
    a = init.normal_(mc.empty(3), generator=g).array.copy()
    b = init.normal_(mc.empty(3), generator=mc.random.Generator(11)).array
    np.testing.assert_array_equal(a, b)


def test_errors():
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.xavier_uniform_(mc.empty(5))
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_uniform_(mc.empty(3, 3), mode="fan_avg")
    with pytest.raises(TypeError, match="floating point"):
        init.normal_(mc.zeros(3, dtype=mc.int64))
    with pytest.raises(TypeError, match="expected a Tensor"):
        init.normal_(np.zeros(3))
    init.kaiming_uniform_(mc.empty(0, 3))  # zero elements: a no-op, as PyTorch
