"""Adam, AdamW, Adagrad, RMSprop, Adadelta against torch.optim, step for step.

Same initial weights (parameters of several shapes in two param groups with their own
hyper-parameters, weight decay on in one) and the same random gradient sequence, set on
both sides; after 100 steps the parameters agree within 1e-6 relative in float64.
"""
import json

import numpy as np
import pytest
import torch

import lamina
import lamina.nn as nn
import lamina.optim as optim
import lamina.optim.optimizer as O

SHAPES = [(5, 4), (4,), (3, 2, 2), (7,), (1,), (2, 3)]
TORCH = {"Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW, "Adagrad": torch.optim.Adagrad,
         "RMSprop": torch.optim.RMSprop, "Adadelta": torch.optim.Adadelta,
         "SGD": torch.optim.SGD}


def make_params(dtype=np.float64, seed=0, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s).astype(dtype) for s in shapes]
    return ([lamina.Parameter(a.copy()) for a in init],
            [torch.tensor(a.copy(), requires_grad=True) for a in init])


def split(params, g0, g1):
    """Two groups: the first three parameters with ``g0``'s options, the rest with ``g1``'s."""
    return [dict(params=params[:3], **g0), dict(params=params[3:], **g1)]


def set_grads(lp, tp, rng, skip=()):
    """The next random gradient of each parameter, on both sides (``tp=None``: lamina only)."""
    for i, a in enumerate(lp):
        if i in skip:
            continue
        g = rng.standard_normal(a.shape).astype(a.dtype) * rng.uniform(0.1, 3.0)
        a.grad.data[...] = g
        if tp is not None:
            tp[i].grad = torch.tensor(g.copy())


def assert_close(lp, tp, rtol=1e-6, msg="", atol=None):
    """Relative agreement; ``atol`` (default ``rtol * 1e-4``) only for entries near zero."""
    for i, (a, b) in enumerate(zip(lp, tp)):
        want = b.detach().numpy()
        assert a.numpy().dtype == want.dtype
        np.testing.assert_allclose(a.numpy(), want, rtol=rtol,
                                   atol=rtol * 1e-4 if atol is None else atol,
                                   err_msg=f"{msg} parameter {i}")


def run_pair(name, kw, g0, g1, steps=100, dtype=np.float64, seed=0):
    lp, tp = make_params(dtype, seed)
    lopt = getattr(optim, name)(split(lp, g0, g1), **kw)
    topt = TORCH[name](split(tp, g0, g1), **kw)
    rng = np.random.default_rng(seed + 100)
    for _ in range(steps):
        set_grads(lp, tp, rng)
        lopt.step()
        topt.step()
    return lp, tp, lopt, topt, rng


# (optimizer, constructor options, group-0 options, group-1 options)
CASES = [
    ("Adam", dict(lr=0.01), dict(weight_decay=0.1), dict(lr=0.003)),
    ("Adam", dict(lr=0.01, amsgrad=True), dict(weight_decay=0.1), dict(lr=0.003)),
    ("Adam", dict(lr=0.01, maximize=True), dict(weight_decay=0.1), dict(lr=0.003)),
    ("Adam", dict(lr=0.02, amsgrad=True, maximize=True), dict(weight_decay=0.05),
     dict(betas=(0.5, 0.9))),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-3), dict(weight_decay=0.1), dict()),
    ("Adam", dict(lr=0.01, betas=(0.0, 0.0)), dict(weight_decay=0.1), dict(eps=1e-2)),
    ("Adam", dict(lr=0.01, decoupled_weight_decay=True), dict(weight_decay=0.2),
     dict(weight_decay=0.0)),
    ("AdamW", dict(lr=0.01), dict(weight_decay=0.1), dict(weight_decay=0.0, lr=0.005)),
    ("AdamW", dict(lr=0.01, amsgrad=True), dict(), dict(weight_decay=0.0)),
    ("AdamW", dict(lr=0.01, maximize=True), dict(weight_decay=0.3), dict(weight_decay=0.0)),
    ("Adagrad", dict(lr=0.1), dict(weight_decay=0.1), dict(lr=0.05)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05), dict(weight_decay=0.1), dict()),
    ("Adagrad", dict(lr=0.1, initial_accumulator_value=0.5, eps=1e-4), dict(weight_decay=0.1),
     dict(lr=0.2)),
    ("Adagrad", dict(lr=0.1, maximize=True, lr_decay=0.01), dict(weight_decay=0.1), dict()),
    ("RMSprop", dict(lr=0.01), dict(weight_decay=0.1), dict(lr=0.003)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, eps=1e-4), dict(weight_decay=0.1), dict()),
    ("RMSprop", dict(lr=0.01, centered=True), dict(weight_decay=0.1), dict()),
    ("RMSprop", dict(lr=0.005, momentum=0.9), dict(weight_decay=0.1), dict(momentum=0.5)),
    ("RMSprop", dict(lr=0.005, momentum=0.9, centered=True), dict(weight_decay=0.1), dict()),
    ("RMSprop", dict(lr=0.01, maximize=True), dict(weight_decay=0.1), dict()),
    ("RMSprop", dict(lr=0.005, momentum=0.8, centered=True, maximize=True),
     dict(weight_decay=0.1), dict(centered=False)),
    ("Adadelta", dict(), dict(weight_decay=0.1), dict(lr=0.5)),
    ("Adadelta", dict(lr=0.5, rho=0.5, eps=1e-4), dict(weight_decay=0.1), dict()),
    ("Adadelta", dict(lr=0.7, maximize=True), dict(weight_decay=0.1), dict(rho=0.99)),
]


