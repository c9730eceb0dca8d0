"""Higher-order gradients: gradgradcheck over the op table, parity with PyTorch's second
derivatives, mc.testing.gradgradcheck itself, and the create_graph / retain_graph / allow_unused
semantics of the engine.

Every op-table entry with `double_backward=True` gets a float64 gradgradcheck over hypothesis-drawn
shapes and hyperparameters and a comparison of its second derivatives with PyTorch's: with
g = d<op(x), gy>/dx recorded (create_graph=True), the gradients of <g, v> w.r.t. x and gy.
Second-order checks are expensive, so tensors with more than SMALL elements are checked along
random directions instead of element by element.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicnn as mc
from conftest import DEVICES
from minicnn.autograd import Function
from minicnn.devices import to_device
from minicnn.testing import GradcheckError, gradcheck, gradgradcheck
from minicnn.testing import strategies as mst
from opdb import ALL_OPS
from optable_util import as_numpy, float_outputs, mc_args, torch_args

SMALL = 16  # element-wise second-order checks up to this many elements, directional above

DOUBLE_OPS = [op for op in ALL_OPS if op.gradcheck and op.double_backward]


# --- the op table ------------------------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("info", DOUBLE_OPS, ids=lambda i: i.name)
@given(data=st.data())
def test_gradgradcheck(info, device, data):
    sample = data.draw(info.samples, label="sample")
    args, kwargs = mc_args(sample, device)
    atol, rtol = info.grad_tol
    strided = data.draw(st.booleans(), label="non-contiguous grad_outputs")
    gradgradcheck(lambda *a: info.op(*a, **kwargs), args, atol=atol, rtol=rtol,
                  gen_non_contig_grad_outputs=strided, directional=info.directional,
                  max_elements=SMALL)


def _zeros_if_none(g, like):
    if g is None or getattr(g, "_is_zerotensor", lambda: False)():  # torch's efficient zeros
        return np.zeros(like.shape)
    return as_numpy(g)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("info", [op for op in DOUBLE_OPS if op.ref is not None],
                         ids=lambda i: i.name)
@given(data=st.data())
def test_torch_second_derivative_parity(info, device, data):
    torch = pytest.importorskip("torch")
    sample = data.draw(info.samples, label="sample")
    atol, rtol = info.tol[np.float64]
    args, kwargs = mc_args(sample, device)
    targs, tkwargs = torch_args(torch, sample)
    wrt = [i for i, a in enumerate(args) if isinstance(a, mc.Tensor) and a.requires_grad]
    pairs = [(o, t) for o, t in zip(float_outputs(info.op(*args, **kwargs)),
                                    float_outputs(info.ref(torch, *targs, **tkwargs)))
             if o.requires_grad]
    if not wrt or not pairs:
        return
    rng = np.random.default_rng(0)
    gys = [rng.standard_normal(o.shape) for o, _ in pairs]
    vs = [rng.standard_normal(args[i].shape) for i in wrt]

    # first derivatives, recorded
    mgys = [mc.Tensor(to_device(g, device), requires_grad=True) for g in gys]
    tgys = [torch.from_numpy(g.copy()).requires_grad_() for g in gys]
    first = mc.autograd.grad([o for o, _ in pairs], [args[i] for i in wrt], mgys,
                             create_graph=True, allow_unused=True)
    tfirst = torch.autograd.grad([t for _, t in pairs], [targs[i] for i in wrt], tgys,
                                 create_graph=True, allow_unused=True)
    for k, (g, tg) in enumerate(zip(first, tfirst)):
        np.testing.assert_allclose(_zeros_if_none(g, args[wrt[k]]),
                                   _zeros_if_none(tg, args[wrt[k]]), atol=atol, rtol=rtol,
                                   err_msg=f"{info.name}: first derivative of input {wrt[k]}")

    # second derivatives: d<g, v>/d(inputs, grad_outputs)
    terms = [(g * mc.Tensor(to_device(v, device))).sum() for g, v in zip(first, vs)
             if g is not None and g.requires_grad]
    tterms = [(g * torch.from_numpy(v)).sum() for g, v in zip(tfirst, vs)
              if g is not None and g.requires_grad]
    targets = [args[i] for i in wrt] + mgys
    ttargets = [targs[i] for i in wrt] + tgys
    second = (mc.autograd.grad(sum(terms[1:], terms[0]), targets, allow_unused=True)
              if terms else [None] * len(targets))
    tsecond = (torch.autograd.grad(sum(tterms[1:], tterms[0]), ttargets, allow_unused=True)
               if tterms else [None] * len(targets))
    names = [f"input {i}" for i in wrt] + [f"grad_output {k}" for k in range(len(mgys))]
    for name, x, g, tg in zip(names, targets, second, tsecond):
        if g is not None:
            assert tuple(g.shape) == tuple(x.shape), f"{info.name}: second grad of {name} shape"
            assert g.dtype == x.dtype
        np.testing.assert_allclose(_zeros_if_none(g, x), _zeros_if_none(tg, x), atol=atol,
                                   rtol=rtol, err_msg=f"{info.name}: second derivative, {name}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["dropout", "dropout2d", "alpha_dropout", "feature_alpha_dropout"])
@given(x=mst.arrays(mst.shapes(min_dims=2, max_dims=4, max_side=4)), p=st.sampled_from([0.2, 0.5]))
def test_dropout_double_backward(name, device, x, p):
    """Random ops are not in the op table; with the generator reseeded before each call the mask
    is fixed, so their second derivatives can be checked like any other op's."""
    F = mc.functional
    op = getattr(F, name)

    def fn(t):
        mc.manual_seed(1)
        return op(t * t, p=p, training=True) * t

    gradgradcheck(fn, [mc.Tensor(to_device(x, device), requires_grad=True)],
                  max_elements=SMALL)


