"""A model with every parameterised layer family moves lamina -> PyTorch -> lamina by
state_dict: same keys, shapes and dtypes on both sides, and the same outputs after the move
(including batch-norm running statistics that lamina updated before the move)."""
import numpy as np
import pytest
import torch

import lamina
from lamina import nn as lnn


def build(nn):
    """The same model in ``lamina.nn`` or ``torch.nn`` (identical attribute names)."""
    return nn.ModuleDict({
        "conv1": nn.Conv1d(3, 4, 3, padding=1),
        "conv2": nn.Conv2d(4, 6, 3, padding="same", groups=2, bias=False),
        "conv3": nn.Conv3d(2, 3, 2, dilation=1),
        "deconv1": nn.ConvTranspose1d(3, 2, 3, stride=2),
        "deconv2": nn.ConvTranspose2d(4, 2, 3, stride=2, output_padding=1),
        "deconv3": nn.ConvTranspose3d(2, 2, 2, stride=2),
        "bn1": nn.BatchNorm1d(4),
        "bn2": nn.BatchNorm2d(4, momentum=0.3),
        "bn3": nn.BatchNorm3d(3, affine=False),
        "ln": nn.LayerNorm([4, 5]),
        "gn": nn.GroupNorm(2, 4),
        "lin": nn.Linear(5, 3),
        "bil": nn.Bilinear(3, 4, 2),
        "emb": nn.Embedding(10, 3, padding_idx=0),
        "prelu": nn.PReLU(4),
        "seq": nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Dropout(0.0), nn.Linear(3, 2)),
    })


RNG = np.random.default_rng(0)
INPUTS = {
    "conv1": [(2, 3, 7)], "conv2": [(2, 4, 5, 5)], "conv3": [(1, 2, 3, 4, 3)],
    "deconv1": [(2, 3, 4)], "deconv2": [(1, 4, 3, 3)], "deconv3": [(1, 2, 2, 2, 2)],
    "bn1": [(6, 4)], "bn2": [(3, 4, 2, 2)], "bn3": [(2, 3, 2, 2, 2)], "ln": [(2, 4, 5)],
    "gn": [(2, 4, 3)], "lin": [(4, 5)], "bil": [(2, 3), (2, 4)], "prelu": [(2, 4, 3)],
    "seq": [(5, 3)],
}
ARRAYS = {k: [RNG.standard_normal(s).astype(np.float32) for s in v] for k, v in INPUTS.items()}
ARRAYS["emb"] = [np.array([[0, 3, 9], [2, 2, 0]])]


def outputs(model, mod, arrays):
    for name, xs in arrays.items():
        xs = [mod.tensor(a) if mod is lamina else torch.tensor(a) for a in xs]
        out = model[name](*xs)
        yield name, out.detach().numpy()


def test_keys_shapes_and_dtypes_match_torch():
    lam, tor = build(lnn), build(torch.nn)
    ls, ts = lam.state_dict(), tor.state_dict()
    assert list(ls) == list(ts)
    for k in ts:
        assert tuple(ls[k].shape) == tuple(ts[k].shape), k
        assert str(ls[k].dtype).replace("lamina.", "") == str(ts[k].dtype).replace("torch.", ""), k


@pytest.mark.parametrize("training_steps", [0, 3])
def test_round_trip_lamina_torch_lamina(training_steps):
    torch.manual_seed(1)
    tor = build(torch.nn)
    lam = build(lnn)
    lam.load_state_dict({k: v.numpy() for k, v in tor.state_dict().items()})
    lam.train()
    for _ in range(training_steps):  # move running stats and weights away from torch's
        for name, xs in ARRAYS.items():
            out = lam[name](*[lamina.tensor(a) for a in xs])
            if out.requires_grad:  # bn3 has no parameters
                (out * out).sum().backward()
        for p in lam.parameters():
            p.data -= 0.01 * p.grad.numpy()
            p.grad = None
    lam.eval()
    before = dict(outputs(lam, lamina, ARRAYS))

    tor.load_state_dict({k: torch.from_numpy(np.array(v.numpy())) for k, v in
                         lam.state_dict().items()}, strict=True)
    tor.eval()
    for name, out in outputs(tor, torch, ARRAYS):
        np.testing.assert_allclose(out, before[name], rtol=1e-4, atol=1e-5, err_msg=name)

    back = build(lnn)
    back.load_state_dict({k: v.numpy() for k, v in tor.state_dict().items()})
    back.eval()
    for k, v in lam.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[k].numpy(), v.numpy(), err_msg=k)
    for name, out in outputs(back, lamina, ARRAYS):
        np.testing.assert_array_equal(out, before[name], err_msg=name)
    if training_steps:
        assert int(lam.state_dict()["bn2.num_batches_tracked"].item()) == training_steps
