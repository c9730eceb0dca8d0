"""mc.autocast and mc.amp.GradScaler against torch.autocast and torch.amp.GradScaler (issue 19):
the dtype of every autocast op's output under the same policy, weight casts cached per region,
gradients reaching the float32 weights, regions per thread; the scaler's skipped steps, scale
sequence and parameters over a run with injected infs and NaNs, and its state dict."""
import threading

import numpy as np
import pytest

import minicnn as mc
import minicnn.nn.functional as F
from minicnn import nn
from minicnn.ops import autocast as rules

torch = pytest.importorskip("torch")
TF = torch.nn.functional

DTYPES = [pytest.param((mc.bfloat16, torch.bfloat16), id="bfloat16"),
          pytest.param((mc.float16, torch.float16), id="float16")]


def _inputs(rng):
    return {"x": rng.standard_normal((2, 3, 6, 6)).astype(np.float32),
            "w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
            "w2": rng.standard_normal((2, 4, 1, 1)).astype(np.float32),
            "b": rng.standard_normal(4).astype(np.float32),
            "m": rng.standard_normal((5, 4)).astype(np.float32),
            "lw": rng.standard_normal((3, 4)).astype(np.float32),
            "t": np.array([0, 2, 1, 1, 0])}


# (name, fn): fn(ops, inputs) runs on float32 inputs in a region; the half operands of the
# "_half" and "_mixed" cases come from a conv or a matmul run in the same region
CASES = [
    ("conv2d", lambda m, a: m.conv2d(a.x, a.w, a.b)),
    ("conv_after_conv", lambda m, a: m.conv2d(m.relu(m.conv2d(a.x, a.w)), a.w2)),
    ("linear", lambda m, a: m.linear(a.m, a.lw)),
    ("matmul", lambda m, a: a.m @ a.m.transpose(0, 1)),
    ("softmax_half", lambda m, a: m.softmax(a.m @ a.m.transpose(0, 1), 1)),
    ("log_softmax_half", lambda m, a: m.log_softmax(m.linear(a.m, a.lw), 1)),
    ("cross_entropy_half", lambda m, a: m.cross_entropy(m.linear(a.m, a.lw), a.t)),
    ("mse_half", lambda m, a: m.mse_loss(m.linear(a.m, a.lw), m.linear(a.m, a.lw))),
    ("layer_norm_half", lambda m, a: m.layer_norm(m.linear(a.m, a.lw), (3,))),
    ("batch_norm_half", lambda m, a: m.batch_norm(m.conv2d(a.x, a.w), None, None, a.b, a.b,
                                                  True)),
    ("exp_half", lambda m, a: m.exp(a.m @ a.m.transpose(0, 1))),
    ("sum_half", lambda m, a: m.sum(a.m @ a.m.transpose(0, 1))),
    ("mean_half", lambda m, a: m.mean(a.m @ a.m.transpose(0, 1))),
    ("add_mixed", lambda m, a: (a.m @ a.m.transpose(0, 1)) + a.m[:, :1]),
    ("mul_scalar_half", lambda m, a: (a.m @ a.m.transpose(0, 1)) * 3.0),
    ("cat_mixed", lambda m, a: m.cat([a.m @ a.m.transpose(0, 1), a.m], 1)),
    ("stack_mixed", lambda m, a: m.stack([a.m @ a.m.transpose(0, 1),
                                          a.m[:, :1].expand(5, 5)])),
    ("relu_half", lambda m, a: m.relu(m.conv2d(a.x, a.w))),
    ("max_pool_half", lambda m, a: m.max_pool2d(m.conv2d(a.x, a.w), 2)),
    ("float64_not_cast", lambda m, a: m.linear(a.m.double(), a.lw.double())),
]


class _Ns:
    def __init__(self, d):
        self.__dict__.update(d)


