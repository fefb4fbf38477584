"""Smoke tests of ``solsa bench`` in quick mode: the JSON carries the documented keys (no timing assertions)."""

import json

import pytest
import torch

from solsa.bench.common import default_rules, parse_rules, summarize
from solsa.bench.ops import OpCounter
from solsa.cli import main
from solsa.rules import ABLATIONS, RULES, RuleSpec, SOLSA


def _run(tmp_path, name, *args):
    out = tmp_path / f"{name}.json"
    assert main(["bench", name, "--quick", "--quiet", "--out", str(out), *args]) == 0
    assert out.with_suffix(".png").exists()
    return json.loads(out.read_text())


def test_memory_quick_with_rss(tmp_path):
    res = _run(tmp_path, "memory", "--rules", "solsa,bptt", "--T", "5,25", "--filter-granularity", "layer",
               "--jobs", "2")
    assert {"rows", "break_even", "ratios", "targets", "config", "machine"} <= set(res)
    for row in res["rows"]:
        assert {"rule", "T", "batch", "train_state_bytes", "peak_rss_delta_bytes"} <= set(row), row
        assert row["peak_rss_delta_bytes"] >= 0 and row["train_state_bytes"] > 0
    solsa = {r["T"]: r["train_state_bytes"] for r in res["rows"] if r["rule"] == "solsa"}
    bptt = {r["T"]: r["train_state_bytes"] for r in res["rows"] if r["rule"] == "bptt"}
    assert solsa[5] == solsa[25]
    assert bptt[25] > 4 * bptt[5]
    assert res["targets"]["layer"]["solsa_bytes_identical_for_all_T"]
    crossing = res["break_even"][0]
    assert crossing["rule"] == "solsa" and crossing["break_even_T"] >= 1


def test_memory_exact_accounting_every_rule(tmp_path):
    out = tmp_path / "m.json"
    assert main(["bench", "memory", "--quick", "--quiet", "--no-rss", "--T", "3,12,48", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    rules = {r["rule"] for r in res["rows"]}
    assert rules == set(default_rules())
    for gran in ("layer", "channel"):
        rows = [r for r in res["rows"] if r["filter_granularity"] == gran]
        for rule in rules:
            sizes = [r["train_state_bytes"] for r in sorted(rows, key=lambda r: r["T"]) if r["rule"] == rule]
            if rule == "bptt":
                assert sizes[0] < sizes[1] < sizes[2]
            else:  # the online rules hold the same whatever T
                assert len(set(sizes)) == 1, (rule, sizes)
    # one α per channel keeps an extra [B, N_out, N_in] trace
    by = {(r["rule"], r["filter_granularity"]): r["train_state_bytes"] for r in res["rows"] if r["T"] == 3}
    assert by[("solsa", "channel")] > by[("solsa", "layer")]
    assert {c["batch"] for c in res["break_even"]} == {2}


def test_workload_quick(tmp_path):
    res = _run(tmp_path, "workload", "--rules", "solsa,bptt", "--T", "8")
    assert {"rules", "targets", "config", "machine"} <= set(res)
    entries = {e["rule"]: e for e in res["rules"]}
    for e in entries.values():
        assert len(e["step_seconds_median"]) == 8 and len(e["ops_per_step"]) == 8
        assert {"peak_to_mean_time", "peak_to_mean_ops", "latency_to_updated_weights_seconds", "backend"} <= set(e)
    # BPTT's backward lands on the last step; SOLSA's work is the same at every step
    assert entries["bptt"]["peak_to_mean_ops"] > entries["solsa"]["peak_to_mean_ops"]
    assert entries["bptt"]["last_step_ops_share"] > 0.3
    assert {"solsa_peak_to_mean_time", "bptt_peak_to_mean_time", "target", "met"} <= set(res["targets"])


def test_speed_quick(tmp_path):
    res = _run(tmp_path, "speed", "--rules", "solsa,solsa@reference,bptt", "--epoch-task", "patterns",
               "--epoch-rules", "solsa,bptt")
    assert {"throughput", "streaming", "epoch", "targets", "config", "machine"} <= set(res)
    for row in res["throughput"]:
        assert {"rule", "backend", "batch", "hidden", "sample_steps_per_second"} <= set(row)
        assert row["sample_steps_per_second"]["median"] > 0
    assert {r["batch"] for r in res["throughput"]} == {1, 2}
    assert {r["rule"] for r in res["streaming"]} == {"solsa", "solsa@reference", "bptt"}
    ref = next(r for r in res["streaming"] if r["rule"] == "solsa@reference")
    assert ref["backend"] == "reference"
    assert {r["rule"] for r in res["epoch"]["rows"]} == {"solsa", "bptt"}
    assert {"epoch_ratio", "stream_solsa_median_us"} <= set(res["targets"])


def test_default_rules_follow_the_registry(monkeypatch):
    assert "solsa" in default_rules() and "bptt" in default_rules()
    assert not set(ABLATIONS) & set(default_rules())
    assert "solsa-detachreset" not in default_rules()  # described as an ablation
    monkeypatch.setitem(RULES, "newrule", RuleSpec("newrule", SOLSA, "a rule added later"))
    assert "newrule" in default_rules()
    assert parse_rules(None, extra=("solsa@reference",))[-1] == "solsa@reference"
    with pytest.raises(ValueError, match="backend"):
        parse_rules("ottt@compiled")  # OTTT has reference and fused only
    with pytest.raises(ValueError, match="unknown rule"):
        parse_rules("nosuchrule")


def test_bad_options_are_errors(tmp_path, capsys):
    out = str(tmp_path / "x.json")
    assert main(["bench", "memory", "--quick", "--T", "0", "--out", out]) == 2
    assert main(["bench", "memory", "--quick", "--filter-granularity", "neuron", "--out", out]) == 2
    assert "error" in capsys.readouterr().err


def test_op_counter_counts_matmuls_and_elementwise():
    a, b = torch.randn(2, 3), torch.randn(3, 4)
    with OpCounter() as c:
        a @ b
    assert c.total == 2 * 2 * 3 * 4
    with OpCounter() as c:
        (a * 2).sum()
    assert c.total == 6 + 6


def test_summarize():
    s = summarize([3.0, 1.0, 2.0, 4.0])
    assert s["median"] == 2.5 and s["min"] == 1.0 and s["max"] == 4.0 and s["n"] == 4
