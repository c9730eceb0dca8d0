"""float16 and bfloat16 storage (issue 19): every op-table entry with a PyTorch reference, run
on half-precision inputs, against PyTorch; gradients too. Then the dtype plumbing:
Tensor.bfloat16, Module.half / bfloat16 / float / to, optimizers' float32 master weights, and
the error for a float dtype the kernels do not take.

The references: PyTorch's CPU result in the same dtype, and PyTorch's float64 result rounded to
the dtype (what a float32 computation rounded once gives, up to float32's own error); an output
passes when it is within the tolerance of either (PyTorch's half kernels round some intermediate
values, which the float64 reference does not, and the other way round).

Tolerances come from the format's machine epsilon (mc.dtypes.eps: 2^-10 for float16, 2^-7 for
bfloat16), not from what the runs gave. minicnn computes a half op in float32 and rounds once
(kernels/_half.py), so its result is within half an ulp (eps / 2 relative) of the float32 value;
the reference is within another half ulp: rtol = eps, doubled for the float32 error of an
accumulation near a rounding boundary, rtol = 2 eps. Where an output is a difference of larger
terms (a sum, a normalised value) its error is an ulp of those terms, which the largest output
bounds: atol = 2 eps max|reference|.

That bound fails where every element cancels: a gradient that is 0 in exact arithmetic (normalize
over one element; cosine_similarity with a vector broadcast along dim, whose scale it ignores) is
rounding noise in every computation, PyTorch's float64 one too (1e-16, or 0), and a tolerance
relative to it is 0. Such an output is told apart by PyTorch's float32 run on the same inputs:
where no element of the float64 reference is farther from 0 than from the float32 result
(float32 cannot resolve it), it is not compared (its value is the op table's to check, in float32
and float64). Outputs a float32 computation does resolve, every other one, are compared as above.
"""
import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minicnn as mc
from minicnn import nn
from conftest import DEVICES
from minicnn.devices import to_device
from opdb import ALL_OPS
from optable_util import as_numpy, mc_args, torch_args

HALF = [pytest.param(mc.float16, id="float16"), pytest.param(mc.bfloat16, id="bfloat16")]

# Entries outside the one-rounding bound, and why (none now: the composite ops, selu, lerp,
# logaddexp / logaddexp2, normalize, cosine_similarity, scaled_dot_product_attention, conv3d and
# conv_transpose3d, compute half inputs in float32 and round once, ops.util.composite_in_float32).
HALF_XFAIL = {}


def _torch_dtype(torch, dtype):
    return {mc.float16: torch.float16, mc.bfloat16: torch.bfloat16}[dtype]


def _half_sample(sample, dtype):
    """The sample with its float64 arrays rounded to dtype (then held as float32, which holds
    every half value exactly, so that both frameworks get the same numbers)."""
    def cast(a):
        if isinstance(a, np.ndarray) and a.dtype.kind == "f":
            return a.astype(dtype).astype(np.float32)
        return a
    return dataclasses.replace(sample, args=tuple(cast(a) for a in sample.args),
                               kwargs={k: cast(v) for k, v in sample.kwargs.items()})


def _to(obj, fn):
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to(o, fn) for o in obj)
    if isinstance(obj, dict):
        return {k: _to(v, fn) for k, v in obj.items()}
    return fn(obj)


def _floats(out, kinds):
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [o for o in outs if o is not None and hasattr(o, "dtype")
            and str(o.dtype).replace("torch.", "") in kinds]


def _mismatch(got, want, dtype):
    """None where got is within the tolerance of want (rounded to dtype), else the message."""
    eps = mc.dtypes.eps(dtype)
    got = np.asarray(as_numpy(got), np.float64)
    want = want.detach().to(getattr(want, "dtype")).float().numpy().astype(np.float64) \
        if str(want.dtype) == "torch.float64" else want.detach().float().numpy()
    want = want.astype(dtype).astype(np.float64)
    finite = np.isfinite(want)
    scale = float(np.abs(want[finite]).max()) if finite.any() else 0.0
    if got.shape != want.shape:
        return f"shape {got.shape}, reference {want.shape}"
    bad = ~(np.isclose(got, want, rtol=2 * eps, atol=2 * eps * scale, equal_nan=True))
    if not bad.any():
        return None
    i = np.flatnonzero(bad)[0]
    return (f"{int(bad.sum())} of {bad.size} differ, e.g. {got.flat[i]!r} vs {want.flat[i]!r} "
            f"(atol {2 * eps * scale:.3g})")


