"""The CUDA optimizer kernels (kernels/cuda/optim.cu through kernels/cuda/optim.py) against the
NumPy reference (kernels/reference/optim.py), on the emulator here and on the GPU where there is
one: every option, several steps in a row, float32 and float64, odd sizes, buffers at every
alignment (vector path, scalar head/tail, scalar-only), gradients as pieces, bad input, and whole
optimizers (mc.optim.*) stepping through the CUDA path.

The kernels use round-to-nearest intrinsics (no FMA contraction) so the results are compared
for exact equality, bit for bit, with the reference and with the Numba kernels."""
import itertools

import numpy as np
import pytest

import minicnn as mc
from minicnn import nn, optim
from minicnn.kernels import optim as K
from minicnn.kernels.optim import cuda as C
from minicnn.kernels.optim import reference as R
from cuda_util import KERNEL_DEVICES, dev, host, emulate

DTYPES = [np.float32, np.float64]
SIZES = [1, 7, 1001]


def _options(**choices):
    keys = list(choices)
    return [dict(zip(keys, vals)) for vals in itertools.product(*choices.values())]


def _adam_scalars(kw, t):
    b1, b2 = kw["beta1"], kw["beta2"]
    return dict(step_size=kw["lr"] / (1 - b1 ** t), bc2_sqrt=(1 - b2 ** t) ** 0.5)


def _nadam_scalars(kw, t):
    b1, b2, lr = kw["beta1"], kw["beta2"], kw["lr"]
    mu = b1 * (1 - 0.5 * 0.96 ** (t * 0.004))
    mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * 0.004))
    prod = 0.9 ** t
    return dict(bc2=1 - b2 ** t, c_grad=-lr * (1 - mu) / (1 - prod),
                c_avg=-lr * mu_next / (1 - prod * mu_next))


# name -> (state buffers: name, kind ("any" / "pos" / "big"), present(kw)), options, per-step
SPECS = {
    "sgd_step": (
        [("buf", "any", lambda kw: kw["momentum"] != 0)],
        [dict(kw, lr=0.1) for kw in _options(momentum=[0.0, 0.9], dampening=[0.0, 0.3],
                                             weight_decay=[0.0, 0.05], nesterov=[False, True],
                                             maximize=[False, True])
         if not (kw["nesterov"] and (kw["momentum"] == 0 or kw["dampening"] != 0))],
        lambda kw, t: dict(first=t == 1)),
    "adam_step": (
        [("m", "any", lambda kw: True), ("v", "pos", lambda kw: True),
         ("vmax", "pos", lambda kw: kw["amsgrad"])],
        [dict(kw, lr=0.01, beta1=0.9, beta2=0.99, eps=1e-8)
         for kw in _options(weight_decay=[0.0, 0.1], decoupled=[False, True],
                            amsgrad=[False, True], maximize=[False, True])],
        _adam_scalars),
    "rmsprop_step": (
        [("sq", "big", lambda kw: True), ("gavg", "small", lambda kw: kw["centered"]),
         ("buf", "any", lambda kw: kw["momentum"] > 0)],
        [dict(kw, lr=0.01, alpha=0.9, eps=1e-8)
         for kw in _options(weight_decay=[0.0, 0.1], momentum=[0.0, 0.9],
                            centered=[False, True], maximize=[False, True])],
        lambda kw, t: {}),
    "adagrad_step": (
        [("acc", "pos", lambda kw: True)],
        [dict(kw, eps=1e-10) for kw in _options(weight_decay=[0.0, 0.1], maximize=[False, True])],
        lambda kw, t: dict(clr=0.1 / (1 + (t - 1) * 0.01))),
    "adadelta_step": (
        [("sq", "pos", lambda kw: True), ("acc_delta", "pos", lambda kw: True)],
        [dict(kw, lr=1.0, rho=0.9, eps=1e-6)
         for kw in _options(weight_decay=[0.0, 0.1], maximize=[False, True])],
        lambda kw, t: {}),
    "adamax_step": (
        [("m", "any", lambda kw: True), ("u", "pos", lambda kw: True)],
        [dict(kw, beta1=0.7, beta2=0.99, eps=1e-8)
         for kw in _options(weight_decay=[0.0, 0.1], maximize=[False, True])],
        lambda kw, t: dict(clr=0.02 / (1 - 0.7 ** t))),
    "nadam_step": (
        [("m", "any", lambda kw: True), ("v", "pos", lambda kw: True)],
        [dict(kw, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8)
         for kw in _options(weight_decay=[0.0, 0.1], decoupled=[False, True],
                            maximize=[False, True])],
        _nadam_scalars),
}


