"""Generic tests driven by the op table: gradcheck, PyTorch parity, devices, bad input."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicnn as mc
from conftest import DEVICES
from opdb import ALL_OPS
from optable_util import as_numpy, exact_outputs, float_outputs, mc_args, torch_args

GRAD_OPS = [op for op in ALL_OPS if op.gradcheck]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("info", GRAD_OPS, ids=lambda i: i.name)
@given(data=st.data())
def test_gradcheck(info, device, data):
    sample = data.draw(info.samples, label="sample")
    args, kwargs = mc_args(sample, device)
    atol, rtol = info.grad_tol
    mc.testing.gradcheck(lambda *a: info.op(*a, **kwargs), args, atol=atol, rtol=rtol,
                         directional=info.directional)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("info", [op for op in ALL_OPS if op.ref is not None],
                         ids=lambda i: i.name)
@given(data=st.data())
def test_torch_parity(info, device, dtype, data):
    torch = pytest.importorskip("torch")
    sample = data.draw(info.samples, label="sample")
    atol, rtol = info.tol[dtype]
    args, kwargs = mc_args(sample, device, dtype)
    targs, tkwargs = torch_args(torch, sample, dtype)
    result, tresult = info.op(*args, **kwargs), info.ref(torch, *targs, **tkwargs)
    exact, texact = exact_outputs(result), exact_outputs(tresult)   # indices, masks: equal
    assert len(exact) == len(texact), f"{info.name}: {len(exact)} integer or bool outputs, " \
        f"torch gives {len(texact)}"
    for o, t in zip(exact, texact):
        assert o.dtype == np.dtype(str(t.dtype).replace("torch.", "")), f"{info.name}: dtype"
        np.testing.assert_array_equal(as_numpy(o), as_numpy(t), err_msg=info.name)
    out, tout = float_outputs(result), float_outputs(tresult)
    assert len(out) == len(tout), f"{info.name}: {len(out)} outputs, torch gives {len(tout)}"
    for o, t in zip(out, tout):
        assert tuple(o.shape) == tuple(t.shape), f"{info.name}: shape {o.shape} vs torch {t.shape}"
        assert o.dtype == np.dtype(str(t.dtype).replace("torch.", ""))
        np.testing.assert_allclose(as_numpy(o), as_numpy(t), atol=atol, rtol=rtol)

    wrt = [(a, ta) for a, ta in zip(args, targs) if isinstance(a, mc.Tensor) and a.requires_grad]
    live = [(o, t) for o, t in zip(out, tout) if o.requires_grad]
    if not wrt or not live:
        return
    rng = np.random.default_rng(0)
    gys = [rng.standard_normal(o.shape).astype(dtype) for o, _ in live]
    grads = mc.autograd.grad([o for o, _ in live], [a for a, _ in wrt],
                             [mc.Tensor(mc.devices.to_device(g, device)) for g in gys],
                             allow_unused=True)
    tgrads = torch.autograd.grad([t for _, t in live], [ta for _, ta in wrt],
                                 [torch.from_numpy(g) for g in gys], allow_unused=True)
    for i, (g, tg) in enumerate(zip(grads, tgrads)):
        if tg is None:
            assert g is None or not np.any(as_numpy(g)), f"{info.name}: grad {i} should be zero"
            continue
        assert g is not None, f"{info.name}: input {i} got no gradient"
        assert g.dtype == args[i].dtype
        np.testing.assert_allclose(as_numpy(g), tg.numpy(), atol=atol, rtol=rtol,
                                   err_msg=f"{info.name}: gradient of input {i}")


ERROR_CASES = [pytest.param(info, case, id=f"{info.name}-{case.id or k}")
               for info in ALL_OPS for k, case in enumerate(info.errors)]


@pytest.mark.parametrize("info,case", ERROR_CASES)
def test_bad_input(info, case):
    from opdb import Sample  # noqa: PLC0415
    args, kwargs = mc_args(Sample(case.args, case.kwargs), requires_grad=False)
    kwargs = {**kwargs}
    with pytest.raises(case.exc, match=case.match):
        info.op(*args, **kwargs)
