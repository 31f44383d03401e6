"""learn-to-execute: an LSTM reads a small program character by character and writes
what it prints (Zaremba & Sutskever 2014, "Learning to Execute"; the notes' example).

Programs come from :mod:`lamina.zoo.programs`: constants of ``length`` digits combined
by ``nesting`` operations (+, -, assignment, if-else, a for loop) and a ``print``. The
model, :class:`ProgramExecutor`, is a sequence-to-sequence LSTM: an encoder LSTM reads
the program's characters, its final state starts a decoder LSTM that is trained with
teacher forcing to emit the printed number's characters and an end token; at test time
it decodes greedily. The metric is exact match of the whole output.

The recipe trains the same model twice with the same budget (epochs × batches ×
batch size examples, generated fresh): once with no curriculum (every example at the
target difficulty ``max_length``, ``max_nesting``) and once with a curriculum
(``curriculum``: 'combined' by default — half of each batch's examples from the naive
schedule that walks the difficulties from (1, 1) up to the target, half 'mixed', drawn
uniformly over all difficulties up to the target; see
:func:`lamina.zoo.programs.curriculum_level`). Both are then tested on fresh programs of
every difficulty up to the target and the exact-match accuracies are printed as a table.
"""
import os
import time

import numpy as np

import lamina
from lamina import nn
from lamina.nn import functional as F
from lamina.nn.decoding import greedy_decode
from lamina.train import Trainer
from lamina.train.metrics import Metric

from .programs import ALPHABET, CURRICULA, curriculum_level, difficulty_levels, generate_program
from .recipe import Recipe, save_results

PAD, BOS, EOS = 0, 1, 2
TOKENS = ["<pad>", "<bos>", "<eos>"] + ALPHABET
STOI = {c: i for i, c in enumerate(TOKENS)}


def encode_batch(programs, outputs):
    """Programs and their outputs as padded id arrays: (src (N, S), src_lengths (N,),
    tgt_in (N, L) = <bos> + output, tgt_out (N, L) = output + <eos>), padding 0."""
    n = len(programs)
    s = max(len(p) for p in programs)
    L = max(len(o) for o in outputs) + 1
    src = np.zeros((n, s), np.int64)
    lens = np.array([len(p) for p in programs], np.int64)
    tin = np.zeros((n, L), np.int64)
    tout = np.zeros((n, L), np.int64)
    for i, (p, o) in enumerate(zip(programs, outputs)):
        src[i, :len(p)] = [STOI[c] for c in p]
        ids = [STOI[c] for c in o]
        tin[i, :len(ids) + 1] = [BOS] + ids
        tout[i, :len(ids) + 1] = ids + [EOS]
    return src, lens, tin, tout


def decode_string(ids):
    """Token ids -> the string up to (not including) the first <eos>."""
    out = []
    for t in np.asarray(ids).reshape(-1):
        t = int(t)
        if t == EOS:
            break
        if t > EOS:
            out.append(TOKENS[t])
    return "".join(out)


class ProgramExecutor(nn.Module):
    """Character-level sequence-to-sequence LSTM.

    forward(src (N, S) int, src_lengths (N,) int, tgt_in (N, L) int) -> logits (N, L, V):
    the encoder LSTM reads the right-padded programs (``src_lengths`` masks the padding,
    so its final state is each program's own), the decoder LSTM starts from that state
    and reads ``tgt_in`` (teacher forcing). ``generate(src, src_lengths, max_len)``
    decodes greedily and returns the output strings.
    """

    def __init__(self, vocab_size=len(TOKENS), embed=32, hidden=128, num_layers=1):
        super().__init__()
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size, embed, padding_idx=PAD)
        self.encoder = nn.LSTM(embed, hidden, num_layers=num_layers, batch_first=True)
        self.decoder = nn.LSTM(embed, hidden, num_layers=num_layers, batch_first=True)
        self.out = nn.Linear(hidden, vocab_size)

    @staticmethod
    def _array(name, x, ndim):
        a = x.numpy() if isinstance(x, lamina.Tensor) else np.asarray(x)
        if a.ndim != ndim or not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"ProgramExecutor: {name} must be a {ndim}-D integer array, got "
                             f"shape {a.shape} dtype {a.dtype}")
        return a.astype(np.int64)

    def encode(self, src, src_lengths):
        """The encoder's final (h, c), each (num_layers, N, hidden)."""
        src = self._array("src", src, 2)
        lens = self._array("src_lengths", src_lengths, 1)
        if lens.shape[0] != src.shape[0] or lens.max() > src.shape[1] or lens.min() < 1:
            raise ValueError(f"ProgramExecutor: src_lengths {lens.shape} must give a length "
                             f"in 1..{src.shape[1]} for each of the {src.shape[0]} programs "
                             f"of src {src.shape}")
        _, state = self.encoder(self.embed(lamina.from_numpy(src)), lengths=lens)
        return state

    def forward(self, src, src_lengths, tgt_in):
        tgt_in = self._array("tgt_in", tgt_in, 2)
        state = self.encode(src, src_lengths)
        if tgt_in.shape[0] != state[0].shape[1]:
            raise ValueError(f"ProgramExecutor: tgt_in {tgt_in.shape} and src "
                             f"({state[0].shape[1]} programs) have different batch sizes")
        h, _ = self.decoder(self.embed(lamina.from_numpy(tgt_in)), state)
        return self.out(h)

    def step(self, tokens, state):
        """One decoder step: tokens (N,) -> (log-probs (N, V), new state)."""
        h, state = self.decoder(self.embed(tokens.reshape(-1, 1)), state)
        return F.log_softmax(self.out(h[:, 0]), -1), state

    def generate(self, src, src_lengths, max_len=12):
        """Greedy decoding: a list of N output strings."""
        with lamina.no_grad():
            state = self.encode(src, src_lengths)
            n = state[0].shape[1]
            tokens, _ = greedy_decode(self.step, state, np.full(n, BOS, np.int64), EOS,
                                      max_len)
        return [decode_string(t) for t in tokens.numpy()]