def _id(case):
    name, kw, g0, g1 = case
    opts = ",".join(f"{k}={v}" for k, v in {**kw, **{f"g0.{k}": v for k, v in g0.items()},
                                             **{f"g1.{k}": v for k, v in g1.items()}}.items())
    return f"{name}[{opts}]"


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_matches_torch_100_steps_float64(case):
    name, kw, g0, g1 = case
    lp, tp, lopt, _, _ = run_pair(name, kw, g0, g1)
    assert_close(lp, tp, 1e-6)
    for k, v in g1.items():  # the group's own options were kept, defaults filled the rest
        assert lopt.param_groups[1][k] == v
    for k, v in kw.items():
        assert lopt.param_groups[0][k] == v


@pytest.mark.parametrize("name", ["Adam", "AdamW", "Adagrad", "RMSprop", "Adadelta"])
def test_float32_stays_float32_and_matches(name):
    kw = dict(lr=0.01) if name != "Adadelta" else {}
    lp, tp, lopt, _, _ = run_pair(name, kw, dict(weight_decay=0.1), {}, steps=20,
                                  dtype=np.float32)
    assert all(p.numpy().dtype == np.float32 for p in lp)
    for s in lopt.state.values():
        for v in s.values():
            assert not isinstance(v, np.ndarray) or v.dtype == np.float32
    assert_close(lp, tp, 1e-4)


@pytest.mark.parametrize("case", [c for c in CASES if c[0] != "Adam" or "amsgrad" in c[1]]
                         + [CASES[0]], ids=lambda c: _id(c))
def test_state_dict_round_trip_mid_run(case):
    """A fresh optimizer on fresh parameters, loaded from a state dict taken after 50
    steps (through JSON-like plain lists), continues bit-identically; torch agrees."""
    name, kw, g0, g1 = case
    lp, tp, lopt, topt, rng = run_pair(name, kw, g0, g1, steps=50)
    sd = lopt.state_dict()
    # a checkpoint might store arrays as lists and keys as strings: round-trip through JSON
    plain = json.loads(json.dumps(sd, default=lambda a: a.tolist()))
    plain["state"] = {k: {n: (np.array(v) if isinstance(v, list) else v) for n, v in s.items()}
                      for k, s in plain["state"].items()}
    for g in plain["param_groups"]:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    lp2 = [lamina.Parameter(p.numpy().copy()) for p in lp]
    lopt2 = getattr(optim, name)(split(lp2, {}, {}), lr=123.0)  # hyper-parameters get loaded
    lopt2.load_state_dict(plain)
    assert lopt2.param_groups[1] == {**lopt.param_groups[1], "params": lopt2.param_groups[1]["params"]}
    for _ in range(50):
        g_state = rng.bit_generator.state
        set_grads(lp, tp, rng)
        rng.bit_generator.state = g_state
        set_grads(lp2, None, rng)
        for o in (lopt, lopt2, topt):
            o.step()
    for a, b in zip(lp, lp2):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert_close(lp2, tp, 1e-6)
    # the saved state is a copy that stepping did not touch
    for key, v in sd["state"][0].items():
        if isinstance(v, np.ndarray):
            assert not np.shares_memory(v, lopt.state[0][key])


