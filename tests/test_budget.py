"""Narrow trace storage (SOLSA's trace_dtype) and the memory budget (solsa.budget, --memory-budget)."""

import pytest
import torch

from solsa import SNN
from solsa.budget import LADDER, MemoryBudgetError, fit_memory_budget, state_bytes_of
from solsa.cli import main
from solsa.config import TrainConfig
from solsa.fast import fused_available
from solsa.rules import SOLSA
from solsa.training import train
from solsa.validation import OptionError

from test_training import tiny_task


def net_and_data(gran="channel", dtype=torch.float32):
    torch.manual_seed(4)
    net = SNN(6, [9, 7], 4, readout="leaky", readout_lam=0.0, alpha=0.5, beta=1.2, lam=0.6,
              filter_granularity=gran, weight_scale=2.5, dtype=dtype)
    g = torch.Generator().manual_seed(1)
    return net, torch.randn(30, 3, 6, generator=g, dtype=dtype), torch.tensor([0, 3, 1])


def gradients(net, x, y, **options):
    net.zero_grad(set_to_none=True)
    rule = SOLSA(net, "ce", backend="reference", **options)
    rule.sequence(x, y)
    return torch.cat([p.grad.flatten() for p in net.parameters()]), rule


@pytest.mark.parametrize("trace_dtype,tol", [("float16", 3e-3), ("bfloat16", 3e-2)])
def test_narrow_traces_halve_their_bytes_and_keep_the_gradient(trace_dtype, tol):
    net, x, y = net_and_data()
    full, rule = gradients(net, x, y)
    narrow, small = gradients(net, x, y, trace_dtype=trace_dtype)
    assert small.traces[1].e.dtype == getattr(torch, trace_dtype)
    assert small.traces[1].a.dtype == getattr(torch, trace_dtype)
    assert small.traces[0].credit.stages[0]["e"][0].dtype == getattr(torch, trace_dtype)
    assert small.traces[1].eps.dtype == torch.float32  # the [B, N] state stays in the network's dtype
    wide = sum(t.numel() for tr in rule.traces for t in (tr.e, tr.a))
    wide += sum(t.numel() for tr in rule.traces if tr.credit for st in tr.credit.stages
                for n, pair in st.items() if n in ("e", "a") for t in pair[: 2 - (pair[1] is pair[0])])
    assert rule.train_state_bytes() - small.train_state_bytes() == wide * 2
    err = ((narrow - full).abs().max() / full.abs().max()).item()
    assert 0 < err < tol  # rounded, not exact, but close
    assert torch.nn.functional.cosine_similarity(narrow, full, dim=0) > 0.9999


def test_narrow_traces_run_on_the_fused_path_and_are_validated():
    net, _, _ = net_and_data()
    rule = SOLSA(net, "ce", trace_dtype="float16")
    rule.reset(2)
    if fused_available():  # else the reason is the kernel's absence (tests/test_trace_storage.py compares them)
        assert rule.active_backend == "fused" and "trace_dtype" not in rule.fallback_reason
    with pytest.raises(ValueError, match="trace_dtype"):
        SOLSA(net, "ce", trace_dtype="int8")
    with pytest.raises(OptionError, match="trace_dtype") as err:
        TrainConfig(rule="bptt", trace_dtype="float16")
    assert err.value.option == "trace_dtype"


def test_ladder_starts_with_the_run_as_configured_and_ends_with_the_cheapest():
    assert LADDER[0] == {}
    assert LADDER[-1] == {"credit": "same-step", "trace_dtype": "float16", "filter_granularity": "layer"}


def test_budget_picks_the_most_exact_setting_that_fits():
    cfg = TrainConfig(hidden=(9, 7), batch_size=3, filter_granularity="channel")
    assert cfg.trace_dtype == "auto"  # the budget starts from full storage, the most exact
    sizes = {}
    for changes in ({}, {"filter_granularity": "first"}, {"filter_granularity": "layer"}, {"trace_dtype": "float16"},
                    {"trace_dtype": "float16", "filter_granularity": "layer"}):
        sizes[tuple(changes.items())] = state_bytes_of(cfg.replace(**{"trace_dtype": "full", **changes}), 6, 4)
    full = sizes[()]
    exact = fit_memory_budget(cfg.replace(memory_budget=full), 6, 4)
    assert exact.changes == {} and exact.config.trace_dtype == "full" and exact.state_bytes == full
    choice = fit_memory_budget(cfg.replace(memory_budget=full - 1), 6, 4)
    assert choice.changes == {"filter_granularity": "first"}
    assert choice.state_bytes == sizes[(("filter_granularity", "first"),)] < full
    assert "filter_granularity first" in choice.reason and str(full) in choice.reason
    choice = fit_memory_budget(cfg.replace(memory_budget=choice.state_bytes - 1), 6, 4)
    assert choice.changes == {"filter_granularity": "layer"}
    assert choice.state_bytes == sizes[(("filter_granularity", "layer"),)]
    cheap = sizes[(("trace_dtype", "float16"), ("filter_granularity", "layer"))]
    choice = fit_memory_budget(cfg.replace(memory_budget=cheap), 6, 4)
    assert choice.changes == {"trace_dtype": "float16", "filter_granularity": "layer"}
    assert choice.config.trace_dtype == "float16" and choice.config.filter_granularity == "layer"
    # below that: the credit gives way
    assert fit_memory_budget(cfg.replace(memory_budget=cheap - 1), 6, 4).changes["credit"] in ("next", "same-step")