class _MC:
    conv2d, linear, relu, max_pool2d = F.conv2d, F.linear, F.relu, F.max_pool2d
    softmax, log_softmax, cross_entropy, mse_loss = F.softmax, F.log_softmax, \
        F.cross_entropy, F.mse_loss
    layer_norm, batch_norm = F.layer_norm, F.batch_norm
    exp, sum, mean, cat, stack = mc.exp, mc.sum, mc.mean, mc.cat, mc.stack


class _Torch:
    conv2d, linear, relu, max_pool2d = TF.conv2d, TF.linear, TF.relu, TF.max_pool2d
    softmax, log_softmax, cross_entropy, mse_loss = TF.softmax, TF.log_softmax, \
        TF.cross_entropy, TF.mse_loss
    layer_norm = TF.layer_norm
    exp, sum, mean, cat, stack = torch.exp, torch.sum, torch.mean, torch.cat, torch.stack

    @staticmethod
    def batch_norm(x, rm, rv, w, b, training):
        return TF.batch_norm(x, rm, rv, w, b, training=training)


def _mc_dtype(t):
    return np.dtype(str(t.dtype).replace("torch.", ""))


@pytest.mark.parametrize("dtypes", DTYPES)
@pytest.mark.parametrize("name, fn", CASES, ids=[c[0] for c in CASES])
def test_autocast_output_dtypes_equal_pytorchs(name, fn, dtypes):
    dtype, tdtype = dtypes
    arrays = _inputs(np.random.default_rng(0))
    a = _Ns({k: mc.tensor(v) for k, v in arrays.items()})
    ta = _Ns({k: torch.from_numpy(v) for k, v in arrays.items()})
    with mc.autocast("cpu", dtype=dtype):
        out = fn(_MC, a)
    with torch.autocast("cpu", dtype=tdtype):
        want = fn(_Torch, ta)
    assert out.dtype == _mc_dtype(want), f"{name}: {out.dtype}, PyTorch {want.dtype}"


def test_cuda_lists_are_pytorchs():
    """The CUDA policy (PyTorch's autocast_mode.cpp), which this machine cannot run: lower
    precision for convolutions and GEMMs, float32 for losses, norms, exp / log, softmax and
    sums (with the fp32_set_opt_dtype ops), promotion for cat and stack; batch norm and mean
    in none (they run in their input's dtype)."""
    cuda, cpu = rules.POLICIES["cuda"], rules.POLICIES["cpu"]
    for op in ("conv2d", "conv1d", "conv_transpose2d", "linear", "matmul", "prelu"):
        assert cuda[op] == cpu[op] == "lower"
    for op in ("softmax", "log_softmax", "layer_norm", "group_norm", "exp", "log", "sum",
               "cumsum", "logsumexp", "mse_loss", "nll_loss", "cross_entropy", "pow"):
        assert cuda[op] == "fp32"
    for op in ("softmax", "layer_norm", "exp", "sum"):
        assert op not in cpu
    for op in ("batch_norm", "mean", "relu", "max_pool2d"):
        assert op not in cuda and op not in cpu
    assert cuda["cat"] == cpu["cat"] == cuda["stack"] == "promote"
    assert mc.amp.get_autocast_dtype("cuda") == mc.float16
    assert mc.amp.get_autocast_dtype("cpu") == mc.bfloat16


def test_weight_casts_are_cached_per_region_and_gradients_reach_float32_weights():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3)).astype(np.float32)
    w = rng.standard_normal((2, 3)).astype(np.float32)
    mw = nn.Parameter(mc.tensor(w))
    tw = torch.from_numpy(w).requires_grad_()
    with mc.autocast("cpu"):
        y1, y2 = F.linear(mc.tensor(x), mw), F.linear(mc.tensor(x) * 2.0, mw)
        assert y1.creator.inputs[1] is y2.creator.inputs[1]      # one cast of the weight
        assert rules.region.cache
    assert rules.region.cache is None                             # emptied with the region
    with torch.autocast("cpu"):
        t1, t2 = TF.linear(torch.from_numpy(x), tw), TF.linear(torch.from_numpy(x) * 2.0, tw)
    (y1.float().sum() + (y2.float() ** 2).sum()).backward()
    (t1.float().sum() + (t2.float() ** 2).sum()).backward()
    assert mw.grad.dtype == mc.float32
    np.testing.assert_array_equal(mw.grad.numpy(), tw.grad.numpy())


