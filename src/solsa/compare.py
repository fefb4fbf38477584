"""``solsa compare``: every rule × seed on the same data split, architecture, epochs and search budget.

Hyper-parameters are chosen per rule by the same small grid search (``search``,
default the learning rate), trained on seed 0 and scored on the *validation*
split (accuracy, ties to the lower validation loss); test data never enters the
choice. The search run of the chosen point is the first seed's run (same
config, same seed: training is deterministic). Finished runs are kept under
``OUT/runs`` and skipped when the comparison is resumed.

With ``tune`` (``solsa compare --tune N``) the grid is replaced by an optuna study of N trials per
task and rule (:func:`solsa.tune.tune`, ``OUT/tune/TASK/RULE``): every rule gets the same number of
trials over the same space (less the options the user gave and those its neuron model fixes), on the
same split, scored the same way; then the chosen configuration is trained on every seed.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import statistics
from pathlib import Path
from typing import Any, Callable

from .config import TrainConfig
from .factories import build_network, build_rule
from .io import atomic_write, write_csv, write_json
from .runs import finished_run
from .training import train
from .validation import OptionError, check_choice

__all__ = ["SUITES", "BASELINES", "COMPARE_DEFAULTS", "check_rules", "plan_tasks", "compare", "summarize"]

# Each rule trains its own paper's neuron model unless the user names a model.
COMPARE_DEFAULTS = {"model": "paper"}

# The non-BPTT rules that SOLSA is compared with (the paper's "other non-BPTT SNN learning rules").
BASELINES = ("eprop", "ottt", "ostl")

# Bundled tasks of the paper suite, with the per-task options that differ from the defaults.
SUITES: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {
        # T = 100, 32 training samples: small batches for enough updates; one α, β per layer (the paper's)
        "uea:BasicMotions": {"epochs": 30, "batch_size": 8, "filter_granularity": "layer"},
        "uea:JapaneseVowels": {"epochs": 40},
        "digits": {"epochs": 10, "batch_size": 32},
        # order of cues ≥ 15 steps apart: the hidden layers need slow decays to remember; the readout
        # starts without a filter, as on the other tasks (chosen on validation, see README)
        "patterns": {"epochs": 15, "alpha": 0.9, "lam": 0.9, "filter_granularity": "layer", "readout_alpha": 0.0},
    }
}


def check_rules(cfg: TrainConfig, rules: list[str]) -> None:
    """Fail before any training: unknown rules, or a rule that cannot run on the chosen model."""
    if not rules:
        raise OptionError("rules", "rules is empty; name at least one rule, e.g. solsa,bptt")
    for name in rules:
        rule_cfg = dataclasses.replace(cfg, rule=name)  # an unknown rule fails here, listing the valid ones
        try:
            rule = build_rule(rule_cfg, build_network(rule_cfg, 2, 2))
        except ValueError as err:
            raise ValueError(f"rule {name!r} cannot run on model {cfg.model!r}: {err}") from None
        if cfg.schedule.startswith("search") and not rule.capabilities.step_magnitude:
            raise ValueError(f"rule {name!r} cannot use schedule {cfg.schedule!r}: it reports no per-step gradient")


def plan_tasks(base: TrainConfig, suite: str | None = None, given: dict[str, Any] | None = None
               ) -> dict[str, dict[str, Any]]:
    """The tasks of a comparison and, per task, the options that differ from ``base``.

    Without a suite: ``base.task`` alone. With one: the suite's tasks and per-task settings, where every
    option the user gave (``given``: from a config file or the command line) wins over the suite's.
    """
    if suite is None:
        return {base.task: {}}
    check_choice("suite", suite, SUITES)
    user = {k: v for k, v in (given or {}).items() if k not in ("task", "rule")}
    return {task: {**options, **user} for task, options in SUITES[suite].items()}


def _safe(task: str) -> str:
    return task.replace(":", "-").replace("/", "_")


def _run_dir(out: Path, task: str, rule: str, tag: str) -> Path:
    return out / "runs" / _safe(task) / rule / tag


def _load_or_train(cfg: TrainConfig, run_dir: Path, log, replace: bool = False) -> dict[str, Any]:
    """A finished run is reused only if it was trained with exactly this config; one trained with another is
    an error, or with ``replace`` (a study that went on chose another configuration) retrained."""
    try:
        metrics = finished_run(cfg, run_dir)
    except ValueError:
        if not replace:
            raise
        metrics = None
    return metrics if metrics is not None else train(cfg, run_dir, force=True, progress=False, log=log)


def _tune_rule(cfg: TrainConfig, out: Path, given: dict[str, Any] | None, trials: int, log) -> tuple[dict, dict]:
    """One rule's study (``OUT/tune/TASK/RULE``): the chosen option changes and a record of the search."""
    from .tune import tune

    fixed = {k: v for k, v in (given or {}).items() if k not in ("task", "rule")}
    r = tune(cfg, out / "tune" / _safe(cfg.task) / cfg.rule, given=fixed, trials=trials, final=False, log=log)
    found = {"task": cfg.task, "rule": cfg.rule, "params": r["best_params"], "val_accuracy": r["best_val_accuracy"],
             "val_loss": r["best_val_loss"], "scoring": r["scoring"], "trials": r["trials"],
             "tune_seconds": r["search_seconds"], "start_val_accuracy": (r["start_trial"] or {}).get("val_accuracy")}
    return r["changes"], found