# smooth building blocks on positive-ish inputs, chained at random: retained outputs (exp, sqrt,
# pow), broadcasting, reductions and shape ops interacting inside one double-backward graph
_CHAIN = {
    "exp": lambda t, c: (t * 0.5).exp(),
    "log": lambda t, c: (t * t + 1.0).log(),
    "sqrt": lambda t, c: (t * t + 0.5).sqrt(),
    "pow": lambda t, c: (t * t + 0.5) ** 1.5,
    "div": lambda t, c: t / (c * c + 1.0),
    "mul_bcast": lambda t, c: t * c.sum(dim=0, keepdim=True),
    "matmul": lambda t, c: t @ c.T @ t,
    "var": lambda t, c: t - t.var(dim=1, keepdim=True) + t.mean(),
    "transpose_cat": lambda t, c: mc.cat([t.T.T, c], 0)[: t.shape[0]] * t,
    "getitem": lambda t, c: t[::-1] * t,
}


@given(names=st.lists(st.sampled_from(sorted(_CHAIN)), min_size=1, max_size=3),
       seed=st.integers(0, 2 ** 32 - 1))
def test_gradgradcheck_of_random_op_chains(names, seed):
    rng = np.random.default_rng(seed)
    x = mc.tensor(rng.uniform(-1, 1, (3, 3)), requires_grad=True)
    c = mc.tensor(rng.uniform(-1, 1, (3, 3)), requires_grad=True)

    def fn(t, u):
        for name in names:
            t = _CHAIN[name](t, u)
        return t

    gradgradcheck(fn, [x, c], max_elements=SMALL)


def test_every_op_says_whether_double_backward_works():
    assert all(isinstance(op.double_backward, bool) for op in ALL_OPS)
    assert DOUBLE_OPS, "no op in the table supports double backward"


# --- gradgradcheck itself ----------------------------------------------------------------------

class FrozenSquare(Function):
    """x**2 whose backward treats x as a constant: first derivative right, second wrong."""

    def forward(self, x):
        return x * x

    def backward(self, gy):
        return gy * mc.Tensor(2.0 * self.inputs[0].array)


class DetachedGradSquare(Function):
    """x**2 whose backward uses gy's values but drops its graph: right in x, but the VJP's
    derivative w.r.t. gy comes out as zero."""

    def forward(self, x):
        return x * x

    def backward(self, gy):
        return mc.Tensor(gy.array) * self.inputs[0] * 2.0


