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
from pathlib import Path
from typing import Any, Callable

from .report import BASELINES, plot_compare, summarize, summary_markdown
from ..config import MODELS, TrainConfig
from ..factories import build_network, build_rule
from ..io import atomic_write, write_csv, write_json
from ..progress import RunProgress
from ..rules import get_rule
from ..runs import finished_run, unfinished_config
from ..training import train
from ..validation import OptionError, check_choice, check_device

__all__ = ["SUITES", "SUITE_MODELS", "BASELINES", "COMPARE_DEFAULTS", "check_rules", "plan_tasks", "plan_entries",
           "compare", "summarize"]

# Each rule trains its own paper's neuron model unless the user names a model.
COMPARE_DEFAULTS = {"model": "paper"}


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
        # the same task with a slow readout filter: credit through the readout's filter matters
        "patterns-slow-readout": {"task": "patterns", "epochs": 15, "alpha": 0.9, "lam": 0.9,
                                  "filter_granularity": "layer", "readout_alpha": 0.9},
    }
}
# The models each rule trains in a suite: its paper's (the paper's setting) and the full SOLSA model (the
# rule's own contribution, every rule on the same model).
SUITE_MODELS: dict[str, tuple[str, ...]] = {"paper": ("paper", "full")}


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
    option the user gave (``given``: from a config file or the command line) wins over the suite's. A
    suite entry may name its ``task`` (the same task twice with other settings); the key is its label.
    """
    if suite is None:
        return {base.task: {}}
    check_choice("suite", suite, SUITES)
    user = {k: v for k, v in (given or {}).items() if k not in ("task", "rule")}
    return {task: {**options, **user} for task, options in SUITES[suite].items()}


def plan_entries(rules: list[str], models: list[str] | tuple[str, ...]) -> list[tuple[str, str, str]]:
    """``(label, rule, model)`` for every rule on every model; a rule whose neuron model is the same on
    several models (SOLSA, BPTT) runs once. Labels are the rule's name, or ``RULE@MODEL`` where a rule runs
    on more than one model; with other models beside it, ``native`` (e-prop's recurrent ALIF network) is
    always ``RULE@native``, so that ``--models paper,full,native`` keeps the labels of ``paper,full``."""
    for m in models:
        check_choice("models", m, MODELS)
    entries = []
    for rule in rules:
        spec = get_rule(rule)
        variants: dict[str, list[str]] = {}
        for m in models:
            variants.setdefault(json.dumps(spec.model_options(m), sort_keys=True, default=str), []).append(m)
        native = [same for same in variants.values() if same == ["native"]] if len(models) > 1 else []
        for same in variants.values():
            m = "full" if "full" in same else same[0]  # e.g. SOLSA and BPTT: their paper's model is the full one
            alone = len(variants) - len(native) == 1 and same not in native
            entries.append((rule if alone else f"{rule}@{m}", rule, m))
    return entries


def _safe(task: str) -> str:
    return task.replace(":", "-").replace("/", "_")


def _run_dir(out: Path, task: str, rule: str, tag: str) -> Path:
    return out / "runs" / _safe(task) / rule / tag


def _load_or_train(cfg: TrainConfig, run_dir: Path, log, replace: bool = False) -> dict[str, Any]:
    """A finished run is reused only if it was trained with exactly this config; one trained with another is
    an error, or with ``replace`` (a study that went on chose another configuration) retrained. An
    unfinished run (killed mid-way) is resumed if it was trained with this config, and started again
    otherwise."""
    try:
        metrics = finished_run(cfg, run_dir)
    except ValueError:
        if not replace:
            raise
        metrics = None
    if metrics is not None:
        return metrics
    unfinished = unfinished_config(run_dir)
    if unfinished is not None and unfinished == cfg.to_dict():
        return train(cfg, run_dir, resume=True, progress=False, log=log)
    return train(cfg, run_dir, force=True, progress=False, log=log)


def _tune_rule(cfg: TrainConfig, folder: Path, given: dict[str, Any] | None, trials: int, log) -> tuple[dict, dict]:
    """One rule's study (in ``folder``): the chosen option changes and a record of the search."""
    from ..tune import tune

    fixed = {k: v for k, v in (given or {}).items() if k not in ("task", "rule")}
    r = tune(cfg, folder, given=fixed, trials=trials, final=False, log=log)
    found = {"task": cfg.task, "rule": cfg.rule, "params": r["best_params"], "val_accuracy": r["best_val_accuracy"],
             "val_loss": r["best_val_loss"], "scoring": r["scoring"], "trials": r["trials"],
             "tune_seconds": r["search_seconds"], "start_val_accuracy": (r["start_trial"] or {}).get("val_accuracy")}
    return r["changes"], found


def _search_grid(search: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = list(search)
    return [dict(zip(keys, values)) for values in itertools.product(*(search[k] for k in keys))]


def _result(m: dict[str, Any]) -> str:
    return f"val {m['val_accuracy']:.4f}  test {m['test_accuracy']:.4f}"


def compare(
    base: TrainConfig,
    rules: list[str],
    seeds: list[int],
    out: str | Path,
    *,
    tasks: dict[str, dict[str, Any]] | None = None,
    suite: str | None = None,
    given: dict[str, Any] | None = None,
    models: list[str] | tuple[str, ...] | None = None,
    search: dict[str, list[Any]] | None = None,
    tune: int = 0,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    on_run: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run the comparison; write ``results.json`` (a list: one object per run, the fields of ``metrics.json``
    and ``chosen_params``), ``summary.json`` (the search and the summary), ``summary.md``, ``summary.csv``
    and ``compare.png``. Returns the report dict (``summary.json``'s content plus ``runs``).

    ``tasks`` (task -> option overrides) or ``suite`` with the options the user ``given`` (see
    :func:`plan_tasks`). ``models``: the neuron models every rule trains (default: the suite's
    :data:`SUITE_MODELS`, else ``base.model``; see :func:`plan_entries`). ``log`` gets each distinct notice
    of the runs once (e.g. a backend fallback). ``tune``: trials of an optuna study per task and rule
    instead of the grid ``search`` (see the module). ``on_run`` gets each seed's result as it is added.
    """
    if not seeds:
        raise OptionError("seeds", "seeds must be at least 1")
    if not rules:
        raise OptionError("rules", "rules is empty; name at least one rule, e.g. solsa,bptt")
    check_device(base.device)
    out = Path(out)
    tasks = tasks or plan_tasks(base, suite, given)
    if models is None:
        models = SUITE_MODELS.get(suite, (base.model,)) if suite and "model" not in (given or {}) else (base.model,)
    entries = plan_entries(rules, models)
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
        for model in dict.fromkeys(m for _, _, m in entries):
            check_rules(dataclasses.replace(base, **{"task": task, **overrides, "model": model}),
                        [r for _, r, m in entries if m == model])
    for point in grid:
        TrainConfig.from_dict({**base.to_dict(), **point})  # a bad search value fails now
    # every search point and every seed counts (seed 0 reuses the chosen search run: done at once)
    total = len(tasks) * len(entries) * ((len(grid) if len(grid) > 1 else 0) + len(seeds) + tune)
    bar = RunProgress(total, progress, "compare")
    results: list[dict[str, Any]] = []
    searches: list[dict[str, Any]] = []
    for task, overrides in tasks.items():
        for label, rule, model in entries:
            cfg = dataclasses.replace(base, **{"task": task, **overrides, "rule": rule, "model": model})
            chosen: dict[str, Any] = {}
            chosen_run: dict[str, Any] | None = None
            if tune:
                bar.start(f"{task} {label} tune")
                chosen, found = _tune_rule(dataclasses.replace(cfg, seed=seeds[0]), out / "tune" / _safe(task) / label,
                                           given, tune, log)
                searches.append({**found, "task": task, "rule": label})
                bar.done(f"{task} {label} tune ({tune} trials)", runs=tune)
            elif len(grid) > 1:
                scored = []
                for i, point in enumerate(grid):
                    bar.start(f"{task} {label} search {point}")
                    trial = TrainConfig.from_dict({**cfg.to_dict(), **point, "seed": seeds[0]})
                    m = _load_or_train(trial, _run_dir(out, task, label, f"search{i}"), notice)
                    scored.append(((m["val_accuracy"], -m["val_loss"]), point, m))
                    searches.append({"task": task, "rule": label, "params": point, "val_accuracy": m["val_accuracy"],
                                     "val_loss": m["val_loss"]})
                    bar.done(f"{task} {label} search {point}", _result(m))
                _, chosen, chosen_run = max(scored, key=lambda s: s[0])
            elif grid[0]:
                chosen = grid[0]
            for seed in seeds:
                bar.start(f"{task} {label} seed {seed}")
                if seed == seeds[0] and chosen_run is not None:
                    m = chosen_run  # the search already trained exactly this run (same config and seed)
                else:
                    run_cfg = TrainConfig.from_dict({**cfg.to_dict(), **chosen, "seed": seed})
                    m = _load_or_train(run_cfg, _run_dir(out, task, label, f"seed{seed}"), notice, replace=bool(tune))
                results.append({**m, "chosen_params": chosen, "label": label, "model": model, "suite_task": task})
                if on_run is not None:
                    on_run(results[-1])
                bar.done(f"{task} {label} seed {seed}", _result(m))
    bar.close()
    summary = summarize(results, [label for label, _, _ in entries])
    report = {"rules": rules, "models": list(models), "seeds": seeds, "tasks": list(tasks), "search": search,
              "tune": tune, "search_results": searches,
              "summary": summary, "runs": results}
    write_json(out / "results.json", results)  # one object per run, with the fields of metrics.json
    write_json(out / "summary.json", {k: v for k, v in report.items() if k != "runs"})
    write_csv(out / "summary.csv", summary["rows"])
    atomic_write(out / "summary.md", lambda f: f.write(summary_markdown(summary, search, tune, searches)))
    plot_compare(out / "compare.png", summary, results)
    return report
