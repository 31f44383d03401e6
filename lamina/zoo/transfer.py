"""transfer: from Fashion-MNIST classes 0–4 to classes 5–9 with 50 labelled images each.

The source task is the clothes — T-shirt/top, trouser, pullover, dress, coat (classes
0–4) — with all of their training images; the target task is the other five classes —
sandal, shirt, sneaker, bag, ankle boot (5–9) — with only ``n_per_class`` = 50 labelled
training images each (250 in all, drawn with the fixed ``seed``). The network is
:class:`~lamina.zoo.LeNet5` (modern variant) with a 5-way head. Three ways to learn the
target task from the 250 images are compared on the 5,000 test images of classes 5–9:

- ``scratch``: a freshly initialized LeNet-5;
- ``frozen``: the network pretrained on classes 0–4 as a fixed feature extractor
  (``requires_grad=False``) under a new, randomly initialized head, the only part
  trained. ``frozen_head='classifier'`` (default) freezes the convolutional layers and
  trains new fully connected layers 400→120→84→5; ``'output'`` freezes everything up to
  the 84-unit penultimate layer and trains a new linear output layer (a linear probe;
  features that deep, trained only to tell clothes apart, transfer less well to shoes
  and bags);
- ``finetune``: the pretrained network with a new output layer, every layer trained;
  the pretrained layers get ``finetune_backbone_lr_scale`` times the head's learning
  rate (a second optimizer parameter group).

Images are standardized with the statistics of the source training images only (the
target task is not seen before adaptation); labels of both tasks are renumbered 0–4.
"""
import os

import numpy as np

import lamina
from lamina.data import DataLoader, TensorDataset, load_fashion_mnist
from lamina.data.transforms import Standardize
from lamina.nn import functional as F

from .lenet import LeNet5
from .recipe import Recipe, Setup, save_results

SOURCE_CLASSES = (0, 1, 2, 3, 4)
TARGET_CLASSES = (5, 6, 7, 8, 9)
MODES = ("scratch", "frozen", "finetune")


