"""``solsa bench workload``: the temporal workload distribution of one training sequence, per rule.

For each time step ``t`` of a sequence: the wall time of ``rule.step`` (median
over repeats; the rules take turns within each repeat, and each trains one
untimed sequence right before its timed one, so that its data are in cache as
in training, where sequences follow one another) and the arithmetic
it asks for (:class:`~solsa.bench.ops.OpCounter`). At the last step the time
and the count include ``flush`` — where BPTT runs its whole backward pass.
Reported per rule: the per-step profile, the peak-to-mean ratio of time and of
operations, and the latency from the last input step to updated weights
(last ``step`` + ``flush`` + optimizer step + clamp).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..io import save_figure
from .common import NetSpec, build_learner, machine_info, make_batch, summarize, train_one_sequence
from .ops import OpCounter

__all__ = ["run_workload", "plot_workload", "TARGET_PEAK_TO_MEAN"]

TARGET_PEAK_TO_MEAN = 1.5  # the target for SOLSA's per-step time


def _count_ops(name: str, spec: NetSpec, x, y, w) -> tuple[list[int], int]:
    """Operations per step (flush in the last) and of the optimizer step, on the PyTorch path of the rule."""
    # the reference backend: the same arithmetic as the fused kernel, visible to the counter
    learner = build_learner(name.partition("@")[0] + "@reference", spec)
    rule = learner.rule
    rule.reset(x.shape[1])
    ops = []
    for t in range(x.shape[0]):
        with OpCounter() as c:
            rule.step(x[t], y, w[t])
            if t == x.shape[0] - 1:
                rule.flush()
        ops.append(c.total)
    with OpCounter() as c:
        learner.apply()
    return ops, c.total


def _peak_to_mean(values: Sequence[float]) -> float:
    mean = sum(values) / len(values)
    return max(values) / mean if mean > 0 else float("nan")


def run_workload(
    rules: Sequence[str],
    T: int = 100,
    batch: int = 4,
    spec: NetSpec | None = None,
    repeats: int = 20,
    count_ops: bool = True,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """Run the workload benchmark; returns the JSON-ready result (``rules``: one entry per rule)."""
    spec = spec or NetSpec()
    x, y, w = make_batch(T, batch, spec)
    built = {name: build_learner(name, spec) for name in rules}
    times = {name: [[] for _ in range(T)] for name in rules}
    latency = {name: [] for name in rules}
    for rep in range(repeats + 1):  # repeat 0 warms up and is not recorded
        for name in rules:
            rule = built[name].rule
            train_one_sequence(built[name], x, y)  # untimed: the rule's caches are warm, as in training
            rule.reset(batch)
            per_step = []
            for t in range(T):
                t0 = time.perf_counter()
                rule.step(x[t], y, w[t])
                if t == T - 1:
                    rule.flush()
                per_step.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            built[name].apply()
            update = time.perf_counter() - t0
            if rep:
                for t, s in enumerate(per_step):
                    times[name][t].append(s)
                latency[name].append(per_step[-1] + update)
        log(f"workload repeat {rep}/{repeats}")
    entries = []
    for name in rules:
        med = [summarize(v)["median"] for v in times[name]]
        entry: dict[str, Any] = {
            "rule": name,
            "backend": built[name].rule.active_backend,
            "step_seconds_median": med,
            "step_seconds_q25": [summarize(v)["q25"] for v in times[name]],
            "step_seconds_q75": [summarize(v)["q75"] for v in times[name]],
            "mean_step_seconds": sum(med) / T,
            "peak_step_seconds": max(med),
            "peak_step": med.index(max(med)),
            "peak_to_mean_time": _peak_to_mean(med),
            "peak_to_mean_time_without_last": _peak_to_mean(med[:-1]) if T > 1 else None,
            "latency_to_updated_weights_seconds": summarize(latency[name]),
            "sequence_seconds": sum(med),
        }
        if count_ops:
            ops, opt_ops = _count_ops(name, spec, x, y, w)
            entry.update(ops_per_step=ops, ops_total=sum(ops), optimizer_ops=opt_ops,
                         peak_to_mean_ops=_peak_to_mean(ops), last_step_ops_share=ops[-1] / max(sum(ops), 1))
        entries.append(entry)
        latency_ms = entry["latency_to_updated_weights_seconds"]["median"] * 1e3
        log(f"workload {name:<14} mean {entry['mean_step_seconds'] * 1e6:8.1f} us  peak/mean "
            f"{entry['peak_to_mean_time']:.2f}  latency {latency_ms:.2f} ms")
    solsa = next((e for e in entries if e["rule"] == "solsa"), None)
    bptt = next((e for e in entries if e["rule"] == "bptt"), None)
    targets = {}
    if solsa is not None:
        targets = {"solsa_peak_to_mean_time": solsa["peak_to_mean_time"], "target": TARGET_PEAK_TO_MEAN,
                   "met": solsa["peak_to_mean_time"] <= TARGET_PEAK_TO_MEAN,
                   "bptt_peak_to_mean_time": bptt["peak_to_mean_time"] if bptt else None,
                   "solsa_peak_to_mean_ops": solsa.get("peak_to_mean_ops"),
                   "bptt_peak_to_mean_ops": bptt.get("peak_to_mean_ops") if bptt else None}
    return {
        "benchmark": "workload",
        "rules": entries,
        "targets": targets,
        "config": {"rules": list(rules), "T": T, "batch": batch, "repeats": repeats, "net": spec.to_dict(),
                   "threads": torch.get_num_threads(), "count_ops": count_ops},
        "machine": machine_info(),
    }


def plot_workload(result: dict[str, Any], path: str | Path) -> Path:
    """Timeline: time per step (and operations per step) for each rule, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = result["rules"]
    has_ops = any("ops_per_step" in e for e in entries)
    fig, axes = plt.subplots(1, 2 if has_ops else 1, figsize=(12 if has_ops else 6.5, 4.5), squeeze=False)
    for i, e in enumerate(entries):
        steps = range(1, len(e["step_seconds_median"]) + 1)
        axes[0][0].plot(steps, [s * 1e3 for s in e["step_seconds_median"]], color=f"C{i}",
                        label=f"{e['rule']} (peak/mean {e['peak_to_mean_time']:.1f})")
        if has_ops and "ops_per_step" in e:
            axes[0][1].plot(steps, e["ops_per_step"], color=f"C{i}",
                            label=f"{e['rule']} (peak/mean {e['peak_to_mean_ops']:.1f})")
    axes[0][0].set_ylabel("wall time per step [ms] (median)")
    axes[0][0].set_title("temporal workload: time (last step includes flush)")
    if has_ops:
        axes[0][1].set_ylabel("arithmetic operations per step")
        axes[0][1].set_title("temporal workload: operations")
    for ax in axes[0]:
        ax.set_yscale("log")
        ax.set_xlabel("time step")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    return Path(path)
