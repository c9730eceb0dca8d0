"""mc.autograd.{vjp, jvp, hvp, vhp, jacobian, hessian} against torch.autograd.functional and
against finite differences."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicnn as mc
from minicnn.testing import strategies as mst


def _f(lib):
    """A smooth scalar function of two tensors: a small softplus MLP with a quadratic term."""
    def softplus(z):
        return (z.exp() + 1.0).log() if lib is mc else lib.log(lib.exp(z) + 1.0)

    def f(x, w):
        h = softplus(x @ w)
        return (h * h).sum() * 0.5 + (x * x * x).sum() * 0.1
    return f


def _g(lib):
    """A vector-valued function with two outputs."""
    def g(x, w):
        y = x @ w
        return (y * y).sum(0), (x.exp() if lib is mc else lib.exp(x)) * 0.5
    return g


def _np(t):
    return t.detach().numpy() if not isinstance(t, mc.Tensor) else t.numpy()


def _close(a, b, rtol=1e-10, atol=1e-12):
    if isinstance(a, (tuple, list)):
        assert isinstance(b, (tuple, list)) and len(a) == len(b)
        for u, v in zip(a, b):
            _close(u, v, rtol, atol)
        return
    assert tuple(a.shape) == tuple(b.shape)
    np.testing.assert_allclose(_np(a), _np(b), rtol=rtol, atol=atol)


def _pair(shape_x, shape_w, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, shape_x), rng.uniform(-1, 1, shape_w)


@st.composite
def mlp_shapes(draw):
    n, k, m = (draw(st.integers(1, 4)) for _ in range(3))
    return (n, k), (k, m), draw(st.integers(0, 2 ** 32 - 1))


@given(shapes=mlp_shapes())
def test_hvp_and_vhp_match_torch(shapes):
    torch = pytest.importorskip("torch")
    sx, sw, seed = shapes
    xa, wa = _pair(sx, sw, seed)
    va, ua = _pair(sx, sw, seed + 1)
    mx, mw = mc.tensor(xa), mc.tensor(wa)
    tx, tw = torch.tensor(xa), torch.tensor(wa)
    for name in ("hvp", "vhp"):
        out, res = getattr(mc.autograd, name)(_f(mc), (mx, mw), (mc.tensor(va), mc.tensor(ua)))
        tout, tres = getattr(torch.autograd.functional, name)(
            _f(torch), (tx, tw), (torch.tensor(va), torch.tensor(ua)))
        _close(out, tout)
        _close(res, tres)
        assert not out.requires_grad and not any(r.requires_grad for r in res)


@given(shapes=mlp_shapes())
def test_vjp_and_jvp_match_torch(shapes):
    torch = pytest.importorskip("torch")
    sx, sw, seed = shapes
    xa, wa = _pair(sx, sw, seed)
    rng = np.random.default_rng(seed + 2)
    gy = (rng.standard_normal(sw[1]), rng.standard_normal(sx))
    vx, vw = _pair(sx, sw, seed + 3)
    args = (mc.tensor(xa), mc.tensor(wa))
    targs = (torch.tensor(xa), torch.tensor(wa))
    out, res = mc.autograd.vjp(_g(mc), args, tuple(mc.tensor(g) for g in gy))
    tout, tres = torch.autograd.functional.vjp(_g(torch), targs, tuple(torch.tensor(g) for g in gy))
    _close(out, tout)
    _close(res, tres)
    out, res = mc.autograd.jvp(_g(mc), args, (mc.tensor(vx), mc.tensor(vw)))
    tout, tres = torch.autograd.functional.jvp(_g(torch), targs,
                                               (torch.tensor(vx), torch.tensor(vw)))
    _close(out, tout)
    _close(res, tres)


def test_jvp_matches_finite_differences():
    xa, wa = _pair((3, 4), (4, 2), 5)
    vx, vw = _pair((3, 4), (4, 2), 6)
    _, (j1, j2) = mc.autograd.jvp(_g(mc), (mc.tensor(xa), mc.tensor(wa)),
                                  (mc.tensor(vx), mc.tensor(vw)))
    eps = 1e-6
    plus = _g(mc)(mc.tensor(xa + eps * vx), mc.tensor(wa + eps * vw))
    minus = _g(mc)(mc.tensor(xa - eps * vx), mc.tensor(wa - eps * vw))
    for j, p, m in zip((j1, j2), plus, minus):
        np.testing.assert_allclose(j.numpy(), (p.numpy() - m.numpy()) / (2 * eps), rtol=1e-6,
                                   atol=1e-8)


def test_hvp_matches_finite_differences_of_the_gradient():
    xa, wa = _pair((2, 3), (3, 4), 7)
    vx, vw = _pair((2, 3), (3, 4), 8)
    _, (hx, hw) = mc.autograd.hvp(_f(mc), (mc.tensor(xa), mc.tensor(wa)),
                                  (mc.tensor(vx), mc.tensor(vw)))
    eps = 1e-6

    def grad_at(x, w):
        x, w = mc.tensor(x, requires_grad=True), mc.tensor(w, requires_grad=True)
        return [g.numpy() for g in mc.autograd.grad(_f(mc)(x, w), [x, w])]

    plus, minus = grad_at(xa + eps * vx, wa + eps * vw), grad_at(xa - eps * vx, wa - eps * vw)
    np.testing.assert_allclose(hx.numpy(), (plus[0] - minus[0]) / (2 * eps), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(hw.numpy(), (plus[1] - minus[1]) / (2 * eps), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("as_tuple", [False, True])
def test_jacobian_and_hessian_match_torch(as_tuple):
    torch = pytest.importorskip("torch")
    xa, wa = _pair((2, 3), (3, 2), 9)
    if as_tuple:
        inputs, tinputs = (mc.tensor(xa), mc.tensor(wa)), (torch.tensor(xa), torch.tensor(wa))
        f, tf, g, tg = _f(mc), _f(torch), _g(mc), _g(torch)
    else:
        w, tw = mc.tensor(wa), torch.tensor(wa)
        inputs, tinputs = mc.tensor(xa), torch.tensor(xa)
        f, tf = (lambda x: _f(mc)(x, w)), (lambda x: _f(torch)(x, tw))
        g, tg = (lambda x: _g(mc)(x, w)[1]), (lambda x: _g(torch)(x, tw)[1])
    _close(mc.autograd.hessian(f, inputs), torch.autograd.functional.hessian(tf, tinputs))
    _close(mc.autograd.jacobian(g, inputs), torch.autograd.functional.jacobian(tg, tinputs))
    _close(mc.autograd.functional.jacobian(f, inputs),
           torch.autograd.functional.jacobian(tf, tinputs))


def test_unused_inputs_give_zeros_or_raise_with_strict():
    x, u = mc.tensor(np.ones(3)), mc.tensor(np.ones(2))

    def f(x, u):
        return (x * x).sum()

    _, (hx, hu) = mc.autograd.hvp(f, (x, u), (mc.ones(3, dtype=mc.float64),
                                              mc.ones(2, dtype=mc.float64)))
    np.testing.assert_allclose(hx.numpy(), np.full(3, 2.0))
    np.testing.assert_allclose(hu.numpy(), np.zeros(2))
    with pytest.raises(RuntimeError, match="independent of input 1"):
        mc.autograd.hvp(f, (x, u), (mc.tensor(np.ones(3)), mc.tensor(np.ones(2))), strict=True)
    _, (gx, gu) = mc.autograd.vjp(f, (x, u))
    np.testing.assert_allclose(gu.numpy(), np.zeros(2))
    with pytest.raises(RuntimeError, match="independent of input 1"):
        mc.autograd.vjp(f, (x, u), strict=True)
    H = mc.autograd.hessian(f, (x, u))
    assert H[0][1].shape == (3, 2) and H[1][1].shape == (2, 2) and not H[1][0].numpy().any()
    np.testing.assert_allclose(H[0][0].numpy(), 2 * np.eye(3))


def test_create_graph_keeps_results_differentiable_wrt_the_original_inputs():
    # d/dx <H(x) v, v> for f = sum(x^4)/12: H = diag(x^2), so <Hv, v> = sum(x^2 v^2), grad 2 x v^2
    x = mc.tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
    v = mc.tensor(np.array([1.0, 2.0, -1.0]))
    _, hv = mc.autograd.hvp(lambda t: (t ** 4).sum() / 12.0, x, v, create_graph=True)
    assert hv.requires_grad
    ((hv * v).sum()).backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.array * v.array ** 2, rtol=1e-12)
    # and without create_graph nothing is recorded and the inputs are left alone
    _, hv = mc.autograd.hvp(lambda t: (t ** 4).sum(), x, v)
    assert not hv.requires_grad and hv.grad_fn is None


def test_bad_arguments():
    x = mc.tensor(np.ones(3))
    with pytest.raises(RuntimeError, match="single Tensor with one element"):
        mc.autograd.hvp(lambda t: t * 2.0, x, x)
    with pytest.raises(RuntimeError, match="v can be omitted only"):
        mc.autograd.hvp(lambda t: (t * t).sum(), x)
    with pytest.raises(ValueError, match=r"v\[0\] has shape \[2\] but the input 0 has shape \[3\]"):
        mc.autograd.jvp(lambda t: t * 2.0, x, mc.tensor(np.ones(2)))
    with pytest.raises(TypeError, match="element 0 of the inputs must be a Tensor"):
        mc.autograd.vjp(lambda t: t, [1.0, 2.0])
    with pytest.raises(TypeError, match="Tensor or a tuple of Tensors"):
        mc.autograd.vjp(lambda t: t, 3.0)
    with pytest.raises(TypeError, match="floating point"):
        mc.autograd.jacobian(lambda t: t, mc.tensor(np.arange(3)))


@given(x=mst.tensors(mst.shapes(1, 2, max_side=4), requires_grad=False), data=st.data())
def test_hvp_equals_hessian_times_v(x, data):
    v = data.draw(mst.tensors(tuple(x.shape), requires_grad=False))

    def f(t):
        return ((t * t).sum() + 1.0).log() + (t.exp() * t).sum()

    H = mc.autograd.hessian(f, x).numpy().reshape(x.array.size, x.array.size)
    _, hv = mc.autograd.hvp(f, x, v)
    np.testing.assert_allclose(H, H.T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(hv.numpy().reshape(-1), H @ v.array.reshape(-1), rtol=1e-10,
                               atol=1e-12)


def test_jvp_with_create_graph_matches_torch_through_the_inputs():
    torch = pytest.importorskip("torch")
    xa, va = np.array([0.3, -0.7, 1.1]), np.array([1.0, 2.0, 0.5])
    x, tx = mc.tensor(xa, requires_grad=True), torch.tensor(xa, requires_grad=True)
    _, j = mc.autograd.jvp(lambda t: (t * t).exp(), x, mc.tensor(va), create_graph=True)
    _, tj = torch.autograd.functional.jvp(lambda t: (t * t).exp(), tx, torch.tensor(va),
                                          create_graph=True)
    _close(j, tj)
    j.sum().backward()
    tj.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12)
