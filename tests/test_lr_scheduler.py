"""LR schedules: PyTorch's LR sequence over 100 steps, state dicts, errors."""
import math

import numpy as np
import pytest

import minicnn as mc
from conftest import torch_or_skip
from minicnn import nn, optim
from minicnn.optim import lr_scheduler as S

STEPS = 100


def _pair(torch, opt_name="SGD", groups=1, **kw):
    tparams = [torch.nn.Parameter(torch.zeros(2)) for _ in range(groups)]
    mparams = [nn.Parameter(mc.zeros(2)) for _ in range(groups)]
    kw = dict(dict(lr=0.1), **kw)
    tg = [{"params": [p], "lr": kw["lr"] * (i + 1)} for i, p in enumerate(tparams)]
    mg = [{"params": [p], "lr": kw["lr"] * (i + 1)} for i, p in enumerate(mparams)]
    return getattr(torch.optim, opt_name)(tg, **kw), getattr(optim, opt_name)(mg, **kw)


def _make(lib, name, opt, kwargs):
    mod = lib.optim.lr_scheduler if lib is not None else S
    if name == "SequentialLR":
        scheds = [mod.LinearLR(opt, start_factor=0.1, total_iters=10),
                  mod.CosineAnnealingLR(opt, T_max=90, eta_min=1e-4)]
        return mod.SequentialLR(opt, scheds, milestones=[10])
    if name == "SequentialLR3":
        scheds = [mod.LinearLR(opt, start_factor=0.5, total_iters=5),
                  mod.ExponentialLR(opt, gamma=0.97), mod.StepLR(opt, step_size=7, gamma=0.5)]
        return mod.SequentialLR(opt, scheds, milestones=[20, 60])
    return getattr(mod, name)(opt, **kwargs)


SCHEDULES = [
    ("StepLR", dict(step_size=7, gamma=0.5)),
    ("MultiStepLR", dict(milestones=[10, 30, 30, 80], gamma=0.3)),
    ("ExponentialLR", dict(gamma=0.97)),
    ("CosineAnnealingLR", dict(T_max=30, eta_min=1e-3)),  # past T_max it keeps oscillating
    ("CosineAnnealingWarmRestarts", dict(T_0=10, T_mult=2, eta_min=1e-4)),
    ("CosineAnnealingWarmRestarts", dict(T_0=7)),
    ("LinearLR", dict(start_factor=0.1, end_factor=1.0, total_iters=20)),
    ("LinearLR", dict(start_factor=1.0, end_factor=0.2, total_iters=50)),
    ("LambdaLR", dict(lr_lambda=lambda e: 1.0 / (1 + 0.1 * e))),
    ("OneCycleLR", dict(max_lr=1.0, total_steps=STEPS + 1)),
    ("OneCycleLR", dict(max_lr=[0.5, 1.0], total_steps=STEPS + 1, anneal_strategy="linear",
                        three_phase=True, pct_start=0.25)),
    ("SequentialLR", {}),
    ("SequentialLR3", {}),
]


@pytest.mark.parametrize("opt_name", ["SGD", "Adam"])
@pytest.mark.parametrize("name,kwargs", SCHEDULES, ids=[s[0] for s in SCHEDULES])
def test_lr_sequence_matches_pytorch(name, kwargs, opt_name):
    torch = torch_or_skip()
    extra = dict(momentum=0.9) if opt_name == "SGD" else {}
    topt, mopt = _pair(torch, opt_name, groups=2, **extra)
    ts, ms = _make(torch, name, topt, kwargs), _make(None, name, mopt, kwargs)
    assert ms.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12)
    for _ in range(STEPS):
        topt.step()
        mopt.step()
        ts.step()
        ms.step()
        np.testing.assert_allclose(ms.get_last_lr(), ts.get_last_lr(), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose([g["lr"] for g in mopt.param_groups],
                                   [g["lr"] for g in topt.param_groups], rtol=1e-12, atol=1e-15)
        if name == "OneCycleLR":  # momentum / beta1 cycles too
            key = "momentum" if opt_name == "SGD" else "betas"
            for tg, mg in zip(topt.param_groups, mopt.param_groups):
                np.testing.assert_allclose(np.ravel(mg[key]), np.ravel(tg[key]), rtol=1e-12)


PLATEAU = [
    dict(),
    dict(mode="max", factor=0.5, patience=2, threshold=0.01, cooldown=3, min_lr=0.01),
    dict(mode="min", threshold_mode="abs", threshold=0.05, patience=1, min_lr=[0.001, 0.02]),
    dict(mode="max", threshold_mode="abs", patience=0, factor=0.9, eps=1e-3),
]


@pytest.mark.parametrize("kwargs", PLATEAU)
def test_reduce_lr_on_plateau_matches_pytorch(kwargs):
    torch = torch_or_skip()
    topt, mopt = _pair(torch, groups=2)
    ts = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kwargs)
    ms = S.ReduceLROnPlateau(mopt, **kwargs)
    rng = np.random.default_rng(0)
    # a metric that improves, stalls, bounces: exercises patience, cooldown and thresholds
    metrics = np.concatenate([np.linspace(1, 0.5, 20), 0.5 + 0.02 * rng.standard_normal(40),
                              np.linspace(0.5, 0.6, 20), 0.4 + 0.1 * rng.random(20)])
    for m in metrics:
        ts.step(float(m))
        ms.step(mc.tensor(m))  # a 0-d tensor works as a metric
        assert ms.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12)
        assert ms.num_bad_epochs == ts.num_bad_epochs and ms.best == ts.best


