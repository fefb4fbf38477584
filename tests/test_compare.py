"""solsa compare: rules on several neuron models, suite entries that reuse a task, the summary's differences."""

import json

import pytest

from solsa.cli import main
from solsa.compare import SUITES, plan_entries, plan_tasks
from solsa.compare.report import summarize, summary_markdown
from solsa.config import TrainConfig
from solsa.validation import OptionError


def test_plan_entries_runs_each_distinct_model_once():
    entries = plan_entries(["solsa", "bptt", "eprop", "solsa-nofilter"], ("paper", "full"))
    assert entries == [("solsa", "solsa", "full"), ("bptt", "bptt", "full"), ("eprop@paper", "eprop", "paper"),
                       ("eprop@full", "eprop", "full"), ("solsa-nofilter", "solsa-nofilter", "full")]
    assert plan_entries(["eprop"], ("paper",)) == [("eprop", "eprop", "paper")]
    with pytest.raises(OptionError, match="models must be one of"):
        plan_entries(["eprop"], ("tiny",))


def test_suite_has_the_slow_readout_patterns_task():
    tasks = plan_tasks(TrainConfig(), "paper", {})
    assert tasks["patterns-slow-readout"]["task"] == "patterns"
    assert tasks["patterns-slow-readout"]["readout_alpha"] == 0.9 and tasks["patterns"]["readout_alpha"] == 0.0
    assert set(SUITES["paper"]) == set(tasks)


def _run(task, label, model, acc, nbytes=100):
    return {"task": task, "suite_task": task, "rule": label.split("@")[0], "label": label, "model": model,
            "test_accuracy": acc, "best_test_accuracy": acc, "train_state_bytes": nbytes, "seconds_per_epoch": 1.0,
            "steps_processed_fraction": 1.0, "chosen_params": {}}


def test_summary_separates_rule_from_model():
    results = [_run("t", "solsa", "full", 0.80), _run("t", "bptt", "full", 0.78, 400),
               _run("t", "eprop@paper", "paper", 0.70), _run("t", "eprop@full", "full", 0.85)]
    d = summarize(results, ["solsa", "bptt", "eprop@paper", "eprop@full"])["differences"][0]
    assert d["best_non_bptt_rule"] == "eprop@paper" and d["solsa_minus_best_non_bptt"] == pytest.approx(10.0)
    assert d["best_non_bptt_rule_same_model"] == "eprop@full"
    assert d["solsa_minus_best_non_bptt_same_model"] == pytest.approx(-5.0)
    assert d["memory_saving_vs_bptt"] == pytest.approx(0.75)


def test_summary_pairs_seeds():
    # per-seed test differences +2, 0, -1 points; validation +1, +1, +1
    results = []
    for seed, (a, b) in enumerate([(0.92, 0.90), (0.95, 0.95), (0.88, 0.89)]):
        for label, acc, val in (("solsa", a, 0.81), ("solsa-fixedfilter", b, 0.80)):
            results.append({**_run("t", label, "full", acc), "seed": seed, "val_accuracy": val})
    summary = summarize(results, ["solsa", "solsa-fixedfilter"])
    (p,) = summary["paired"]
    assert (p["vs"], p["seeds"], p["wins"], p["ties"], p["losses"]) == ("solsa-fixedfilter", 3, 1, 1, 1)
    assert p["test_diff_mean"] == pytest.approx(1 / 3)
    assert p["test_diff_se"] == pytest.approx((7 / 3) ** 0.5 / 3 ** 0.5)  # sample std of (2, 0, -1) / sqrt(3)
    assert p["val_diff_mean"] == pytest.approx(1.0) and p["val_diff_se"] == pytest.approx(0.0, abs=1e-12)
    assert summary["rows"][0]["val_accuracy_mean"] == pytest.approx(0.81)
    assert "seed by seed" in summary_markdown(summary, {})


def test_compare_two_models_end_to_end(npz_task, tmp_path):
    out = tmp_path / "cmp"
    assert main(["compare", "--task", npz_task, "--rules", "solsa,eprop", "--models", "paper,full", "--seeds", "1",
                 "--no-search", "--hidden", "8", "--epochs", "1", "--batch-size", "8", "--out", str(out),
                 "--quiet"]) == 0
    runs = json.loads((out / "results.json").read_text())
    assert sorted((r["label"], r["config"]["model"]) for r in runs) == [
        ("eprop@full", "full"), ("eprop@paper", "paper"), ("solsa", "full")]
    assert "same model" in (out / "summary.md").read_text()
