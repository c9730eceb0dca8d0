"""The pooling family (minicnn.kernels.pool). Every kernel through the API against the NumPy
references (kernels/pool/reference.py) on cpu, emu and cuda; where the reference has no rule
(several NaN in a window, ties in the backward order) against the CPU's generic Numba kernels.
Max-pool values and indices must be equal (ties keep the first maximum, NaN wins as in
PyTorch); the max-pool gradient is summed in the CPU's order, so it is equal too; average
pooling within fp32/fp64 rounding. Then the CPU's separable 3x3 kernel, the CUDA launch layer
(checks, 32-bit window bounds, the inv cache) and the pooling ops through the CUDA kernels."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn.kernels import pool as P
from minicnn.kernels.cuda import emulator
from minicnn.kernels.pool import cpu as CP
from minicnn.kernels.pool import cuda as G
from minicnn.kernels.pool import reference as R
from minicnn.ops.pool import _out_size
from cuda_util import KERNEL_DEVICES, dev, emulate, host, noncontiguous

from . import half_util as Hf
from .test_conv import examples

DTYPES = [np.float32, np.float64]


def _tol(dtype):
    return dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)


def _distinct(shape, dtype, rng):
    """Values without ties (a shuffled ramp), so the argmax is unique."""
    n = int(np.prod(shape))
    return (rng.permutation(n).reshape(shape) - n / 2).astype(dtype)


def _geometry(H, W, K, S, Pd, D, ceil):
    OH = _out_size(H, K[0], S[0], Pd[0], D[0], ceil)
    OW = _out_size(W, K[1], S[1], Pd[1], D[1], ceil)
    return (*K, *S, *Pd, *D, OH, OW)


def _windows_nonempty(H, W, geo):
    """Every window holds at least one input element (else the kernels give -inf, index -1)."""
    KH, KW, SH, SW, PH, PW, DH, DW, OH, OW = geo

    def ok(I, K, S, Pd, D, O):
        return all(any(0 <= o * S - Pd + k * D < I for k in range(K)) for o in range(O))
    return ok(H, KH, SH, PH, DH, OH) and ok(W, KW, SW, PW, DW, OW)


def _cpu_max_pool(x, geo):
    """The CPU's generic max-pool kernel (PyTorch's scan: the first maximum, the last NaN, a
    window of -inf gives its first element): the oracle where the reference has no rule."""
    *hp, OH, OW = geo
    y = np.empty(x.shape[:2] + (OH, OW), x.dtype)
    idx = np.empty(x.shape[:2] + (OH, OW), np.int64)
    CP.max_pool_fwd(np.ascontiguousarray(x), *hp, y, idx)
    return y, idx


# (N, C, H, W), kernel, stride, padding, dilation, ceil_mode
CASES = [
    ((2, 3, 9, 11), (3, 3), (2, 2), (1, 1), (1, 1), False),   # ResNet's stem pool, odd sides
    ((3, 5, 13, 11), (2, 2), (2, 2), (0, 0), (1, 1), False),  # several blocks of threads
    ((2, 3, 6, 7), (2, 2), (1, 1), (0, 0), (1, 1), False),    # 2x2 windows that overlap
    ((1, 2, 7, 9), (3, 2), (1, 2), (1, 0), (2, 1), True),     # dilation, ceil mode
    ((2, 1, 8, 7), (4, 3), (3, 1), (2, 1), (1, 2), True),     # a window past the input's end
    ((1, 1, 1, 1), (1, 1), (1, 1), (0, 0), (1, 1), False),
    ((2, 2, 5, 6), (5, 1), (1, 3), (2, 0), (1, 1), True),
    ((1, 3, 6, 5), (2, 3), (3, 2), (1, 1), (1, 1), True),
]
IDS = [f"{s}-k{k}-s{st_}-p{p}-d{d}-{'ceil' if c else 'floor'}" for s, k, st_, p, d, c in CASES]


# --- max pool ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_max_pool_fwd_bwd_match_reference(kernel_device, dtype, case):
    shape, K, S, Pd, D, ceil = case
    geo = _geometry(*shape[2:], K, S, Pd, D, ceil)
    assert _windows_nonempty(*shape[2:], geo)
    rng = np.random.default_rng(0)
    x = _distinct(shape, dtype, rng)
    ry, ridx = R.max_pool_fwd(x, *geo)
    for xd in (dev(x, kernel_device), noncontiguous(x, kernel_device)):
        y, idx = P.max_pool2d_fwd(xd, *geo)
        assert host(y).dtype == dtype and host(idx).dtype == np.int64
        np.testing.assert_array_equal(host(y), ry)
        np.testing.assert_array_equal(host(idx), ridx)
    # backward: equal to the CPU's scatter bit for bit (on the GPU a gather over the covering
    # windows, summing in the same order)
    gy = rng.standard_normal(ry.shape).astype(dtype)
    H, W = shape[2:]
    want = CP.plane_scatter(gy, ridx, H, W)
    np.testing.assert_allclose(want, R.plane_scatter(gy, ridx, H, W), **_tol(dtype))
    for gd, idd in ((dev(gy, kernel_device), dev(ridx, kernel_device)),
                    (noncontiguous(gy, kernel_device), noncontiguous(ridx, kernel_device))):
        gx = P.max_pool2d_bwd(gd, idd, H, W, *geo[:8])
        np.testing.assert_array_equal(host(gx), want)
    # the generic scatter (atomics on the GPU): exact where no two windows share an argmax
    out = host(P.plane_scatter(dev(gy, kernel_device), dev(ridx, kernel_device), H, W))
    np.testing.assert_allclose(out, want, **_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_max_pool_ties_pick_the_first_maximum(kernel_device, dtype, case):
    shape, K, S, Pd, D, ceil = case
    geo = _geometry(*shape[2:], K, S, Pd, D, ceil)
    rng = np.random.default_rng(1)
    x = rng.integers(-1, 2, shape).astype(dtype)      # integer values: ties everywhere
    y, idx = P.max_pool2d_fwd(dev(x, kernel_device), *geo)
    ry, ridx = R.max_pool_fwd(x, *geo)
    np.testing.assert_array_equal(host(y), ry)
    np.testing.assert_array_equal(host(idx), ridx)
    np.testing.assert_array_equal(host(idx), _cpu_max_pool(x, geo)[1])
    gy = rng.standard_normal(ry.shape).astype(dtype)
    gx = P.max_pool2d_bwd(dev(gy, kernel_device), idx, *shape[2:], *geo[:8])
    np.testing.assert_array_equal(host(gx), CP.plane_scatter(gy, ridx, *shape[2:]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES[:5], ids=IDS[:5])
def test_max_pool_nan_and_inf_as_the_cpu_kernel(kernel_device, dtype, case):
    # PyTorch's rule (the CPU's generic kernel): a NaN wins the window (the last NaN when
    # several), a window of -inf gives -inf at its first element. The reference (argmax) agrees
    # wherever a window holds at most one NaN.
    shape, K, S, Pd, D, ceil = case
    geo = _geometry(*shape[2:], K, S, Pd, D, ceil)
    rng = np.random.default_rng(2)
    x = rng.integers(0, 3, shape).astype(dtype)
    u = rng.random(shape)
    x[u < 0.15] = np.nan
    x[(u >= 0.15) & (u < 0.45)] = -np.inf
    x[0, 0] = -np.inf                                    # a plane of -inf only
    y, idx = P.max_pool2d_fwd(dev(x, kernel_device), *geo)
    cy, cidx = _cpu_max_pool(x, geo)
    np.testing.assert_array_equal(host(y), cy)
    np.testing.assert_array_equal(host(idx), cidx)
    # one NaN and a few -inf (the reference takes a window of -inf's first tap in the padding)
    x1 = x.copy()
    x1[np.isnan(x1) | ((u >= 0.2) & (u < 0.45))] = 1.0
    x1[0, 0] = rng.integers(0, 3, shape[2:])
    x1[0, 0, 0, 0] = np.nan
    y, idx = P.max_pool2d_fwd(dev(x1, kernel_device), *geo)
    ry, ridx = R.max_pool_fwd(x1, *geo)
    np.testing.assert_array_equal(host(y), ry)
    np.testing.assert_array_equal(host(idx), ridx)


@st.composite
def _pool_case(draw):
    # H, W >= the dilated kernel, so every window holds an input element: windows over padding
    # only are not drawn (the CPU's generic max-pool kernel gives them indices outside the
    # plane; its separable 3x3 kernel and the CUDA kernel give -1)
    K = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    S = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    Pd = (draw(st.integers(0, K[0] // 2)), draw(st.integers(0, K[1] // 2)))
    D = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    H = (K[0] - 1) * D[0] + 1 + draw(st.integers(0, 5))
    W = (K[1] - 1) * D[1] + 1 + draw(st.integers(0, 5))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), H, W)
    return shape, K, S, Pd, D, draw(st.booleans())


@examples(at_least=12)
@given(case=_pool_case(), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**32 - 1))
def test_max_pool_random_geometry(kernel_device, case, dtype, seed):
    """Distinct values (one argmax per window) and ties, forward and backward."""
    shape, K, S, Pd, D, ceil = case
    geo = _geometry(*shape[2:], K, S, Pd, D, ceil)
    nonempty = _windows_nonempty(*shape[2:], geo)
    rng = np.random.default_rng(seed)
    for x in (_distinct(shape, dtype, rng), rng.integers(-2, 3, shape).astype(dtype)):
        y, idx = P.max_pool2d_fwd(dev(x, kernel_device), *geo)
        if nonempty:
            ry, ridx = R.max_pool_fwd(x, *geo)
            np.testing.assert_array_equal(host(y), ry)
            np.testing.assert_array_equal(host(idx), ridx)
        else:  # a window over padding only (dilation > padding): -inf, no index, no gradient
            empty = host(idx) < 0
            assert empty.any() and np.all(host(y)[empty] == -np.inf)
        gy = rng.standard_normal(host(y).shape).astype(dtype)
        want = CP.plane_scatter(gy, host(idx), *shape[2:])
        gx = P.max_pool2d_bwd(dev(gy, kernel_device), idx, *shape[2:], *geo[:8])
        np.testing.assert_array_equal(host(gx), want)
        if nonempty:
            tol = dict(rtol=1e-6, atol=1e-6) if dtype == np.float32 else _tol(dtype)
            np.testing.assert_allclose(
                host(P.plane_scatter(dev(gy, kernel_device), idx, *shape[2:])),
                R.plane_scatter(gy, host(idx), *shape[2:]), **tol)


@given(N=st.integers(1, 2), C=st.integers(1, 3), H=st.integers(1, 8), W=st.integers(1, 8),
       S=st.integers(1, 3), PD=st.integers(0, 1), D=st.integers(1, 2),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2 ** 32 - 1))
def test_cpu_separable_max_pool_3x3_ties_nan_inf(N, C, H, W, S, PD, D, dtype, seed):
    # the CPU's separable 3x3 kernel equals the generic kernel (PyTorch's scan: the first
    # maximum, the last NaN, a window of -inf gives its first element) on inputs full of ties,
    # NaN and -inf; without NaN also the reference
    H, W = H + max(0, 2 * D - 2 * PD), W + max(0, 2 * D - 2 * PD)
    OH, OW = (H + 2 * PD - 2 * D - 1) // S + 1, (W + 2 * PD - 2 * D - 1) // S + 1
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, (N, C, H, W)).astype(dtype)
    args = (3, 3, S, S, PD, PD, D, D, OH, OW)
    y, idx = CP.max_pool2d_fwd(x, *args)
    ry, ridx = R.max_pool_fwd(x, *args)
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(idx, ridx)
    u = rng.random(x.shape)
    x[u < 0.2] = np.nan
    x[(u >= 0.2) & (u < 0.4)] = -np.inf
    x[0, 0] = -np.inf
    y, idx = CP.max_pool2d_fwd(x, *args)
    gy, gidx = _cpu_max_pool(x, args)
    np.testing.assert_array_equal(y, gy)
    np.testing.assert_array_equal(idx, gidx)


# --- average pool -----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("count_include_pad,divisor", [(True, None), (False, None), (True, 3)])
@pytest.mark.parametrize("case", [c for c in CASES if c[4] == (1, 1)],
                         ids=[i for c, i in zip(CASES, IDS) if c[4] == (1, 1)])
def test_avg_pool_fwd_bwd_match_reference(kernel_device, dtype, count_include_pad, divisor,
                                          case):
    shape, K, S, Pd, _, ceil = case
    H, W = shape[2:]
    geo = _geometry(H, W, K, S, Pd, (1, 1), ceil)
    OH, OW = geo[-2:]
    hw = (*K, *S, *Pd)
    inv = P.avg_pool_inv(H, W, *hw, OH, OW, count_include_pad, divisor, dtype)
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(dtype)
    want = R.avg_pool_fwd(x, *hw, OH, OW, inv)
    for xd in (dev(x, kernel_device), noncontiguous(x, kernel_device)):
        y = P.avg_pool2d_fwd(xd, *hw, OH, OW, inv)
        assert host(y).dtype == dtype
        np.testing.assert_allclose(host(y), want, **_tol(dtype))
    gy = rng.standard_normal(want.shape).astype(dtype)
    want = R.avg_pool_bwd(gy, H, W, *hw, inv)
    for gd in (dev(gy, kernel_device), noncontiguous(gy, kernel_device)):
        gx = P.avg_pool2d_bwd(gd, H, W, *hw, inv)
        assert host(gx).dtype == dtype
        np.testing.assert_allclose(host(gx), want, **_tol(dtype))
    # inv already on the device, and of another dtype (cast to the input's)
    gx = P.avg_pool2d_bwd(dev(gy, kernel_device), H, W, *hw,
                          dev(inv.astype(np.float64), kernel_device))
    np.testing.assert_allclose(host(gx), want, **_tol(dtype))


@examples(at_least=12)
@given(case=_pool_case(), dtype=st.sampled_from(DTYPES), cip=st.booleans(),
       divisor=st.sampled_from([None, 2, 3, 5]), seed=st.integers(0, 2**32 - 1))
def test_avg_pool_random_geometry(kernel_device, case, dtype, cip, divisor, seed):
    shape, K, S, Pd, _, ceil = case
    H, W = shape[2:]
    OH, OW = _geometry(H, W, K, S, Pd, (1, 1), ceil)[-2:]
    hw = (*K, *S, *Pd)
    inv = P.avg_pool_inv(H, W, *hw, OH, OW, cip, divisor, dtype)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    np.testing.assert_allclose(
        host(P.avg_pool2d_fwd(dev(x, kernel_device), *hw, OH, OW, inv)),
        R.avg_pool_fwd(x, *hw, OH, OW, inv), **_tol(dtype))
    gy = rng.standard_normal((*shape[:2], OH, OW)).astype(dtype)
    np.testing.assert_allclose(host(P.avg_pool2d_bwd(dev(gy, kernel_device), H, W, *hw, inv)),
                               R.avg_pool_bwd(gy, H, W, *hw, inv), **_tol(dtype))


# --- plane scatter / gather (max_unpool2d, double backward) -----------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_plane_scatter_and_gather_match_reference(kernel_device, dtype):
    rng = np.random.default_rng(4)
    N, C, H, W, L = 3, 5, 7, 9, 33
    idx = rng.integers(0, H * W, (N, C, L, 1))           # repeats: accumulation
    idx[0, 0, :4, 0] = 5                                  # four values onto one element
    g = rng.standard_normal((N, C, L, 1)).astype(dtype)
    want = R.plane_scatter(g, idx, H, W)
    for gd, idd in ((dev(g, kernel_device), dev(idx, kernel_device)),
                    (noncontiguous(g, kernel_device), noncontiguous(idx, kernel_device))):
        out = P.plane_scatter(gd, idd, H, W)
        np.testing.assert_allclose(host(out), want, **_tol(dtype))
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    want = R.plane_gather(x, idx)
    for xd, idd in ((dev(x, kernel_device), dev(idx, kernel_device)),
                    (noncontiguous(x, kernel_device), noncontiguous(idx, kernel_device))):
        got = P.plane_gather(xd, idd)
        assert host(got).shape == idx.shape
        np.testing.assert_array_equal(host(got), want)


def test_plane_scatter_accumulates_repeated_indices(kernel_device):
    g = np.array([[[[1.0, 2.0, 4.0]]]])
    idx = np.array([[[[3, 3, 0]]]])
    out = host(P.plane_scatter(dev(g, kernel_device), dev(idx, kernel_device), 2, 2))
    np.testing.assert_array_equal(out, [[[[4.0, 0.0], [0.0, 3.0]]]])
    np.testing.assert_array_equal(out, R.plane_scatter(g, idx, 2, 2))
    back = host(P.plane_gather(dev(out, kernel_device), dev(idx, kernel_device)))
    np.testing.assert_array_equal(back, [[[[3.0, 3.0, 4.0]]]])


def test_plane_scatter_skips_missing_indices(kernel_device):
    # -1 marks a window with no input element (the CUDA max pool's index there): no gradient
    g = np.array([[[[1.0, 2.0, 4.0]]]])
    idx = np.array([[[[3, -1, 0]]]])
    out = host(P.plane_scatter(dev(g, kernel_device), dev(idx, kernel_device), 2, 2))
    np.testing.assert_array_equal(out, [[[[4.0, 0.0], [0.0, 1.0]]]])


def test_plane_gather_reads_zero_at_missing_indices(kernel_device):
    """-1 (and any index outside the plane) gathers 0: the CPU once read -1 as the plane's last
    element."""
    x = np.array([[[[4.0, 5.0], [6.0, 1.0]]]])
    idx = np.array([[[[3, -1, 0, 4]]]])
    back = host(P.plane_gather(dev(x, kernel_device), dev(idx, kernel_device)))
    np.testing.assert_array_equal(back, [[[[1.0, 0.0, 4.0, 0.0]]]])


def test_plane_scatter_skips_indices_outside_the_plane(kernel_device):
    """PyTorch's max pool gives a window with no input element the index just past the plane
    (3, 4, 5 for a 1x3 plane below); the scatter must skip it (the CPU once wrote there,
    corrupting memory)."""
    g = np.array([[[[1.0, 2.0, 3.0, 4.0]]]])
    idx = np.array([[[[3, 4, -1, 1]]]])
    out = host(P.plane_scatter(dev(g, kernel_device), dev(idx, kernel_device), 1, 3))
    np.testing.assert_array_equal(out, [[[[0.0, 4.0, 0.0]]]])


# --- adaptive max pool ------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("H,W,OH,OW", [(7, 9, 3, 4), (5, 5, 5, 5), (9, 4, 2, 7), (1, 6, 1, 4),
                                       (13, 11, 1, 1), (6, 10, 4, 3)])
def test_adaptive_max_pool_matches_reference(kernel_device, dtype, H, W, OH, OW):
    rng = np.random.default_rng(5)
    shape = (2, 3, H, W)
    for x in (_distinct(shape, dtype, rng), rng.integers(-1, 2, shape).astype(dtype)):
        ry, ridx = R.adaptive_max_fwd(x, OH, OW)
        for xd in (dev(x, kernel_device), noncontiguous(x, kernel_device)):
            y, idx = P.adaptive_max_pool2d_fwd(xd, OH, OW)
            np.testing.assert_array_equal(host(y), ry)
            np.testing.assert_array_equal(host(idx), ridx)
    # NaN and -inf: the first maximum, the last NaN (PyTorch's), as the CPU kernel and reference
    x = rng.integers(0, 3, shape).astype(dtype)
    u = rng.random(shape)
    x[u < 0.2] = np.nan
    x[(u >= 0.2) & (u < 0.5)] = -np.inf
    y, idx = P.adaptive_max_pool2d_fwd(dev(x, kernel_device), OH, OW)
    cy, cidx = CP.adaptive_max_pool2d_fwd(x, OH, OW)
    ry, ridx = R.adaptive_max_fwd(x, OH, OW)
    np.testing.assert_array_equal(host(y), cy)
    np.testing.assert_array_equal(host(y), ry)
    np.testing.assert_array_equal(host(idx), cidx)
    np.testing.assert_array_equal(host(idx), ridx)


@examples()
@given(H=st.integers(1, 9), W=st.integers(1, 9), OH=st.integers(1, 5), OW=st.integers(1, 5),
       seed=st.integers(0, 2 ** 32 - 1))
def test_adaptive_max_pool_random_geometry(kernel_device, H, W, OH, OW, seed):
    rng = np.random.default_rng(seed)
    x = rng.permutation(2 * 3 * H * W).reshape(2, 3, H, W).astype(np.float64)
    y, idx = P.adaptive_max_pool2d_fwd(dev(x, kernel_device), OH, OW)
    ry, ridx = R.adaptive_max_fwd(x, OH, OW)
    np.testing.assert_array_equal(host(y), ry)
    np.testing.assert_array_equal(host(idx), ridx)


# --- the CUDA launch layer ------------------------------------------------------------------------

@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_adaptive_max_pool_tall_plane_no_int32_overflow(device):
    # window bounds (oh + 1) * H / OH: the product passes 2**31 for the last ~60 rows here
    H, OH = 46400, 46341
    x = np.random.default_rng(7).standard_normal((1, 1, H, 1)).astype(np.float32)
    y, idx = G.adaptive_max_pool2d_fwd(dev(x, device), OH, 1)
    cy, cidx = CP.adaptive_max_pool2d_fwd(x, OH, 1)
    np.testing.assert_array_equal(host(idx), cidx)
    np.testing.assert_array_equal(host(y), cy)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_bad_input(device):
    x = dev(np.zeros((1, 1, 4, 4), np.int32), device)
    with pytest.raises(TypeError, match="max_pool2d.*int32"):
        G.max_pool2d_fwd(x, 2, 2, 2, 2, 0, 0, 1, 1, 2, 2)
    with pytest.raises(ValueError, match="avg_pool2d: expected a 4-D array"):
        G.avg_pool2d_fwd(dev(np.ones((4, 4)), device), 2, 2, 2, 2, 0, 0, 2, 2, np.ones((2, 2)))
    x = dev(np.ones((1, 1, 4, 4)), device)
    with pytest.raises(ValueError, match=r"avg_pool2d: inv must have shape \(2, 2\)"):
        G.avg_pool2d_fwd(x, 2, 2, 2, 2, 0, 0, 2, 2, np.ones((3, 2)))
    g = dev(np.ones((1, 1, 2, 2)), device)
    with pytest.raises(ValueError, match="plane_scatter: indices"):
        G.plane_scatter(g, dev(np.zeros((1, 1, 3), np.int64), device), 4, 4)
    with pytest.raises(ValueError, match="max_pool2d_backward: indices"):
        G.max_pool2d_bwd(g, dev(np.zeros((1, 1, 2, 3), np.int64), device), 4, 4,
                         2, 2, 2, 2, 0, 0, 1, 1)
    with pytest.raises(ValueError, match="plane_gather: indices"):
        G.plane_gather(x, dev(np.zeros((2, 1, 3), np.int64), device))


@pytest.mark.parametrize("device", [d for d in KERNEL_DEVICES if d.id == "cuda"])
def test_inv_is_copied_to_the_device_once(device):
    """The cache holds device copies of host arrays (so there is nothing to cache on emu)."""
    import cupy  # noqa: PLC0415
    inv = P.avg_pool_inv(7, 9, 3, 3, 2, 2, 1, 1, 4, 5, False, None, np.float32)
    a = G._inv(cupy, inv, np.float32, 4, 5, "t")
    assert G._inv(cupy, inv.copy(), np.float32, 4, 5, "t") is a     # same content: same copy
    np.testing.assert_array_equal(host(a), inv)
    b = G._inv(cupy, inv * 2, np.float32, 4, 5, "t")
    assert b is not a
    np.testing.assert_array_equal(host(b), inv * 2)


# --- the pooling ops through the CUDA kernels (emulated) against the CPU kernels ------------------

OP_CASES = [
    lambda F, x: F.max_pool2d(x, 3, 2, 1),
    lambda F, x: F.max_pool2d(x, (2, 3), (1, 2), (1, 0), dilation=(2, 1), ceil_mode=True),
    lambda F, x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False),
    lambda F, x: F.avg_pool2d(x, 2, divisor_override=3),
    lambda F, x: F.adaptive_max_pool2d(x, (4, 3)),
    lambda F, x: F.adaptive_avg_pool2d(x, (7, 3)),   # an avg_pool2d (1, 3); else a matmul
    lambda F, x: F.max_unpool2d(*F.max_pool2d(x, 2, return_indices=True), 2, output_size=(7, 9)),
]


@pytest.mark.skipif(not emulator.available(), reason="no C++ compiler for the CUDA emulator")
@pytest.mark.parametrize("fn", OP_CASES, ids=["max3s2", "max_dil_ceil", "avg_ceil_nopad",
                                              "avg_divisor", "adaptive_max", "adaptive_avg",
                                              "unpool"])
def test_ops_through_cuda_dispatch_match_cpu(fn, monkeypatch):
    # The family APIs take the CUDA branch for NumPy arrays too, so the launch functions run
    # under the emulator inside the real ops: forward, backward (the max-pool gather with its
    # window), and second derivatives (plane_gather), against the CPU kernels.
    def run():
        rng = np.random.default_rng(6)
        x = mc.tensor(_distinct((2, 3, 7, 9), np.float64, rng) * 0.01, requires_grad=True)
        y = fn(F, x)
        g = mc.tensor(rng.standard_normal(tuple(y.shape)), requires_grad=True)
        (gx,) = mc.autograd.grad(y ** 2, [x], g, create_graph=True)
        v = mc.tensor(rng.standard_normal(tuple(x.shape)))
        ggx, gg = mc.autograd.grad((gx * v).sum(), [x, g])
        return [t.numpy() for t in (y, gx, ggx, gg)]

    want = run()
    launched = emulate(monkeypatch)
    got = run()
    assert launched, "the CUDA kernels did not run"
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


# --- float16 / bfloat16 --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", Hf.HALVES, ids=Hf.HALF_IDS)
@pytest.mark.parametrize("case", CASES[:5], ids=IDS[:5])
def test_half_pooling(kernel_device, launched, dtype, case):
    """The half kernels against the float32 references and CPU kernels on the same (widened)
    values: max pooling, its indices, its gradient (a float32 sum in the CPU's order, rounded
    once), the gather and adaptive max pooling equal, NaN and -inf included; average pooling
    within one rounding around float32's tolerance."""
    shape, K, S, Pd, D, ceil = case
    H, W = shape[2:]
    geo = _geometry(H, W, K, S, Pd, D, ceil)
    rng = np.random.default_rng(6)
    x = rng.integers(-3, 4, shape).astype(dtype)       # ties, then NaN and -inf
    u = rng.random(shape)
    x[u < 0.1] = np.nan
    x[(u >= 0.1) & (u < 0.2)] = -np.inf
    x32 = x.astype(np.float32)
    y, idx = P.max_pool2d_fwd(dev(x, kernel_device), *geo)
    cy, cidx = _cpu_max_pool(x32, geo)
    Hf.half_equal(y, cy, dtype)
    np.testing.assert_array_equal(host(idx), cidx)
    gy = rng.standard_normal(cy.shape).astype(dtype)
    gx = P.max_pool2d_bwd(dev(gy, kernel_device), idx, H, W, *geo[:8])
    Hf.half_equal(gx, CP.plane_scatter(gy.astype(np.float32), cidx, H, W), dtype)
    Hf.half_equal(P.plane_gather(dev(x, kernel_device), idx), R.plane_gather(x32, cidx), dtype)
    ay, aidx = P.adaptive_max_pool2d_fwd(dev(x, kernel_device), 3, 2)
    cy, cidx = CP.adaptive_max_pool2d_fwd(x32, 3, 2)
    Hf.half_equal(ay, cy, dtype)
    np.testing.assert_array_equal(host(aidx), cidx)
    if D == (1, 1):
        OH, OW = geo[-2:]
        hw = (*K, *S, *Pd)
        inv = P.avg_pool_inv(H, W, *hw, OH, OW, False, None, dtype)   # as the op passes it
        x = rng.standard_normal(shape).astype(dtype)
        tol = _tol(np.float32)
        y = P.avg_pool2d_fwd(dev(x, kernel_device), *hw, OH, OW, inv)
        inv32 = inv.astype(np.float32)
        Hf.half_close(y, R.avg_pool_fwd(x.astype(np.float32), *hw, OH, OW, inv32), dtype,
                      tol["rtol"], tol["atol"])
        gy = rng.standard_normal(y.shape).astype(dtype)
        gx = P.avg_pool2d_bwd(dev(gy, kernel_device), H, W, *hw, inv)
        Hf.half_close(gx, R.avg_pool_bwd(gy.astype(np.float32), H, W, *hw, inv32), dtype,
                      tol["rtol"], tol["atol"])
    Hf.ran_half(kernel_device, launched, dtype)
