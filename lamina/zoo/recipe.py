"""Recipes: named, documented training configurations run by ``lamina train NAME``.

A recipe is configuration plus a ``setup(cfg)`` that returns the pieces — model, loss,
optimizer, data, metrics — and the shared :func:`run` trains them with the Trainer,
evaluates on the test split and writes ``results.json``. Recipes whose experiment is not
one training run (e.g. several models compared) override ``run``.
"""
import json
import os
import time
from dataclasses import dataclass, field

import numpy as np

from ..io import _atomic_write
from ..train import Trainer


@dataclass
class Setup:
    """What ``Recipe.setup`` returns. ``train``/``val``/``test`` are DataLoaders or
    ``(x, y)`` arrays; ``val`` may be None."""
    model: object
    loss_fn: object
    optimizer: object
    train: object
    val: object = None
    test: object = None
    metrics: tuple = ("accuracy",)
    scheduler: object = None
    scheduler_interval: str = "epoch"
    clip_grad_norm: float = None
    callbacks: list = field(default_factory=list)


class Recipe:
    """Subclass (or instantiate with a ``setup`` function) and register in
    :mod:`lamina.zoo`. ``defaults`` holds every setting (``epochs``, ``lr``,
    ``batch_size``, ``seed`` and recipe-specific ones); ``quick`` overrides some of them
    for CI; ``search_space`` maps settings to ``("loguniform", lo, hi)``,
    ``("uniform", lo, hi)``, ``("int", lo, hi)`` or ``("choice", [values])`` for
    ``lamina sweep``; ``target`` is the documented result, e.g. ``("accuracy", 0.97)``."""

    name = "recipe"
    summary = ""
    defaults = {}
    quick = {}
    search_space = {}
    target = None

    def __init__(self, name=None, summary=None, defaults=None, quick=None, setup=None,
                 search_space=None, target=None):
        self.name = name or self.name
        self.summary = summary or self.summary
        self.defaults = dict(defaults if defaults is not None else self.defaults)
        self.quick = dict(quick if quick is not None else self.quick)
        self.search_space = dict(search_space if search_space is not None
                                 else self.search_space)
        self.target = target if target is not None else self.target
        if setup is not None:
            self.setup = setup

    def config(self, overrides=None, quick=False):
        """The defaults, then the quick settings (if ``quick``), then ``overrides``.
        Unknown keys are an error naming the recipe and its settings."""
        cfg = dict(self.defaults)
        if quick:
            cfg.update(self.quick)
        for k, v in (overrides or {}).items():
            if k not in cfg:
                raise KeyError(f"recipe {self.name!r} has no setting {k!r}; its settings are: "
                               + ", ".join(sorted(cfg)))
            cfg[k] = v
        return cfg

    def setup(self, cfg):
        raise NotImplementedError

    def run(self, cfg, out_dir=None, resume=None, verbose=True, log=print, callbacks=()):
        """Train with the Trainer, evaluate on the test split; return the results dict."""
        t0 = time.perf_counter()
        s = self.setup(cfg)
        trainer = Trainer(metrics=s.metrics, clip_grad_norm=s.clip_grad_norm,
                          batch_size=cfg.get("batch_size", 32), seed=cfg.get("seed"),
                          out_dir=out_dir, verbose=verbose, log=log,
                          config={"recipe": self.name, **cfg})
        history = trainer.fit(s.model, s.loss_fn, s.optimizer, s.train, s.val,
                              epochs=cfg["epochs"], callbacks=list(s.callbacks) + list(callbacks),
                              scheduler=s.scheduler, scheduler_interval=s.scheduler_interval,
                              resume=resume)
        results = {"recipe": self.name, "epochs": len(history)}
        if s.test is not None:
            test = trainer.evaluate(s.test)
            results.update({f"test_{k}": v for k, v in test.items()})
            shown = "  ".join(f"{k} {v:.4f}" for k, v in test.items())
            log(f"test: {shown}")
            if "accuracy" in test:
                log(f"test accuracy {test['accuracy'] * 100:.2f}%")
        results["seconds"] = time.perf_counter() - t0
        results["config"] = cfg
        save_results(out_dir, results)
        self.trainer, self.history = trainer, history
        return results


def save_results(out_dir, results):
    """Write ``results`` to ``OUT_DIR/results.json`` (atomically); nothing if out_dir is None."""
    if out_dir is not None:
        write_json(os.path.join(out_dir, "results.json"), results)


def write_json(path, obj):
    _atomic_write(path, [json.dumps(obj, indent=2, default=_json_default).encode() + b"\n"])


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def sample_config(space, rng):
    """One random draw from a search space (see :class:`Recipe`)."""
    out = {}
    for k, spec in space.items():
        kind = spec[0]
        if kind == "loguniform":
            out[k] = float(np.exp(rng.uniform(np.log(spec[1]), np.log(spec[2]))))
        elif kind == "uniform":
            out[k] = float(rng.uniform(spec[1], spec[2]))
        elif kind == "int":
            out[k] = int(rng.integers(spec[1], spec[2] + 1))
        elif kind == "choice":
            out[k] = spec[1][int(rng.integers(len(spec[1])))]
        else:
            raise ValueError(f"search space entry {k!r}: unknown distribution {kind!r} "
                             f"(loguniform, uniform, int, choice)")
    return out
