"""The Trainer: mini-batch training with validation, metrics, callbacks and checkpoints.

    trainer = Trainer(metrics=["accuracy"], out_dir="runs/mlp")
    history = trainer.fit(model, F.cross_entropy, optimizer, train_loader, val_loader,
                          epochs=10, callbacks=[EarlyStopping(patience=3)])
    trainer.evaluate(test_loader)        # {"loss": ..., "accuracy": ...}
    trainer.fit(..., resume="runs/mlp/last.safetensors")   # continue after a crash

``train_step(batch)`` is the override point for custom loops (GANs, multi-task): it
gets one batch and returns a dict of floats for the logs — ``"loss"`` at least, and
``"output"``/``"target"`` if the metrics should see them, ``"n"`` for the batch size.
"""
import os
import time

import numpy as np

from .. import backend as B
from ..grad_mode import no_grad
from ..io import load
from ..tensor import Tensor
from ..data import DataLoader, TensorDataset
from .callbacks import CSVLogger, LRSchedulerStep, LearningCurves, ModelCheckpoint, ProgressBar
from .metrics import make_metric


def _split(batch):
    """(inputs, target) of a batch: (x, y) tuples/lists, or dicts with 'x'/'y' or
    'input'/'target'."""
    if isinstance(batch, (tuple, list)):
        if len(batch) == 1:
            return batch[0], None
        return (batch[0], batch[1]) if len(batch) == 2 else (tuple(batch[:-1]), batch[-1])
    if isinstance(batch, dict):
        for xk, yk in (("x", "y"), ("input", "target"), ("inputs", "targets")):
            if xk in batch:
                return batch[xk], batch.get(yk)
    return batch, None


def _batch_size(target, x):
    ref = target if target is not None else (x[0] if isinstance(x, tuple) else x)
    return len(ref) if hasattr(ref, "__len__") and getattr(ref, "ndim", 1) > 0 else 1


