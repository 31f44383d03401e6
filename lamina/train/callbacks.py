"""Callbacks: code the Trainer runs at fixed points of training.

Hooks (all optional): ``on_fit_start(trainer)``, ``on_epoch_start(trainer, epoch)``,
``on_batch_end(trainer, step, logs)``, ``on_epoch_end(trainer, epoch, logs)``,
``on_fit_end(trainer)``. A callback that must survive a resume keeps its state in
``state_dict()`` / ``load_state_dict()``; the Trainer stores it in the checkpoint.
Callbacks run in ascending ``order`` (ModelCheckpoint last, so it saves what the others
decided for the epoch).
"""
import csv
import math
import os
import sys

import numpy as np

from ..io import save


class Callback:
    order = 0

    def on_fit_start(self, trainer):
        pass

    def on_epoch_start(self, trainer, epoch):
        pass

    def on_batch_end(self, trainer, step, logs):
        pass

    def on_epoch_end(self, trainer, epoch, logs):
        pass

    def on_fit_end(self, trainer):
        pass

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def _better(mode, value, best, min_delta=0.0):
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


def _mode_for(monitor, mode):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    return "max" if "acc" in monitor else "min"


def _monitored(logs, monitor, who):
    if monitor not in logs:
        raise KeyError(f"{who}: monitored value {monitor!r} is not in the epoch's logs "
                       f"{sorted(logs)} (validation metrics need val_data)")
    return float(logs[monitor])


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience``
    epochs; with ``restore_best_weights`` the model ends with the parameters of its best
    epoch (the notes' early stopping that "keeps the best parameters")."""

    def __init__(self, monitor="val_loss", patience=5, min_delta=0.0, mode="auto",
                 restore_best_weights=True):
        self.monitor = monitor
        self.patience = patience
        self.min_delta = min_delta
        self.mode = _mode_for(monitor, mode)
        self.restore_best_weights = restore_best_weights
        self.best, self.best_epoch, self.wait = None, None, 0
        self.best_weights = None
        self.stopped_epoch = None

    def on_epoch_end(self, trainer, epoch, logs):
        value = _monitored(logs, self.monitor, "EarlyStopping")
        if _better(self.mode, value, self.best, self.min_delta):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = {k: v.numpy().copy()
                                     for k, v in trainer.model.state_dict().items()}
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped_epoch = epoch
                trainer.stop_training = True

    def on_fit_end(self, trainer):
        if self.restore_best_weights and self.best_weights is not None:
            trainer.model.load_state_dict(self.best_weights)
            trainer.log(f"early stopping: restored the weights of epoch {self.best_epoch} "
                        f"({self.monitor} = {self.best:.4f})")

    def state_dict(self):
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait,
                "best_weights": self.best_weights, "stopped_epoch": self.stopped_epoch}

    def load_state_dict(self, state):
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.wait, self.best_weights = state["wait"], state["best_weights"]
        self.stopped_epoch = state["stopped_epoch"]


class ModelCheckpoint(Callback):
    """Write ``DIR/last.safetensors`` (everything needed to resume: model, optimizer,
    schedule, data order, random states, epoch, history, callbacks) after every epoch,
    and ``DIR/best.safetensors`` (model weights and metadata) whenever ``monitor``
    improves. Files are written atomically (see :func:`lamina.save`)."""

    order = 100

    def __init__(self, directory, monitor="val_loss", mode="auto", save_best=True,
                 save_last=True):
        self.directory = os.fspath(directory)
        self.monitor = monitor
        self.mode = _mode_for(monitor, mode)
        self.save_best = save_best
        self.save_last = save_last
        self.best = None

    @property
    def last_path(self):
        return os.path.join(self.directory, "last.safetensors")

    @property
    def best_path(self):
        return os.path.join(self.directory, "best.safetensors")

    def on_epoch_end(self, trainer, epoch, logs):
        if self.save_best and self.monitor in logs:
            value = float(logs[self.monitor])
            if _better(self.mode, value, self.best):
                self.best = value
                save({"model": trainer.model.state_dict(), "epoch": epoch,
                      "metrics": dict(logs), "config": trainer.config}, self.best_path)
        if self.save_last:
            save(trainer.state_dict(), self.last_path)

    def state_dict(self):
        return {"best": self.best}

    def load_state_dict(self, state):
        self.best = state["best"]