def sequence_loss(logits, tgt_out):
    """Mean cross-entropy over the non-padding output characters."""
    t = tgt_out.numpy() if isinstance(tgt_out, lamina.Tensor) else np.asarray(tgt_out)
    n, L, v = logits.shape
    return F.cross_entropy(logits.reshape(n * L, v), lamina.from_numpy(t.reshape(-1)),
                           ignore_index=PAD)


class CharAccuracy(Metric):
    """Teacher-forced next-character accuracy over the non-padding output positions."""

    name = "char_accuracy"

    def update(self, output, target):
        out = output.numpy() if isinstance(output, lamina.Tensor) else np.asarray(output)
        t = target.numpy() if isinstance(target, lamina.Tensor) else np.asarray(target)
        keep = t != PAD
        self.total += float((out.argmax(-1)[keep] == t[keep]).sum())
        self.count += int(keep.sum())


class ProgramBatches:
    """An endless-looking iterable of training batches for the Trainer: each pass
    (epoch) yields ``n_batches`` fresh batches ``((src, src_lengths, tgt_in), tgt_out)``
    whose programs' difficulties follow ``curriculum`` (see
    :func:`lamina.zoo.programs.curriculum_level`), progress counted over ``epochs``."""

    def __init__(self, curriculum, max_length, max_nesting, n_batches, batch_size, epochs,
                 seed=0):
        if curriculum not in CURRICULA:
            raise ValueError(f"ProgramBatches: curriculum must be one of {CURRICULA}, got "
                             f"{curriculum!r}")
        self.curriculum, self.max_length, self.max_nesting = curriculum, max_length, max_nesting
        self.n_batches, self.batch_size, self.epochs = n_batches, batch_size, epochs
        self.rng = np.random.default_rng(seed)
        self.epoch = 0
        self.levels = []          # the (length, nesting) of every example drawn

    def __len__(self):
        return self.n_batches

    def __iter__(self):
        for b in range(self.n_batches):
            progress = (self.epoch + b / self.n_batches) / self.epochs
            progs, outs = [], []
            for _ in range(self.batch_size):
                lv = curriculum_level(self.curriculum, self.max_length, self.max_nesting,
                                      progress, self.rng)
                self.levels.append(lv)
                p, o = generate_program(*lv, self.rng)
                progs.append(p)
                outs.append(o)
            src, lens, tin, tout = encode_batch(progs, outs)
            yield (src, lens, tin), tout
        self.epoch += 1


def program_sets(levels, n, seed):
    """{(length, nesting): (programs, outputs)} with ``n`` programs per level."""
    rng = np.random.default_rng(seed)
    out = {}
    for lv in levels:
        pairs = [generate_program(*lv, rng) for _ in range(n)]
        out[lv] = ([p for p, _ in pairs], [o for _, o in pairs])
    return out


def exact_match(model, programs, outputs, batch_size=256):
    """Fraction of programs whose greedy-decoded output equals the printed output."""
    model.eval()
    hits = 0
    for s in range(0, len(programs), batch_size):
        src, lens, _, _ = encode_batch(programs[s:s + batch_size], outputs[s:s + batch_size])
        pred = model.generate(src, lens, max_len=max(len(o) for o in outputs) + 2)
        hits += sum(p == o for p, o in zip(pred, outputs[s:s + batch_size]))
    return hits / max(len(programs), 1)