class Trainer:
    """Configuration of a training run; ``fit`` runs it.

    metrics:        names ('accuracy', 'top5'), Metric objects or fn(output, target) -> float.
    clip_grad_norm: clip the global gradient norm to this value before each step.
    batch_size:     used when ``fit``/``evaluate`` get arrays instead of DataLoaders.
    seed:           seeds lamina's generator at the start of ``fit`` (not on resume).
    out_dir:        if given: checkpoints (``last``/``best``.safetensors), ``log.csv``,
                    ``train.log`` and ``curves.png`` are written there.
    verbose:        progress bar / one line per epoch.
    config:         a JSON-able dict stored in every checkpoint (the recipe's settings).
    """

    def __init__(self, metrics=(), clip_grad_norm=None, batch_size=32, seed=None,
                 out_dir=None, verbose=True, config=None, log=None, monitor="val_loss"):
        self.metric_specs = list(metrics)
        self.clip_grad_norm = clip_grad_norm
        self.batch_size = batch_size
        self.seed = seed
        self.out_dir = os.fspath(out_dir) if out_dir is not None else None
        self.verbose = verbose
        self.config = dict(config or {})
        self.monitor = monitor
        self._log_fn = log
        self._log_file = None
        self.history = []
        self.epoch = 0
        self.global_step = 0
        self.stop_training = False
        self.model = self.loss_fn = self.optimizer = self.train_loader = None
        self.callbacks = []

    # ------------------------------------------------------------------ logging
    def log(self, msg):
        if self.verbose:
            (self._log_fn or print)(msg)
        if self._log_file is not None:
            self._log_file.write(msg + "\n")
            self._log_file.flush()

    # ------------------------------------------------------------------ data
    def _loader(self, data, shuffle):
        """Arrays — ``(x, y)`` tuple or one array — become a DataLoader (``batch_size``,
        shuffled for training); anything else (a DataLoader, a list of batches) is
        iterated as it is."""
        if isinstance(data, (np.ndarray, Tensor)):
            data = (data,)
        if not isinstance(data, tuple):
            return data
        seed = None if self.seed is None else self.seed + 1
        return DataLoader(TensorDataset(*data), batch_size=self.batch_size, shuffle=shuffle,
                          seed=seed)

    # ------------------------------------------------------------------ steps
    def train_step(self, batch):
        """One optimisation step on ``batch``; returns the logs of this batch."""
        x, y = _split(batch)
        self.optimizer.zero_grad()
        out = self.model(*x) if isinstance(x, tuple) else self.model(x)
        loss = self.loss_fn(out, y) if y is not None else self.loss_fn(out)
        loss.backward()
        if self.clip_grad_norm is not None:
            from ..nn.utils import clip_grad_norm_
            clip_grad_norm_(self.model.parameters(), self.clip_grad_norm)
        self.optimizer.step()
        return {"loss": loss.item(), "output": out, "target": y, "n": _batch_size(y, x)}

    def eval_step(self, batch):
        """Loss and outputs of one batch, without gradients (used by ``evaluate``)."""
        x, y = _split(batch)
        out = self.model(*x) if isinstance(x, tuple) else self.model(x)
        logs = {"output": out, "target": y, "n": _batch_size(y, x)}
        if self.loss_fn is not None:
            logs["loss"] = (self.loss_fn(out, y) if y is not None else self.loss_fn(out)).item()
        return logs

    def _run_epoch(self, loader, step_fn, metrics, on_batch=None):
        sums, count = {}, 0
        for m in metrics:
            m.reset()
        t0 = time.perf_counter()
        for batch in loader:
            logs = step_fn(batch)
            n = int(logs.get("n", 1))
            count += n
            for k, v in logs.items():
                if k not in ("output", "target", "n") and isinstance(v, (int, float)):
                    sums[k] = sums.get(k, 0.0) + float(v) * n
            if "output" in logs and logs.get("target") is not None:
                for m in metrics:
                    m.update(logs["output"], logs["target"])
            if on_batch is not None:
                self.running_loss = sums.get("loss", 0.0) / max(count, 1)
                self.samples_per_s = count / max(time.perf_counter() - t0, 1e-9)
                on_batch(logs)
        out = {k: v / max(count, 1) for k, v in sums.items()}
        out.update({m.name: m.compute() for m in metrics if m.count})
        return out, count, time.perf_counter() - t0

    # ------------------------------------------------------------------ public API
    def fit(self, model, loss_fn, optimizer, train_data, val_data=None, epochs=1,
            callbacks=(), scheduler=None, scheduler_interval="epoch", resume=None):
        """Train for ``epochs`` epochs (counting those done before a resume); returns the
        history, one dict of logs per epoch."""
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.epochs = epochs
        if self.seed is not None and resume is None:
            B.manual_seed(self.seed)
        self.train_loader = self._loader(train_data, shuffle=True)
        self.val_loader = self._loader(val_data, shuffle=False)
        self.metrics = [make_metric(m) for m in self.metric_specs]
        self.val_metrics = [make_metric(m) for m in self.metric_specs]
        cbs = list(callbacks)
        if scheduler is not None:
            cbs.append(LRSchedulerStep(scheduler, scheduler_interval, self.monitor))
        if self.verbose and not any(isinstance(c, ProgressBar) for c in cbs):
            cbs.append(ProgressBar())
        if self.out_dir is not None:
            os.makedirs(self.out_dir, exist_ok=True)
            if not any(isinstance(c, ModelCheckpoint) for c in cbs):
                monitor = self.monitor if val_data is not None else "loss"
                cbs.append(ModelCheckpoint(self.out_dir, monitor=monitor))
            if not any(isinstance(c, CSVLogger) for c in cbs):
                cbs.append(CSVLogger(os.path.join(self.out_dir, "log.csv")))
            if not any(isinstance(c, LearningCurves) for c in cbs):
                cbs.append(LearningCurves(os.path.join(self.out_dir, "curves.png")))
        self.callbacks = sorted(cbs, key=lambda c: c.order)
        self.stop_training = False
        if resume is not None:
            state = load(resume)
            try:
                self.load_state_dict(state)
            except (KeyError, ValueError, RuntimeError) as e:
                raise type(e)(f"cannot resume from {resume}: {e}") from None
            self.log(f"resumed from {resume} after epoch {self.epoch}")
        else:
            self.history, self.epoch, self.global_step = [], 0, 0
        if self.out_dir is not None:
            self._log_file = open(os.path.join(self.out_dir, "train.log"),
                                  "a" if resume is not None else "w")
        try:
            for c in self.callbacks:
                c.on_fit_start(self)
            while self.epoch < epochs and not self.stop_training:
                self._fit_epoch(self.epoch + 1)
            for c in self.callbacks:
                c.on_fit_end(self)
        finally:
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None
        return self.history

    def _fit_epoch(self, epoch):
        for c in self.callbacks:
            c.on_epoch_start(self, epoch)
        self.model.train()

        def on_batch(logs):
            self.global_step += 1
            for c in self.callbacks:
                c.on_batch_end(self, self.global_step, logs)

        logs, n, seconds = self._run_epoch(self.train_loader, self.train_step, self.metrics,
                                           on_batch)
        logs = {"epoch": epoch, **logs}
        if self.val_loader is not None:
            val = self.evaluate(self.val_loader)
            logs.update({f"val_{k}": v for k, v in val.items()})
        logs["lr"] = float(self.optimizer.param_groups[0]["lr"])
        logs["time"] = seconds
        logs["samples_per_s"] = n / max(seconds, 1e-9)
        self.epoch = epoch
        self.history.append(logs)
        for c in self.callbacks:
            c.on_epoch_end(self, epoch, logs)

    def evaluate(self, data, model=None, loss_fn=None):
        """Mean loss and metrics over ``data`` (a DataLoader or arrays), in eval mode."""
        if model is not None:
            self.model = model
        if loss_fn is not None:
            self.loss_fn = loss_fn
        loader = self._loader(data, shuffle=False)
        metrics = getattr(self, "val_metrics", None) or [make_metric(m)
                                                          for m in self.metric_specs]
        was_training = self.model.training
        self.model.eval()
        try:
            with no_grad():
                logs, _, _ = self._run_epoch(loader, self.eval_step, metrics)
        finally:
            self.model.train(was_training)
        return logs

    def predict(self, data, model=None):
        """The model's outputs over ``data`` (a DataLoader, or an input array), stacked
        into one NumPy array, in eval mode without gradients."""
        model = model if model is not None else self.model
        if isinstance(data, (np.ndarray, Tensor)):
            data = DataLoader(TensorDataset(data), batch_size=self.batch_size)
        outs = []
        was_training = model.training
        model.eval()
        try:
            with no_grad():
                for batch in data:
                    x, _ = _split(batch)
                    out = model(*x) if isinstance(x, tuple) else model(x)
                    outs.append(out.numpy())
        finally:
            model.train(was_training)
        return np.concatenate(outs) if outs else np.zeros((0,))

    # ------------------------------------------------------------------ checkpoints
    def _cb_key(self, i, c):
        return f"{i}:{type(c).__name__}"

    def state_dict(self):
        """Everything needed to continue this run exactly."""
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch, "step": self.global_step,
            "history": self.history,
            "rng": B.rng().bit_generator.state,
            "config": self.config,
            "stop_training": self.stop_training,
            "callbacks": {self._cb_key(i, c): c.state_dict()
                          for i, c in enumerate(self.callbacks)},
        }
        if hasattr(self.train_loader, "state_dict"):
            state["train_loader"] = self.train_loader.state_dict()
        return state

    def load_state_dict(self, state):
        try:
            self.model.load_state_dict(state["model"])
        except (KeyError, ValueError, RuntimeError) as e:
            raise type(e)(f"the checkpoint's model does not fit this model: {e}") from None
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.global_step = int(state["epoch"]), int(state["step"])
        self.history = list(state["history"])
        B.rng().bit_generator.state = state["rng"]
        if "train_loader" in state and hasattr(self.train_loader, "load_state_dict"):
            self.train_loader.load_state_dict(state["train_loader"])
        saved = state.get("callbacks", {})
        for i, c in enumerate(self.callbacks):
            key = self._cb_key(i, c)
            if key in saved:
                c.load_state_dict(saved[key])
        self.stop_training = bool(state.get("stop_training", False))
