"""`minicnn export CHECKPOINT --format onnx|safetensors` on a tiny trained run."""
import json

import numpy as np
import pytest

import minicnn as mc
from minicnn.cli import main
from minicnn.cli.common import load_run, normalizer


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "run"
    assert main(["train", "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "16",
                 "--limit-test", "16", "--no-plots", "--quiet", "--out", str(out)]) == 0
    return out


def _minicnn_logits(checkpoint, images):
    model, meta = load_run(str(checkpoint), "cpu")
    with mc.no_grad():
        return model(mc.tensor(normalizer(meta)(images))).array


def test_export_onnx_takes_raw_images_like_predict(run_dir, capsys):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    assert main(["export", str(run_dir / "model.mc"), "--format", "onnx"]) == 0
    said = capsys.readouterr().out
    assert f"wrote {run_dir / 'model.onnx'}: lenet5 as ONNX (opset 17" in said
    assert "largest difference from minicnn" in said
    sess = ort.InferenceSession(str(run_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    for n in (1, 5):
        images = np.random.default_rng(n).uniform(0, 1, (n, 1, 16, 16)).astype(np.float32)
        (logits,) = sess.run(["logits"], {"input": images})
        np.testing.assert_allclose(logits, _minicnn_logits(run_dir / "model.mc", images),
                                   rtol=1e-4, atol=1e-4)


def test_export_safetensors_has_the_weights_and_the_run_in_its_metadata(run_dir):
    out = run_dir / "weights.safetensors"
    assert main(["export", str(run_dir / "model.mc"), "--format", "safetensors",
                 "--out", str(out)]) == 0
    weights, meta = mc.load_safetensors(out, return_metadata=True)
    model, run_meta = load_run(str(run_dir / "model.mc"), "cpu")
    state = model.state_dict()
    assert list(weights) and set(weights) == set(state)
    assert all(np.array_equal(weights[k].array, state[k].array) for k in state)
    assert meta["model"] == "lenet5" and json.loads(meta["classes"]) == run_meta["classes"]
    assert json.loads(meta["mean"]) == run_meta["mean"]


def test_export_errors_are_one_line(run_dir, tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing.mc"), "--format", "onnx"]) == 2
    assert "minicnn export: error: checkpoint not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", str(run_dir / "model.mc"), "--format", "pickle"])
