"""No host-device synchronization inside a GPU training step (issue 8), and the GPU-only paths
that avoid one (cross-entropy's target check and mean divisor).

How a synchronization is detected: a one-thread kernel holds the stream, spinning until a flag in
pinned host memory is set; a timer thread sets it after HOLD_S seconds. The code under test runs
in the main thread meanwhile: everything it launches queues behind the spinning kernel, so if it
returns before the timer fired it never waited for the GPU; any synchronization (`.item()`,
`float()`, `.get()`, `cupy.asnumpy`, a stream sync, a device-to-host copy) would block it until
the flag is set. The kernel gives up after LIMIT_S seconds, so a test never hangs. Everything is
run once before (compilation, module loading and memory-pool growth stay out of the check).
"""
import threading
import time

import numpy as np
import pytest

import minicnn as mc
from minicnn import nn

CUDA = mc.cuda.is_available()
pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not CUDA, reason="CUDA is not available")]

HOLD_S = 4.0
LIMIT_S = 30.0

_SPIN = r"""
extern "C" __global__ void spin_until_set(const volatile int* flag, long long max_iter) {
    for (long long i = 0; i < max_iter && *flag == 0; ++i) __nanosleep(1000);
}
"""


class _StreamHold:
    """Hold the current stream until HOLD_S seconds have passed (see the module docstring)."""

    def __init__(self):
        import cupy  # noqa: PLC0415
        self.cupy = cupy
        self.mem = cupy.cuda.alloc_pinned_memory(4)       # mapped: device pointer == host pointer
        self.flag = np.frombuffer(self.mem, np.int32, 1)
        self.kernel = cupy.RawKernel(_SPIN, "spin_until_set")

    def __enter__(self):
        self.cupy.cuda.get_current_stream().synchronize()
        self.flag[0] = 0
        self.kernel((1,), (32,), (np.uint64(self.mem.ptr), np.int64(LIMIT_S * 1e6)))
        self.timer = threading.Timer(HOLD_S, self.release)
        self.t0 = time.perf_counter()
        self.timer.start()
        return self

    def release(self):
        self.released_at = time.perf_counter()
        self.flag[0] = 1

    def released(self):
        return bool(self.flag[0])

    def __exit__(self, *exc):
        self.timer.join()
        self.cupy.cuda.get_current_stream().synchronize()


def _assert_async(fn, what):
    fn()                                                   # warm-up: compile, load, allocate
    mc.cuda.synchronize()
    with _StreamHold() as hold:
        fn()
        waited = hold.released()
        took = time.perf_counter() - hold.t0
    assert not waited, (f"{what} waited for the GPU ({took:.1f} s, the stream was held for "
                        f"{HOLD_S} s): a host-device synchronization inside it")


def _model_and_batch():
    mc.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.2), nn.Linear(8 * 4 * 4, 10))
    model.to("cuda").train()
    rng = np.random.default_rng(0)
    x = mc.tensor(rng.standard_normal((8, 3, 8, 8)).astype(np.float32), device="cuda")
    y = mc.tensor(rng.integers(0, 10, 8), device="cuda")
    return model, x, y


def test_the_hold_detects_a_synchronization():
    import cupy  # noqa: PLC0415
    a = cupy.ones(10)
    with pytest.raises(AssertionError, match="synchronization"):
        _assert_async(lambda: float(a.sum()), "float(cupy scalar)")


@pytest.mark.parametrize("opt", ["sgd", "adam", "adamw", "rmsprop"])
def test_training_step_has_no_sync(opt):
    model, x, y = _model_and_batch()
    make = {"sgd": lambda p: mc.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=5e-4),
            "adam": lambda p: mc.optim.Adam(p, lr=1e-3),
            "adamw": lambda p: mc.optim.AdamW(p, lr=1e-3),
            "rmsprop": lambda p: mc.optim.RMSprop(p, lr=1e-3)}[opt]
    optimizer = make(model.parameters())

    def step():
        optimizer.zero_grad()
        loss = mc.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
    _assert_async(step, f"a training step (conv, batch norm, pool, dropout, linear, "
                        f"cross-entropy, {opt})")


def test_trainer_steps_have_no_sync():
    from minicnn.data import DataLoader, TensorDataset  # noqa: PLC0415
    model, _, _ = _model_and_batch()
    rng = np.random.default_rng(1)
    xs = rng.standard_normal((24, 3, 8, 8)).astype(np.float32)
    ys = rng.integers(0, 10, 24)
    t = mc.train.Trainer(model, mc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
                         metrics=["accuracy"], device="cuda", sync_every=100)
    times = []                         # when each training step (incl. metrics) was enqueued
    step, update = t._step, mc.train.metrics.Accuracy.update

    def timed_step(*args, **kw):
        out = step(*args, **kw)
        times.append(("step", time.perf_counter()))
        return out

    def timed_update(self, *args):
        update(self, *args)
        times.append(("metric", time.perf_counter()))

    t._step = timed_step

    def fit():
        times.clear()
        t.fit(DataLoader(TensorDataset(xs, ys), 8), epochs=1, verbose=0)

    mc.train.metrics.Accuracy.update = timed_update
    try:
        fit()
        mc.cuda.synchronize()
        with _StreamHold() as hold:
            fit()                      # the epoch-end read waits for the release, as it should
    finally:
        mc.train.metrics.Accuracy.update = update
    assert [k for k, _ in times] == ["step", "metric"] * 3
    late = [(k, round(w - hold.t0, 2)) for k, w in times if w >= hold.released_at]
    assert not late, (f"Trainer.fit waited for the GPU before the end of the epoch (seconds "
                      f"after the hold began, held {HOLD_S} s: {late}): a host-device "
                      "synchronization inside a training step")


