"""The ``lamina`` command.

    lamina train RECIPE [--epochs N --lr X --batch-size B --seed S --out DIR
                         --resume CKPT --set key=value ... --quick --quiet]
    lamina eval CKPT [--split test|val]
    lamina generate CKPT [--prime TEXT --temperature T --length N --seed S]
    lamina recipes
    lamina sweep RECIPE --trials N [--epochs N --patience P --seed S --out DIR --quick]
    lamina bench [CASE ...]

Mistakes in the arguments get one line on stderr and exit status 2, never a traceback.
"""
import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time

import numpy as np


class UsageError(Exception):
    """A bad argument: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")


def _recipe(name):
    from .zoo import RECIPES, get_recipe
    if name not in RECIPES:
        raise UsageError(f"unknown recipe {name!r}; choose one of: " + ", ".join(RECIPES))
    return get_recipe(name)


def _coerce(key, text, default):
    """A --set value, parsed as JSON when it can be, checked against the default's type."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text
    if isinstance(default, bool):
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool):
            raise UsageError(f"--set {key}: expected true or false, got {text!r}")
    elif isinstance(default, int) and not isinstance(default, bool):
        if not isinstance(value, int) or isinstance(value, bool):
            raise UsageError(f"--set {key}: expected an integer, got {text!r}")
    elif isinstance(default, float):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise UsageError(f"--set {key}: expected a number, got {text!r}")
        value = float(value)
    elif isinstance(default, list):
        if not isinstance(value, list):
            raise UsageError(f"--set {key}: expected a JSON list like [128,64], got {text!r}")
    return value


def _overrides(recipe, a):
    cfg = recipe.config()
    out = {}
    for flag, key in (("epochs", "epochs"), ("lr", "lr"), ("batch_size", "batch_size"),
                      ("seed", "seed")):
        v = getattr(a, flag, None)
        if v is not None:
            if key not in cfg:
                raise UsageError(f"recipe {recipe.name!r} has no setting {key!r}")
            out[key] = v
    for item in getattr(a, "set", None) or []:
        if "=" not in item:
            raise UsageError(f"--set expects key=value, got {item!r}")
        k, v = item.split("=", 1)
        if k not in cfg:
            raise UsageError(f"recipe {recipe.name!r} has no setting {k!r}; its settings are: "
                             + ", ".join(sorted(cfg)))
        out[k] = _coerce(k, v, cfg[k])
    if out.get("lr", 1) <= 0:
        raise UsageError(f"--lr must be positive, got {out['lr']}")
    if out.get("epochs", 1) <= 0:
        raise UsageError(f"--epochs must be positive, got {out['epochs']}")
    if out.get("batch_size", 1) <= 0:
        raise UsageError(f"--batch-size must be positive, got {out['batch_size']}")
    return out


def _add_common(p):
    p.add_argument("--epochs", type=int, help="number of epochs")
    p.add_argument("--lr", type=float, help="learning rate")
    p.add_argument("--batch-size", type=int, dest="batch_size", help="mini-batch size")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="any other setting of the recipe (repeatable), e.g. --set dropout=0.3")
    p.add_argument("--quick", action="store_true", help="the recipe's short CI configuration")


def cmd_train(a):
    recipe = _recipe(a.recipe)
    if a.resume is not None and not os.path.isfile(a.resume):
        raise UsageError(f"--resume: no such checkpoint file: {a.resume}")
    cfg = recipe.config(_overrides(recipe, a), quick=a.quick)
    out = a.out if a.out is not None else os.path.join("runs", recipe.name)
    print(f"lamina train {recipe.name}: {recipe.summary}")
    print("settings: " + ", ".join(f"{k}={v}" for k, v in cfg.items()))
    t0 = time.perf_counter()
    results = recipe.run(cfg, out_dir=out, resume=a.resume, verbose=not a.quiet)
    files = sorted(f for f in os.listdir(out) if not f.startswith(".")) \
        if os.path.isdir(out) else []
    print(f"done in {time.perf_counter() - t0:.1f} s; written to {out}/: " + ", ".join(files))
    return results


