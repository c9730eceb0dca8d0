"""Pool kernels (Numba) against their plain NumPy references, on random inputs with odd sizes,
strides, padding and dilation (the conv and grouped families' tests are in tests/kernels/)."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from minicnn.kernels import pool as P
from minicnn.kernels.pool import reference as RP


@st.composite
def pool_geometry(draw):
    N, C = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    KH, KW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    SH, SW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    PH, PW = draw(st.integers(0, KH // 2)), draw(st.integers(0, KW // 2))
    H, W = KH + draw(st.integers(0, 6)), KW + draw(st.integers(0, 6))
    OH = (H + 2 * PH - KH) // SH + 1
    OW = (W + 2 * PW - KW) // SW + 1
    return dict(N=N, C=C, H=H, W=W, KH=KH, KW=KW, SH=SH, SW=SW, PH=PH, PW=PW, OH=OH, OW=OW,
                dtype=draw(st.sampled_from([np.float32, np.float64])),
                seed=draw(st.integers(0, 2 ** 32 - 1)), cip=draw(st.booleans()))


@given(g=pool_geometry(), D=st.integers(1, 2))
def test_max_pool_kernel_matches_reference(g, D):
    rng = np.random.default_rng(g["seed"])
    shape = (g["N"], g["C"], g["H"] + 3, g["W"] + 3)
    x = rng.permutation(np.prod(shape)).reshape(shape).astype(g["dtype"])  # no ties
    KH, KW = g["KH"], g["KW"]
    OH = (shape[2] + 2 * g["PH"] - D * (KH - 1) - 1) // g["SH"] + 1
    OW = (shape[3] + 2 * g["PW"] - D * (KW - 1) - 1) // g["SW"] + 1
    args = (KH, KW, g["SH"], g["SW"], g["PH"], g["PW"], D, D, OH, OW)
    y, idx = P.max_pool2d_fwd(x, *args)
    ry, ridx = RP.max_pool_fwd(x, *args)
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(idx, ridx)
    gy = rng.standard_normal(y.shape).astype(g["dtype"])
    np.testing.assert_allclose(P.plane_scatter(gy, idx, *shape[2:]),
                               RP.plane_scatter(gy, ridx, *shape[2:]), rtol=1e-6, atol=1e-6)


@given(N=st.integers(1, 2), C=st.integers(1, 3), H=st.integers(1, 8), W=st.integers(1, 8),
       S=st.integers(1, 3), PD=st.integers(0, 1), D=st.integers(1, 2),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2 ** 32 - 1))
def test_separable_max_pool_3x3_ties_nan_inf(N, C, H, W, S, PD, D, dtype, seed):
    # the separable 3x3 kernel equals the generic kernel (PyTorch's scan: the first maximum, the
    # last NaN, a window of -inf gives its first element) on inputs full of ties, NaN and -inf;
    # without NaN also the reference
    from minicnn.kernels.pool import cpu as CP
    H, W = H + max(0, 2 * D - 2 * PD), W + max(0, 2 * D - 2 * PD)
    OH, OW = (H + 2 * PD - 2 * D - 1) // S + 1, (W + 2 * PD - 2 * D - 1) // S + 1
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, (N, C, H, W)).astype(dtype)
    args = (3, 3, S, S, PD, PD, D, D, OH, OW)
    y, idx = P.max_pool2d_fwd(x, *args)
    ry, ridx = RP.max_pool_fwd(x, *args)
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(idx, ridx)
    u = rng.random(x.shape)
    x[u < 0.2] = np.nan
    x[(u >= 0.2) & (u < 0.4)] = -np.inf
    x[0, 0] = -np.inf
    y, idx = P.max_pool2d_fwd(x, *args)
    gy, gidx = np.empty_like(y), np.empty_like(idx)
    CP.max_pool_fwd(x, *args[:8], gy, gidx)
    np.testing.assert_array_equal(y, gy)
    np.testing.assert_array_equal(idx, gidx)


@given(g=pool_geometry(), override=st.sampled_from([None, 3]))
def test_avg_pool_kernels_match_reference(g, override):
    rng = np.random.default_rng(g["seed"])
    x = rng.standard_normal((g["N"], g["C"], g["H"], g["W"])).astype(g["dtype"])
    geo = (g["KH"], g["KW"], g["SH"], g["SW"], g["PH"], g["PW"])
    inv = P.avg_pool_inv(g["H"], g["W"], *geo, g["OH"], g["OW"], g["cip"], override, g["dtype"])
    tol = 1e-5 if g["dtype"] == np.float32 else 1e-12
    np.testing.assert_allclose(P.avg_pool2d_fwd(x, *geo, g["OH"], g["OW"], inv),
                               RP.avg_pool_fwd(x, *geo, g["OH"], g["OW"], inv), rtol=tol,
                               atol=tol)
    gy = rng.standard_normal((g["N"], g["C"], g["OH"], g["OW"])).astype(g["dtype"])
    np.testing.assert_allclose(P.avg_pool2d_bwd(gy, g["H"], g["W"], *geo, inv),
                               RP.avg_pool_bwd(gy, g["H"], g["W"], *geo, inv), rtol=tol, atol=tol)


def test_plane_scatter_accumulates_repeated_indices():
    g = np.array([[[[1.0, 2.0, 4.0]]]])
    idx = np.array([[[[3, 3, 0]]]])
    out = P.plane_scatter(g, idx, 2, 2)
    np.testing.assert_array_equal(out, [[[[4.0, 0.0], [0.0, 3.0]]]])
    np.testing.assert_array_equal(out, RP.plane_scatter(g, idx, 2, 2))
    np.testing.assert_array_equal(P.plane_gather(out, idx), [[[[3.0, 3.0, 4.0]]]])


@given(H=st.integers(1, 9), W=st.integers(1, 9), OH=st.integers(1, 5), OW=st.integers(1, 5),
       seed=st.integers(0, 2 ** 32 - 1))
def test_adaptive_max_kernel_matches_reference(H, W, OH, OW, seed):
    rng = np.random.default_rng(seed)
    x = rng.permutation(2 * 3 * H * W).reshape(2, 3, H, W).astype(np.float64)
    y, idx = P.adaptive_max_pool2d_fwd(x, OH, OW)
    ry, ridx = RP.adaptive_max_fwd(x, OH, OW)
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(idx, ridx)