def _state(rng, kind, n, dtype):
    a = rng.standard_normal(n)
    if kind == "pos":
        a = rng.random(n) + 0.1
    elif kind == "big":
        a = rng.random(n) + 4
    elif kind == "small":
        a = a * 0.1
    return a.astype(dtype)


def _arrays(name, kw, rng, n, dtype):
    """[p, g, state or None, ...] for one call of `name` with options kw."""
    states = [_state(rng, kind, n, dtype) if present(kw) else None
              for _, kind, present in SPECS[name][0]]
    return [rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)] + states


def _run(name, kw, arrays, t, fn, device):
    """One step of fn (C.<name> with device arrays, or R.<name>) on `arrays` (updated)."""
    extra = SPECS[name][2](kw, t)
    opts = {k: v for k, v in kw.items()}
    opts.update(extra)
    if fn is R:
        getattr(R, name)(*arrays, **opts)
        return arrays
    d = [None if a is None else dev(a, device) for a in arrays]
    getattr(C, name)(*d, **opts)
    return [None if a is None else host(a) for a in d]


def _assert_same(got, want, what):
    for i, (a, b) in enumerate(zip(got, want)):
        if b is None:
            continue
        np.testing.assert_array_equal(a, b, err_msg=f"{what}: buffer {i}")


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(SPECS))
def test_every_option_three_steps_matches_reference(name, dtype, device):
    for ci, kw in enumerate(SPECS[name][1]):
        for n in SIZES:
            rng = np.random.default_rng(1000 * ci + n)
            want = _arrays(name, kw, rng, n, dtype)
            got = [None if a is None else a.copy() for a in want]
            start = want[0].copy()
            for t in (1, 2, 3):
                g = rng.standard_normal(n).astype(dtype)
                want[1] = got[1] = g
                _run(name, kw, want, t, R, device)
                got = _run(name, kw, got, t, C, device)
                _assert_same(got, want, f"{name} {kw} n={n} step {t}")
            assert not np.array_equal(got[0], start)  # the parameters moved


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", ["sgd_step", "adam_step", "rmsprop_step"])
@pytest.mark.parametrize("layout", ["aligned", "same_offset", "g_offset", "long"])
def test_alignments_and_grid_stride(name, layout, dtype, device):
    # aligned: the vector path from element 0; same_offset: every buffer starts 1..3 elements
    # into an allocation (a scalar head, then vectors); g_offset: only g is shifted (mismatched
    # alignment: the scalar-only path); long: more vectors than the emulator's grid has threads
    kw = SPECS[name][1][-1]
    n = 5003 if layout == "long" else 333
    shift = {"aligned": 0, "same_offset": 1 if dtype == np.float64 else 3, "g_offset": 0,
             "long": 0}[layout]
    rng = np.random.default_rng(7)
    want = _arrays(name, kw, rng, n, dtype)
    got_dev = []
    for i, a in enumerate(want):
        if a is None:
            got_dev.append(None)
            continue
        s = shift + (1 if layout == "g_offset" and i == 1 else 0)
        wide = dev(np.concatenate([np.zeros(s, dtype), a]), device)
        got_dev.append(wide[s:])
    for t in (1, 2):
        _run(name, kw, want, t, R, device)
        opts = dict(kw, **SPECS[name][2](kw, t))
        getattr(C, name)(*got_dev, **opts)
    _assert_same([None if a is None else host(a) for a in got_dev], want, f"{name} {layout}")
    p, g = got_dev[0], got_dev[1]
    head, nvec = C._plan(n, p.itemsize, [p, g])
    width = 16 // p.itemsize
    if layout == "g_offset":
        assert (head, nvec) == (n, 0)
    else:
        assert head == (0 if layout in ("aligned", "long") else width - shift)
        assert nvec == (n - head) // width > 0


@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_gradient_pieces_and_other_dtypes(device):
    # Pieces (per-parameter grads, one non-contiguous, one of another dtype) are gathered
    sizes = [3, 0, 10, 1, 20]
    n = sum(sizes)
    rng = np.random.default_rng(5)
    kw = SPECS["adam_step"][1][5]
    want = _arrays("adam_step", kw, rng, n, np.float32)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    pieces = [want[1][a:b].copy() for a, b in zip(offsets, offsets[1:])]
    pieces[2] = pieces[2].astype(np.float64)
    pieces = [dev(x, device) for x in pieces]
    pieces[4] = dev(np.stack([host(pieces[4]), host(pieces[4])], 1), device)[:, 0]
    got = [None if a is None else dev(a, device) for a in want]
    opts = dict(kw, **_adam_scalars(kw, 1))
    C.adam_step(got[0], K.Pieces(pieces, offsets), *got[2:], **opts)
    R.adam_step(*want, **opts)
    _assert_same([None if a is None else host(a) for a in got], want, "pieces")