def test_a_cast_made_under_no_grad_is_not_reused_with_grad():
    w = nn.Parameter(mc.randn(2, 3))
    x = mc.randn(4, 3)
    with mc.autocast("cpu"):
        with mc.no_grad():
            F.linear(x, w)
        y = F.linear(x, w)
    y.float().sum().backward()
    assert w.grad is not None and w.grad.dtype == mc.float32


def test_regions_nest_and_are_per_thread():
    x = mc.randn(2, 3)
    w = mc.randn(4, 3)
    seen = {}

    def other():
        seen["other"] = F.linear(x, w).dtype

    with mc.autocast("cpu", dtype=mc.float16):
        assert mc.amp.is_autocast_enabled("cpu") and not mc.amp.is_autocast_enabled("cuda")
        t = threading.Thread(target=other)
        t.start()
        t.join()
        with mc.autocast("cpu", enabled=False):
            assert F.linear(x, w).dtype == mc.float32
        with mc.autocast("cpu", dtype=mc.bfloat16):
            assert F.linear(x, w).dtype == mc.bfloat16
        assert F.linear(x, w).dtype == mc.float16
        with mc.autocast("cuda"):           # a CUDA region leaves CPU tensors alone
            assert F.linear(x, w).dtype == mc.float32
    assert seen["other"] == mc.float32
    assert F.linear(x, w).dtype == mc.float32 and not mc.amp.is_autocast_enabled()

    @mc.autocast("cpu")
    def forward():
        return F.linear(x, w)
    assert forward().dtype == mc.bfloat16


def test_autocast_bad_arguments():
    with pytest.raises(ValueError, match="autocast: device_type must be 'cpu' or 'cuda'"):
        mc.autocast("tpu")
    with pytest.raises(TypeError, match="autocast: dtype float32 is not a lower precision"):
        mc.autocast("cpu", dtype=mc.float32)
    with pytest.raises(TypeError, match="autocast: int8 is not supported on cpu"):
        mc.autocast("cpu", dtype=mc.int8)


# --- GradScaler ---------------------------------------------------------------------------------

INJECT = {3: np.inf, 4: np.nan, 11: -np.inf, 12: np.inf, 13: np.nan, 27: np.nan}


def _scaler_run(lib, steps=40, clip=False):
    """A run of SGD steps on fixed gradients of a scaled loss, with infs and NaNs injected at
    INJECT's steps; returns the scale after each update and the final parameters."""
    rng = np.random.default_rng(3)
    w0 = rng.standard_normal((3, 4)).astype(np.float32)
    grads = [rng.standard_normal((3, 4)).astype(np.float32) for _ in range(steps)]
    kw = dict(init_scale=2.0 ** 8, growth_factor=2.0, backoff_factor=0.5, growth_interval=5)
    if lib == "torch":
        w = torch.nn.Parameter(torch.from_numpy(w0.copy()))
        opt = torch.optim.SGD([w], lr=0.1, momentum=0.9)
        scaler = torch.amp.GradScaler("cpu", **kw)
    else:
        w = nn.Parameter(mc.tensor(w0.copy()))
        opt = mc.optim.SGD([w], lr=0.1, momentum=0.9)
        scaler = mc.amp.GradScaler("cpu", **kw)
    scales = []
    for i, g in enumerate(grads):
        wrap = torch.from_numpy if lib == "torch" else mc.tensor
        scaled = np.array(scaler.scale(wrap(g)).numpy())  # what scale(loss).backward() gives
        if i in INJECT:
            scaled[1, 2] = INJECT[i]
        w.grad = wrap(scaled)
        if clip:
            scaler.unscale_(opt)
        scaler.step(opt)
        scaler.update()
        scales.append(scaler.get_scale())
    out = w.detach().numpy() if lib == "torch" else w.numpy()
    return scales, out, scaler.state_dict()


