"""safetensors files through the safetensors package: minicnn's round trip (shapes, 0-d tensors,
dtypes, metadata), a file written by minicnn read by PyTorch and the reverse, atomic writes and
clear errors. Skipped without the package (the [safetensors] extra)."""
import os

import numpy as np
import pytest

import minicnn as mc
from minicnn import nn
from minicnn.serialization import CheckpointError

pytest.importorskip("safetensors")


def _state():
    mc.manual_seed(0)
    model = mc.models.resnet18_cifar(num_classes=5, width=4)
    sd = dict(model.state_dict())
    rng = np.random.default_rng(0)
    sd.update({
        "scalar": mc.tensor(np.float32(2.5)),                    # 0-d
        "count": mc.tensor(np.int64(7)),
        "half": mc.tensor(rng.standard_normal((3, 2)).astype(np.float16)),
        "double": mc.tensor(rng.standard_normal(4)),
        "mask": mc.tensor(np.array([True, False, True])),
        "bytes": mc.tensor(np.arange(5, dtype=np.uint8)),
        "int32": mc.tensor(np.arange(-3, 3, dtype=np.int32).reshape(2, 3)),
        "transposed": mc.tensor(rng.standard_normal((3, 4)).astype(np.float32).T),
        "empty": mc.tensor(np.zeros((0, 3), np.float32)),
    })
    return sd


def _assert_same(a, b):
    assert list(a) == list(b) or set(a) == set(b)
    for k in a:
        x, y = a[k].array, b[k].array
        assert x.shape == y.shape and x.dtype == y.dtype, k
        np.testing.assert_array_equal(x, y, err_msg=k)


def test_round_trip_keeps_values_shapes_dtypes_and_metadata(tmp_path):
    sd = _state()
    path = tmp_path / "m.safetensors"
    assert mc.save_safetensors(sd, path, metadata={"arch": "resnet18_cifar"}) == str(path)
    back, meta = mc.load_safetensors(path, return_metadata=True)
    _assert_same(sd, back)
    assert back["scalar"].shape == () and back["count"].dtype == mc.int64
    assert meta == {"arch": "resnet18_cifar"}
    model = mc.models.resnet18_cifar(num_classes=5, width=4)
    model.load_state_dict({k: v for k, v in back.items() if k in model.state_dict()})


def test_mc_save_and_load_choose_safetensors_by_extension_or_format(tmp_path):
    sd = {"w": mc.randn(2, 3), "b": mc.zeros(3)}
    mc.save(sd, tmp_path / "a.safetensors")
    _assert_same(sd, mc.load(tmp_path / "a.safetensors"))
    mc.save(sd, tmp_path / "a.bin", format="safetensors")
    assert open(tmp_path / "a.bin", "rb").read(9)[8:9] == b"{"       # a JSON header
    _assert_same(sd, mc.load(tmp_path / "a.bin", format="safetensors"))
    with open(tmp_path / "b.st", "wb") as f:
        mc.save(sd, f, format="safetensors")
    with open(tmp_path / "b.st", "rb") as f:
        _assert_same(sd, mc.load(f, format="safetensors"))
    with pytest.raises(ValueError, match="format must be"):
        mc.save(sd, tmp_path / "c", format="pickle")


def test_minicnn_file_loads_in_pytorch_and_back():
    pytest.importorskip("torch")
    from safetensors.torch import load_file, save_file
    import tempfile
    sd = _state()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.safetensors")
        mc.save_safetensors(sd, path)
        loaded = load_file(path)
        assert set(loaded) == set(sd)
        for k, t in loaded.items():
            assert tuple(t.shape) == sd[k].shape, k
            assert str(t.dtype).replace("torch.", "") == str(sd[k].dtype), k
            np.testing.assert_array_equal(t.numpy(), sd[k].array, err_msg=k)
        # and PyTorch's file into minicnn
        theirs = {k: v.clone() * 2 if v.is_floating_point() else v.clone()
                  for k, v in loaded.items()}
        save_file(theirs, path, metadata={"from": "torch"})
        back, meta = mc.load_safetensors(path, return_metadata=True)
        assert meta == {"from": "torch"}
        for k, t in theirs.items():
            assert back[k].shape == tuple(t.shape), k
            np.testing.assert_array_equal(back[k].array, t.numpy(), err_msg=k)


def test_a_pytorch_model_and_a_minicnn_model_exchange_weights(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file, save_file
    torch.manual_seed(0)
    tm = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4),
                             torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 3))
    tm.train()(torch.randn(8, 1, 8, 8))          # running statistics that are not the default
    tm.eval()
    mm = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                       nn.Linear(4 * 6 * 6, 3)).eval()
    save_file({k: v.contiguous() for k, v in tm.state_dict().items()}, tmp_path / "t.safetensors")
    mm.load_state_dict(mc.load_safetensors(tmp_path / "t.safetensors"))
    x = np.random.default_rng(1).standard_normal((2, 1, 8, 8)).astype(np.float32)
    with torch.no_grad():
        want = tm(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(mm(mc.tensor(x)).array, want, rtol=1e-5, atol=1e-6)
    # and back: minicnn's weights into a fresh PyTorch model
    mc.save_safetensors(mm.state_dict(), tmp_path / "m.safetensors")
    fresh = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4),
                                torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 6 * 6, 3)).eval()
    fresh.load_state_dict(load_file(tmp_path / "m.safetensors"))
    with torch.no_grad():
        np.testing.assert_allclose(fresh(torch.from_numpy(x)).numpy(), want, rtol=1e-6)


def test_bfloat16_and_broken_files_raise_clear_errors(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file
    save_file({"w": torch.ones(2, dtype=torch.bfloat16)}, tmp_path / "bf.safetensors")
    with pytest.raises(CheckpointError, match="'w'.*bfloat16"):
        mc.load_safetensors(tmp_path / "bf.safetensors")
    good = tmp_path / "good.safetensors"
    mc.save_safetensors({"w": mc.ones(100)}, good)
    data = good.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match="cannot read .*cut.safetensors.* as a safetensors"):
        mc.load_safetensors(tmp_path / "cut.safetensors")
    with pytest.raises(FileNotFoundError):
        mc.load_safetensors(tmp_path / "missing.safetensors")


def test_writes_are_atomic_and_bad_values_are_named(tmp_path):
    path = tmp_path / "m.safetensors"
    mc.save_safetensors({"w": mc.ones(3)}, path)
    before = path.read_bytes()
    with pytest.raises(TypeError, match="'opt' is a dict, not a tensor.*flat dict"):
        mc.save_safetensors({"w": mc.zeros(3), "opt": {"lr": 0.1}}, path)
    with pytest.raises(TypeError, match="keys must be strings"):
        mc.save_safetensors({1: mc.zeros(3)}, path)
    with pytest.raises(TypeError, match="metadata must map str to str"):
        mc.save_safetensors({"w": mc.zeros(3)}, path, metadata={"epoch": 3})
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.safetensors"]      # no temporary file left