def cmd_eval(a):
    from .io import CheckpointError, load
    if not os.path.isfile(a.checkpoint):
        raise UsageError(f"no such checkpoint file: {a.checkpoint}")
    try:
        ck = load(a.checkpoint)
    except CheckpointError as e:
        raise UsageError(str(e)) from None
    cfg = dict(ck.get("config") or {})
    name = cfg.pop("recipe", None)
    if name is None or "model" not in ck:
        raise UsageError(f"{a.checkpoint}: not a recipe checkpoint (no recipe name or model "
                         f"in it); load it with lamina.load in Python instead")
    recipe = _recipe(name)
    s = recipe.setup(recipe.config(cfg))
    try:
        s.model.load_state_dict(ck["model"])
    except (KeyError, ValueError, RuntimeError) as e:
        raise UsageError(f"{a.checkpoint}: does not fit recipe {name!r}: {e}") from None
    from .train import Trainer
    data = s.test if a.split == "test" else s.val
    if data is None:
        raise UsageError(f"recipe {name!r} has no {a.split} split")
    res = Trainer(metrics=s.metrics, batch_size=cfg.get("batch_size", 32),
                  verbose=False).evaluate(data, model=s.model, loss_fn=s.loss_fn)
    epoch = ck.get("epoch")
    print(f"{a.checkpoint} (recipe {name}, epoch {epoch}), {a.split} split: "
          + "  ".join(f"{k} {v:.4f}" for k, v in res.items()))
    return res


def cmd_generate(a):
    """Sample text from a character language model checkpoint (char-rnn,
    char-transformer); the checkpoint is read with lamina.load, which runs no code."""
    from .io import CheckpointError, load
    if not os.path.isfile(a.checkpoint):
        raise UsageError(f"no such checkpoint file: {a.checkpoint}")
    if a.length < 0:
        raise UsageError(f"--length must be >= 0, got {a.length}")
    if not a.temperature >= 0:
        raise UsageError(f"--temperature must be >= 0, got {a.temperature}")
    if not a.prime:
        raise UsageError("--prime must be a non-empty string")
    try:
        ck = load(a.checkpoint)
    except CheckpointError as e:
        raise UsageError(str(e)) from None
    cfg = dict(ck.get("config") or {}) if isinstance(ck, dict) else {}
    name = cfg.pop("recipe", None)
    if name is None or "model" not in ck:
        raise UsageError(f"{a.checkpoint}: not a recipe checkpoint (no recipe name or model "
                         f"in it)")
    recipe = _recipe(name)
    if not hasattr(recipe, "text_model"):
        raise UsageError(f"{a.checkpoint}: recipe {name!r} is not a text model; lamina "
                         f"generate needs a char-rnn, char-transformer or wavenet checkpoint")
    try:
        model, vocab = recipe.text_model(recipe.config(cfg))
        model.load_state_dict(ck["model"])
    except (KeyError, ValueError, RuntimeError, TypeError) as e:
        raise UsageError(f"{a.checkpoint}: does not fit recipe {name!r}: {e}") from None
    missing = sorted(set(a.prime) - set(vocab.stoi))
    if missing:
        raise UsageError(f"--prime has characters the model does not know: {missing}")
    ids = model.generate(vocab.encode(a.prime), a.length, a.temperature,
                         np.random.default_rng(a.seed))
    text = a.prime + vocab.decode(ids)
    print(text)
    return text


def cmd_recipes(a):
    from .zoo import RECIPES, get_recipe
    for name in RECIPES:
        print(f"{name:16s} {get_recipe(name).summary}")


def cmd_sweep(a):
    from .train import EarlyStopping, Trainer
    from .zoo.recipe import sample_config, write_json
    recipe = _recipe(a.recipe)
    if a.trials <= 0:
        raise UsageError(f"--trials must be positive, got {a.trials}")
    if not recipe.search_space:
        raise UsageError(f"recipe {recipe.name!r} defines no search space")
    rng = np.random.default_rng(a.seed)
    base = recipe.config(_overrides(recipe, a), quick=a.quick)
    rows = []
    for t in range(a.trials):
        trial = sample_config(recipe.search_space, rng)
        cfg = {**base, **trial}
        s = recipe.setup(cfg)
        stop = EarlyStopping("val_loss", patience=a.patience)
        trainer = Trainer(metrics=s.metrics, clip_grad_norm=s.clip_grad_norm,
                          batch_size=cfg["batch_size"], seed=cfg["seed"], verbose=False)
        t0 = time.perf_counter()
        hist = trainer.fit(s.model, s.loss_fn, s.optimizer, s.train, s.val,
                           epochs=cfg["epochs"], callbacks=[stop], scheduler=s.scheduler,
                           scheduler_interval=s.scheduler_interval)
        best = hist[stop.best_epoch - 1]
        row = {"trial": t + 1, **trial, "epochs": len(hist), "best_epoch": stop.best_epoch,
               "val_loss": best["val_loss"], "val_accuracy": best.get("val_accuracy"),
               "seconds": round(time.perf_counter() - t0, 1)}
        rows.append(row)
        print(f"trial {t + 1}/{a.trials}: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float)
                                                        else f"{k}={v}" for k, v in trial.items())
              + f" -> val_loss {row['val_loss']:.4f}"
              + (f", val_accuracy {row['val_accuracy']:.4f}" if row["val_accuracy"] is not None
                 else "") + f" (stopped after {len(hist)} epochs)")
    key = (lambda r: -r["val_accuracy"]) if rows[0]["val_accuracy"] is not None \
        else (lambda r: r["val_loss"])
    rows.sort(key=key)
    cols = list(rows[0])
    print("\nresults, best first:")
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in cols))
    out = a.out if a.out is not None else os.path.join("runs", f"{recipe.name}-sweep")
    write_json(os.path.join(out, "sweep.json"), rows)
    print(f"table written to {out}/sweep.json")
    return rows