def _unresolved(wide, f32):
    """Whether PyTorch's float32 result f32 does not resolve the float64 reference wide from 0:
    no element of wide is farther from 0 than from f32 (an output 0 in exact arithmetic, noise
    in every computation)."""
    w = wide.detach().numpy()
    d = np.abs(f32.detach().double().numpy() - w)
    return w.shape == d.shape and bool(np.all(np.abs(w) <= d))


def _run(torch, info, sample, dtype, tdtype, device="cpu"):
    """The op's half outputs and the gradients of its half inputs (for half-valued output
    gradients), from minicnn on device (tdtype None) or from PyTorch computing in tdtype."""
    rng = np.random.default_rng(0)
    if tdtype is None:
        args, kwargs = mc_args(sample, device)
        half = lambda t: t.to(dtype) if isinstance(t, mc.Tensor) and t.dtype == np.float32 \
            else t  # noqa: E731
        args = [half(a).detach().requires_grad_(a.requires_grad)
                if isinstance(a, mc.Tensor) and a.dtype == np.float32 else a for a in args]
        out = _floats(info.op(*args, **_to(kwargs, half)), ("float16", "bfloat16"))
        wrt = [a for a in args if isinstance(a, mc.Tensor) and a.requires_grad]
        live = [o for o in out if o.requires_grad]
        gys = [mc.Tensor(to_device(rng.standard_normal(o.shape).astype(dtype), device))
               for o in live]
        grads = mc.autograd.grad(live, wrt, gys, allow_unused=True) if wrt and live else []
        return out, list(grads)
    targs, tkwargs = torch_args(torch, sample, np.float32)
    half = lambda t: t.to(tdtype) if hasattr(t, "dtype") and t.dtype == torch.float32 \
        else t  # noqa: E731
    targs = [half(a).detach().requires_grad_(a.requires_grad)
             if hasattr(a, "dtype") and a.dtype == torch.float32 else a for a in targs]
    out = _floats(info.ref(torch, *targs, **_to(tkwargs, half)), (str(tdtype)[6:],))
    wrt = [a for a in targs if hasattr(a, "requires_grad") and a.requires_grad]
    live = [o for o in out if o.requires_grad]
    gys = [torch.from_numpy(rng.standard_normal(o.shape).astype(dtype).astype(np.float64))
           .to(tdtype) for o in live]
    try:
        grads = torch.autograd.grad(live, wrt, gys, allow_unused=True) if wrt and live else []
    except RuntimeError:   # no derivative in PyTorch (floor_divide): outputs only
        grads = [None] * len(wrt)
    return out, list(grads)


# the GPU path (emu: the CUDA dispatch under the emulator) for a CNN's ops: their families' CUDA
# kernels take half arrays as they are (kernels/_half.py lists them); the rest widen as on the CPU
GPU_OPS = {"conv2d", "conv2d_depthwise", "conv_transpose2d", "relu", "gelu", "silu",
           "bias_act", "max_pool2d", "avg_pool2d", "adaptive_max_pool2d", "batch_norm_train",
           "layer_norm", "group_norm", "softmax", "log_softmax", "cross_entropy", "matmul",
           "interpolate_bilinear", "cumsum", "topk", "sum", "mean"}
