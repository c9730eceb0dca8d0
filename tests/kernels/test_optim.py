"""The optimizer family (minicnn.kernels.optim) against its NumPy reference, bit for bit, on every
device (cpu: the Numba kernels, emu: the CUDA kernels under the emulator, cuda: a GPU): every
option, three steps in a row, float32 and float64, odd sizes, gradients as Pieces, NaN, bad input.
Then what belongs to one layer: the CPU chunk table, the CUDA launch plans (vector path after a
scalar head, scalar-only, grid stride), and whole optimizers (mc.optim.*) stepping through the
CUDA path equal to the CPU path."""
import itertools

import numpy as np
import pytest

import minicnn as mc
from minicnn import nn, optim
from minicnn.kernels import optim as K
from minicnn.kernels.optim import cpu as CPU
from minicnn.kernels.optim import cuda as C
from minicnn.kernels.optim import reference as R
from cuda_util import KERNEL_DEVICES, dev, emulate, host, noncontiguous

DTYPES = [np.float32, np.float64]
SIZES = [1, 7, 1001]
NAMES = ["sgd_step", "adam_step", "rmsprop_step", "adagrad_step", "adadelta_step", "adamax_step",
         "nadam_step"]


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


# name -> (state buffers: (name, kind, present(kw)), every combination of options, the
# scalars of step t)
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
        # centered: square_avg >= grad_avg^2, so square_avg large and grad_avg small
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
assert list(SPECS) == NAMES


def _all_on(name):
    """The last combination of options: every option on that the others allow."""
    return SPECS[name][1][-1]


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


def _opts(name, kw, t):
    return dict(kw, **SPECS[name][2](kw, t))


def _reference(name, kw, arrays, t):
    """One step of the reference on the NumPy `arrays` (updated in place)."""
    getattr(R, name)(*arrays, **_opts(name, kw, t))


def _step(fn, name, kw, arrays, t, device, g=None):
    """One step of fn.<name> (K, the family's API, or C) on copies of `arrays` on the device,
    with gradient g (a device array or Pieces) in place of arrays[1] when given; the arrays
    brought back."""
    d = [None if a is None else dev(a, device) for a in arrays]
    getattr(fn, name)(d[0], d[1] if g is None else g, *d[2:], **_opts(name, kw, t))
    return [None if a is None else host(a) for a in d]


def _assert_same(got, want, what):
    """Exactly equal, NaN where the reference has NaN (np.array_equal first: it is faster than
    assert_array_equal, which then explains a difference)."""
    for i, (a, b) in enumerate(zip(got, want)):
        if b is None:
            assert a is None
        elif not np.array_equal(a, b, equal_nan=True):
            np.testing.assert_array_equal(a, b, err_msg=f"{what}: buffer {i}")


# --- the family's API on every device ---------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", NAMES)
def test_every_option_three_steps_matches_reference(name, dtype, kernel_device):
    for ci, kw in enumerate(SPECS[name][1]):
        for n in SIZES:
            rng = np.random.default_rng(1000 * ci + n)
            want = _arrays(name, kw, rng, n, dtype)
            got = [None if a is None else a.copy() for a in want]
            start = want[0].copy()
            for t in (1, 2, 3):
                want[1] = got[1] = rng.standard_normal(n).astype(dtype)
                _reference(name, kw, want, t)
                got = _step(K, name, kw, got, t, kernel_device)
                _assert_same(got, want, f"{name} {kw} n={n} step {t}")
            assert not np.array_equal(got[0], start)  # the parameters moved


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", NAMES)
def test_gradient_pieces(name, dtype, kernel_device):
    # Per-parameter gradients of odd sizes crossing the CPU's chunk boundaries: one empty, one
    # non-contiguous, one of the other float dtype, one 2-D. The CPU kernels read them in place,
    # the CUDA path gathers them; both equal the reference on the concatenation.
    sizes = [3, CPU.CHUNK + 7, 0, 1, 2 * CPU.CHUNK - 1]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    other = np.float32 if dtype == np.float64 else np.float64
    kw = _all_on(name)
    rng = np.random.default_rng(3)
    want = _arrays(name, kw, rng, offsets[-1], dtype)
    got = [None if a is None else a.copy() for a in want]
    assert K.reads_pieces(dev(want[0], kernel_device)) == (kernel_device == "cpu")
    for t in (1, 2):  # the first step, and one that reads the state it wrote
        host_pieces = [rng.standard_normal(s).astype(other if k == 3 else dtype)
                       for k, s in enumerate(sizes)]
        pieces = [dev(x, kernel_device) for x in host_pieces]
        pieces[1] = noncontiguous(host_pieces[1], kernel_device)
        assert not pieces[1].flags.c_contiguous
        pieces[4] = pieces[4].reshape(31, -1)
        want[1] = got[1] = np.concatenate([x.astype(dtype) for x in host_pieces])
        _reference(name, kw, want, t)
        got = _step(K, name, kw, got, t, kernel_device, g=K.Pieces(pieces, offsets))
        _assert_same(got, want, f"{name} pieces step {t}")


@pytest.mark.parametrize("name", ["adam_step", "adamax_step"])
def test_nan_propagates_through_max_like_numpy(name, kernel_device):
    # amsgrad's max(max_exp_avg_sq, exp_avg_sq) and Adamax's max are np.maximum: NaN in either
    # argument gives NaN (the reference's semantics, and torch.maximum's; the Numba kernels once
    # kept the state finite where the new value was NaN)
    kw = [k for k in SPECS[name][1] if k.get("amsgrad", True) and not k["maximize"]][0]
    rng = np.random.default_rng(2)
    want = _arrays(name, kw, rng, 9, np.float32)
    want[1][3] = np.nan          # a NaN gradient
    want[-1][5] = np.nan         # a NaN in the state the max reads
    got = [a.copy() for a in want]
    _reference(name, kw, want, 1)
    got = _step(K, name, kw, got, 1, kernel_device)
    assert np.isnan(want[-1][[3, 5]]).all()
    _assert_same(got, want, f"{name} with NaN")


