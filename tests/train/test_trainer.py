"""The Trainer: fitting, evaluation, callbacks, checkpoints and exact resume after SIGKILL."""
import csv
import os
import subprocess
import sys

import numpy as np
import pytest

import lamina
from lamina import nn
import lamina.nn.functional as F
from lamina.data import DataLoader, TensorDataset, load_digits
from lamina.train import (Callback, CSVLogger, EarlyStopping, ModelCheckpoint, TensorBoard,
                          Trainer)

HERE = os.path.dirname(__file__)


def digits_model():
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def test_fit_evaluate_predict_on_digits(tmp_path):
    lamina.manual_seed(0)
    x, y = load_digits("train")
    xt, yt = load_digits("test")
    model = digits_model()
    opt = lamina.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    trainer = Trainer(metrics=["accuracy", "top5"], seed=0, verbose=False, out_dir=tmp_path)
    hist = trainer.fit(model, F.cross_entropy, opt, (x, y), (xt, yt), epochs=4)
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4]
    for k in ("loss", "accuracy", "top5_accuracy", "val_loss", "val_accuracy", "lr", "time",
              "samples_per_s"):
        assert k in hist[-1], k
    assert hist[-1]["loss"] < hist[0]["loss"]
    ev = trainer.evaluate((xt, yt))
    assert ev["accuracy"] > 0.9 and ev["top5_accuracy"] >= ev["accuracy"]
    pred = trainer.predict(xt)
    assert pred.shape == (len(xt), 10)
    assert np.isclose((pred.argmax(1) == yt).mean(), ev["accuracy"])
    assert sorted(os.listdir(tmp_path)) == ["best.safetensors", "curves.png",
                                             "last.safetensors", "log.csv", "train.log"]
    with open(tmp_path / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    best = lamina.load(tmp_path / "best.safetensors")
    best_epoch = int(np.argmin([h["val_loss"] for h in hist])) + 1
    assert best["epoch"] == best_epoch


class Scripted(Trainer):
    """A train_step override: the 'loss' follows a script, the weight records the epoch."""

    def __init__(self, losses, **kw):
        super().__init__(verbose=False, **kw)
        self.losses = losses

    def train_step(self, batch):
        self.model.weight.data[...] = self.epoch + 1
        return {"loss": self.losses[self.epoch], "n": 1}


def test_early_stopping_restores_the_best_epoch():
    model = nn.Linear(1, 1)
    opt = lamina.optim.SGD(model.parameters(), lr=0.1)
    trainer = Scripted([5.0, 3.0, 2.0, 2.5, 2.4, 2.1, 1.0, 0.5])
    stop = EarlyStopping(monitor="loss", patience=3)
    hist = trainer.fit(model, None, opt, [0], epochs=8, callbacks=[stop])
    assert len(hist) == 6 and stop.stopped_epoch == 6 and stop.best_epoch == 3
    assert float(model.weight.item()) == 3.0           # the weights of epoch 3
    stop2 = EarlyStopping(monitor="loss", patience=3, min_delta=0.6)
    Scripted([5.0, 4.5, 4.6, 4.41]).fit(nn.Linear(1, 1), None, opt, [0], epochs=4,
                                       callbacks=[stop2])
    assert stop2.best_epoch == 1 and stop2.stopped_epoch == 4
    with pytest.raises(KeyError, match="val_loss"):
        Scripted([1.0]).fit(nn.Linear(1, 1), None, opt, [0], epochs=1,
                            callbacks=[EarlyStopping()])


def test_custom_train_step_with_two_optimizers_gan_style():
    """Keras-style override: a custom loop (here two players) plugs into fit."""
    g, d = nn.Linear(2, 2), nn.Linear(2, 1)
    opt_g = lamina.optim.SGD(g.parameters(), lr=0.01)
    opt_d = lamina.optim.SGD(d.parameters(), lr=0.01)

    class GANTrainer(Trainer):
        def train_step(self, batch):
            (real,) = batch
            z = lamina.randn(len(real), 2)
            opt_d.zero_grad()
            fake = g(z).detach()
            loss_d = F.binary_cross_entropy_with_logits(d(real), lamina.ones(len(real), 1)) + \
                F.binary_cross_entropy_with_logits(d(fake), lamina.zeros(len(real), 1))
            loss_d.backward()
            opt_d.step()
            opt_g.zero_grad()
            loss_g = F.binary_cross_entropy_with_logits(d(g(z)), lamina.ones(len(real), 1))
            loss_g.backward()
            opt_g.step()
            return {"loss": loss_d.item() + loss_g.item(), "loss_d": loss_d.item(),
                    "loss_g": loss_g.item(), "n": len(real)}

    data = DataLoader(TensorDataset(np.random.default_rng(0).normal(3, 1, (64, 2))
                                    .astype(np.float32)), batch_size=16)
    hist = GANTrainer(verbose=False).fit(nn.ModuleList([g, d]), None, opt_g, data, epochs=2)
    assert {"loss_d", "loss_g"} <= set(hist[-1])


def test_callbacks_see_every_hook_in_order(tmp_path):
    events = []

    class Spy(Callback):
        def on_fit_start(self, t):
            events.append("fit_start")

        def on_epoch_start(self, t, e):
            events.append(f"epoch_start {e}")

        def on_batch_end(self, t, step, logs):
            events.append(f"batch {step}")

        def on_epoch_end(self, t, e, logs):
            events.append(f"epoch_end {e}")

        def on_fit_end(self, t):
            events.append("fit_end")

    x = np.zeros((4, 3), np.float32)
    y = np.zeros(4, np.int64)
    model = nn.Linear(3, 2)
    Trainer(batch_size=2, verbose=False).fit(model, F.cross_entropy,
                                             lamina.optim.SGD(model.parameters(), lr=0.1),
                                             (x, y), epochs=2, callbacks=[Spy()])
    assert events == ["fit_start", "epoch_start 1", "batch 1", "batch 2", "epoch_end 1",
                      "epoch_start 2", "batch 3", "batch 4", "epoch_end 2", "fit_end"]


def test_tensorboard_and_csv_logs(tmp_path):
    pytest.importorskip("tensorboardX")
    x, y = load_digits("train")
    model = digits_model()
    opt = lamina.optim.SGD(model.parameters(), lr=0.05)
    Trainer(verbose=False).fit(model, F.cross_entropy, opt, (x[:256], y[:256]), epochs=2,
                               callbacks=[TensorBoard(tmp_path / "tb", every=1),
                                          CSVLogger(tmp_path / "log.csv")])
    events = [f for f in os.listdir(tmp_path / "tb") if f.startswith("events.out.tfevents")]
    assert events and os.path.getsize(tmp_path / "tb" / events[0]) > 100
    with open(tmp_path / "log.csv") as f:
        assert len(list(csv.DictReader(f))) == 2


def test_resume_with_a_different_architecture_names_the_file(tmp_path):
    x, y = load_digits("train")
    model = digits_model()
    opt = lamina.optim.SGD(model.parameters(), lr=0.05)
    Trainer(verbose=False, out_dir=tmp_path).fit(model, F.cross_entropy, opt, (x, y), epochs=1)
    other = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    with pytest.raises(RuntimeError, match="(?s)last.safetensors.*size mismatch"):
        Trainer(verbose=False).fit(other, F.cross_entropy,
                                   lamina.optim.SGD(other.parameters(), lr=0.1), (x, y),
                                   epochs=2, resume=tmp_path / "last.safetensors")


def _run(*args):
    r = subprocess.run([sys.executable, os.path.join(HERE, "resume_script.py"), *map(str, args)],
                       capture_output=True, text=True, timeout=300)
    return r


def test_sigkill_then_resume_is_bit_identical(tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    r = _run(full, 6)
    assert r.returncode == 0, r.stderr
    r = _run(cut, 6, "--kill-after", 3)
    assert r.returncode == -9, (r.returncode, r.stderr)           # really killed
    assert not (cut / "final.npz").exists()
    assert lamina.load(cut / "last.safetensors")["epoch"] == 3
    r = _run(cut, 6, "--resume")
    assert r.returncode == 0, r.stderr
    a, b = np.load(full / "final.npz"), np.load(cut / "final.npz")
    assert sorted(a.files) == sorted(b.files)
    for k in a.files:
        assert np.array_equal(a[k], b[k]), k                     # bit for bit
    with open(cut / "log.csv") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [1, 2, 3, 4, 5, 6]
