"""The summary of a comparison: per task and rule, the paper's differences, the markdown table and the plot."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

__all__ = ["BASELINES", "summarize", "summary_markdown", "plot_compare"]

# The non-BPTT rules that SOLSA is compared with (the paper's "other non-BPTT SNN learning rules").
BASELINES = ("eprop", "ottt", "ostl")


def _mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _task(run: dict[str, Any]) -> str:
    return run.get("suite_task", run["task"])


def _label(run: dict[str, Any]) -> str:
    return run.get("label", run["rule"])


def summarize(results: list[dict[str, Any]], rules: list[str]) -> dict[str, Any]:
    """Per task and rule (label, e.g. ``eprop@full``): accuracy mean ± std, bytes, seconds per epoch; the
    paper's differences. ``solsa_minus_best_non_bptt`` compares with the baselines on their papers' models
    (on whatever model they ran when none ran on its paper's); ``..._same_model`` with the baselines on the
    full SOLSA model — the rule's own contribution."""
    rows, diffs, paired = [], [], []
    for task in dict.fromkeys(_task(r) for r in results):
        per_rule: dict[str, dict[str, Any]] = {}
        for rule in rules:
            runs = [r for r in results if _task(r) == task and _label(r) == rule]
            if not runs:
                continue
            acc, acc_std = _mean_std([r["test_accuracy"] for r in runs])
            val, val_std = _mean_std([r["val_accuracy"] for r in runs if r.get("val_accuracy") is not None])
            per_rule[rule] = {
                "task": task,
                "rule": rule,
                "model": runs[0].get("model", runs[0].get("config", {}).get("model", "")),
                "runs": len(runs),
                "test_accuracy_mean": acc,
                "test_accuracy_std": acc_std,
                "val_accuracy_mean": val,
                "val_accuracy_std": val_std,
                "best_test_accuracy_mean": _mean_std([r["best_test_accuracy"] for r in runs])[0],
                "train_state_bytes": _mean_std([r["train_state_bytes"] for r in runs])[0],
                "seconds_per_epoch": _mean_std([r["seconds_per_epoch"] for r in runs])[0],
                "steps_processed_fraction": _mean_std([r["steps_processed_fraction"] for r in runs])[0],
                "chosen_params": json.dumps(runs[0].get("chosen_params", {})),
            }
        rows.extend(per_rule.values())
        d: dict[str, Any] = {"task": task}
        if "solsa" in per_rule:
            s = per_rule["solsa"]
            base = [r for r in per_rule.values() if r["rule"].split("@")[0] in BASELINES]
            on_paper = [r for r in base if r["model"] == "paper"] or base
            on_full = [r for r in base if r["model"] == "full"]
            for suffix, group in (("", on_paper), ("_same_model", on_full)):
                if group:
                    best = max(group, key=lambda r: r["test_accuracy_mean"])
                    d["best_non_bptt_rule" + suffix] = best["rule"]
                    d["solsa_minus_best_non_bptt" + suffix] = 100 * (s["test_accuracy_mean"] - best["test_accuracy_mean"])
            if "bptt" in per_rule:
                b = per_rule["bptt"]
                d["solsa_minus_bptt"] = 100 * (s["test_accuracy_mean"] - b["test_accuracy_mean"])
                d["memory_saving_vs_bptt"] = 1 - s["train_state_bytes"] / b["train_state_bytes"]
        diffs.append(d)
        if "solsa" in per_rule:
            paired.extend(_paired(results, task, "solsa", [r for r in per_rule if r != "solsa"]))
    average = {}
    for key in ("solsa_minus_best_non_bptt", "solsa_minus_best_non_bptt_same_model", "solsa_minus_bptt",
                "memory_saving_vs_bptt"):
        vals = [d[key] for d in diffs if key in d]
        if vals:
            average[key] = statistics.fmean(vals)
    return {"rows": rows, "differences": diffs, "average": average, "paired": paired}


def _paired(results: list[dict[str, Any]], task: str, rule: str, others: list[str]) -> list[dict[str, Any]]:
    """``rule`` against each of ``others`` seed by seed (the same seed draws the same data, split and
    initial weights for every rule): mean and standard error of the per-seed difference in test and
    validation accuracy (points), and the seeds where ``rule`` tests higher, equal, lower. With few seeds
    on a noisy task, a difference within about two standard errors is not evidence either way."""
    def by_seed(label: str) -> dict[int, dict[str, Any]]:
        return {r["seed"]: r for r in results if _task(r) == task and _label(r) == label and "seed" in r}

    mine, out = by_seed(rule), []
    for other in others:
        theirs = by_seed(other)
        seeds = sorted(set(mine) & set(theirs))
        if not seeds:
            continue
        entry: dict[str, Any] = {"task": task, "rule": rule, "vs": other, "seeds": len(seeds)}
        for split in ("test", "val"):
            if any(r.get(f"{split}_accuracy") is None for r in (*mine.values(), *theirs.values())):
                continue
            diff = [100 * (mine[s][f"{split}_accuracy"] - theirs[s][f"{split}_accuracy"]) for s in seeds]
            mean, std = _mean_std(diff)
            entry[f"{split}_diff_mean"] = mean
            entry[f"{split}_diff_se"] = std / math.sqrt(len(diff))
            if split == "test":
                entry["wins"] = sum(x > 0 for x in diff)
                entry["ties"] = sum(x == 0 for x in diff)
                entry["losses"] = sum(x < 0 for x in diff)
        out.append(entry)
    return out


def summary_markdown(summary: dict[str, Any], search: dict[str, list[Any]], tune: int = 0,
                     searches: list[dict[str, Any]] | None = None) -> str:
    lines = ["| task | rule | model | test accuracy (%) | train-state bytes | s / epoch | chosen |",
             "|---|---|---|---|---|---|---|"]
    for r in summary["rows"]:
        lines.append(
            f"| {r['task']} | {r['rule']} | {r.get('model', '')} | {100 * r['test_accuracy_mean']:.2f} ± "
            f"{100 * r['test_accuracy_std']:.2f} (n={r['runs']}) | {r['train_state_bytes']:,.0f} | "
            f"{r['seconds_per_epoch']:.2f} | {r['chosen_params']} |"
        )
    lines += ["", "| task | SOLSA − best non-BPTT (points) | SOLSA − best non-BPTT, same model (points) | "
              "SOLSA − BPTT (points) | 1 − SOLSA/BPTT bytes |", "|---|---|---|---|---|"]

    def fmt(d, key, pct=False):
        if key not in d:
            return "–"
        return f"{100 * d[key]:.1f} %" if pct else f"{d[key]:+.2f}"

    for d in summary["differences"] + ([{"task": "**average**", **summary["average"]}] if summary["average"] else []):
        extra = f" (vs {d['best_non_bptt_rule']})" if "best_non_bptt_rule" in d else ""
        same = f" (vs {d['best_non_bptt_rule_same_model']})" if "best_non_bptt_rule_same_model" in d else ""
        lines.append(f"| {d['task']} | {fmt(d, 'solsa_minus_best_non_bptt')}{extra} | "
                     f"{fmt(d, 'solsa_minus_best_non_bptt_same_model')}{same} | {fmt(d, 'solsa_minus_bptt')} | "
                     f"{fmt(d, 'memory_saving_vs_bptt', pct=True)} |")
    if summary.get("paired"):
        lines += ["", "SOLSA against each rule, seed by seed (same data, split and initial weights per seed): "
                  "mean ± standard error of the per-seed difference (points)", "",
                  "| task | vs | seeds | test | validation | SOLSA higher / equal / lower (test) |",
                  "|---|---|---|---|---|---|"]
        for p in summary["paired"]:
            val = f"{p['val_diff_mean']:+.2f} ± {p['val_diff_se']:.2f}" if "val_diff_mean" in p else "–"
            lines.append(f"| {p['task']} | {p['vs']} | {p['seeds']} | {p['test_diff_mean']:+.2f} ± "
                         f"{p['test_diff_se']:.2f} | {val} | {p['wins']} / {p['ties']} / {p['losses']} |")
    lines += ["", "Paper (abstract): SOLSA − non-BPTT rules +14.2 points; SOLSA − BPTT +5 points; 72 % less memory.",
              "Hyper-parameters: " + (f"an optuna study of {tune} trials per task and rule (the same space, split "
                                      "and scoring), chosen on validation; test never used." if tune else
                                      f"grid {search} per rule, trained on the first seed, chosen on validation "
                                      "accuracy (ties: validation loss); test never used." if search else
                                      "the same settings for every rule (no search).")]
    if tune:
        lines += ["", "| task | rule | start val | tuned val | scored on | tuning (s) |", "|---|---|---|---|---|---|"]
        for f in searches or []:
            start = "–" if f["start_val_accuracy"] is None else f"{100 * f['start_val_accuracy']:.2f}"
            lines.append(f"| {f['task']} | {f['rule']} | {start} | {100 * f['val_accuracy']:.2f} | {f['scoring']} | "
                         f"{f['tune_seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def plot_compare(path: str | Path, summary: dict[str, Any], results: list[dict[str, Any]] | None = None) -> None:
    """Accuracy and train-state bytes per rule and task; with ``results``, the learned α of each rule's
    first-seed run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..plots import filter_histogram
    from ..io import save_figure

    tasks = list(dict.fromkeys(r["task"] for r in summary["rows"]))
    n_rows = 3 if results else 2
    fig, axes = plt.subplots(n_rows, len(tasks), figsize=(4.5 * len(tasks), 3.5 * n_rows), squeeze=False)
    for i, task in enumerate(tasks):
        rows = [r for r in summary["rows"] if r["task"] == task]
        names = [r["rule"] for r in rows]
        ax = axes[0, i]
        ax.bar(names, [100 * r["test_accuracy_mean"] for r in rows], yerr=[100 * r["test_accuracy_std"] for r in rows],
               color=["C3" if n == "solsa" else "C0" for n in names], capsize=3)
        lo = min(100 * r["test_accuracy_mean"] for r in rows)
        ax.set_ylim(max(0, lo - 10), 100.5)
        ax.set_title(task), ax.set_ylabel("test accuracy (%)")
        ax.tick_params(axis="x", rotation=60)
        ax = axes[1, i]
        ax.bar(names, [r["train_state_bytes"] for r in rows], color="C2")
        ax.set_yscale("log"), ax.set_ylabel("train-state bytes")
        ax.tick_params(axis="x", rotation=60)
        if results:
            on_task = [r for r in results if _task(r) == task and r.get("learned_filters")]
            first_seed = min((r.get("seed", 0) for r in on_task), default=0)
            for run in (r for r in on_task if r.get("seed", 0) == first_seed):
                first = [dict(run["learned_filters"][0], layer=0)]  # the input layer's filters, one curve per rule
                filter_histogram(axes[2, i], first, "alpha", label=f"{_label(run)}, ")
            axes[2, i].set_title(f"learned α of the input layer, {task}")
    fig.tight_layout()
    save_figure(fig, path)
