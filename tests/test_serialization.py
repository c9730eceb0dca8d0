"""mc.save / mc.load: bit-exact round trips, atomic writes, corrupt files, resuming training."""
import os
import zipfile

import numpy as np
import pytest

import minicnn as mc
from minicnn import nn, optim
from minicnn.optim import lr_scheduler
from minicnn.serialization import CheckpointError


def _tree():
    rng = np.random.default_rng(0)
    return {
        "f32": mc.tensor(rng.standard_normal((3, 4)).astype(np.float32)),
        "f64": mc.tensor(rng.standard_normal(5)),
        "f16": mc.tensor(rng.standard_normal(2).astype(np.float16)),
        "i64": mc.tensor(np.arange(6).reshape(2, 3)),
        "u8": np.arange(4, dtype=np.uint8),
        "b": np.array([True, False]),
        "scalar0d": mc.tensor(np.float32(3.5)),
        "empty": np.zeros((0, 3)),
        "param": nn.Parameter(mc.ones(2)),
        "npscalar": np.float64(1.25),
        "nested": [1, 2.5, float("inf"), float("-inf"), None, True, "s", (1, (2, 3))],
        "int_keys": {0: "a", 3: {"x": 1}},
        "tuple_key": {(1, 2): 3},
        "big_int": 2 ** 100 + 7,
        "nan": float("nan"),
    }


def _assert_same(a, b, where="obj"):
    if isinstance(a, mc.Tensor):
        assert isinstance(b, mc.Tensor), where
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert a.array.tobytes() == b.array.tobytes(), where  # bit-exact
        assert a.requires_grad == b.requires_grad, where
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape, where
        assert a.tobytes() == b.tobytes(), where
    elif isinstance(a, dict):
        assert type(b) is dict and list(a) == list(b), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), where
    else:
        assert a == b and type(a) is type(b), where


def test_round_trip_bit_exact(tmp_path):
    tree = _tree()
    path = tmp_path / "ck.npz"
    mc.save(tree, path)
    _assert_same(tree, mc.load(path))
    _assert_same(tree, mc.load(str(path), map_location="cpu"))
    with open(path, "rb") as fh:  # file objects work too
        _assert_same(tree, mc.load(fh))


def test_file_is_a_plain_npz_with_a_json_header(tmp_path):
    path = tmp_path / "model.ckpt"  # any name: no '.npz' is appended
    mc.save({"w": mc.ones(2)}, path)
    assert sorted(os.listdir(tmp_path)) == ["model.ckpt"]  # and no temp file left behind
    with np.load(path, allow_pickle=False) as z:
        assert set(z.files) == {"__minicnn__", "a0"}
        import json
        header = json.loads(z["__minicnn__"].tobytes())
    assert header["format"] == "minicnn-checkpoint" and header["version"] == 1
    assert header["object"] == {"__dict__": [["w", {"__tensor__": "a0", "device": "cpu",
                                                     "requires_grad": False}]]}


def test_model_and_optimizer_state_dicts_round_trip(tmp_path):
    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    opt = optim.Adam(net.parameters(), lr=0.01, amsgrad=True)
    net(mc.randn(5, 3)).sum().backward()
    opt.step()
    mc.save({"model": net.state_dict(), "optim": opt.state_dict()}, tmp_path / "ck")
    ck = mc.load(tmp_path / "ck")
    assert list(ck["model"]) == list(net.state_dict())
    _assert_same(dict(net.state_dict()), ck["model"])
    net2 = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    net2.load_state_dict(ck["model"])
    opt2 = optim.Adam(net2.parameters(), lr=0.5)
    opt2.load_state_dict(ck["optim"])
    assert opt2.param_groups[0]["lr"] == 0.01 and opt2.param_groups[0]["betas"] == (0.9, 0.999)
    for p, q in zip(net.parameters(), net2.parameters()):
        for k, v in opt.state[p].items():
            assert v.array.tobytes() == opt2.state[q][k].array.tobytes()


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "ck"
    mc.save({"v": mc.tensor([1.0, 2.0])}, path)
    old = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        mc.save({"v": mc.tensor([3.0])}, path)
    monkeypatch.undo()
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["ck"]  # the temp file was removed
    with pytest.raises(TypeError, match="cannot save obj\\['m'\\] of type Linear.*state_dict"):
        mc.save({"m": nn.Linear(1, 1)}, path)
    with pytest.raises(TypeError, match="object array"):
        mc.save(np.array([object()]), path)
    assert path.read_bytes() == old