def _x(n=6, low=0.5, high=1.5):
    return mc.tensor(np.linspace(low, high, n).reshape(2, n // 2), requires_grad=True)


def test_gradgradcheck_catches_backward_that_is_not_differentiable():
    x = _x()
    assert gradcheck(lambda t: FrozenSquare()(t), [x])  # first order is fine
    with pytest.raises(GradcheckError) as info:
        gradgradcheck(lambda t: FrozenSquare()(t), [x])
    msg = str(info.value)
    assert msg.startswith("gradgradcheck")
    assert "input 0" in msg and "(2, 3)" in msg and "worst at index" in msg
    assert "analytic" in msg and "numeric" in msg
    assert gradgradcheck(lambda t: FrozenSquare()(t), [x], raise_exception=False) is False


def test_gradgradcheck_names_the_grad_output_that_fails():
    x = _x()
    assert gradcheck(lambda t: DetachedGradSquare()(t), [x])
    with pytest.raises(GradcheckError, match=r"for grad_output 0 \(shape \(2, 3\)"):
        gradgradcheck(lambda t: DetachedGradSquare()(t), [x])


def test_gradgradcheck_directional_mode_catches_it_too():
    x = mc.tensor(np.linspace(0.5, 1.5, 60), requires_grad=True)
    with pytest.raises(GradcheckError, match="random directions"):
        gradgradcheck(lambda t: FrozenSquare()(t), [x], directional=True)
    assert gradgradcheck(lambda t: (t * t * t).exp(), [x], directional=True, atol=1e-4)


def test_gradgradcheck_passes_composites_and_multiple_outputs():
    a, b = _x(), mc.tensor(np.linspace(-1, 1, 3), requires_grad=True)
    assert gradgradcheck(lambda u, v: ((u * v).exp() * u.log(), (u @ v.reshape(3, 1)) ** 2),
                         [a, b])


def test_gradgradcheck_accepts_constant_grad_outputs_and_checks_dtypes():
    x = _x()
    gy = mc.tensor(np.ones((2, 3)))  # not requiring grad: only the inputs are checked
    assert gradgradcheck(lambda t: t.exp(), [x], [gy])
    with pytest.raises(TypeError, match="float64"):
        gradgradcheck(lambda t: t * t, [mc.ones(3, requires_grad=True)])
    with pytest.raises(TypeError, match="grad_outputs"):
        gradgradcheck(lambda t: t.exp(), [x], [mc.ones(2, 3, requires_grad=True)])
    with pytest.raises(ValueError, match="no input requires grad"):
        gradgradcheck(lambda t: t.exp(), [mc.tensor(np.ones(3))])


def test_gradgradcheck_non_contiguous_grad_outputs_and_fast_mode():
    x = _x()
    assert gradgradcheck(lambda t: (t * t).exp(), [x], gen_non_contig_grad_outputs=True)
    assert gradgradcheck(lambda t: (t * t).exp(), [x], fast_mode=True)
    with pytest.raises(GradcheckError, match="random directions"):
        gradgradcheck(lambda t: FrozenSquare()(t), [x], fast_mode=True)


def test_gradgradcheck_is_exported():
    assert mc.testing.gradgradcheck is gradgradcheck


# --- engine semantics --------------------------------------------------------------------------

def leaf(*shape, seed=0, low=0.5, high=1.5):
    return mc.tensor(np.random.default_rng(seed).uniform(low, high, shape), requires_grad=True)


class RecordsMode(Function):
    """y = 3x; remembers whether its backward ran with graph recording on."""
    mode = None

    def forward(self, x):
        return 3.0 * x

    def backward(self, gy):
        RecordsMode.mode = mc.is_grad_enabled()
        return gy * 3.0


def test_create_graph_false_records_nothing():
    x = leaf(4)
    y = (RecordsMode()(x).exp() * x).sum()
    y.backward()
    assert RecordsMode.mode is False  # backward ran under no_grad: no graph, thin wrappers only
    assert not x.grad.requires_grad and x.grad.grad_fn is None
    (g,) = mc.autograd.grad((RecordsMode()(x) ** 3).sum(), x)
    assert RecordsMode.mode is False
    assert not g.requires_grad and g.grad_fn is None


def test_create_graph_true_records_the_backward():
    x = leaf(4)
    (RecordsMode()(x).exp() * x).sum().backward(create_graph=True)
    assert RecordsMode.mode is True
    assert x.grad.requires_grad and x.grad.grad_fn is not None
    g = x.grad
    x.grad = None
    g.sum().backward()
    # d/dx sum(exp(3x) + 3x exp(3x)) = 3 exp(3x) + 3 exp(3x) + 9x exp(3x)
    e = np.exp(3 * x.array)
    np.testing.assert_allclose(x.grad.numpy(), 6 * e + 9 * x.array * e, rtol=1e-12)


def test_grad_mode_is_restored_after_backward():
    x = leaf(3)
    with mc.no_grad():
        y = x * 2.0
    assert not y.requires_grad
    z = (x * x).sum()
    mc.autograd.grad(z, x, create_graph=True)
    assert mc.is_grad_enabled()
    z = (x * x).sum()
    with mc.no_grad():
        (g,) = mc.autograd.grad(z, x, create_graph=True)
        assert not mc.is_grad_enabled()
    assert g.requires_grad  # create_graph records the backward even inside no_grad (as torch)


def test_retain_graph_defaults_to_create_graph():
    x = leaf(3)
    y = (x.exp() * x).sum()
    mc.autograd.grad(y, x, create_graph=True)
    mc.autograd.grad(y, x)  # the graph was retained
    with pytest.raises(RuntimeError, match="second time"):
        mc.autograd.grad(y, x)
    y = (x.exp() * x).sum()
    y.backward(create_graph=True)
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_allow_unused_gives_none_and_errors_without_it():
    x, u = leaf(3), leaf(2, seed=1)
    y = (x * x).sum()
    with pytest.raises(RuntimeError, match="input 1.*not used.*allow_unused"):
        mc.autograd.grad(y, [x, u], retain_graph=True)
    gx, gu = mc.autograd.grad(y, [x, u], create_graph=True, allow_unused=True)
    assert gu is None and gx.requires_grad
    # second order: the gradient 2x depends on x only
    h = mc.autograd.grad(gx.sum(), [x, u], allow_unused=True)
    np.testing.assert_allclose(h[0].numpy(), np.full(3, 2.0))
    assert h[1] is None
    # a first derivative that is constant in x (y linear): its gradient w.r.t. x is unused
    (g,) = mc.autograd.grad((x * 2.0).sum(), x, create_graph=True)
    assert not g.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        mc.autograd.grad(g.sum(), x)


def test_third_and_fourth_derivatives():
    x = leaf(5, low=-1.5, high=1.5)
    y = (x ** 4).sum()
    (g1,) = mc.autograd.grad(y, x, create_graph=True)
    (g2,) = mc.autograd.grad(g1.sum(), x, create_graph=True)
    (g3,) = mc.autograd.grad(g2.sum(), x, create_graph=True)
    (g4,) = mc.autograd.grad(g3.sum(), x, create_graph=True)
    np.testing.assert_allclose(g1.numpy(), 4 * x.array ** 3, rtol=1e-12)
    np.testing.assert_allclose(g2.numpy(), 12 * x.array ** 2, rtol=1e-12)
    np.testing.assert_allclose(g3.numpy(), 24 * x.array, rtol=1e-12)
    np.testing.assert_allclose(g4.numpy(), np.full(5, 24.0), rtol=1e-12)


def test_higher_derivatives_through_retained_outputs():
    # exp, sqrt and pow reuse their output in backward; that output must link back to the op
    x = leaf(4)
    (g1,) = mc.autograd.grad(x.exp().sum(), x, create_graph=True)
    (g2,) = mc.autograd.grad(g1.sum(), x, create_graph=True)
    (g3,) = mc.autograd.grad(g2.sum(), x)
    np.testing.assert_allclose(g3.numpy(), np.exp(x.array), rtol=1e-12)
    (s1,) = mc.autograd.grad(x.sqrt().sum(), x, create_graph=True)
    (s2,) = mc.autograd.grad(s1.sum(), x)
    np.testing.assert_allclose(s2.numpy(), -0.25 * x.array ** -1.5, rtol=1e-12)
    b = leaf(4, seed=2)
    (p1,) = mc.autograd.grad((x ** b).sum(), b, create_graph=True)
    (p2,) = mc.autograd.grad(p1.sum(), b)
    np.testing.assert_allclose(p2.numpy(), x.array ** b.array * np.log(x.array) ** 2, rtol=1e-12)


def test_second_derivative_of_diamond_and_multi_output_graphs():
    x = leaf(6)
    h = x.exp()
    y = (h * h + h).sum()  # h used twice
    (g,) = mc.autograd.grad(y, x, create_graph=True)
    (gg,) = mc.autograd.grad(g.sum(), x)
    e = np.exp(x.array)
    np.testing.assert_allclose(gg.numpy(), 4 * e * e + e, rtol=1e-12)
    a, b, _ = mc.split(x, 2)  # one output unused
    (g,) = mc.autograd.grad((a * a * b).sum(), x, create_graph=True)
    (gg,) = mc.autograd.grad((g * g).sum(), x)
    assert gg.shape == (6,)
    assert gradgradcheck(lambda t: tuple(mc.split(t * t, 2))[:2], [x])


def test_backward_create_graph_accumulates_differentiable_grads():
    x = leaf(3)
    (x ** 3).sum().backward(create_graph=True)
    (x ** 2).sum().backward(create_graph=True)
    assert x.grad.requires_grad
    (gg,) = mc.autograd.grad(x.grad.sum(), x)
    np.testing.assert_allclose(gg.numpy(), 6 * x.array + 2, rtol=1e-12)


def test_gradient_penalty_through_a_linear_layer_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    xa, wa = rng.standard_normal((4, 5)), rng.standard_normal((5, 3))
    x, w = mc.tensor(xa, requires_grad=True), mc.tensor(wa, requires_grad=True)
    tx, tw = torch.tensor(xa, requires_grad=True), torch.tensor(wa, requires_grad=True)

    def penalty(lib, x, w):
        out = (lib.exp(x @ w) * 0.1).sum() if lib is torch else ((x @ w).exp() * 0.1).sum()
        (g,) = (torch.autograd.grad if lib is torch else mc.autograd.grad)(
            out, x, create_graph=True)
        norm = ((g * g).sum(1) + 1e-12) ** 0.5
        return ((norm - 1.0) ** 2).mean()

    penalty(mc, x, w).backward()
    penalty(torch, tx, tw).backward()
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10)


def test_second_derivative_through_dtype_casts():
    x = leaf(4)
    y = x.float()  # Cast: its backward casts back, differentiably
    (g,) = mc.autograd.grad((y * y * y).sum(), x, create_graph=True)
    assert g.dtype == np.float64 and g.requires_grad
    (gg,) = mc.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(gg.numpy(), 6 * x.array, rtol=1e-6)
    # type promotion: float32 * float64 -> float64; grad_to casts the float32 side's grad back
    a = mc.tensor(np.array([0.5, 1.5], dtype=np.float32), requires_grad=True)
    (ga,) = mc.autograd.grad((a * a * x[:2]).sum(), a, create_graph=True)
    assert ga.dtype == np.float32
    (gaa,) = mc.autograd.grad(ga.sum(), a)
    np.testing.assert_allclose(gaa.numpy(), 2 * x.array[:2], rtol=1e-6)


def test_backward_with_inputs_and_create_graph():
    x, u = leaf(3), leaf(3, seed=1)
    (x ** 3 * u).sum().backward(inputs=[x], create_graph=True)
    assert u.grad is None and x.grad.requires_grad
    (gu,) = mc.autograd.grad(x.grad.sum(), u)
    np.testing.assert_allclose(gu.numpy(), 3 * x.array ** 2, rtol=1e-12)