def test_adagrad_initial_accumulator_value_per_group():
    """lamina honours a group's own initial_accumulator_value (torch reads only the
    constructor's): each group matches a torch Adagrad built with that group's value."""
    lp, tp = make_params()
    lopt = optim.Adagrad(split(lp, dict(initial_accumulator_value=2.0), {}), lr=0.1,
                         initial_accumulator_value=0.1)
    topts = [torch.optim.Adagrad(tp[:3], lr=0.1, initial_accumulator_value=2.0),
             torch.optim.Adagrad(tp[3:], lr=0.1, initial_accumulator_value=0.1)]
    rng = np.random.default_rng(6)
    for _ in range(50):
        set_grads(lp, tp, rng)
        lopt.step()
        for o in topts:
            o.step()
    assert_close(lp, tp)


def test_adam_betas_changed_mid_run_matches_torch():
    """Changing beta1/beta2 between steps (as OneCycleLR does) rescales the stored moments."""
    lp, tp = make_params()
    kw = dict(lr=0.01, amsgrad=True)
    lopt = optim.Adam(split(lp, dict(weight_decay=0.1), {}), **kw)
    topt = torch.optim.Adam(split(tp, dict(weight_decay=0.1), {}), **kw)
    rng = np.random.default_rng(3)
    for i in range(100):
        betas = (0.85 + 0.1 * np.sin(i / 7), 0.99 if i < 40 else 0.999)
        for o in (lopt, topt):
            o.param_groups[0]["betas"] = (float(betas[0]), betas[1])
        set_grads(lp, tp, rng)
        lopt.step()
        topt.step()
    assert_close(lp, tp, 1e-6)


def test_lr_changed_in_param_groups_is_used():
    lp, tp = make_params()
    lopt, topt = optim.RMSprop(lp, lr=0.01), torch.optim.RMSprop(tp, lr=0.01)
    rng = np.random.default_rng(1)
    for i in range(30):
        for o in (lopt, topt):
            o.param_groups[0]["lr"] = 0.01 / (1 + i)
        set_grads(lp, tp, rng)
        lopt.step()
        topt.step()
    assert_close(lp, tp)


@pytest.mark.parametrize("name", ["Adam", "Adagrad", "RMSprop", "Adadelta"])
def test_add_param_group_mid_run(name):
    lp, tp = make_params()
    lopt = getattr(optim, name)(lp[:3], lr=0.01)
    topt = TORCH[name](tp[:3], lr=0.01)
    rng = np.random.default_rng(2)
    for i in range(40):
        if i == 10:
            lopt.add_param_group({"params": lp[3:], "lr": 0.05, "weight_decay": 0.1})
            topt.add_param_group({"params": tp[3:], "lr": 0.05, "weight_decay": 0.1})
        set_grads(lp[:3] if i < 10 else lp, tp[:3] if i < 10 else tp, rng)
        lopt.step()
        topt.step()
    assert_close(lp, tp)
    with pytest.raises(ValueError, match="more than one parameter group"):
        lopt.add_param_group({"params": lp[:1]})


@pytest.mark.parametrize("name", ["Adam", "AdamW", "Adagrad", "RMSprop", "Adadelta"])
def test_frozen_parameter_untouched_others_match(name):
    """A requires_grad=False parameter (torch: grad None) is not moved, also under weight
    decay, and its neighbours in the flat buffer still match torch."""
    lp, tp = make_params()
    lp[1].requires_grad_(False)
    kw = dict(weight_decay=0.1, lr=0.01) if name != "Adadelta" else dict(weight_decay=0.1)
    lopt, topt = getattr(optim, name)(lp, **kw), TORCH[name](tp, **kw)
    before = lp[1].numpy().copy()
    rng = np.random.default_rng(4)
    for _ in range(30):
        set_grads(lp, tp, rng, skip=(1,))
        tp[1].grad = None
        lopt.step()
        topt.step()
    np.testing.assert_array_equal(lp[1].numpy(), before)
    assert_close(lp, tp)