def transfer_splits(seed=0, n_per_class=50, n_val=5000, subset=0,
                    source=SOURCE_CLASSES, target=TARGET_CLASSES):
    """Standardized (N, 1, 28, 28) images for the two tasks, labels renumbered 0..k-1.

    Returns a dict of ``(x, y)`` pairs: ``source_train``, ``source_val`` (from the
    ``n_val`` held-out training images), ``source_test``; ``target_train`` (the first
    ``n_per_class`` images of each target class in the seeded shuffle of the training
    part), ``target_test`` (every test image of the target classes). ``subset`` caps
    the source training images at ``subset``, the source validation images at
    ``max(subset // 5, 100)`` and each test split at ``subset // 2`` (quick runs); the
    target training set is never cut. Statistics come from the source training images.
    """
    x, y = load_fashion_mnist("train")
    xt, yt = load_fashion_mnist("test")
    order = np.random.default_rng(seed).permutation(len(x))
    val, train = order[:n_val], order[n_val:]
    src_train = train[np.isin(y[train], source)]
    src_val = val[np.isin(y[val], source)]
    tgt_train = np.concatenate([train[y[train] == c][:n_per_class] for c in target])
    tgt_train = tgt_train[np.random.default_rng(seed + 1).permutation(len(tgt_train))]
    src_test = np.flatnonzero(np.isin(yt, source))
    tgt_test = np.flatnonzero(np.isin(yt, target))
    if subset:
        src_train, src_val = src_train[:subset], src_val[:max(subset // 5, 100)]
        src_test, tgt_test = src_test[:subset // 2], tgt_test[:subset // 2]
    norm = Standardize.fit(x[src_train])
    src_map = np.full(10, -1, np.int64)
    src_map[list(source)] = np.arange(len(source))
    tgt_map = np.full(10, -1, np.int64)
    tgt_map[list(target)] = np.arange(len(target))
    return {"source_train": (norm(x[src_train]), src_map[y[src_train]]),
            "source_val": (norm(x[src_val]), src_map[y[src_val]]),
            "source_test": (norm(xt[src_test]), src_map[yt[src_test]]),
            "target_train": (norm(x[tgt_train]), tgt_map[y[tgt_train]]),
            "target_test": (norm(xt[tgt_test]), tgt_map[yt[tgt_test]])}


HEADS = ("classifier", "output")


def head_prefix(model, head="output"):
    """Parameter-name prefix of the part of a LeNet-5 that is new in the target task:
    'output' the last linear layer, 'classifier' the fully connected layers."""
    if head == "classifier":
        return "classifier."
    if head == "output":
        return f"classifier.{len(model.classifier) - 1}."
    raise ValueError(f"head must be one of {HEADS}, got {head!r}")


def with_new_head(pretrained, n_classes, head="output"):
    """A new LeNet-5 with ``n_classes`` outputs: the layers outside ``head`` (see
    :func:`head_prefix`) copied from ``pretrained``, the head freshly initialized."""
    model = LeNet5(n_classes=n_classes, variant=pretrained.variant)
    prefix = head_prefix(model, head)
    state = {k: v for k, v in pretrained.state_dict().items() if not k.startswith(prefix)}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith(prefix) for k in missing), (missing, unexpected)
    return model


def split_parameters(model, head="output"):
    """(backbone parameters, head parameters) of a LeNet-5."""
    prefix = head_prefix(model, head)
    backbone, out = [], []
    for name, p in model.named_parameters():
        (out if name.startswith(prefix) else backbone).append(p)
    return backbone, out


def freeze(params):
    """Mark parameters as frozen (``requires_grad = False``): backward computes no
    gradient for them and the optimizers leave them (and their state) unchanged."""
    for p in params:
        p.requires_grad = False


def adapt(pretrained, mode, n_classes, lr, backbone_lr_scale=1.0, frozen_head="classifier",
          momentum=0.9, weight_decay=0.0):
    """The model and optimizer of one way of learning the target task.

    ``mode``: 'scratch' (a new LeNet-5; ``pretrained`` only gives the variant),
    'frozen' (the pretrained layers outside ``frozen_head`` frozen, a new
    ``frozen_head`` trained: 'classifier' freezes the convolutional feature extractor,
    'output' everything up to the penultimate layer) or 'finetune' (the pretrained
    network with a new output layer, everything trained, the pretrained layers at
    ``lr * backbone_lr_scale``). The optimizer is SGD with two parameter groups, head
    then backbone; frozen parameters stay in it and are skipped."""
    if mode not in MODES:
        raise ValueError(f"adapt: mode must be one of {MODES}, got {mode!r}")
    head, scale = "output", backbone_lr_scale
    if mode == "scratch":
        model, scale = LeNet5(n_classes=n_classes, variant=getattr(pretrained, "variant",
                                                                   "modern")), 1.0
    elif mode == "frozen":
        head = frozen_head
        model = with_new_head(pretrained, n_classes, head)
    else:
        model = with_new_head(pretrained, n_classes, head)
    backbone, head_params = split_parameters(model, head)
    if mode == "frozen":
        freeze(backbone)
    opt = lamina.optim.SGD([{"params": head_params}, {"params": backbone, "lr": lr * scale}],
                           lr=lr, momentum=momentum, weight_decay=weight_decay)
    return model, opt


STAGES = ("all", "pretrain") + MODES


class TransferRecipe(Recipe):
    """``stage`` selects what ``run`` does: 'all' (pretraining, then the three modes),
    'pretrain' only, or pretraining then one mode. ``setup(cfg)`` gives the pieces of
    ``cfg['stage']`` (used by ``run`` for each stage, and by ``lamina eval`` on a
    stage's checkpoint, whose config names its stage)."""

    name = "transfer"
    summary = ("Fashion-MNIST 0-4 -> 5-9 with 50 labels/class: scratch vs frozen features "
               "vs fine-tuning (LeNet-5)")
    defaults = dict(seed=0, n_per_class=50, subset=0, stage="all",
                    epochs=10, lr=0.05, weight_decay=5e-4, batch_size=128,  # pretraining
                    target_epochs=60, target_lr=0.02, target_batch_size=25,
                    target_weight_decay=5e-4, frozen_head="classifier",
                    finetune_backbone_lr_scale=1.0)
    quick = dict(subset=4000, epochs=3, batch_size=64, target_epochs=20)
    # `lamina sweep` tunes the pretraining (it has a validation split; the 250 target
    # images are too few to hold any out)
    search_space = {"lr": ("loguniform", 1e-2, 2e-1)}
    target = ("finetune_accuracy", 0.85)

    def _data(self, cfg):
        key = (cfg["seed"], cfg["n_per_class"], cfg["subset"])
        if getattr(self, "_cache", (None,))[0] != key:
            self._cache = (key, transfer_splits(cfg["seed"], cfg["n_per_class"],
                                                subset=cfg["subset"]))
        return self._cache[1]

    def setup(self, cfg):
        data = self._data(cfg)
        stage = cfg["stage"]
        if stage in ("all", "pretrain"):
            lamina.manual_seed(cfg["seed"])
            model = LeNet5(n_classes=len(SOURCE_CLASSES))
            opt = lamina.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=0.9,
                                   weight_decay=cfg["weight_decay"])
            loader = DataLoader(TensorDataset(*data["source_train"]),
                                batch_size=cfg["batch_size"], shuffle=True, seed=cfg["seed"])
            return Setup(model, F.cross_entropy, opt, loader, data["source_val"],
                         data["source_test"], callbacks=[
                             lamina.train.EarlyStopping("val_loss", patience=cfg["epochs"])])
        # a target stage: the pretrained network of this run (a stand-in of the same
        # shape for `lamina eval`, which loads the checkpoint's weights over it)
        pretrained = getattr(self, "pretrained", None)
        if pretrained is None:
            pretrained = LeNet5(n_classes=len(SOURCE_CLASSES))
        lamina.manual_seed(cfg["seed"] + 1)           # the same new head in every mode
        model, opt = adapt(pretrained, stage, len(TARGET_CLASSES), cfg["target_lr"],
                           cfg["finetune_backbone_lr_scale"], cfg["frozen_head"],
                           weight_decay=cfg["target_weight_decay"])
        return Setup(model, F.cross_entropy, opt, data["target_train"], None,
                     data["target_test"])

    def run(self, cfg, out_dir=None, resume=None, verbose=True, log=print, callbacks=()):
        for key, choices in (("stage", STAGES), ("frozen_head", HEADS)):
            if cfg[key] not in choices:
                raise ValueError(f"transfer: {key} must be one of {choices}, got {cfg[key]!r}")
        if resume is not None:
            raise ValueError("transfer: --resume is not supported (a run has several stages)")
        modes = MODES if cfg["stage"] == "all" else tuple(m for m in MODES if m == cfg["stage"])
        sub = (lambda name: os.path.join(out_dir, name)) if out_dir is not None else (
            lambda name: None)
        results = {"recipe": self.name, "config": cfg}
        data = self._data(cfg)
        self.pretrained = None

        # 1. pretraining on the source classes: the shared run
        log(f"--- pretraining LeNet-5 on classes {SOURCE_CLASSES} "
            f"({len(data['source_train'][1])} images)")
        res = super().run({**cfg, "stage": "pretrain"}, sub("pretrain"), None, verbose, log,
                          callbacks)
        self.pretrained = self.trainer.model
        results["pretrain"] = {k: v for k, v in res.items() if k != "config"}

        # 2. the ways of learning the target classes from their few labelled images
        for mode in modes:
            log(f"--- {mode}: classes {TARGET_CLASSES}, {cfg['n_per_class']} labelled "
                f"images each")
            res = super().run({**cfg, "stage": mode, "epochs": cfg["target_epochs"],
                               "batch_size": cfg["target_batch_size"]}, sub(mode), None,
                              verbose, log, callbacks)
            results[mode] = {k: v for k, v in res.items() if k != "config"}
            results[f"{mode}_accuracy"] = res["test_accuracy"]
        results["seconds"] = sum(results[k]["seconds"] for k in ("pretrain",) + modes)
        log(f"source (classes 0-4) test accuracy {results['pretrain']['test_accuracy'] * 100:.2f}%")
        if modes:
            log(f"target (classes 5-9) test accuracy with {cfg['n_per_class']} labels/class: "
                + ", ".join(f"{m} {results[m + '_accuracy'] * 100:.2f}%" for m in modes))
        save_results(out_dir, results)
        return results


RECIPE = TransferRecipe()
