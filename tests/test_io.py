"""lamina.save / lamina.load: round trips, safetensors compatibility, atomic writes, and
clear errors for damaged files."""
import os

import numpy as np
import pytest

import lamina
from lamina import nn
from lamina.io import CheckpointError


def sample_checkpoint():
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    opt = lamina.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(lamina.randn(5, 3)).sum().backward()
    opt.step()
    return net, {
        "model": net.state_dict(),
        "optimizer": opt.state_dict(),               # int keys, flat arrays, floats, bools
        "epoch": 3, "step": 120, "best": float("inf"), "name": "mlp", "note": None,
        "rng": np.random.default_rng(5).bit_generator.state,   # 128-bit ints
        "history": [{"loss": 0.5, "acc": 0.9}, {"loss": 0.25, "acc": 0.95}],
        "shape": (2, 3),
        "mask": np.array([True, False]),
        "half": np.arange(4, dtype=np.float16),
        "scalar": np.float32(2.5),
    }


def assert_same(a, b, path="root"):
    same_kind = (isinstance(a, dict) and isinstance(b, dict)) or type(a) is type(b)
    assert same_kind, f"{path}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, lamina.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape, path
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=path)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype, path
        np.testing.assert_array_equal(a, b, err_msg=path)
    elif isinstance(a, dict):
        assert list(a) == list(b), path
        for k in a:
            assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}.{i}")
    else:
        assert a == b, path


def test_round_trip_of_a_full_checkpoint(tmp_path):
    _, ck = sample_checkpoint()
    p = tmp_path / "ck.safetensors"
    lamina.save(ck, p)
    back = lamina.load(p)
    expected = dict(ck)
    expected["scalar"] = 2.5                           # NumPy scalars come back as Python
    assert_same(expected, back)
    assert isinstance(back["model"]["0.weight"], lamina.Tensor)
    arrays = lamina.load(p, as_numpy=True)
    assert isinstance(arrays["model"]["0.weight"], np.ndarray)


def test_model_and_optimizer_resume_from_the_file(tmp_path):
    net, ck = sample_checkpoint()
    lamina.save(ck, tmp_path / "ck")
    back = lamina.load(tmp_path / "ck")
    net2 = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    net2.load_state_dict(back["model"])
    opt2 = lamina.optim.SGD(net2.parameters(), lr=0.1, momentum=0.9)
    opt2.load_state_dict(back["optimizer"])
    x = lamina.randn(4, 3)
    net.eval(), net2.eval()
    np.testing.assert_array_equal(net(x).numpy(), net2(x).numpy())


def test_file_is_standard_safetensors(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    _, ck = sample_checkpoint()
    p = str(tmp_path / "ck.safetensors")
    lamina.save(ck["model"], p)
    theirs = safetensors_numpy.load_file(p)
    for k, v in ck["model"].items():
        np.testing.assert_array_equal(theirs[k], v.numpy())
    # and a file written by the safetensors library loads as a flat dict
    q = str(tmp_path / "theirs.safetensors")
    safetensors_numpy.save_file({"w": np.eye(3, dtype=np.float32),
                                 "n": np.arange(3, dtype=np.int64)}, q)
    got = lamina.load(q)
    np.testing.assert_array_equal(got["w"].numpy(), np.eye(3))
    assert got["n"].dtype == lamina.int64


def test_truncated_and_corrupted_files_name_the_file(tmp_path):
    _, ck = sample_checkpoint()
    p = tmp_path / "ck"
    lamina.save(ck, p)
    raw = p.read_bytes()
    cases = {
        "short": raw[:5],
        "truncated_header": raw[:40],
        "truncated_data": raw[:-7],
        "garbage": b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!",
    }
    flipped = bytearray(raw)
    flipped[-3] ^= 0xFF                                # one bit-flipped data byte
    cases["flipped"] = bytes(flipped)
    for name, data in cases.items():
        q = tmp_path / name
        q.write_bytes(data)
        with pytest.raises(CheckpointError, match=name):
            lamina.load(q)
    with pytest.raises(FileNotFoundError, match="no such file"):
        lamina.load(tmp_path / "missing")


def test_unsupported_objects_are_refused_before_writing(tmp_path):
    p = tmp_path / "x"
    with pytest.raises(TypeError, match="lamina.save.*function"):
        lamina.save({"f": lambda: 0}, p)
    assert not p.exists()


def test_save_is_atomic(tmp_path, monkeypatch):
    p = tmp_path / "ck"
    lamina.save({"w": np.ones(3)}, p)
    before = p.read_bytes()

    def crash(*a, **k):
        raise OSError("disk died mid-save")
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk died"):
        lamina.save({"w": np.zeros(1000)}, p)
    assert p.read_bytes() == before                    # the old checkpoint is intact
    assert os.listdir(tmp_path) == ["ck"]              # no temporary left behind


def test_loading_never_unpickles(tmp_path):
    # a header whose metadata tries to smuggle a pickle: it is just a string to lamina
    import json
    import struct
    header = {"__metadata__": {"format": "lamina-checkpoint/1",
                               "lamina": json.dumps({"__pickle__": "cos\nsystem\n(S'echo'\ntR."})}}
    head = json.dumps(header).encode()
    (tmp_path / "evil").write_bytes(struct.pack("<Q", len(head)) + head)
    assert lamina.load(tmp_path / "evil") == {"__pickle__": "cos\nsystem\n(S'echo'\ntR."}
