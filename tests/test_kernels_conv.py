"""Depthwise / grouped and pool kernels (Numba) against their plain NumPy references, on random
inputs with odd sizes, strides, padding and dilation (the conv family's tests are in
tests/kernels/test_conv.py)."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from minicnn.kernels import pool as P
from minicnn.kernels import grouped as KG
from minicnn.kernels.conv import reference as RC
from minicnn.kernels.grouped import reference as RG
from minicnn.kernels._numba import SMALL_WORK
from minicnn.kernels.pool import reference as RP


@st.composite
def geometry(draw, max_side=7):
    N, C = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    KH, KW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    SH, SW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    DH, DW = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    PH, PW = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    H = max(1, DH * (KH - 1) + 1 - 2 * PH) + draw(st.integers(0, max_side - 1))
    W = max(1, DW * (KW - 1) + 1 - 2 * PW) + draw(st.integers(0, max_side - 1))
    OH = (H + 2 * PH - DH * (KH - 1) - 1) // SH + 1
    OW = (W + 2 * PW - DW * (KW - 1) - 1) // SW + 1
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return dict(N=N, C=C, H=H, W=W, KH=KH, KW=KW, SH=SH, SW=SW, PH=PH, PW=PW, DH=DH, DW=DW,
                OH=OH, OW=OW, dtype=dtype, seed=draw(st.integers(0, 2 ** 32 - 1)))


def _hp(g):
    return (g["SH"], g["SW"], g["PH"], g["PW"], g["DH"], g["DW"])


@given(g=geometry(), M=st.integers(1, 2))
def test_depthwise_kernels_match_reference(g, M):
    rng = np.random.default_rng(g["seed"])
    C = g["C"]
    x = rng.standard_normal((g["N"], C, g["H"], g["W"])).astype(g["dtype"])
    w = rng.standard_normal((C * M, 1, g["KH"], g["KW"])).astype(g["dtype"])
    gy = rng.standard_normal((g["N"], C * M, g["OH"], g["OW"])).astype(g["dtype"])
    tol = 1e-4 if g["dtype"] == np.float32 else 1e-11
    hp = _hp(g)
    np.testing.assert_allclose(KG.depthwise_conv2d(x, w, *hp, g["OH"], g["OW"]),
                               RG.depthwise_conv2d(x, w, *hp, g["OH"], g["OW"]), rtol=tol,
                               atol=tol)
    np.testing.assert_allclose(KG.depthwise_grad_input(gy, w, C, g["H"], g["W"], *hp),
                               RG.depthwise_grad_input(gy, w, C, g["H"], g["W"], *hp), rtol=tol,
                               atol=tol)
    np.testing.assert_allclose(KG.depthwise_grad_weight(x, gy, g["KH"], g["KW"], *hp),
                               RG.depthwise_grad_weight(x, gy, g["KH"], g["KW"], *hp), rtol=tol,
                               atol=tol)
    # and the depthwise reference is the grouped conv of the definition
    np.testing.assert_allclose(RG.depthwise_conv2d(x, w, *hp, g["OH"], g["OW"]),
                               RC.conv2d(x, w, *hp, C), rtol=tol, atol=tol)


@given(N=st.integers(1, 3), C=st.integers(1, 3), M=st.integers(1, 2), H=st.integers(1, 8),
       W=st.integers(1, 8), PH=st.integers(0, 3), PW=st.integers(0, 3), DH=st.integers(1, 2),
       DW=st.integers(1, 2), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2 ** 32 - 1))
def test_depthwise_3x3_stride1_fast_path_matches_reference(N, C, M, H, W, PH, PW, DH, DW, dtype,
                                                            seed):
    # the register-blocked 3x3 stride-1 kernels (and grad_input as the flipped forward, taken
    # when M == 1 and P <= 2D); the generic geometry() above draws this case rarely
    H, W = H + max(0, 2 * DH - 2 * PH), W + max(0, 2 * DW - 2 * PW)
    OH, OW = H + 2 * PH - 2 * DH, W + 2 * PW - 2 * DW
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((C * M, 1, 3, 3)).astype(dtype)
    gy = rng.standard_normal((N, C * M, OH, OW)).astype(dtype)
    tol = 1e-4 if dtype == np.float32 else 1e-11
    hp = (1, 1, PH, PW, DH, DW)
    np.testing.assert_allclose(KG.depthwise_conv2d(x, w, *hp, OH, OW),
                               RG.depthwise_conv2d(x, w, *hp, OH, OW), rtol=tol, atol=tol)
    np.testing.assert_allclose(KG.depthwise_grad_input(gy, w, C, H, W, *hp),
                               RG.depthwise_grad_input(gy, w, C, H, W, *hp), rtol=tol, atol=tol)
    np.testing.assert_allclose(KG.depthwise_grad_weight(x, gy, 3, 3, *hp),
                               RG.depthwise_grad_weight(x, gy, 3, 3, *hp), rtol=tol, atol=tol)


@given(N=st.integers(1, 2), G=st.integers(1, 3), Cg=st.integers(1, 4), Kg=st.integers(1, 3),
       H=st.integers(1, 7), W=st.integers(1, 7), P=st.integers(0, 2), D=st.integers(1, 2),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2 ** 32 - 1))
def test_grouped_3x3_stride1_kernels_match_reference(N, G, Cg, Kg, H, W, P, D, dtype, seed):
    # the direct grouped kernels: forward against the definition, grad_input / grad_weight
    # against the im2col + col2im form of the references (the conv's adjoints)
    P = min(P, 2 * D)
    H, W = H + max(0, 2 * D - 2 * P), W + max(0, 2 * D - 2 * P)
    OH, OW = H + 2 * P - 2 * D, W + 2 * P - 2 * D
    C, Kk = G * Cg, G * Kg
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((Kk, Cg, 3, 3)).astype(dtype)
    gy = rng.standard_normal((N, Kk, OH, OW)).astype(dtype)
    tol = 1e-4 if dtype == np.float32 else 1e-11
    np.testing.assert_allclose(KG.grouped_conv2d(x, w, G, 1, 1, P, P, D, D, OH, OW),
                               RC.conv2d(x, w, 1, 1, P, P, D, D, G), rtol=tol, atol=tol)
    b = rng.standard_normal(Kk).astype(dtype)
    np.testing.assert_allclose(KG.grouped_conv2d(x, w, G, 1, 1, P, P, D, D, OH, OW, b),
                               RC.conv2d(x, w, 1, 1, P, P, D, D, G) + b[:, None, None],
                               rtol=tol, atol=tol)
    col_gy = gy.reshape(N, G, Kg, OH * OW)
    wr = w.reshape(G, Kg, Cg * 9)
    gcol = np.einsum("gkq,ngkl->gqnl", wr, col_gy).reshape(C, 3, 3, N, OH, OW)
    np.testing.assert_allclose(KG.grouped_grad_input(gy, w, G, C, H, W, 1, 1, P, P, D, D),
                               RC.col2im(gcol, H, W, 1, 1, P, P, D, D), rtol=tol, atol=tol)
    col = RC.im2col(x, 3, 3, 1, 1, P, P, D, D, OH, OW).reshape(G, Cg * 9, N * OH * OW)
    gyt = gy.reshape(N, G, Kg, OH * OW).transpose(1, 2, 0, 3).reshape(G, Kg, N * OH * OW)
    gw = np.einsum("gkl,gql->gkq", gyt, col).reshape(Kk, Cg, 3, 3)
    np.testing.assert_allclose(KG.grouped_grad_weight(x, gy, G, 3, 3, 1, 1, P, P, D, D), gw,
                               rtol=tol, atol=tol * 10)


def test_depthwise_3x3_fast_path_large_and_nonfinite():
    # the threaded path on a suite-sized input, and NaN/inf propagate (no finite-math flags)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 16, 29, 31)).astype(np.float32)
    w = rng.standard_normal((16, 1, 3, 3)).astype(np.float32)
    x[0, 1, 5, 7], x[1, 2, 0, 0] = np.nan, np.inf
    hp = (1, 1, 1, 1, 1, 1)
    y = KG.depthwise_conv2d(x, w, *hp, 29, 31)
    assert y.size * 9 > SMALL_WORK
    np.testing.assert_allclose(y, RG.depthwise_conv2d(x, w, *hp, 29, 31), rtol=1e-4, atol=1e-4)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    gy[1, 3, 4, 4] = np.nan
    np.testing.assert_allclose(KG.depthwise_grad_input(gy, w, 16, 29, 31, *hp),
                               RG.depthwise_grad_input(gy, w, 16, 29, 31, *hp), rtol=1e-4,
                               atol=1e-4)
    np.testing.assert_allclose(KG.depthwise_grad_weight(x, gy, 3, 3, *hp),
                               RG.depthwise_grad_weight(x, gy, 3, 3, *hp), rtol=1e-4, atol=1e-3)


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