def test_bad_input(kernel_device):
    device = kernel_device
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
    K.sgd_step(p[:0], g[:0], None, 0.1, 0, 0, 0, False, False, True)  # empty: nothing to do
    np.testing.assert_array_equal(host(p), 1.0)  # the refused calls changed nothing


def test_each_step_runs_on_the_devices_layer(kernel_device, monkeypatch):
    """The API sends NumPy arrays to the Numba kernels, CuPy arrays and emulated ones to the CUDA
    launch layer (so the emu runs above test the CUDA kernels)."""
    calls = []
    for layer, mod in (("cpu", CPU), ("cuda", C)):
        for name in NAMES:
            orig = getattr(mod, name)
            monkeypatch.setattr(mod, name, lambda *a, _o=orig, _c=(layer, name), **k: (
                calls.append(_c), _o(*a, **k))[1])
    layer = "cpu" if kernel_device == "cpu" else "cuda"
    for name in NAMES:
        kw = _all_on(name)
        want = _arrays(name, kw, np.random.default_rng(4), 5, np.float32)
        got = _step(K, name, kw, want, 1, kernel_device)
        _reference(name, kw, want, 1)
        _assert_same(got, want, name)
    assert calls == [(layer, name) for name in NAMES]


# --- the CPU layer ----------------------------------------------------------------------------

def test_chunk_table_covers_every_element_once():
    offsets = [0, 5, 5, 40, 41, 100]
    cp, cs, ce = CPU.chunk_table(offsets, chunk=16)
    covered = np.zeros(100, int)
    for k, a, b in zip(cp, cs, ce):
        assert offsets[k] <= a < b <= offsets[k + 1] and b - a <= 16
        covered[a:b] += 1
    assert (covered == 1).all()
    assert 1 not in cp  # the empty piece has no chunk



@pytest.mark.filterwarnings("ignore:unsafe cast from readonly")   # Numba's, as before
@pytest.mark.parametrize("count", [1, 8, 9, 17])
def test_typed_grads_are_views_of_the_pieces(count):
    # the typed list is built in packs of 8 inside Numba (_pack_list, _extend_list); a read-only
    # piece takes the Python-side list instead; the chunk table is kept per offsets
    rng = np.random.default_rng(0)
    arrays = [rng.random(k + 1).astype(np.float32) for k in range(count)]
    offsets = [0] + list(itertools.accumulate(a.size for a in arrays))
    p = np.zeros(offsets[-1], np.float32)
    for readonly in (False, True):
        if readonly:
            arrays[-1].setflags(write=False)
        lst, cp, cs, ce, offs = CPU._typed_grads(p, K.Pieces(arrays, offsets))
        assert len(lst) == count
        for got, a in zip(lst, arrays):
            assert got.dtype == np.float32 and np.shares_memory(got, a)
            np.testing.assert_array_equal(got, a)
        for got, want in zip((cp, cs, ce), CPU.chunk_table(offsets)):
            np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(offs, offsets)

# --- the CUDA launch layer --------------------------------------------------------------------

@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", ["sgd_step", "adam_step", "rmsprop_step"])
@pytest.mark.parametrize("layout", ["aligned", "same_offset", "g_offset", "long"])
def test_alignments_and_grid_stride(name, layout, dtype, device):
    # aligned: the vector path from element 0; same_offset: every buffer starts 1..3 elements
    # into an allocation (a scalar head, then vectors); g_offset: only g is shifted (mismatched
    # alignment: the scalar-only path); long: more vectors than the emulator's grid has threads
    kw = _all_on(name)
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
        _reference(name, kw, want, t)
        getattr(C, name)(*got_dev, **_opts(name, kw, t))
    _assert_same([None if a is None else host(a) for a in got_dev], want, f"{name} {layout}")
    p, g = got_dev[0], got_dev[1]
    head, nvec = C._plan(n, p.itemsize, [p, g])
    width = 16 // p.itemsize
    if layout == "g_offset":
        assert (head, nvec) == (n, 0)
    else:
        assert head == (0 if layout in ("aligned", "long") else width - shift)
        assert nvec == (n - head) // width > 0


# --- whole optimizers through the CUDA path ---------------------------------------------------

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
    return [host(p.array) for p in params]


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", OPTIMIZERS, ids=lambda c: c[0] + "-" + "-".join(c[1]))
def test_optimizers_through_the_cuda_path(case, dtype, device, monkeypatch):
    """mc.optim steps through the CUDA launch layer (on NumPy buffers under the emulator, or
    CuPy ones) equal the CPU (Numba) steps."""
    name, kw = case
    want = _train(name, kw, dtype, "cpu")
    calls = []
    for fn in NAMES:
        orig = getattr(C, fn)
        monkeypatch.setattr(C, fn, lambda *a, _o=orig, _n=fn, **k: (calls.append(_n),
                                                                     _o(*a, **k))[1])
    if device == "emu":
        emulate(monkeypatch)
    got = _train(name, kw, dtype, "cpu" if device == "emu" else "cuda")
    assert calls
    for i, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_array_equal(a, b, err_msg=f"{name} parameter {i}")