def cmd_bench(a):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = os.path.join(root, "benchmarks", "bench_step.py")
    if not os.path.isfile(script):
        raise UsageError(f"lamina bench runs the benchmarks of a source checkout; "
                         f"{script} is not there")
    # the benchmark script compares against PyTorch; lamina itself never imports it
    if importlib.util.find_spec("torch") is None:
        raise UsageError("lamina bench compares against PyTorch: pip install -e '.[test]'")
    return subprocess.call([sys.executable, script, *a.cases])


def build_parser():
    p = _Parser(prog="lamina", description="lamina: train the notes' models, evaluate, "
                "search hyper-parameters, benchmark against PyTorch.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    t = sub.add_parser("train", help="train a recipe", description=cmd_train.__doc__ or
                       "Train a named recipe; checkpoints and logs go to --out.")
    t.add_argument("recipe", help="recipe name (see: lamina recipes)")
    _add_common(t)
    t.add_argument("--out", help="output directory (default runs/RECIPE)")
    t.add_argument("--resume", help="continue from a checkpoint (OUT/last.safetensors)")
    t.add_argument("--quiet", action="store_true", help="no progress output")
    t.set_defaults(fn=cmd_train)
    e = sub.add_parser("eval", help="evaluate a checkpoint on its recipe's test split",
                       description="Evaluate a checkpoint written by lamina train.")
    e.add_argument("checkpoint", help="a .safetensors checkpoint (best or last)")
    e.add_argument("--split", choices=("test", "val"), default="test")
    e.set_defaults(fn=cmd_eval)
    g = sub.add_parser("generate", help="sample text from a char-rnn/char-transformer "
                       "checkpoint", description=cmd_generate.__doc__)
    g.add_argument("checkpoint", help="a .safetensors checkpoint written by lamina train")
    g.add_argument("--prime", default="ROMEO:", help="text the model reads first "
                   "(default ROMEO:)")
    g.add_argument("--temperature", type=float, default=0.8,
                   help="sampling temperature; 0 is greedy (default 0.8)")
    g.add_argument("--length", type=int, default=500, help="characters to generate "
                   "(default 500)")
    g.add_argument("--seed", type=int, help="random seed for reproducible samples")
    g.set_defaults(fn=cmd_generate)
    r = sub.add_parser("recipes", help="list the recipes", description="List the recipes.")
    r.set_defaults(fn=cmd_recipes)
    ls = sub.add_parser("list", help="same as recipes", description="List the recipes.")
    ls.set_defaults(fn=cmd_recipes)
    s = sub.add_parser("sweep", help="random hyper-parameter search",
                       description="Random search (Bergstra & Bengio) over the recipe's search "
                       "space; each trial is early-stopped on the validation loss.")
    s.add_argument("recipe")
    s.add_argument("--trials", type=int, default=8, help="number of random trials")
    s.add_argument("--patience", type=int, default=3, help="early-stopping patience (epochs)")
    s.add_argument("--out", help="output directory (default runs/RECIPE-sweep)")
    _add_common(s)
    s.set_defaults(fn=cmd_sweep)
    b = sub.add_parser("bench", help="benchmarks against PyTorch (source checkout)",
                       description="Run benchmarks/bench_step.py: lamina vs PyTorch.")
    b.add_argument("cases", nargs="*", help="case names (default: all)")
    b.set_defaults(fn=cmd_bench)
    return p


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        a = parser.parse_args(argv)
        if a.command is None:
            parser.print_help()
            return 0
        a.fn(a)
        return 0
    except UsageError as e:
        print(f"lamina: {e}" if not str(e).startswith("lamina") else str(e), file=sys.stderr)
        return 2
    except FileNotFoundError as e:   # e.g. data that is not on this machine
        print(f"lamina: {e}", file=sys.stderr)
        return 1
    except ValueError as e:          # a recipe or layer refusing a setting, e.g. cell=tanh
        if os.environ.get("LAMINA_TRACEBACK"):
            raise
        print(f"lamina: {e}\n(run with LAMINA_TRACEBACK=1 for the traceback)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lamina: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