class LRSchedulerStep(Callback):
    """Step a learning-rate schedule once per epoch (``interval='epoch'``) or per batch
    (``'step'``). ReduceLROnPlateau-style schedules get the epoch's ``monitor`` value."""

    def __init__(self, scheduler, interval="epoch", monitor="val_loss"):
        if interval not in ("epoch", "step"):
            raise ValueError(f"LRSchedulerStep: interval must be 'epoch' or 'step', got "
                             f"{interval!r}")
        self.scheduler = scheduler
        self.interval = interval
        self.monitor = monitor

    def on_batch_end(self, trainer, step, logs):
        if self.interval == "step":
            self.scheduler.step()

    def on_epoch_end(self, trainer, epoch, logs):
        if self.interval != "epoch":
            return
        if type(self.scheduler).__name__ == "ReduceLROnPlateau":
            self.scheduler.step(_monitored(logs, self.monitor, "LRSchedulerStep"))
        else:
            self.scheduler.step()

    def state_dict(self):
        return {"scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state):
        self.scheduler.load_state_dict(state["scheduler"])


def _fmt(logs, keys=None):
    parts = []
    for k, v in logs.items():
        if keys is not None and k not in keys:
            continue
        if isinstance(v, float):
            parts.append(f"{k} {v:.4g}" if abs(v) < 1e4 else f"{k} {v:.3e}")
        elif isinstance(v, int):
            parts.append(f"{k} {v}")
    return "  ".join(parts)


class ProgressBar(Callback):
    """A tqdm bar per epoch with the running loss and samples/s when the output is a
    terminal; otherwise (logs, CI) one line per epoch."""

    def __init__(self, stream=None, force_bar=None):
        self.stream = stream
        self.force_bar = force_bar
        self.bar = None

    def _tty(self):
        if self.force_bar is not None:
            return self.force_bar
        s = self.stream or sys.stderr
        return hasattr(s, "isatty") and s.isatty()

    def on_epoch_start(self, trainer, epoch):
        if self._tty():
            try:
                from tqdm.auto import tqdm
            except ImportError:
                return
            total = len(trainer.train_loader) if hasattr(trainer.train_loader, "__len__") \
                else None
            self.bar = tqdm(total=total, desc=f"epoch {epoch}/{trainer.epochs}", leave=False,
                            file=self.stream, dynamic_ncols=True)

    def on_batch_end(self, trainer, step, logs):
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{trainer.running_loss:.4f}",
                                 rate=f"{trainer.samples_per_s:.0f}/s", refresh=False)

    def on_epoch_end(self, trainer, epoch, logs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        trainer.log(f"epoch {epoch:3d}/{trainer.epochs}  " + _fmt(
            logs, [k for k in logs if k not in ("epoch", "step")]))


class CSVLogger(Callback):
    """One row per epoch of the logs (append on resume)."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self.keys = None

    def on_epoch_end(self, trainer, epoch, logs):
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        new = not os.path.exists(self.path) or self.keys is None and epoch == 1
        if self.keys is None:
            self.keys = list(logs)
        with open(self.path, "w" if new else "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.keys, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(logs)
            f.flush()

    def state_dict(self):
        return {"keys": self.keys}

    def load_state_dict(self, state):
        self.keys = state["keys"]


class TensorBoard(Callback):
    """Scalars (every epoch's logs, and the training loss every ``every`` steps) as a
    TensorBoard event log in ``log_dir`` (needs ``tensorboardX``)."""

    def __init__(self, log_dir, every=50):
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise ImportError("TensorBoard callback: install tensorboardX "
                              "(pip install tensorboardX)") from None
        self.writer_cls = SummaryWriter
        self.log_dir = os.fspath(log_dir)
        self.every = every
        self.writer = None

    def on_fit_start(self, trainer):
        self.writer = self.writer_cls(self.log_dir)

    def on_batch_end(self, trainer, step, logs):
        if step % self.every == 0 and "loss" in logs:
            self.writer.add_scalar("train/batch_loss", float(logs["loss"]), step)

    def on_epoch_end(self, trainer, epoch, logs):
        for k, v in logs.items():
            if isinstance(v, (int, float)) and k not in ("epoch", "step") and math.isfinite(v):
                self.writer.add_scalar(f"epoch/{k}", float(v), epoch)
        self.writer.flush()

    def on_fit_end(self, trainer):
        if self.writer is not None:
            self.writer.close()


class LearningCurves(Callback):
    """At the end of training, a PNG of the loss (and accuracy, if logged) per epoch,
    training and validation (matplotlib, Agg backend; written atomically)."""

    def __init__(self, path):
        self.path = os.fspath(path)

    def on_fit_end(self, trainer):
        plot_history(trainer.history, self.path)


def plot_history(history, path):
    """Write the learning curves of ``history`` (list of epoch logs) to ``path`` (PNG)."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    if not history:
        return
    epochs = [h["epoch"] for h in history]
    panels = [("loss", "loss")]
    if any("accuracy" in h for h in history):
        panels.append(("accuracy", "accuracy"))
    fig = Figure(figsize=(5 * len(panels), 3.6), dpi=100)
    for i, (key, title) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for prefix, style in (("", "-"), ("val_", "--")):
            ys = [h.get(prefix + key, np.nan) for h in history]
            if not all(np.isnan(ys)):
                ax.plot(epochs, ys, style, marker="o", ms=3,
                        label="validation" if prefix else "training")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    save_figure(fig, path)


def save_figure(fig, path):
    """Write a matplotlib Figure as a PNG atomically (temp file, then rename), making
    the folder if needed."""
    fig.tight_layout()
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.png")
    fig.savefig(tmp, format="png")
    os.replace(tmp, path)