@pytest.mark.parametrize("clip", [False, True], ids=["step", "unscale_then_step"])
def test_grad_scaler_trajectory_equals_pytorchs(clip):
    scales, w, state = _scaler_run("mc", clip=clip)
    tscales, tw, tstate = _scaler_run("torch", clip=clip)
    assert scales == tscales
    assert state == tstate
    np.testing.assert_allclose(w, tw, rtol=4 * np.finfo(np.float32).eps, atol=0)


def test_grad_scaler_scale_keeps_dtypes_and_state_round_trips():
    scaler = mc.amp.GradScaler("cpu", init_scale=1024.0)
    loss = mc.tensor(1.5)
    assert scaler.scale(loss).item() == 1536.0 and scaler.scale(loss).dtype == mc.float32
    assert scaler.scale(mc.tensor(2.0).bfloat16()).dtype == mc.bfloat16
    assert [t.item() for t in scaler.scale([loss, loss])] == [1536.0, 1536.0]
    other = mc.amp.GradScaler("cpu")
    other.load_state_dict(scaler.state_dict())
    assert other.state_dict() == scaler.state_dict()
    assert set(scaler.state_dict()) == set(torch.amp.GradScaler("cpu").state_dict())
    off = mc.amp.GradScaler("cpu", enabled=False)
    assert off.get_scale() == 1.0 and off.state_dict() == {} and off.scale(loss) is loss


def test_grad_scaler_refuses_out_of_order_calls():
    w = nn.Parameter(mc.ones(2))
    opt = mc.optim.SGD([w], lr=0.1)
    scaler = mc.amp.GradScaler("cpu")
    w.grad = mc.ones(2)
    scaler.unscale_(opt)
    with pytest.raises(RuntimeError, match="unscale_\\(\\) has already been called"):
        scaler.unscale_(opt)
    scaler.step(opt)
    with pytest.raises(RuntimeError, match="step\\(\\) has already been called"):
        scaler.step(opt)
    scaler.update()
    with pytest.raises(ValueError, match="growth_factor"):
        mc.amp.GradScaler("cpu", growth_factor=1.0)


# --- Trainer(precision=...) and `minicnn train --precision` -------------------------------------

def _digits_run(precision, seed, epochs=15):
    """LeNet-5 on the built-in digits: SGD with momentum and a cosine schedule (so each run ends
    settled), batch 64; the test accuracy in percent."""
    from minicnn.train import Trainer  # noqa: PLC0415
    train, test = mc.data.Digits(train=True), mc.data.Digits(train=False)
    mc.manual_seed(seed)
    model = mc.models.lenet5(image_size=8)
    opt = mc.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = mc.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    trainer = Trainer(model, opt, precision=precision, scheduler=sched)
    trainer.fit(mc.data.DataLoader(train, batch_size=64, shuffle=True), epochs=epochs,
                verbose=0)
    assert all(p.dtype == mc.float32 for p in model.parameters())   # master weights
    return 100 * trainer.evaluate(mc.data.DataLoader(test, batch_size=360),
                                  verbose=0)["accuracy"]


def test_lenet5_bf16_mixed_reaches_float32_accuracy():
    """The mean test accuracy over three seeds (one run's spread on 360 test images is about
    +-1.5 pt either way) within 0.5 pt of float32's."""
    fp32 = np.mean([_digits_run("32", seed) for seed in range(3)])
    bf16 = np.mean([_digits_run("bf16-mixed", seed) for seed in range(3)])
    assert fp32 > 95.0
    assert abs(bf16 - fp32) <= 0.5, (bf16, fp32)


