"""Learning-rate schedules against torch.optim.lr_scheduler: the lr of every param group,
step by step for 100+ steps; chained with optimizers; state_dict round trips."""
import json
import math
import warnings

import numpy as np
import pytest
import torch
import torch.optim.lr_scheduler as TS

import lamina
import lamina.optim as optim
import lamina.optim.lr_scheduler as LS

SHAPES = [(3, 2), (4,), (2,)]


def make_pair(opt_name="SGD", lrs=(0.1, 0.02), seed=0, **kw):
    """A lamina and a torch optimizer over the same weights, two groups with own lrs."""
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s) for s in SHAPES]
    lp = [lamina.Parameter(a.copy()) for a in init]
    tp = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    if opt_name == "SGD":
        kw.setdefault("momentum", 0.9)
    groups = lambda ps: [{"params": ps[:2], "lr": lrs[0]}, {"params": ps[2:], "lr": lrs[1]}]
    lopt = getattr(optim, opt_name)(groups(lp), **kw)
    topt = getattr(torch.optim, opt_name)(groups(tp), **kw)
    return lopt, topt, lp, tp


def momenta(opt):
    return [g["betas"][0] if "betas" in g else g.get("momentum") for g in opt.param_groups]


def assert_same_lrs(sched, tsched, lopt, topt, msg):
    np.testing.assert_allclose(sched.get_last_lr(), tsched.get_last_lr(), rtol=1e-12,
                               atol=1e-15, err_msg=msg)
    np.testing.assert_allclose([g["lr"] for g in lopt.param_groups],
                               [g["lr"] for g in topt.param_groups], rtol=1e-12, atol=1e-15,
                               err_msg=msg)
    if "momentum" in lopt.defaults or "betas" in lopt.defaults:
        np.testing.assert_allclose(momenta(lopt), momenta(topt), rtol=1e-12, err_msg=msg)


def run_both(make_l, make_t, steps=120, opt_name="SGD", metrics=None, grads=False, **okw):
    lopt, topt, lp, tp = make_pair(opt_name, **okw)
    sched, tsched = make_l(lopt), make_t(topt)
    assert_same_lrs(sched, tsched, lopt, topt, "after construction")
    rng = np.random.default_rng(1)
    for i in range(steps):
        if grads:
            for a, b in zip(lp, tp):
                g = rng.standard_normal(a.shape)
                a.grad.data[...] = g
                b.grad = torch.tensor(g)
        lopt.step()
        topt.step()
        if metrics is None:
            sched.step()
            tsched.step()
        else:
            sched.step(metrics[i])
            tsched.step(metrics[i])
        assert_same_lrs(sched, tsched, lopt, topt, f"step {i + 1}")
    return sched, tsched, lopt, topt, lp, tp


def one_cycle(**kw):
    return lambda o, M=None: (LS if M is None else M).OneCycleLR(o, **kw)


def warmup_lambda(w):
    return lambda s: min((s + 1) / w, math.sqrt(w / (s + 1)))


# name -> (lamina factory, torch factory, optimizer, steps)
SCHEDULES = {
    "StepLR": (lambda o: LS.StepLR(o, step_size=7, gamma=0.5),
               lambda o: TS.StepLR(o, step_size=7, gamma=0.5), "SGD", 120),
    "MultiStepLR": (lambda o: LS.MultiStepLR(o, [10, 30, 30, 80], gamma=0.3),
                    lambda o: TS.MultiStepLR(o, [10, 30, 30, 80], gamma=0.3), "SGD", 120),
    "ExponentialLR": (lambda o: LS.ExponentialLR(o, gamma=0.97),
                      lambda o: TS.ExponentialLR(o, gamma=0.97), "SGD", 120),
    "LambdaLR": (lambda o: LS.LambdaLR(o, [lambda e: 0.95 ** e, lambda e: 1 / (1 + e)]),
                 lambda o: TS.LambdaLR(o, [lambda e: 0.95 ** e, lambda e: 1 / (1 + e)]),
                 "SGD", 120),
    "CosineAnnealingLR": (lambda o: LS.CosineAnnealingLR(o, T_max=25, eta_min=0.001),
                          lambda o: TS.CosineAnnealingLR(o, T_max=25, eta_min=0.001),
                          "SGD", 130),
    "OneCycleLR-cos-SGD": (lambda o: LS.OneCycleLR(o, max_lr=[0.5, 0.1], total_steps=120),
                           lambda o: TS.OneCycleLR(o, max_lr=[0.5, 0.1], total_steps=120),
                           "SGD", 120),
    "OneCycleLR-linear-Adam": (
        lambda o: LS.OneCycleLR(o, max_lr=0.01, epochs=10, steps_per_epoch=12,
                                anneal_strategy="linear", pct_start=0.25),
        lambda o: TS.OneCycleLR(o, max_lr=0.01, epochs=10, steps_per_epoch=12,
                                anneal_strategy="linear", pct_start=0.25), "Adam", 120),
    "OneCycleLR-three-phase-RMSprop": (
        lambda o: LS.OneCycleLR(o, max_lr=0.05, total_steps=130, three_phase=True,
                                base_momentum=0.8, max_momentum=[0.9, 0.95], div_factor=10.0,
                                final_div_factor=100.0),
        lambda o: TS.OneCycleLR(o, max_lr=0.05, total_steps=130, three_phase=True,
                                base_momentum=0.8, max_momentum=[0.9, 0.95], div_factor=10.0,
                                final_div_factor=100.0), "RMSprop", 130),
    "OneCycleLR-no-momentum-Adagrad": (
        lambda o: LS.OneCycleLR(o, max_lr=0.1, total_steps=100, cycle_momentum=False),
        lambda o: TS.OneCycleLR(o, max_lr=0.1, total_steps=100, cycle_momentum=False),
        "Adagrad", 100),
    "WarmupInverseSqrtLR": (lambda o: LS.WarmupInverseSqrtLR(o, warmup_steps=16),
                            lambda o: TS.LambdaLR(o, warmup_lambda(16)), "Adam", 150),
}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_lr_sequence_matches_torch(name):
    make_l, make_t, opt_name, steps = SCHEDULES[name]
    kw = dict(momentum=0.5) if opt_name == "RMSprop" else {}
    run_both(make_l, make_t, steps=steps, opt_name=opt_name, **kw)