CASES = [pytest.param(info, device.values[0], id=f"{info.name}-{device.id}", marks=device.marks)
         for info in ALL_OPS if info.ref is not None for device in DEVICES
         if device.id == "cpu" or info.name in GPU_OPS]


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("info, device", CASES)
@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_half_parity(info, device, dtype, data):
    """Outputs and gradients in dtype against PyTorch in the same dtype or, where PyTorch
    rounds differently inside, against PyTorch in float64 rounded to dtype: within the
    eps-derived tolerance of either reference."""
    torch = pytest.importorskip("torch")
    if info.name in HALF_XFAIL:
        pytest.xfail(HALF_XFAIL[info.name])
    sample = _half_sample(data.draw(info.samples, label="sample"), dtype)
    out, grads = _run(torch, info, sample, dtype, None, device)
    try:
        same = _run(torch, info, sample, dtype, _torch_dtype(torch, dtype))
    except (RuntimeError, NotImplementedError, TypeError):   # no CPU kernel in that dtype
        same = None
    wide = _run(torch, info, sample, dtype, torch.float64)
    f32 = []   # PyTorch in float32, run where a comparison fails (_unresolved)
    for o in out:
        assert o.dtype == dtype, f"{info.name}: output dtype {o.dtype}, expected {dtype}"
    for g in grads:
        assert g is None or g.dtype == dtype, f"{info.name}: gradient dtype {g.dtype}"
    for what, mine, refs in (("output", out, [r[0] for r in (same, wide) if r]),
                             ("gradient", grads, [r[1] for r in (same, wide) if r])):
        for i, m in enumerate(mine):
            if any(ref[i] is None for ref in refs):
                continue
            assert m is not None, f"{info.name}: input {i} got no gradient"
            errors = [_mismatch(m, ref[i], dtype) for ref in refs]
            if None in errors:
                continue
            if not f32:
                f32.append(_run(torch, info, sample, dtype, torch.float32))
            f32_ref = f32[0][0 if what == "output" else 1][i]
            if f32_ref is not None and _unresolved(refs[-1][i], f32_ref):
                continue
            pytest.fail(f"{info.name}: {what} {i}: " + " / ".join(errors))


# --- dtype plumbing ----------------------------------------------------------------------------

def test_bfloat16_is_a_floating_dtype():
    x = mc.randn(3, 4)
    b = x.bfloat16()
    assert b.dtype == mc.bfloat16 and mc.dtypes.is_floating(b.dtype)
    b.requires_grad_()
    (b * 2.0).sum().backward()
    assert b.grad.dtype == mc.bfloat16
    assert (b * 2.0).dtype == mc.bfloat16            # a Python scalar keeps the tensor's dtype
    assert (b + x).dtype == mc.float32               # tensors promote as PyTorch's do
    assert (b + x.half()).dtype == mc.float32
    assert mc.dtypes.eps(mc.bfloat16) == 2.0 ** -7 and mc.dtypes.eps(mc.float16) == 2.0 ** -10