def test_truncated_corrupt_and_foreign_files_raise_clearly(tmp_path):
    path = tmp_path / "ck"
    mc.save({"w": mc.randn(100, 100)}, path)
    data = path.read_bytes()
    cases = {
        "truncated": data[: len(data) // 2],
        "tiny": data[:10],
        "empty": b"",
        "garbage": os.urandom(2000),
    }
    # flip bytes inside the array's payload: the zip CRC catches it
    corrupt = bytearray(data)
    corrupt[len(data) // 2] ^= 0xFF
    cases["bitflip"] = bytes(corrupt)
    for name, blob in cases.items():
        bad = tmp_path / f"bad_{name}"
        bad.write_bytes(blob)
        with pytest.raises(CheckpointError, match="mc.load"):
            mc.load(bad)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, x=np.zeros(3))
    with pytest.raises(CheckpointError, match="no minicnn header"):
        mc.load(foreign)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, __minicnn__=np.zeros(1, np.uint8), a0=np.array([{"x": 1}], dtype=object))
    with pytest.raises(CheckpointError):
        mc.load(pickled)  # never unpickles
    with pytest.raises(FileNotFoundError):
        mc.load(tmp_path / "missing")


def test_header_array_mismatch_is_detected(tmp_path):
    path = tmp_path / "ck"
    mc.save({"w": mc.ones(3)}, path)
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    members["a0.npy"] = members["a0.npy"][:-4]  # a shorter array with a valid zip around it
    with zipfile.ZipFile(path, "w") as z:
        for n, b in members.items():
            z.writestr(n, b)
    with pytest.raises(CheckpointError):
        mc.load(path)


def test_bad_checkpoint_for_a_model_changes_nothing(tmp_path):
    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    before = {k: v.array.copy() for k, v in net.state_dict().items()}
    other = nn.Sequential(nn.Linear(3, 5), nn.Linear(5, 2))
    mc.save(other.state_dict(), tmp_path / "ck")
    with pytest.raises(RuntimeError, match="size mismatch for 0.weight"):
        net.load_state_dict(mc.load(tmp_path / "ck"))
    sd = other.state_dict()
    del sd["1.bias"]
    mc.save(sd, tmp_path / "ck2")
    with pytest.raises(RuntimeError, match="Missing key"):
        net.load_state_dict(mc.load(tmp_path / "ck2"))
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v.array, before[k])


def test_cuda_tagged_tensors_load_on_the_cpu(tmp_path):
    # a checkpoint written on a GPU stores host arrays tagged device='cuda'
    path = tmp_path / "gpu.ck"
    mc.save({"w": mc.ones(2)}, path)
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    import io
    import json
    header = json.loads(np.load(io.BytesIO(members["__minicnn__.npy"])).tobytes())
    header["object"]["__dict__"][0][1]["device"] = "cuda"
    buf = io.BytesIO()
    np.save(buf, np.frombuffer(json.dumps(header).encode(), np.uint8))
    members["__minicnn__.npy"] = buf.getvalue()
    with zipfile.ZipFile(path, "w") as z:
        for n, b in members.items():
            z.writestr(n, b)
    w = mc.load(path)["w"]
    expected = "cuda" if mc.cuda.is_available() else "cpu"
    assert w.device == expected and w.tolist() == [1.0, 1.0]
    assert mc.load(path, map_location="cpu")["w"].device == "cpu"


# --- resuming training ----------------------------------------------------------------------

def _setup():
    mc.manual_seed(123)
    net = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 1))
    opt = optim.Adam(net.parameters(), lr=0.05, weight_decay=0.01)
    sched = lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
    return net, opt, sched


def _train_step(net, opt, sched):
    x = mc.randn(16, 4)  # data drawn from the framework RNG: its state must be restored too
    y = (x * 0.5).sum(dim=1, keepdim=True)
    opt.zero_grad()
    d = net(x) - y
    loss = (d * d).mean()
    loss.backward()
    opt.step()
    sched.step()
    return loss.item()


def test_resume_from_checkpoint_gives_the_same_losses(tmp_path):
    net, opt, sched = _setup()
    straight = [_train_step(net, opt, sched) for _ in range(12)]

    net, opt, sched = _setup()
    first = [_train_step(net, opt, sched) for _ in range(5)]
    mc.save({"model": net.state_dict(), "optim": opt.state_dict(),
             "sched": sched.state_dict(), "rng": mc.get_rng_state()}, tmp_path / "ck")
    del net, opt, sched
    mc.manual_seed(999)  # a different process state before resuming
    net, opt, sched = _setup()
    mc.randn(7)
    ck = mc.load(tmp_path / "ck")
    net.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optim"])
    sched.load_state_dict(ck["sched"])
    mc.set_rng_state(ck["rng"])
    rest = [_train_step(net, opt, sched) for _ in range(7)]
    assert first + rest == straight  # exactly the same floats