@pytest.mark.parametrize("threads,chunk", [(2, 7), (3, 64), (1, 5)])
def test_chunked_and_threaded_update_matches_torch(monkeypatch, threads, chunk):
    """The update over chunks (odd sizes, a ragged last chunk) split across threads gives
    the same result as torch; and a group large enough for the threaded path by default."""
    monkeypatch.setattr(O, "_CHUNK", chunk)
    monkeypatch.setattr(O, "_PARALLEL_MIN", 10)
    monkeypatch.setattr(O, "_local", __import__("threading").local())
    old = optim.get_num_threads()
    optim.set_num_threads(threads)
    try:
        for name, kw in [("Adam", dict(lr=0.01, amsgrad=True)),
                         ("RMSprop", dict(lr=0.01, centered=True, momentum=0.9)),
                         ("Adadelta", {}), ("Adagrad", dict(lr=0.1)),
                         ("SGD", dict(lr=0.01, momentum=0.9, nesterov=True, maximize=True)),
                         ("SGD", dict(lr=0.01, momentum=0.9, dampening=0.3))]:
            lp, tp, _, _, _ = run_pair(name, kw, dict(weight_decay=0.1), {}, steps=30)
            assert_close(lp, tp)
    finally:
        optim.set_num_threads(old)


@pytest.mark.parametrize("name,kw", [("Adam", dict(lr=1e-3)),
                                     ("SGD", dict(lr=1e-2, momentum=0.9, weight_decay=0.1))])
def test_large_group_threaded_default_settings(name, kw):
    n = O._PARALLEL_MIN + 12345
    lp, tp = make_params(np.float32, shapes=[(n,), (3,)])
    lopt, topt = getattr(optim, name)(lp, **kw), TORCH[name](tp, **kw)
    rng = np.random.default_rng(5)
    for _ in range(5):
        set_grads(lp, tp, rng)
        lopt.step()
        topt.step()
    # float32: entries that cancel to ~1e-4 keep the absolute rounding of O(1) operands
    assert_close(lp, tp, 1e-5, atol=1e-7)


def test_trains_small_mlp_with_backward_like_torch():
    """Gradients from a real loss (lamina autograd vs torch), Adam with param groups (no
    weight decay on biases), float64, 100 steps."""
    torch.manual_seed(0)
    tnet = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    tnet.double()
    net = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3)).double()
    net.load_state_dict({k: v.numpy() for k, v in tnet.state_dict().items()})

    def groups(m):
        named = list(m.named_parameters())
        return [{"params": [p for n, p in named if n.endswith("weight")], "weight_decay": 1e-2},
                {"params": [p for n, p in named if n.endswith("bias")], "weight_decay": 0.0}]

    opt = optim.AdamW(groups(net), lr=0.01, amsgrad=True)
    topt = torch.optim.AdamW(groups(tnet), lr=0.01, amsgrad=True)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 6)), rng.standard_normal((32, 3))
    for i in range(100):
        xb, yb = x[i % 4 * 8:(i % 4 + 1) * 8], y[i % 4 * 8:(i % 4 + 1) * 8]
        opt.zero_grad()
        topt.zero_grad()
        loss = nn.MSELoss()(net(lamina.tensor(xb)), lamina.tensor(yb))
        loss.backward()
        tloss = torch.nn.MSELoss()(tnet(torch.tensor(xb)), torch.tensor(yb))
        tloss.backward()
        opt.step()
        topt.step()
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-6)
    for (n, p), tp in zip(net.named_parameters(), tnet.parameters()):
        np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-6, atol=1e-10,
                                   err_msg=n)


@pytest.mark.parametrize("name", ["Adam", "AdamW", "Adagrad", "RMSprop", "Adadelta"])
def test_zero_grad(name):
    lp, _ = make_params()
    opt = getattr(optim, name)(lp)
    for p in lp:
        p.grad.data[...] = 1.0
    opt.zero_grad()
    assert all(not p.grad.numpy().any() for p in lp)
    for p in lp:
        p.grad.data[...] = 2.0
    opt.zero_grad(set_to_none=False)
    assert all(not p.grad.numpy().any() for p in lp)
    before = [p.numpy().copy() for p in lp]
    opt.step()  # all-zero gradients move nothing (AdamW's decoupled decay still shrinks)
    if name != "AdamW":
        for a, p in zip(before, lp):
            np.testing.assert_array_equal(a, p.numpy())