@pytest.mark.parametrize("dtype", HALF)
def test_module_dtype_methods(dtype, device):
    """On every device (emu: BatchNorm's half running statistics are updated by array code,
    there is no half instance of the CUDA running_update kernel)."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(),
                          nn.Linear(8, 3)).to(device)
    conv = model[0].weight
    getattr(model, "half" if dtype == mc.float16 else "bfloat16")()
    assert model[0].weight is conv                    # the same Parameter, a new array
    assert all(p.dtype == dtype for p in model.parameters())
    assert model[1].running_mean.dtype == dtype       # buffers too, as PyTorch's
    assert model[1].num_batches_tracked.dtype == np.int64
    y = model(mc.randn(2, 1, 4, 4).to(device).to(dtype))
    assert y.dtype == dtype and model[1].running_var.dtype == dtype
    model.float()
    assert all(p.dtype == np.float32 for p in model.parameters())
    model.to(dtype)
    assert all(p.dtype == dtype for p in model.parameters())
    with pytest.raises(TypeError, match="floating point"):
        model.to(mc.int32)


@pytest.mark.parametrize("dtype", HALF)
def test_optimizer_keeps_float32_master_weights(dtype):
    """Steps smaller than half an ulp of a half weight accumulate in the float32 master copy
    instead of vanishing; the parameter is the master rounded."""
    w = nn.Parameter(mc.ones(4).to(dtype))
    opt = mc.optim.SGD([w], lr=1.0)
    step = mc.dtypes.eps(dtype) / 4                   # a quarter ulp of 1.0
    for _ in range(8):
        w.grad = mc.full((4,), -step).to(dtype)
        opt.step()
    np.testing.assert_array_equal(w.float().numpy(), np.full(4, 1 + 2 * mc.dtypes.eps(dtype),
                                                            np.float32))
    assert w.dtype == dtype


def test_unsupported_float_dtype_is_refused_by_name():
    x = mc.tensor(np.ones((1, 1, 4, 4), np.longdouble))
    with pytest.raises(TypeError, match="max_pool2d: float128"):
        mc.nn.functional.max_pool2d(x, 2)


@pytest.mark.parametrize("dtype", HALF)
def test_half_checkpoints_round_trip(tmp_path, dtype):
    """mc.save / mc.load keep float16 and bfloat16 (bfloat16 stored as its bits: the .npy
    format has no such dtype)."""
    model = nn.Linear(3, 2).to(dtype)
    mc.save({"state": model.state_dict(), "w": model.weight}, tmp_path / "m.pt")
    back = mc.load(tmp_path / "m.pt")
    for k, v in model.state_dict().items():
        assert back["state"][k].dtype == dtype
        np.testing.assert_array_equal(back["state"][k].float().numpy(), v.float().numpy())
    assert back["w"].requires_grad and back["w"].dtype == dtype


@pytest.mark.parametrize("sa, sb", [((3, 4), (2, 5, 4, 6)), ((2, 5, 3, 4), (4, 6)),
                                    ((1,), (6, 1, 3)), ((2, 3, 5, 4), (4,)),
                                    ((3, 4), (1, 4, 6))])
def test_matmul_gradient_of_a_shared_operand_is_one_sum(sa, sb):
    """A 2-D (or 1-D) operand broadcast over the other's batch gets its gradient from one GEMM
    with the batch folded into the sum (ops.linalg._folded_grad): float64 gradients equal to
    PyTorch's and gradchecked, and in bfloat16 within one rounding of the float64 gradient
    (per-batch products rounded and then summed were 5% off where the sum cancels)."""
    from minicnn.testing.gradcheck import gradcheck  # noqa: PLC0415
    from minicnn.testing.gradgradcheck import gradgradcheck  # noqa: PLC0415
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(len(sa) * 10 + len(sb))
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    ma, mb = mc.tensor(a, requires_grad=True), mc.tensor(b, requires_grad=True)
    assert gradcheck(mc.matmul, (ma, mb)) and gradgradcheck(mc.matmul, (ma, mb))
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    g = rng.standard_normal(tuple(torch.matmul(ta, tb).shape))
    torch.matmul(ta, tb).backward(torch.tensor(g))
    mc.matmul(ma, mb).backward(mc.tensor(g))
    np.testing.assert_allclose(ma.grad.numpy(), ta.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mb.grad.numpy(), tb.grad.numpy(), rtol=1e-12, atol=1e-12)
    h = [mc.tensor(v.astype(mc.bfloat16)).requires_grad_() for v in (a, b)]
    mc.matmul(*h).backward(mc.tensor(g.astype(mc.bfloat16)))
    wide = [mc.tensor(v.astype(mc.bfloat16).astype(np.float64)).requires_grad_() for v in (a, b)]
    mc.matmul(*wide).backward(mc.tensor(g.astype(mc.bfloat16).astype(np.float64)))
    eps = mc.dtypes.eps(mc.bfloat16)
    for got, want in zip(h, wide):
        want = want.grad.numpy()
        np.testing.assert_allclose(got.grad.float().numpy(), want, rtol=eps,
                                   atol=eps * 2.0 ** -8 * np.abs(want).max())


def test_matmul_shared_operand_gradient_that_cancels_in_half():
    """x (1,) @ b (8, 1, 3): x's gradient sums per-batch dot products of about +-10 that cancel
    to about 0.2; rounded per batch (a bfloat16 ulp at 10 is 0.0625) they were off by far more
    than one rounding of the result, summed in one float32 accumulation they are not."""
    x = mc.tensor(np.array([0.5], dtype=mc.bfloat16)).requires_grad_()
    sign = np.where(np.arange(8) % 2, -1.0, 1.0)[:, None, None]
    b = mc.tensor((sign * (3.3 + 0.01 * np.arange(24).reshape(8, 1, 3))).astype(mc.bfloat16))
    mc.matmul(x, b).backward(mc.ones(8, 3).to(mc.bfloat16))
    want = b.float().numpy().astype(np.float64).sum()
    assert abs(x.grad.float().item() - want) <= mc.dtypes.eps(mc.bfloat16) * abs(want)
