"""Two Python threads using minicnn at once (issue 23): grad mode, the default random generator
and the kernels' thread settings are per thread, so each thread's run equals the run it would be
alone."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from minicnn import nn

STEPS = 200


def _model():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Dropout(0.2), nn.Flatten(), nn.Linear(8 * 4 * 4, 5))


def train(seed, steps=STEPS):
    """Losses of `steps` Adam steps on random batches; every draw (init, data, dropout) comes
    from the calling thread's generator."""
    mc.manual_seed(seed)
    model = _model()
    opt = mc.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        x, t = mc.randn(8, 3, 8, 8), mc.randint(0, 5, (8,))
        loss = F.cross_entropy(model(x), t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def infer(seed, steps=STEPS):
    """Outputs of `steps` forward passes under no_grad, checked to record no graph."""
    mc.manual_seed(seed)
    model = _model().eval()
    outs = []
    for _ in range(steps):
        with mc.no_grad():
            y = model(mc.randn(4, 3, 8, 8))
        assert y.grad_fn is None and not y.requires_grad
        outs.append(y.numpy().copy())
    return outs


def _in_threads(*jobs):
    """Run each (fn, arg) in its own thread, started together; their results, in order."""
    results = [None] * len(jobs)
    errors = []
    start = threading.Barrier(len(jobs))

    def work(i, fn, arg):
        try:
            start.wait()
            results[i] = fn(arg)
        except BaseException as e:  # noqa: BLE001 -- reported on the main thread
            errors.append(e)
    threads = [threading.Thread(target=work, args=(i, fn, arg)) for i, (fn, arg) in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def test_two_threads_train_two_models_as_each_would_alone():
    alone = [train(0), train(1)]
    together = _in_threads((train, 0), (train, 1))
    assert together == alone
    assert alone[0] != alone[1]


def test_training_next_to_inference_under_no_grad():
    alone_train, alone_infer = train(2), infer(3)
    together_train, together_infer = _in_threads((train, 2), (infer, 3))
    assert together_train == alone_train
    for a, b in zip(together_infer, alone_infer):
        np.testing.assert_array_equal(a, b)


def test_grad_mode_is_per_thread():
    seen = []
    inside = threading.Event()
    done = threading.Event()

    def other():
        inside.wait()
        seen.append(mc.is_grad_enabled())
        x = mc.ones(2, requires_grad=True)
        seen.append((x * 2).requires_grad)
        done.set()
    t = threading.Thread(target=other)
    t.start()
    with mc.no_grad():
        inside.set()
        done.wait()
    t.join()
    assert seen == [True, True]


def test_threads_draw_from_their_own_generators():
    mc.manual_seed(5)
    main = mc.randn(3).tolist()
    other = _in_threads((lambda s: (mc.manual_seed(s), mc.randn(3).tolist())[1], 5))[0]
    assert other == main
    mc.manual_seed(5)
    unseeded = _in_threads((lambda _: mc.randn(3).tolist(), None),
                           (lambda _: mc.randn(3).tolist(), None))
    assert unseeded[0] != unseeded[1] and main not in unseeded   # distinct streams


_WORKQUEUE = """
import threading
import minicnn as mc, minicnn.functional as F
import numba
def work():
    mc.manual_seed(0)
    w = mc.randn(16, 8, 3, 3)
    for _ in range(30):
        F.conv2d(mc.randn(8, 8, 32, 32), w, padding=1).relu().sum()
ts = [threading.Thread(target=work) for _ in range(2)]
[t.start() for t in ts]
[t.join() for t in ts]
print(numba.threading_layer())
"""


def test_kernels_from_two_threads_on_numbas_workqueue_layer():
    """Numba's workqueue layer aborts the process when two threads enter a parallel kernel at
    once; minicnn's kernels take turns there."""
    env = dict(os.environ, NUMBA_THREADING_LAYER="workqueue", NUMBA_NUM_THREADS="2")
    done = subprocess.run([sys.executable, "-c", _WORKQUEUE], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "workqueue"


def test_inference_mode():
    x = mc.ones(2, requires_grad=True)
    with mc.inference_mode():
        assert not (x * 2).requires_grad
    assert (x * 2).requires_grad

    @mc.inference_mode()
    def f(t):
        return t * 2

    @mc.inference_mode
    def g(t):
        return t * 2
    assert not f(x).requires_grad and not g(x).requires_grad and mc.is_grad_enabled()
    with mc.inference_mode(False):
        assert (x * 2).requires_grad


def test_small_kernels_read_and_keep_each_threads_numba_width():
    # kernels._numba reads the width from Numba's layer directly (not numba.get_num_threads);
    # a small kernel runs on one thread and puts the caller's width back, per Python thread
    import numba
    from minicnn.kernels import _numba as K

    x = mc.randn(2, 3, 4, 4)
    seen = {}

    def use(width, name):
        numba.set_num_threads(width)
        assert K._num_threads() == numba.get_num_threads() == width
        F.relu(x)                     # work below SMALL_WORK: run on one thread
        seen[name] = (K._num_threads(), numba.get_num_threads())

    t = threading.Thread(target=use, args=(1, "other"))
    width = min(2, numba.config.NUMBA_NUM_THREADS)
    before = numba.get_num_threads()
    try:
        use(width, "main")
        t.start()
        t.join()
        assert seen == {"main": (width, width), "other": (1, 1)}
        assert numba.get_num_threads() == width
    finally:
        numba.set_num_threads(before)


@pytest.mark.parametrize("given, want", [({}, "3000"), ({"GOMP_SPINCOUNT": "5"}, "5"),
                                         ({"OMP_WAIT_POLICY": "PASSIVE"}, None)])
def test_import_sets_a_short_openmp_spin_unless_the_user_did(given, want):
    """`import minicnn` makes Numba's OpenMP workers spin 3000 rounds after a kernel (neither
    OpenMP's long default nor none at all; minicnn/__init__.py), and leaves a user's own
    GOMP_SPINCOUNT or OMP_WAIT_POLICY alone."""
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    code = "import os, minicnn; print(os.environ.get('GOMP_SPINCOUNT'))"
    out = subprocess.run([sys.executable, "-c", code], env={**env, **given}, capture_output=True,
                         text=True, check=True, timeout=120).stdout.split()[-1]
    assert out == str(want)