def _search_grid(search: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = list(search)
    return [dict(zip(keys, values)) for values in itertools.product(*(search[k] for k in keys))]


def compare(
    base: TrainConfig,
    rules: list[str],
    seeds: list[int],
    out: str | Path,
    *,
    tasks: dict[str, dict[str, Any]] | None = None,
    suite: str | None = None,
    given: dict[str, Any] | None = None,
    search: dict[str, list[Any]] | None = None,
    tune: int = 0,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the comparison; write ``results.json`` (a list: one object per run, the fields of ``metrics.json``
    and ``chosen_params``), ``summary.json`` (the search and the summary), ``summary.md``, ``summary.csv``
    and ``compare.png``. Returns the report dict (``summary.json``'s content plus ``runs``).

    ``tasks`` (task -> option overrides) or ``suite`` with the options the user ``given`` (see
    :func:`plan_tasks`). ``log`` gets each distinct notice of the runs once (e.g. a backend fallback).
    ``tune``: trials of an optuna study per task and rule instead of the grid ``search`` (see the module).
    """
    from tqdm.auto import tqdm

    if not seeds:
        raise OptionError("seeds", "seeds must be at least 1")
    out = Path(out)
    tasks = tasks or plan_tasks(base, suite, given)
    seen_notices: set[str] = set()

    def notice(message: str) -> None:
        if log is not None and message not in seen_notices:
            seen_notices.add(message)
            log(message)

    search = search or {}
    if tune and search:
        raise OptionError("tune", "tune replaces the grid search; give tune or search, not both")
    grid = _search_grid(search) if search else [{}]
    for task, overrides in tasks.items():
        check_rules(dataclasses.replace(base, task=task, **overrides), rules)
    for point in grid:
        TrainConfig.from_dict({**base.to_dict(), **point})  # a bad search value fails now
    total = len(tasks) * len(rules) * ((len(grid) - 1 if len(grid) > 1 else 0) + len(seeds) + tune)
    bar = tqdm(total=total, desc="compare", unit="run", disable=not progress, dynamic_ncols=True)
    results: list[dict[str, Any]] = []
    searches: list[dict[str, Any]] = []
    for task, overrides in tasks.items():
        for rule in rules:
            cfg = dataclasses.replace(base, task=task, rule=rule, **overrides)
            chosen: dict[str, Any] = {}
            chosen_run: dict[str, Any] | None = None
            if tune:
                bar.set_postfix_str(f"{task} {rule} tune")
                chosen, found = _tune_rule(dataclasses.replace(cfg, seed=seeds[0]), out, given, tune, log)
                searches.append(found)
                bar.update(tune)
            elif len(grid) > 1:
                scored = []
                for i, point in enumerate(grid):
                    bar.set_postfix_str(f"{task} {rule} search {point}")
                    trial = TrainConfig.from_dict({**cfg.to_dict(), **point, "seed": seeds[0]})
                    m = _load_or_train(trial, _run_dir(out, task, rule, f"search{i}"), notice)
                    scored.append(((m["val_accuracy"], -m["val_loss"]), point, m))
                    searches.append({"task": task, "rule": rule, "params": point, "val_accuracy": m["val_accuracy"],
                                     "val_loss": m["val_loss"]})
                    bar.update(1)
                _, chosen, chosen_run = max(scored, key=lambda s: s[0])
            elif grid[0]:
                chosen = grid[0]
            for seed in seeds:
                bar.set_postfix_str(f"{task} {rule} seed {seed}")
                if seed == seeds[0] and chosen_run is not None:
                    m = chosen_run  # the search already trained exactly this run (same config and seed)
                else:
                    run_cfg = TrainConfig.from_dict({**cfg.to_dict(), **chosen, "seed": seed})
                    m = _load_or_train(run_cfg, _run_dir(out, task, rule, f"seed{seed}"), notice, replace=bool(tune))
                results.append({**m, "chosen_params": chosen})
                bar.update(1)
    bar.close()
    summary = summarize(results, rules)
    report = {"rules": rules, "seeds": seeds, "tasks": list(tasks), "search": search, "tune": tune,
              "search_results": searches,
              "summary": summary, "runs": results}
    write_json(out / "results.json", results)  # one object per run, with the fields of metrics.json
    write_json(out / "summary.json", {k: v for k, v in report.items() if k != "runs"})
    write_csv(out / "summary.csv", summary["rows"])
    atomic_write(out / "summary.md", lambda f: f.write(summary_markdown(summary, search, tune, searches)))
    plot_compare(out / "compare.png", summary)
    return report


def _mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarize(results: list[dict[str, Any]], rules: list[str]) -> dict[str, Any]:
    """Per task and rule: accuracy mean ± std, bytes, seconds per epoch; the paper's differences."""
    rows, diffs = [], []
    for task in dict.fromkeys(r["task"] for r in results):
        per_rule: dict[str, dict[str, float]] = {}
        for rule in rules:
            runs = [r for r in results if r["task"] == task and r["rule"] == rule]
            if not runs:
                continue
            acc, acc_std = _mean_std([r["test_accuracy"] for r in runs])
            per_rule[rule] = {
                "task": task,
                "rule": rule,
                "runs": len(runs),
                "test_accuracy_mean": acc,
                "test_accuracy_std": acc_std,
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
            base = [per_rule[b] for b in BASELINES if b in per_rule]
            if base:
                best = max(base, key=lambda r: r["test_accuracy_mean"])
                d["best_non_bptt_rule"] = best["rule"]
                d["solsa_minus_best_non_bptt"] = 100 * (s["test_accuracy_mean"] - best["test_accuracy_mean"])
            if "bptt" in per_rule:
                b = per_rule["bptt"]
                d["solsa_minus_bptt"] = 100 * (s["test_accuracy_mean"] - b["test_accuracy_mean"])
                d["memory_saving_vs_bptt"] = 1 - s["train_state_bytes"] / b["train_state_bytes"]
        diffs.append(d)
    average = {}
    for key in ("solsa_minus_best_non_bptt", "solsa_minus_bptt", "memory_saving_vs_bptt"):
        vals = [d[key] for d in diffs if key in d]
        if vals:
            average[key] = statistics.fmean(vals)
    return {"rows": rows, "differences": diffs, "average": average}


def summary_markdown(summary: dict[str, Any], search: dict[str, list[Any]], tune: int = 0,
                     searches: list[dict[str, Any]] | None = None) -> str:
    lines = ["| task | rule | test accuracy (%) | train-state bytes | s / epoch | chosen |",
             "|---|---|---|---|---|---|"]
    for r in summary["rows"]:
        lines.append(
            f"| {r['task']} | {r['rule']} | {100 * r['test_accuracy_mean']:.2f} ± {100 * r['test_accuracy_std']:.2f} "
            f"(n={r['runs']}) | {r['train_state_bytes']:,.0f} | {r['seconds_per_epoch']:.2f} | {r['chosen_params']} |"
        )
    lines += ["", "| task | SOLSA − best non-BPTT (points) | SOLSA − BPTT (points) | 1 − SOLSA/BPTT bytes |",
              "|---|---|---|---|"]

    def fmt(d, key, pct=False):
        if key not in d:
            return "–"
        return f"{100 * d[key]:.1f} %" if pct else f"{d[key]:+.2f}"

    for d in summary["differences"] + ([{"task": "**average**", **summary["average"]}] if summary["average"] else []):
        extra = f" (vs {d['best_non_bptt_rule']})" if "best_non_bptt_rule" in d else ""
        lines.append(f"| {d['task']} | {fmt(d, 'solsa_minus_best_non_bptt')}{extra} | {fmt(d, 'solsa_minus_bptt')} | "
                     f"{fmt(d, 'memory_saving_vs_bptt', pct=True)} |")
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


def plot_compare(path: str | Path, summary: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .report import save_figure

    tasks = list(dict.fromkeys(r["task"] for r in summary["rows"]))
    fig, axes = plt.subplots(2, len(tasks), figsize=(4.5 * len(tasks), 7), squeeze=False)
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
    fig.tight_layout()
    save_figure(fig, path)