@pytest.mark.parametrize("device", [pytest.param("cpu", id="cpu")] + KERNEL_DEVICES)
def test_bad_input(device, monkeypatch):
    if device == "emu":
        emulate(monkeypatch)
    p = dev(np.ones(8, np.float32), device)
    g = dev(np.ones(8, np.float32), device)
    with pytest.raises(ValueError, match="sgd_step: the gradient has 7 elements"):
        K.sgd_step(p, g[:7], None, 0.1, 0, 0, 0, False, False, True)
    with pytest.raises(ValueError, match="adam_step: exp_avg_sq has shape"):
        K.adam_step(p, g, dev(np.zeros(8, np.float32), device),
                    dev(np.zeros(9, np.float32), device), None, 0.1, 0.9, 0.99, 1e-8, 0, False,
                    False, False, 0.1, 0.1)
    with pytest.raises(TypeError, match="rmsprop_step: square_avg is float64"):
        K.rmsprop_step(p, g, dev(np.zeros(8), device), None, None, 0.1, 0.9, 1e-8, 0, 0, False,
                       False)
    with pytest.raises(ValueError, match="must be C-contiguous"):
        K.adagrad_step(dev(np.ones(16, np.float32), device)[::2], g,
                       dev(np.zeros(8, np.float32), device), 0.1, 1e-10, 0, False)
    with pytest.raises(ValueError, match="1-D"):
        K.sgd_step(p.reshape(2, 4), g, None, 0.1, 0, 0, 0, False, False, True)
    with pytest.raises(TypeError, match="float32 or float64"):
        K.sgd_step(dev(np.ones(8, np.float16), device), g, None, 0.1, 0, 0, 0, False, False,
                   True)
    with pytest.raises(ValueError, match="missing state buffer momentum_buffer"):
        K.sgd_step(p, g, None, 0.1, 0.9, 0, 0, False, False, True)
    K.sgd_step(p[:0], g[:0], None, 0.1, 0, 0, 0, False, False, True)  # empty: no launch


OPTIMIZERS = [
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.05)),
    ("SGD", dict(lr=0.1, momentum=0.8, nesterov=True, maximize=True)),
    ("Adam", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, maximize=True)),
    ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.1)),
    ("Adadelta", dict(lr=0.5, weight_decay=0.1)),
    ("Adamax", dict(lr=0.01, weight_decay=0.1)),
    ("NAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
]
SHAPES = [(3, 4), (5,), (2, 3, 2), (), (7,)]


def _train(name, kw, dtype, device, steps=4):
    rng = np.random.default_rng(11)
    init = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(steps)]
    params = [nn.Parameter(mc.tensor(a.copy(), device=device)) for a in init]
    opt = getattr(optim, name)(params, **kw)
    for k in range(steps):
        for i, p in enumerate(params):  # some grads None: runs split, steps differ
            p.grad = None if (k + i) % 3 == 0 else mc.tensor(grads[k][i].copy(), device=device)
        opt.step()
    return [host(p.data) for p in params]


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", OPTIMIZERS, ids=lambda c: c[0] + "-" + "-".join(c[1]))
def test_optimizers_through_the_cuda_path(case, dtype, device, monkeypatch):
    """mc.optim steps through the dispatchers' CUDA branch equal the CPU (Numba) steps."""
    name, kw = case
    want = _train(name, kw, dtype, "cpu")
    calls = []
    if device == "emu":  # NumPy buffers routed to the CUDA launch layer, grads gathered
        emulate(monkeypatch)
        got = _train(name, kw, dtype, "cpu")
    else:
        real = C.__dict__
        for fn in [f for f in real if f.endswith("_step")]:
            orig = real[fn]
            monkeypatch.setattr(C, fn, lambda *a, _o=orig, _n=fn, **k: (calls.append(_n),
                                                                         _o(*a, **k))[1])
        got = _train(name, kw, dtype, "cuda")
        assert calls
    for i, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_array_equal(a, b, err_msg=f"{name} parameter {i}")


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("name", ["adam_step", "adamax_step"])
def test_nan_propagates_through_max_like_numpy(name, device):
    # amsgrad's max(max_exp_avg_sq, exp_avg_sq) and Adamax's max are np.maximum: NaN in either
    # argument gives NaN (the reference's semantics)
    kw = [k for k in SPECS[name][1] if k.get("amsgrad", True) and not k["maximize"]][0]
    rng = np.random.default_rng(2)
    want = _arrays(name, kw, rng, 9, np.float32)
    want[1][3] = np.nan          # a NaN gradient
    want[-1][5] = np.nan         # a NaN in the state the max reads
    got = [a.copy() for a in want]
    _run(name, kw, want, 1, R, device)
    got = _run(name, kw, got, 1, C, device)
    assert np.isnan(want[-1][[3, 5]]).all()
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