def test_one_cycle_lr_and_momentum_values():
    """Spot values: starts at max_lr/div_factor with max momentum, peaks at max_lr with base
    momentum at step pct_start*total - 1, ends at initial_lr/final_div_factor."""
    lopt, *_ = make_pair("SGD")
    s = LS.OneCycleLR(lopt, max_lr=1.0, total_steps=100, div_factor=20.0, final_div_factor=50.0)
    assert s.get_last_lr()[0] == pytest.approx(0.05) and momenta(lopt)[0] == 0.95
    seen = []
    for _ in range(99):
        lopt.step()
        s.step()
        seen.append((s.get_last_lr()[0], momenta(lopt)[0]))
    assert seen[28] == (pytest.approx(1.0), pytest.approx(0.85))
    assert seen[-1][0] == pytest.approx(0.05 / 50.0) and seen[-1][1] == pytest.approx(0.95)
    s.step()  # last_epoch == total_steps is still allowed (as in torch), one more is not
    with pytest.raises(ValueError, match="OneCycleLR: stepped 101 times, but total_steps is 100"):
        s.step()


def test_warmup_inverse_sqrt_formula():
    lopt, *_ = make_pair("Adam", lrs=(1.0, 0.5))
    s = LS.WarmupInverseSqrtLR(lopt, warmup_steps=4)
    got = [s.get_last_lr()]
    for _ in range(11):
        lopt.step()
        s.step()
        got.append(s.get_last_lr())
    want = [0.25, 0.5, 0.75, 1.0] + [math.sqrt(4 / k) for k in range(5, 13)]
    np.testing.assert_allclose([g[0] for g in got], want, rtol=1e-15)
    np.testing.assert_allclose([g[1] for g in got], np.array(want) / 2, rtol=1e-15)


PLATEAU = [
    dict(),
    dict(mode="max", factor=0.5, patience=2, threshold=0.05, cooldown=2),
    dict(mode="min", factor=0.5, patience=1, threshold=0.1, threshold_mode="abs",
         min_lr=[0.01, 0.004]),
    dict(mode="max", factor=0.2, patience=0, threshold_mode="abs", threshold=0.0, min_lr=1e-3,
         eps=1e-4),
    dict(factor=0.7, patience=3, cooldown=1, threshold=0.0),
]


@pytest.mark.parametrize("kw", PLATEAU, ids=[str(k) for k in PLATEAU])
def test_reduce_on_plateau_matches_torch(kw):
    rng = np.random.default_rng(0)
    # a scripted validation curve: improving, plateaus, noise, a late improvement
    metrics = np.concatenate([np.linspace(1.0, 0.5, 20), np.full(15, 0.5),
                              0.5 + 0.02 * rng.standard_normal(40), np.linspace(0.5, 0.3, 10),
                              np.full(35, 0.3) + 0.001 * np.arange(35)]).tolist()
    run_both(lambda o: LS.ReduceLROnPlateau(o, **kw),
             lambda o: TS.ReduceLROnPlateau(o, **kw), steps=len(metrics), metrics=metrics)