def test_closure_returns_loss():
    lp, tp = make_params()
    opt = optim.Adam(lp, lr=0.1)

    def closure():
        opt.zero_grad()
        loss = sum(((p * p).sum() for p in lp), lamina.tensor(0.0, dtype=lamina.float64))
        loss.backward()
        return loss

    loss = opt.step(closure)
    want = sum(float((t.detach() ** 2).sum()) for t in tp)
    np.testing.assert_allclose(loss.item(), want, rtol=1e-12)


BAD = [
    ("Adam", dict(lr=-0.1), r"Adam: invalid lr=-0\.1"),
    ("Adam", dict(betas=(1.0, 0.999)), r"Adam: invalid betas\[0\]=1\.0"),
    ("Adam", dict(betas=(0.9, -0.1)), r"Adam: invalid betas\[1\]=-0\.1"),
    ("Adam", dict(betas=(0.9, 1.5)), r"Adam: invalid betas\[1\]=1\.5"),
    ("Adam", dict(betas=0.9), r"Adam: betas must be a pair"),
    ("Adam", dict(eps=-1e-8), r"Adam: invalid eps=-1e-08"),
    ("Adam", dict(weight_decay=-1), r"Adam: invalid weight_decay=-1"),
    ("Adam", dict(lr=float("nan")), r"Adam: invalid lr=nan"),
    ("AdamW", dict(lr=-1.0), r"AdamW: invalid lr=-1\.0"),
    ("AdamW", dict(betas=(0.9, 1.0)), r"AdamW: invalid betas\[1\]=1\.0"),
    ("Adagrad", dict(lr=-0.1), r"Adagrad: invalid lr=-0\.1"),
    ("Adagrad", dict(lr_decay=-0.5), r"Adagrad: invalid lr_decay=-0\.5"),
    ("Adagrad", dict(initial_accumulator_value=-1.0),
     r"Adagrad: invalid initial_accumulator_value=-1\.0"),
    ("Adagrad", dict(eps=-1.0), r"Adagrad: invalid eps=-1\.0"),
    ("RMSprop", dict(alpha=-0.9), r"RMSprop: invalid alpha=-0\.9"),
    ("RMSprop", dict(momentum=-0.5), r"RMSprop: invalid momentum=-0\.5"),
    ("RMSprop", dict(weight_decay=-0.1), r"RMSprop: invalid weight_decay=-0\.1"),
    ("Adadelta", dict(rho=1.5), r"Adadelta: invalid rho=1\.5"),
    ("Adadelta", dict(lr=-2.0), r"Adadelta: invalid lr=-2\.0"),
]


@pytest.mark.parametrize("name,kw,match", BAD, ids=[f"{b[0]}-{list(b[1])[0]}" for b in BAD])
def test_bad_hyper_parameters_raise(name, kw, match):
    lp, _ = make_params()
    with pytest.raises(ValueError, match=match):
        getattr(optim, name)(lp, **kw)


def test_bad_hyper_parameters_in_a_param_group_raise():
    lp, _ = make_params()
    with pytest.raises(ValueError, match=r"Adam: invalid lr=-1"):
        optim.Adam([{"params": lp[:2]}, {"params": lp[2:], "lr": -1}])
    opt = optim.RMSprop(lp[:2])
    with pytest.raises(ValueError, match=r"RMSprop: invalid momentum=-1"):
        opt.add_param_group({"params": lp[2:], "momentum": -1})


def test_load_state_dict_mismatch_errors():
    lp, _ = make_params()
    opt = optim.Adam(lp, lr=0.01)
    set_grads(lp, None, np.random.default_rng(0))
    opt.step()
    other_p, _ = make_params(shapes=[(3,), (2,), (4,), (1,), (1,), (1,)])
    other = optim.Adam(other_p, lr=0.01)
    with pytest.raises(ValueError, match=r"Adam.load_state_dict: state 'exp_avg' of group 0 "
                                         r"has 50 elements, the group's parameters have 12"):
        other.load_state_dict(opt.state_dict())
    with pytest.raises(ValueError, match="2 parameter groups in the state, 1 in the optimizer"):
        opt.load_state_dict(optim.Adam(split(make_params()[0], {}, {})).state_dict())


def test_repr_lists_groups():
    lp, _ = make_params()
    text = repr(optim.AdamW(split(lp, dict(weight_decay=0.0), {}), lr=0.01))
    assert text.startswith("AdamW (") and "Parameter Group 1" in text and "amsgrad: False" in text