def train_executor(cfg, curriculum, val, log=print, verbose=True, out_dir=None):
    """Train one ProgramExecutor under ``curriculum`` with the Trainer; returns it."""
    lamina.manual_seed(cfg["seed"])
    model = ProgramExecutor(embed=cfg["embed"], hidden=cfg["hidden"],
                            num_layers=cfg["num_layers"])
    opt = lamina.optim.Adam(model.parameters(), lr=cfg["lr"])
    data = ProgramBatches(curriculum, cfg["max_length"], cfg["max_nesting"], cfg["batches"],
                          cfg["batch_size"], cfg["epochs"], seed=cfg["seed"])
    sched = lamina.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg["epochs"])
    trainer = Trainer(metrics=(CharAccuracy(),), clip_grad_norm=cfg["clip"], seed=cfg["seed"],
                      verbose=verbose, log=log, out_dir=out_dir,
                      config={"recipe": "learn-to-execute", "curriculum": curriculum, **cfg})
    trainer.fit(model, sequence_loss, opt, data, val, epochs=cfg["epochs"], scheduler=sched)
    model.trainer, model.batches = trainer, data
    return model


class LearnToExecuteRecipe(Recipe):
    name = "learn-to-execute"
    summary = ("seq2seq LSTM reading small programs char by char and printing their output; "
               "curriculum vs none")
    defaults = dict(epochs=10, batches=100, batch_size=64, lr=5e-3, seed=0, embed=32,
                    hidden=128, num_layers=1, clip=5.0, max_length=2, max_nesting=2,
                    curriculum="combined", n_test=200)
    # CI: one run (no curriculum: at difficulty (1, 1) there is nothing to schedule)
    quick = dict(epochs=3, batches=160, batch_size=16, lr=1e-2, hidden=64, max_length=1,
                 max_nesting=1, n_test=100, curriculum="none")
    search_space = {"lr": ("loguniform", 1e-3, 1e-2), "hidden": ("choice", [96, 128, 192])}
    target = None

    def run(self, cfg, out_dir=None, resume=None, verbose=True, log=print, callbacks=()):
        t0 = time.perf_counter()
        levels = difficulty_levels(cfg["max_length"], cfg["max_nesting"])
        tests = program_sets(levels, cfg["n_test"], seed=cfg["seed"] + 1000)
        target = (cfg["max_length"], cfg["max_nesting"])
        vp, vo = program_sets([target], 200, seed=cfg["seed"] + 2000)[target]
        src, lens, tin, tout = encode_batch(vp, vo)
        val = [((src, lens, tin), tout)]
        if cfg["curriculum"] not in CURRICULA:
            raise ValueError(f"learn-to-execute: curriculum must be one of {CURRICULA}, got "
                             f"{cfg['curriculum']!r}")
        strategies = ["none"] + ([cfg["curriculum"]] if cfg["curriculum"] != "none" else [])
        table, char_acc = {}, {}
        for curriculum in strategies:
            t1 = time.perf_counter()
            log(f"--- training with curriculum {curriculum!r}")
            sub = None if out_dir is None else os.path.join(out_dir, curriculum)
            model = train_executor(cfg, curriculum, val, log=log, verbose=verbose,
                                   out_dir=sub)
            table[curriculum] = {lv: exact_match(model, *tests[lv]) for lv in levels}
            char_acc[curriculum] = model.trainer.history[-1].get("val_char_accuracy")
            log(f"curriculum {curriculum!r}: {time.perf_counter() - t1:.0f}s, "
                f"target-level exact match {table[curriculum][target] * 100:.1f}%")
        names = list(table)
        log("exact-match accuracy (greedy decoding) by difficulty, "
            f"{cfg['n_test']} fresh programs each:")
        log("length nesting  " + "  ".join(f"{n:>9}" for n in names))
        for lv in levels:
            log(f"{lv[0]:>6} {lv[1]:>7}  " + "  ".join(f"{table[n][lv] * 100:8.1f}%"
                                                      for n in names))
        results = {"recipe": self.name,
                   "exact_match": {n: {f"length{a}_nesting{b}": v for (a, b), v in t.items()}
                                   for n, t in table.items()},
                   "exact_match_target": {n: t[target] for n, t in table.items()},
                   "val_char_accuracy": char_acc,
                   "examples_per_run": cfg["epochs"] * cfg["batches"] * cfg["batch_size"],
                   "seconds": time.perf_counter() - t0, "config": cfg}
        save_results(out_dir, results)
        return results


RECIPE = LearnToExecuteRecipe()