def test_reduce_on_plateau_accepts_tensors_and_counts():
    lopt, *_ = make_pair()
    s = LS.ReduceLROnPlateau(lopt, patience=1, factor=0.5)
    s.step(lamina.tensor(1.0))
    assert s.best == 1.0 and s.num_bad_epochs == 0
    s.step(np.float64(1.0))
    s.step(1.0)
    assert s.get_last_lr() == [0.05, 0.01] and s.num_bad_epochs == 0


def test_chained_schedulers_match_torch():
    """Two schedules on one optimizer compose multiplicatively, as in torch."""
    lopt, topt, _, _ = make_pair()
    ls = [LS.StepLR(lopt, 10, 0.5), LS.ExponentialLR(lopt, 0.98),
          LS.CosineAnnealingLR(lopt, T_max=40)]
    ts = [TS.StepLR(topt, 10, 0.5), TS.ExponentialLR(topt, 0.98),
          TS.CosineAnnealingLR(topt, T_max=40)]
    for i in range(100):
        lopt.step()
        topt.step()
        for a, b in zip(ls, ts):
            a.step()
            b.step()
        assert_same_lrs(ls[-1], ts[-1], lopt, topt, f"step {i}")


@pytest.mark.parametrize("opt_name,make", [
    ("Adam", one_cycle(max_lr=0.05, total_steps=100)),
    ("AdamW", one_cycle(max_lr=0.05, total_steps=100, three_phase=True)),
    ("SGD", one_cycle(max_lr=0.3, total_steps=100, anneal_strategy="linear")),
    ("RMSprop", lambda o, M=None: (M or LS).CosineAnnealingLR(o, T_max=30, eta_min=1e-4)),
    ("Adam", lambda o, M=None: (M or LS).StepLR(o, 9, 0.7)),
])
def test_schedule_drives_optimizer_like_torch(opt_name, make):
    """Parameters after 100 steps of optimizer + schedule (OneCycleLR cycling Adam's beta1
    or SGD's momentum every step) agree with torch within 1e-6 relative."""
    kw = dict(momentum=0.5) if opt_name == "RMSprop" else {}
    *_, lp, tp = run_both(make, lambda o: make(o, TS), steps=100, opt_name=opt_name,
                          grads=True, **kw)
    for a, b in zip(lp, tp):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-6, atol=1e-12)


ROUND_TRIP = dict(SCHEDULES)
ROUND_TRIP["ReduceLROnPlateau"] = (
    lambda o: LS.ReduceLROnPlateau(o, patience=2, factor=0.5, cooldown=1), None, "SGD", 120)


@pytest.mark.parametrize("name", list(ROUND_TRIP))
def test_state_dict_round_trip_mid_run(name):
    """After 40 steps, a fresh optimizer + scheduler restored from both state dicts (via
    JSON, as a checkpoint would store them) continues with the very same lrs, momenta and
    parameters as the uninterrupted run."""
    make_l, _, opt_name, steps = ROUND_TRIP[name]
    kw = dict(momentum=0.5) if opt_name == "RMSprop" else {}
    metric = lambda i: 1.0 / (1 + i) if i < 30 else 0.2 + 0.01 * (i % 3)
    lopt, _, lp, _ = make_pair(opt_name, **kw)
    sched = make_l(lopt)
    plateau = isinstance(sched, LS.ReduceLROnPlateau)
    rng = np.random.default_rng(2)

    def advance(opt, s, ps, i, grads):
        for p, g in zip(ps, grads):
            p.grad.data[...] = g
        opt.step()
        s.step(metric(i)) if plateau else s.step()

    for i in range(40):
        advance(lopt, sched, lp, i, [rng.standard_normal(p.shape) for p in lp])
    opt_sd = lopt.state_dict()
    sd = json.loads(json.dumps(sched.state_dict()))
    opt_sd["param_groups"] = json.loads(json.dumps(opt_sd["param_groups"]))
    for g in opt_sd["param_groups"]:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])

    lopt2, _, lp2, _ = make_pair(opt_name, lrs=(7.0, 7.0), seed=9, **kw)
    for a, b in zip(lp2, lp):
        a.data[...] = b.numpy()
    sched2 = make_l(lopt2)      # construct first, then load (as PyTorch recommends)
    lopt2.load_state_dict(opt_sd)
    sched2.load_state_dict(sd)
    assert sched2.get_last_lr() == sched.get_last_lr()
    for i in range(40, steps):
        grads = [rng.standard_normal(p.shape) for p in lp]
        advance(lopt, sched, lp, i, grads)
        advance(lopt2, sched2, lp2, i, grads)
        assert sched2.get_last_lr() == sched.get_last_lr(), f"step {i}"
        assert momenta(lopt2) == momenta(lopt)
        assert sched2.last_epoch == sched.last_epoch
    for a, b in zip(lp, lp2):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_lambda_state_dict_keeps_callable_objects_state():
    class Decay:
        def __init__(self, rate):
            self.rate = rate

        def __call__(self, e):
            return self.rate ** e

    lopt, *_ = make_pair()
    s = LS.LambdaLR(lopt, [Decay(0.9), lambda e: 1.0])
    sd = s.state_dict()
    assert sd["lr_lambdas"] == [{"rate": 0.9}, None]
    lopt2, *_ = make_pair()
    s2 = LS.LambdaLR(lopt2, [Decay(0.5), lambda e: 1.0])
    s2.load_state_dict(sd)
    assert s2.lr_lambdas[0].rate == 0.9