def test_cross_entropy_on_cuda_matches_cpu_without_sync():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((12, 5)).astype(np.float32)
    t = rng.integers(0, 5, 12)
    t[3] = -100                                            # ignored row
    w = rng.uniform(0.5, 2, 5).astype(np.float32)
    for kw in ({}, {"weight": w}, {"label_smoothing": 0.1}):
        args = {k: (mc.tensor(v) if k == "weight" else v) for k, v in kw.items()}
        gargs = {k: (mc.tensor(v, device="cuda") if k == "weight" else v) for k, v in kw.items()}
        cpu = mc.functional.cross_entropy(mc.tensor(logits), mc.tensor(t), **args)
        xg = mc.tensor(logits, device="cuda", requires_grad=True)
        gpu = mc.functional.cross_entropy(xg, mc.tensor(t, device="cuda"), **gargs)
        np.testing.assert_allclose(gpu.item(), cpu.item(), rtol=1e-5)
    xg = mc.tensor(logits, device="cuda")
    tg = mc.tensor(t, device="cuda")
    _assert_async(lambda: mc.functional.cross_entropy(xg, tg), "cross_entropy (mean)")
    _assert_async(lambda: mc.functional.nll_loss(xg, tg), "nll_loss (mean)")


def test_cross_entropy_out_of_range_target_gives_nan_on_cuda():
    logits = np.zeros((4, 3), np.float32)
    bad = np.array([0, 1, 7, 2])
    with pytest.raises(IndexError, match="out of bounds"):
        mc.functional.cross_entropy(mc.tensor(logits), mc.tensor(bad))          # CPU: an error
    out = mc.functional.cross_entropy(mc.tensor(logits, device="cuda"),
                                      mc.tensor(bad, device="cuda"), reduction="none")
    got = out.cpu().numpy()
    assert np.isnan(got[2]) and np.isfinite(got[[0, 1, 3]]).all()
    mean = mc.functional.cross_entropy(mc.tensor(logits, device="cuda"),
                                       mc.tensor(bad, device="cuda"))
    assert np.isnan(mean.item())
    every = mc.functional.cross_entropy(mc.tensor(logits, device="cuda"),
                                        mc.tensor(np.full(4, -100), device="cuda"))
    assert np.isnan(every.item())                          # all rows ignored: 0/0, as PyTorch


@pytest.mark.parametrize("name", ["mixup", "cutmix"])
def test_mix_on_device_matches_cpu_without_sync(name):
    from minicnn.data import transforms as T  # noqa: PLC0415
    fn = getattr(T, name)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 3, 8, 8)).astype(np.float32)
    y = rng.integers(0, 4, 6)
    xc, yac, ybc, lc = fn(mc.tensor(x), mc.tensor(y), generator=5)
    xg, yag, ybg, lg = fn(mc.tensor(x, device="cuda"), mc.tensor(y, device="cuda"), generator=5)
    assert xg.device == "cuda" and ybg.device == "cuda" and lg == lc
    np.testing.assert_allclose(xg.cpu().numpy(), xc.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(ybg.cpu().numpy(), ybc.numpy())
    xd, yd = mc.tensor(x, device="cuda"), mc.tensor(y, device="cuda")
    _assert_async(lambda: fn(xd, yd, generator=5), name)


def test_binary_cross_entropy_on_cuda_without_sync():
    rng = np.random.default_rng(4)
    p = rng.uniform(0.05, 0.95, (5, 3)).astype(np.float32)
    y = rng.integers(0, 2, (5, 3)).astype(np.float32)
    cpu = mc.functional.binary_cross_entropy(mc.tensor(p), mc.tensor(y))
    pg, yg = mc.tensor(p, device="cuda"), mc.tensor(y, device="cuda")
    gpu = mc.functional.binary_cross_entropy(pg, yg)
    np.testing.assert_allclose(gpu.item(), cpu.item(), rtol=1e-5)
    _assert_async(lambda: mc.functional.binary_cross_entropy(pg, yg), "binary_cross_entropy")
    bad = p.copy()
    bad[0, 0] = 1.5                                       # CPU: ValueError; GPU: NaN
    with pytest.raises(ValueError, match="between 0 and 1"):
        mc.functional.binary_cross_entropy(mc.tensor(bad), mc.tensor(y))
    out = mc.functional.binary_cross_entropy(mc.tensor(bad, device="cuda"), yg)
    assert np.isnan(out.item())
