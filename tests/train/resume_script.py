"""Run by test_trainer.py in a subprocess: train a small digits MLP (dropout, shuffling,
input noise) with checkpoints; optionally SIGKILL itself right after epoch K's
checkpoint is on disk; optionally resume. Writes the final parameters to OUT/final.npz.

    python resume_script.py OUT EPOCHS [--kill-after K] [--resume]
"""
import os
import signal
import sys

import numpy as np

import lamina
from lamina import nn
import lamina.nn.functional as F
from lamina.data import DataLoader, TensorDataset, load_digits, transforms
from lamina.train import Callback, EarlyStopping, Trainer


class KillAfter(Callback):
    order = 200  # after ModelCheckpoint has written last.safetensors

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, trainer, epoch, logs):
        if epoch == self.epoch:
            os.kill(os.getpid(), signal.SIGKILL)


def main():
    out, epochs = sys.argv[1], int(sys.argv[2])
    kill = int(sys.argv[sys.argv.index("--kill-after") + 1]) if "--kill-after" in sys.argv else None
    resume = os.path.join(out, "last.safetensors") if "--resume" in sys.argv else None
    lamina.manual_seed(0)
    x, y = load_digits("train")
    xv, yv = load_digits("test")
    noise = transforms.GaussianNoise(0.05, rng=np.random.default_rng(1))
    train = DataLoader(TensorDataset(x, y, transform=noise), batch_size=64, shuffle=True, seed=2)
    model = nn.Sequential(nn.Linear(64, 48), nn.ReLU(), nn.Dropout(0.3), nn.Linear(48, 10))
    opt = lamina.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    callbacks = [EarlyStopping(patience=50)]
    if kill is not None:
        callbacks.append(KillAfter(kill))
    trainer = Trainer(metrics=["accuracy"], seed=0, out_dir=out, verbose=False)
    trainer.fit(model, F.cross_entropy, opt, train, (xv, yv), epochs=epochs,
                callbacks=callbacks, resume=resume)
    np.savez(os.path.join(out, "final.npz"),
             **{k: v.numpy() for k, v in model.state_dict().items()})


if __name__ == "__main__":
    main()
