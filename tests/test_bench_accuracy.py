"""``solsa bench accuracy`` on a tiny setting: the JSON and table carry the documented fields (no timing
assertions); the reference is scored on the rules' own split."""

import json

import pytest
from sklearn.dummy import DummyClassifier

from solsa.bench.accuracy import majority_rate, run_accuracy
from solsa.cli import main
from solsa.config import TrainConfig
from solsa.tasks import load_task


def test_accuracy_cli_tiny(tmp_path, capsys):
    out = tmp_path / "acc"
    assert main(["bench", "accuracy", "--sets", "ItalyPowerDemand", "--rules", "solsa,bptt", "--seeds", "2",
                 "--epochs", "1", "--hidden", "4", "--no-reference", "--out", str(out)]) == 0
    res = json.loads((out / "accuracy.json").read_text())
    assert res["sets"] == ["ItalyPowerDemand"] and res["seeds"] == [0, 1] and res["reference"] is None
    row = res["rows"][0]
    assert row["majority_rate"] == pytest.approx(majority_rate(load_task("uea:ItalyPowerDemand")))
    for rule in ("solsa", "bptt"):
        entry = row["rules"][rule]
        assert entry["runs"] == 2 and 0.0 <= entry["test_accuracy_mean"] <= 1.0 and entry["seconds_per_epoch"] > 0
    assert "| ItalyPowerDemand |" in (out / "accuracy.md").read_text()
    err = capsys.readouterr().err
    assert err.count("uea:ItalyPowerDemand solsa seed") == 2  # one progress line per run


def test_reference_is_scored_on_the_same_split(tmp_path):
    # a classifier that always answers the most frequent training class scores the majority rate exactly
    res = run_accuracy(TrainConfig(epochs=1, hidden=(4,)), tmp_path, sets=["ItalyPowerDemand"], rules=["solsa"],
                       seeds=[0], reference=lambda seed: DummyClassifier(strategy="most_frequent"))
    row = res["rows"][0]
    assert row["minirocket"]["test_accuracy_mean"] == pytest.approx(row["majority_rate"])
    gap = row["rules"]["solsa"]["gap_to_reference_points"]
    assert gap == pytest.approx(100 * (row["majority_rate"] - row["rules"]["solsa"]["test_accuracy_mean"]))
    assert "min_points_above_majority" in res["targets"]["solsa"]


def test_accuracy_needs_a_set(tmp_path):
    with pytest.raises(ValueError, match="sets is empty"):
        run_accuracy(TrainConfig(epochs=1), tmp_path, sets=[], rules=["solsa"], seeds=[0])