def test_state_dict_round_trip_resumes_the_sequence(tmp_path):
    for name, kwargs in SCHEDULES + [("ReduceLROnPlateau", dict(patience=1, cooldown=1))]:
        def two_groups():
            return optim.SGD([{"params": [nn.Parameter(mc.zeros(1))]},
                              {"params": [nn.Parameter(mc.zeros(2))], "lr": 0.3}],
                             lr=0.1, momentum=0.9)
        opt = two_groups()
        sched = _make(None, name, opt, kwargs)

        def advance(s, k):
            for i in range(k):
                if isinstance(s, S.ReduceLROnPlateau):
                    s.step(1.0 + (i % 3 == 0))
                else:
                    s.step()
        advance(sched, 37)
        mc.save({"sched": sched.state_dict(), "opt": opt.state_dict()}, tmp_path / "s.ck")
        advance(sched, 40)
        expected = sched.get_last_lr()

        opt2 = two_groups()
        sched2 = _make(None, name, opt2, kwargs)
        ck = mc.load(tmp_path / "s.ck")
        opt2.load_state_dict(ck["opt"])
        sched2.load_state_dict(ck["sched"])
        advance(sched2, 40)
        assert sched2.get_last_lr() == expected, name


def test_errors():
    opt = optim.SGD([nn.Parameter(mc.zeros(1))], lr=0.1)
    with pytest.raises(TypeError, match="is not an Optimizer"):
        S.StepLR(object(), 3)
    with pytest.raises(ValueError, match="Factor should be < 1.0"):
        S.ReduceLROnPlateau(opt, factor=1.5)
    with pytest.raises(ValueError, match="mode avg is unknown"):
        S.ReduceLROnPlateau(opt, mode="avg")
    with pytest.raises(ValueError, match="Starting multiplicative factor"):
        S.LinearLR(opt, start_factor=0)
    with pytest.raises(ValueError, match="positive integer T_0"):
        S.CosineAnnealingWarmRestarts(opt, T_0=0)
    with pytest.raises(ValueError, match="total_steps"):
        S.OneCycleLR(opt, max_lr=1.0)
    with pytest.raises(ValueError, match="momentum or beta1"):
        S.OneCycleLR(optim.Adagrad([nn.Parameter(mc.zeros(1))]), max_lr=1.0, total_steps=5)
    with pytest.raises(ValueError, match="one more than the number of milestone"):
        S.SequentialLR(opt, [S.StepLR(opt, 2)], milestones=[3])
    with pytest.raises(KeyError, match="initial_lr"):
        S.StepLR(optim.SGD([nn.Parameter(mc.zeros(1))], lr=0.1), 3, last_epoch=5)
    sched = S.OneCycleLR(optim.SGD([nn.Parameter(mc.zeros(1))], lr=0.1, momentum=0.9),
                         max_lr=1.0, total_steps=3)
    for _ in range(3):
        sched.step()
    with pytest.raises(ValueError, match="Tried to step 4 times"):
        sched.step()
    assert math.isfinite(sched.get_last_lr()[0])
