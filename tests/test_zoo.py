"""The README's main job: the digits MLP recipe and the `lamina` command."""
import subprocess
import sys

from lamina.cli import main
from lamina.data import load_digits
from lamina.zoo import digits_mlp


def test_digits_split_is_fixed_and_disjoint():
    xtr, ytr = load_digits("train")
    xte, yte = load_digits("test")
    assert xtr.shape == (1438, 64) and xte.shape == (359, 64)
    assert xtr.dtype.name == "float32" and ytr.dtype.name == "int64"
    assert 0.0 <= xtr.min() and xtr.max() <= 1.0
    assert set(ytr.tolist()) == set(range(10))
    rows = {r.tobytes() for r in xtr}
    assert not any(r.tobytes() in rows for r in xte)


def test_digits_mlp_default_config_reaches_95_percent():
    lines = []
    _, acc, losses = digits_mlp.train(log=lines.append)
    assert acc >= 0.95
    assert losses[-1] < losses[0] / 10
    assert len([ln for ln in lines if ln.startswith("epoch")]) == 30
    assert lines[-1].startswith("test accuracy")


def test_cli_train_runs_the_recipe(capsys):
    assert main(["train", "digits-mlp", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "epoch   5" in out and "test accuracy" in out


def test_cli_unknown_recipe_is_a_clear_error(capsys):
    assert main(["train", "nope"]) == 2
    assert "unknown recipe 'nope'" in capsys.readouterr().err


def test_python_dash_m_lamina_lists_recipes():
    out = subprocess.run([sys.executable, "-m", "lamina", "list"], capture_output=True,
                         text=True, check=True).stdout
    assert "digits-mlp" in out
