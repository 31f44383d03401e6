"""char-transformer: a small causal (decoder-only) Transformer character language model on
the shipped Shakespeare corpus, with the same 90/10 split as char-rnn.

Token embedding plus a learned position embedding, ``num_layers`` pre-norm
TransformerEncoderLayers run with a causal mask (position t attends to positions <= t),
a final LayerNorm and a linear head. Trained on random windows of ``block_size``
characters; the validation loss is the mean over all positions of non-overlapping
validation windows.

    lamina train char-transformer
    lamina generate runs/char-transformer/best.safetensors --prime "ROMEO:"
"""
import numpy as np

import lamina
from lamina import nn
from lamina.data import DataLoader
from lamina.data.text import NextTokenWindows
from lamina.nn.layers.transformer import causal_mask

from .char_rnn import CharLM, CharLMRecipe, TimeBudget, _corpus, lm_loss
from .recipe import Setup


class CharTransformer(CharLM):
    """Decoder-only Transformer language model over at most ``block_size`` tokens.

    forward(x (B, T) int64 with T <= block_size) -> logits (B, T, V); logits[:, t] depend
    only on x[:, :t+1]. ``step(x, state)`` (used by ``generate``) keeps the last
    ``block_size`` tokens as its state and returns logits for the whole window."""

    def __init__(self, vocab_size, d_model=128, nhead=4, num_layers=3, dim_feedforward=None,
                 block_size=128, dropout=0.1):
        super().__init__()
        if d_model % nhead:
            raise ValueError(f"CharTransformer: d_model={d_model} must be divisible by "
                             f"nhead={nhead}")
        self.vocab_size, self.block_size, self.d_model = vocab_size, block_size, d_model
        self.tok = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(block_size, d_model)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList([
            nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward or 4 * d_model,
                                       dropout=dropout, activation="relu", batch_first=True,
                                       norm_first=True) for _ in range(num_layers)])
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)
        for p in (self.tok.weight, self.pos.weight):
            nn.init.normal_(p, std=0.02)

    def forward(self, x):
        a = self._check_ids(x)
        T = a.shape[1]
        if not 1 <= T <= self.block_size:
            raise ValueError(f"CharTransformer: sequence length must be in [1, "
                             f"{self.block_size}] (block_size), got input shape {a.shape}")
        h = self.tok(lamina.from_numpy(a)) + self.pos(lamina.from_numpy(np.arange(T)))
        h = self.drop(h)
        mask = causal_mask(T)
        for layer in self.layers:
            h = layer(h, src_mask=mask, is_causal=True)
        return self.head(self.norm(h))

    def step(self, ids, state):
        a = self._check_ids(ids)
        ctx = a if state is None else np.concatenate([state, a], 1)
        ctx = ctx[:, -self.block_size:]
        return self.forward(ctx), ctx


class CharTransformerRecipe(CharLMRecipe):
    name = "char-transformer"
    summary = "small causal Transformer character language model on Shakespeare"
    defaults = dict(epochs=5, lr=2e-3, batch_size=16, block_size=128, seed=0, d_model=128,
                    nhead=4, num_layers=3, dim_feedforward=384, dropout=0.0, clip=1.0,
                    val_fraction=0.1, split="play", time_budget=1140.0, corpus_chars=0,
                    stride=128)
    quick = dict(epochs=2, d_model=64, num_layers=2, dim_feedforward=128, block_size=32,
                 stride=8, batch_size=32, corpus_chars=60000, lr=6e-3, dropout=0.0,
                 time_budget=0.0)
    search_space = {"lr": ("loguniform", 5e-4, 5e-3)}
    target = ("val_loss", 1.60)

    def build_model(self, cfg):
        return CharTransformer(len(self.vocab(cfg)), cfg["d_model"], cfg["nhead"],
                               cfg["num_layers"], cfg["dim_feedforward"], cfg["block_size"],
                               cfg["dropout"])

    def setup(self, cfg):
        lamina.manual_seed(cfg["seed"])
        vocab, train_ids, val_ids = _corpus(cfg)
        model = self.build_model(cfg)
        opt = lamina.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=0.01)
        train = DataLoader(NextTokenWindows(train_ids, cfg["block_size"], cfg["stride"]),
                           batch_size=cfg["batch_size"], shuffle=True, seed=cfg["seed"])
        val = DataLoader(NextTokenWindows(val_ids, cfg["block_size"]),
                         batch_size=cfg["batch_size"])
        steps = cfg["epochs"] * len(train)
        sched = lamina.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["lr"], total_steps=steps,
                                                     pct_start=0.05,
                                                     cycle_momentum=False)
        return Setup(model, lm_loss, opt, train, val, metrics=(), scheduler=sched,
                     scheduler_interval="step", clip_grad_norm=cfg["clip"],
                     callbacks=[TimeBudget(cfg["time_budget"])])


RECIPE = CharTransformerRecipe()
