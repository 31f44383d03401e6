"""The lamina command: train, eval, recipes, sweep, bench; bad arguments."""
import json
import os
import subprocess
import sys

import pytest

from lamina.cli import main


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "lamina", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


@pytest.mark.parametrize("args, message", [
    (["train", "nope"], "unknown recipe 'nope'"),
    (["train", "digits-mlp", "--lr", "-1"], "--lr must be positive"),
    (["train", "digits-mlp", "--epochs", "0"], "--epochs must be positive"),
    (["train", "digits-mlp", "--epochs", "x"], "invalid int value"),
    (["train", "digits-mlp", "--set", "nope=1"], "has no setting 'nope'"),
    (["train", "digits-mlp", "--set", "lr=fast"], "expected a number"),
    (["train", "digits-mlp", "--resume", "/no/such/file"], "no such checkpoint file"),
    (["eval", "/no/such/file"], "no such checkpoint file"),
    (["sweep", "digits-mlp", "--trials", "0"], "--trials must be positive"),
    (["bogus"], "invalid choice"),
    (["train"], "required: recipe"),
])
def test_bad_arguments_get_one_line_and_status_2(args, message):
    r = run_cli(*args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_every_subcommand_has_help():
    for cmd in ("train", "eval", "recipes", "sweep", "bench"):
        r = run_cli(cmd, "--help")
        assert r.returncode == 0 and "usage: lamina " + cmd in r.stdout


def test_recipes_lists_names_and_summaries(capsys):
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    assert "digits-mlp" in out and "fashion-mlp" in out and "97%" in out


def test_train_then_eval_then_resume(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "digits-mlp", "--quick", "--out", str(out), "--seed", "1",
                 "--set", "hidden=[32]"]) == 0
    text = capsys.readouterr().out
    assert "epoch   5/5" in text and "test accuracy" in text
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["hidden"] == [32] and res["config"]["seed"] == 1
    assert main(["eval", str(out / "best.safetensors")]) == 0
    text = capsys.readouterr().out
    assert "recipe digits-mlp" in text and "accuracy" in text
    assert main(["train", "digits-mlp", "--out", str(out), "--epochs", "7", "--seed", "1",
                 "--set", "hidden=[32]", "--resume", str(out / "last.safetensors")]) == 0
    text = capsys.readouterr().out
    assert "resumed from" in text and "epoch   6/7" in text and "epoch   1/7" not in text


def test_eval_rejects_a_file_that_is_not_a_checkpoint(tmp_path):
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"garbage!garbage!")
    r = run_cli("eval", str(bad))
    assert r.returncode == 2 and "x.safetensors" in r.stderr and "Traceback" not in r.stderr


def test_sweep_ranks_trials(tmp_path, capsys):
    assert main(["sweep", "digits-mlp", "--trials", "2", "--quick", "--out",
                 str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "sweep.json").read_text())
    assert len(rows) == 2 and rows[0]["val_accuracy"] >= rows[1]["val_accuracy"]
    assert "results, best first" in capsys.readouterr().out


def test_python_dash_m_lamina_lists_recipes():
    r = run_cli("list")
    assert r.returncode == 0 and "digits-mlp" in r.stdout


def test_a_setting_the_recipe_refuses_is_one_message_not_a_traceback(tmp_path):
    r = run_cli("train", "char-rnn", "--set", "cell=tanh", "--out", str(tmp_path))
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert "cell must be one of" in r.stderr and "'tanh'" in r.stderr, r.stderr
    env = dict(os.environ, LAMINA_TRACEBACK="1")
    r = subprocess.run([sys.executable, "-m", "lamina", "train", "char-rnn", "--set",
                        "cell=tanh", "--out", str(tmp_path)], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 1 and "Traceback" in r.stderr and "ValueError" in r.stderr