def test_the_default_run_steps_from_first_to_layer():
    cfg = TrainConfig(hidden=(9, 7), batch_size=3, trace_dtype="full")
    assert cfg.filter_granularity == "first"
    full = state_bytes_of(cfg, 6, 4)
    assert state_bytes_of(cfg.replace(filter_granularity="channel"), 6, 4) > full  # never a rung
    assert fit_memory_budget(cfg.replace(memory_budget=full - 1), 6, 4).changes == {"filter_granularity": "layer"}


def test_budget_never_makes_a_chosen_setting_more_expensive():
    cfg = TrainConfig(hidden=(9, 7), batch_size=3, filter_granularity="layer", credit="next", memory_budget=1)
    with pytest.raises(MemoryBudgetError) as err:
        fit_memory_budget(cfg, 6, 4)
    assert err.value.option == "memory_budget" and "no setting fits" in str(err.value)
    smallest = state_bytes_of(cfg.replace(credit="same-step", trace_dtype="float16"), 6, 4)
    assert f"{smallest} bytes" in str(err.value)


def test_budget_refuses_bptt():
    with pytest.raises(MemoryBudgetError, match="online rules"):
        fit_memory_budget(TrainConfig(rule="bptt", hidden=(4,), memory_budget=10**9), 6, 2)


def test_train_with_a_budget_prints_and_records_the_choice():
    lines = []
    base = TrainConfig(task="tiny", hidden=(8, 8), epochs=1, lr=0.01, batch_size=8, trace_dtype="full")
    full = state_bytes_of(base, 6, 2)
    m = train(base.replace(memory_budget=full - 1), task=tiny_task(), progress=False, log=lines.append)
    choice = m["memory_budget_choice"]
    assert choice["changes"] == {"filter_granularity": "layer"} and choice["state_bytes"] < full
    assert any("memory_budget" in line and "filter_granularity layer" in line for line in lines)
    assert m["train_state_bytes"] == choice["state_bytes"]
    assert m["config"]["memory_budget"] == full - 1 and m["config"]["filter_granularity"] == "first"


def test_a_budget_run_evaluates_from_its_checkpoint(tmp_path):
    from solsa.evaluation import network_from_checkpoint

    base = TrainConfig(task="tiny", hidden=(8, 8), epochs=1, lr=0.01, batch_size=8)
    cfg = base.replace(memory_budget=state_bytes_of(base, 6, 2) - 1)
    m = train(cfg, tmp_path / "run", task=tiny_task(), progress=False, log=None)
    net, built, _ = network_from_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert built.filter_granularity == "layer" and net.layers[0].alpha.dim() == 0
    assert m["config"] == cfg.to_dict()  # the run's own options: a rerun with them finds it finished
    from solsa.runs import finished_run

    assert finished_run(cfg, tmp_path / "run")["test_accuracy"] == m["test_accuracy"]


def test_cli_refuses_a_budget_nothing_fits(capsys, tmp_path):
    code = main(["train", "--task", "patterns", "--hidden", "8", "--epochs", "1", "--memory-budget", "10",
                 "--out", str(tmp_path / "run")])
    assert code == 2
    err = capsys.readouterr().err
    assert "--memory-budget 10 bytes: no setting fits" in err


def test_gradcheck_reports_the_storage_error():
    from solsa.gradcheck import gradcheck

    report = gradcheck(layers=2, T=20, readout="leaky", lam_granularity="layer", trace_dtype="float16")
    assert report["trace_dtype"] == "float16"
    assert 0 < report["storage_rel_error"]["weight"] < 3e-3
    assert "storage_rel_error" not in gradcheck(layers=2, T=20, readout="leaky", lam_granularity="layer")


def test_bench_suite_ratios_and_candidates(monkeypatch):
    import solsa.compare as compare
    from solsa.bench.common import NetSpec
    from solsa.bench.memory_default import storage_candidates, suite_ratios

    monkeypatch.setitem(compare.SUITES, "tiny", {"patterns": {"hidden": (8,), "batch_size": 2}})
    row, = suite_ratios("tiny")
    assert row["task"] == "patterns" and row["batch"] == 2 and row["T"] > 0
    assert row["ratio_to_bptt"] == row["solsa_bytes"] / row["bptt_bytes"]
    full, = suite_ratios("tiny", options={"trace_dtype": "full"})  # the default stores float16 (trace_dtype auto)
    assert full["solsa_bytes"] > row["solsa_bytes"] and full["bptt_bytes"] == row["bptt_bytes"]
    rows = storage_candidates(T=10, batch=2, spec=NetSpec(6, (8, 8), 3, "channel"), repeats=1,
                              names=["per channel", "float16 traces"])
    full, half = rows
    assert full["max_rel_error_to_float64"] < 1e-5 < half["max_rel_error_to_float64"] < 1e-2
    assert half["train_state_bytes"] < full["train_state_bytes"]
    assert half["backend"] == ("fused" if fused_available() else "reference")