def test_step_with_epoch_uses_closed_form_like_torch():
    lopt, topt, _, _ = make_pair()
    s, t = LS.StepLR(lopt, 3, 0.5), TS.StepLR(topt, 3, 0.5)
    for e in (5, 9, 2, 11):
        lopt.step()
        topt.step()
        with pytest.warns(UserWarning):
            s.step(e)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t.step(e)
        assert_same_lrs(s, t, lopt, topt, f"epoch {e}")


def test_resume_with_last_epoch_like_torch():
    lopt, topt, _, _ = make_pair()
    for o in (lopt, topt):
        for g in o.param_groups:
            g["initial_lr"] = g["lr"] * 2
    s = LS.CosineAnnealingLR(lopt, T_max=20, last_epoch=6)
    t = TS.CosineAnnealingLR(topt, T_max=20, last_epoch=6)
    for i in range(30):
        assert_same_lrs(s, t, lopt, topt, f"step {i}")
        lopt.step()
        topt.step()
        s.step()
        t.step()


BAD = [
    (lambda o: LS.StepLR(o, step_size=0), ValueError, "StepLR: step_size must be a positive"),
    (lambda o: LS.MultiStepLR(o, [3, 1.5]), ValueError, "MultiStepLR: milestones must be"),
    (lambda o: LS.CosineAnnealingLR(o, T_max=0), ValueError, "CosineAnnealingLR: T_max"),
    (lambda o: LS.OneCycleLR(o, max_lr=0.1), ValueError, "give total_steps, or epochs and"),
    (lambda o: LS.OneCycleLR(o, max_lr=0.1, total_steps=-5), ValueError, "total_steps must"),
    (lambda o: LS.OneCycleLR(o, max_lr=0.1, total_steps=10, pct_start=1.5), ValueError,
     "pct_start must be a number in"),
    (lambda o: LS.OneCycleLR(o, max_lr=0.1, total_steps=10, anneal_strategy="exp"),
     ValueError, "anneal_strategy must be 'cos' or 'linear', got 'exp'"),
    (lambda o: LS.OneCycleLR(o, max_lr=[0.1, 0.2, 0.3], total_steps=10), ValueError,
     "expected 2 values of max_lr"),
    (lambda o: LS.LambdaLR(o, [lambda e: 1.0]), ValueError, "expected 2 values of lr_lambda"),
    (lambda o: LS.WarmupInverseSqrtLR(o, 0), ValueError, "warmup_steps must be a positive"),
    (lambda o: LS.ReduceLROnPlateau(o, factor=1.0), ValueError, r"factor must be in \[0, 1\)"),
    (lambda o: LS.ReduceLROnPlateau(o, mode="avg"), ValueError, "mode must be 'min' or 'max'"),
    (lambda o: LS.ReduceLROnPlateau(o, threshold_mode="x"), ValueError, "threshold_mode"),
    (lambda o: LS.ReduceLROnPlateau(o, patience=-1), ValueError, "patience must be"),
    (lambda o: LS.ReduceLROnPlateau(o, min_lr=[0.1]), ValueError, "expected 2 values of min_lr"),
    (lambda o: LS.StepLR(o, 3, last_epoch=4), KeyError, "has no 'initial_lr'"),
]


@pytest.mark.parametrize("make,exc,match", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_arguments(make, exc, match):
    lopt, *_ = make_pair()
    with pytest.raises(exc, match=match):
        make(lopt)


def test_not_an_optimizer_and_no_momentum():
    with pytest.raises(TypeError, match="StepLR: expected a lamina Optimizer, got list"):
        LS.StepLR([], 3)
    lopt, *_ = make_pair("Adagrad")
    with pytest.raises(ValueError, match="OneCycleLR: cycle_momentum needs an optimizer with "
                                         "'momentum' or 'betas', Adagrad has neither"):
        LS.OneCycleLR(lopt, max_lr=0.1, total_steps=10)
