"""`minicnn train` and `minicnn evaluate` load each dataset split exactly once per run.

Run in-process, with the dataset classes replaced by subclasses that count their constructions.
"""
import collections
import json

import pytest

import minicnn.data as D
from minicnn import cli


def _counting(cls, counts):
    """A subclass of a dataset class that counts its constructions per (class, train split)."""
    class Counted(cls):
        def __init__(self, *args, **kwargs):
            counts[(cls.__name__, kwargs.get("train", True))] += 1
            super().__init__(*args, **kwargs)
    return Counted


@pytest.fixture
def loads(monkeypatch):
    counts = collections.Counter()
    for cls in (D.Digits, D.Shapes):
        monkeypatch.setattr(D, cls.__name__, _counting(cls, counts))
    # --threads would change this test process's Numba and BLAS thread counts for later tests
    monkeypatch.setattr(cli.train, "set_threads", lambda threads: None)
    monkeypatch.setattr(cli.common, "set_threads", lambda threads: None)   # evaluate's
    return counts


# every option that used to load a dataset again: a validation split, a test subset, augmentation
# (its preview plot shows raw training images), plots
RUNS = {
    "Digits": ["--augment", "light"],
    "Shapes": ["--dataset", "shapes", "--num-samples", "80", "--image-size", "12",
               "--model", "simple_cnn", "--augment", "strong"],
}


@pytest.mark.parametrize("dataset", sorted(RUNS))
def test_train_and_evaluate_load_each_split_once(loads, dataset, tmp_path):
    out = tmp_path / "run"
    argv = ["train", *RUNS[dataset], "--epochs", "1", "--steps-per-epoch", "1",
            "--batch-size", "8", "--val-fraction", "0.2", "--limit-test", "12", "--quiet",
            "--out", str(out)]
    assert cli.main(argv) == 0
    assert loads == {(dataset, True): 1, (dataset, False): 1}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["data"]["val_images"] > 0 and summary["data"]["test_images"] == 12

    loads.clear()
    assert cli.main(["evaluate", str(out / "model.mc"), "--json"]) == 0
    assert loads == {(dataset, False): 1}