def test_trainer_precision_arguments_and_the_cli(tmp_path):
    import os  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415
    from minicnn.train import Trainer  # noqa: PLC0415
    model = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="precision must be one of 32, bf16-mixed, 16-mixed"):
        Trainer(model, mc.optim.SGD(model.parameters(), lr=0.1), precision="8-mixed")
    t = Trainer(model, mc.optim.SGD(model.parameters(), lr=0.1), precision="16-mixed")
    assert t._scaler is not None and t._scaler.device == "cpu"
    proc = subprocess.run([sys.executable, "-m", "minicnn", "train", "--epochs", "1",
                           "--steps-per-epoch", "3", "--batch-size", "16", "--no-plots",
                           "--precision", "16-mixed", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, NUMBA_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr
    assert "accuracy" in proc.stdout


# --- a ResNet-18 under autocast + GradScaler, beside PyTorch's ----------------------------------

def _resnet_amp_run(lib, dtype, steps, width=8, n=4):
    """ResNet-18 CIFAR (same weights, same batches) trained `steps` SGD steps with the forward
    under autocast(cpu, dtype) and a GradScaler (growth every 2 steps, so the scale moves).
    Returns the output dtype of every module on the first step, the losses, the scales and the
    parameters' dtypes after training."""
    from bench.cases.model import _torch_resnet18_cifar  # noqa: PLC0415
    torch.manual_seed(0)
    tmodel = _torch_resnet18_cifar(torch, 10, width)
    rng = np.random.default_rng(1)
    batches = [(rng.standard_normal((n, 3, 32, 32)).astype(np.float32),
                rng.integers(0, 10, n)) for _ in range(steps)]
    if lib == "torch":
        model, T, wrap = tmodel, torch, torch.from_numpy
        loss_fn = TF.cross_entropy
    else:
        model = mc.models.resnet18_cifar(10, width=width)
        model.load_state_dict({k: v.numpy() for k, v in tmodel.state_dict().items()})
        T, wrap, loss_fn = mc, mc.tensor, F.cross_entropy
    opt = T.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    scaler = T.amp.GradScaler("cpu", init_scale=2.0 ** 10, growth_interval=2)
    seen = {}

    def record(name):
        def hook(mod, args, out):
            seen[name] = str(out.dtype).split(".")[-1]   # returns None: the output stays
        return hook
    hooks = [m.register_forward_hook(record(name)) for name, m in model.named_modules() if name]
    losses, scales = [], []
    for x, y in batches:
        opt.zero_grad()
        with T.autocast("cpu", dtype=dtype):
            out = model(wrap(x))
            loss = loss_fn(out, wrap(y))
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        losses.append(float(loss.item()))
        scales.append(scaler.get_scale())
        for h in hooks:
            h.remove()
        hooks = []
    return seen, losses, scales, {str(p.dtype).split(".")[-1] for p in model.parameters()}


@pytest.mark.parametrize("dtype", DTYPES)
def test_resnet18_trains_under_autocast_and_grad_scaler_as_pytorch(dtype):
    """Every module's output dtype on the first step equals PyTorch's (autocast's policy over a
    whole network: conv in half, batch norm keeping its input's dtype, the loss in float32);
    the scaler's scales are the same sequence; parameters stay float32 (master weights); and
    the losses follow PyTorch's: the first within the half format's rounding of a forward pass,
    and the run's loss falls on both sides."""
    mdt, tdt = dtype
    steps = 6
    mseen, mlosses, mscales, mparams = _resnet_amp_run("mc", mdt, steps)
    tseen, tlosses, tscales, tparams = _resnet_amp_run("torch", tdt, steps)
    assert mseen == tseen
    assert mscales == tscales
    assert mparams == tparams == {"float32"}
    eps = float(torch.finfo(tdt).eps)
    assert abs(mlosses[0] - tlosses[0]) <= 8 * eps * abs(tlosses[0]), (mlosses, tlosses)
    assert mlosses[-1] < mlosses[0] and tlosses[-1] < tlosses[0], (mlosses, tlosses)
