"""``solsa bench accuracy``: test accuracy of the rules on real series, beside MiniRocket on the same split.

The rules train through :func:`solsa.compare.compare` (the trainer's defaults, model selection on
validation, every rule on the same data split and initial weights per seed). MiniRocket (aeon's
``MiniRocketClassifier``, the field's fast reference) is fitted on the same *training* samples the
rules train on (the validation samples are held out from it too, so both see the same data) and
scored on the same test samples; it gets the task's normalised series without any spike encoder
and without pooling (``max_steps``), zero-padded. The majority-class rate is the test accuracy of always
answering the most frequent training class.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..compare import compare
from ..config import TrainConfig
from ..io import atomic_write, write_json
from ..tasks import TASKS, Task, encoder_defaults, load_task

__all__ = ["SERIES_SETS", "TARGET_SETS", "ACCURACY_RULES", "majority_rate", "reference_accuracy",
           "run_accuracy", "accuracy_markdown"]

# aeon-bundled UEA/UCR sets (they load offline) that no default was chosen on before issue 16.
SERIES_SETS = ("ACSF1", "ItalyPowerDemand", "OSULeaf", "BasicMotions", "JapaneseVowels")
# The univariate sets of the "within 10 points of MiniRocket" target.
TARGET_SETS = ("ACSF1", "ItalyPowerDemand", "OSULeaf")
ACCURACY_RULES = ("solsa", "bptt", "eprop")
REFERENCE = "minirocket"


def majority_rate(task: Task) -> float:
    """Test accuracy of always answering the most frequent training class."""
    counts = np.bincount(task.train.y.numpy(), minlength=task.n_classes)
    return float((task.test.y.numpy() == int(np.argmax(counts))).mean())


def _samples_first(x) -> np.ndarray:
    """``[T, N, C]`` tensor -> aeon's ``[N, C, T]`` float64 array."""
    return np.ascontiguousarray(x.permute(1, 2, 0).numpy(), dtype=np.float64)


def minirocket(seed: int) -> Any:
    """aeon's MiniRocketClassifier (imported here: aeon is slow to import and compiles with numba)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from aeon.classification.convolution_based import MiniRocketClassifier
    return MiniRocketClassifier(random_state=seed)


def reference_accuracy(task: Task, classifier: Any) -> dict[str, float]:
    """Fit a scikit-learn style ``classifier`` on ``task.train`` and score it on ``task.test``."""
    import warnings

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # third-party deprecation notices under filterwarnings=error
        classifier.fit(_samples_first(task.train.x), task.train.y.numpy())
        predicted = np.asarray(classifier.predict(_samples_first(task.test.x)))
    return {"test_accuracy": float((predicted.astype(np.int64) == task.test.y.numpy()).mean()),
            "fit_seconds": time.perf_counter() - t0}


def _mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def run_accuracy(
    base: TrainConfig,
    out: str | Path,
    *,
    sets: tuple[str, ...] | list[str] = SERIES_SETS,
    rules: tuple[str, ...] | list[str] = ACCURACY_RULES,
    seeds: list[int] | None = None,
    reference: Callable[[int], Any] | None = minirocket,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train ``rules`` on every UEA/UCR set of ``sets`` and seed (``base``'s other options), score the
    ``reference`` classifier (a factory ``seed -> classifier``; None for none) on the same splits, and
    write ``OUT/accuracy.json`` and ``OUT/accuracy.md`` (the comparison's own files stay under ``OUT``).
    """
    seeds = [0, 1, 2] if seeds is None else list(seeds)
    if not sets:
        raise ValueError("sets is empty; name at least one UEA/UCR set, e.g. ItalyPowerDemand")
    out = Path(out)
    tasks = {f"uea:{name}": {} for name in sets}
    say = log or (lambda message: None)

    def line(run: dict[str, Any]) -> None:
        say(f"{run['suite_task']} {run['label']} seed {run['config']['seed']}: test {run['test_accuracy']:.3f}, "
            f"val {run['val_accuracy']:.3f}, {run['seconds_per_epoch']:.2f} s/epoch")

    report = compare(base, list(rules), seeds, out, tasks=tasks, models=(base.model,), progress=False,
                     log=log, on_run=line)
    rows = []
    encoders = (base.encoder,) if base.encoder else TASKS["uea"].default_encoders
    encoder_options = set().union(*(encoder_defaults(name) for name in encoders))
    for name in sets:
        spec = f"uea:{name}"
        cfg = dataclasses.replace(base, task=spec)
        refs, majority = [], math.nan
        for seed in seeds:
            # the network's split and normalisation, without the spike encoder (nor its options) and at full
            # length (max_steps=None: the reference sees every step, whatever the network is given)
            options = {k: v for k, v in cfg.task_options.items() if k not in encoder_options} | {"max_steps": None}
            task = load_task(spec, seed=seed, encoder="direct", val_fraction=cfg.val_fraction, **options)
            majority = majority_rate(task)
            if reference is not None:
                r = reference_accuracy(task, reference(seed))
                refs.append(r)
                say(f"{spec} {REFERENCE} seed {seed}: test {r['test_accuracy']:.3f} (fit {r['fit_seconds']:.1f} s)")
        row: dict[str, Any] = {"set": name, "majority_rate": majority, "rules": {}}
        if refs:
            m, s = _mean_std([r["test_accuracy"] for r in refs])
            row[REFERENCE] = {"test_accuracy_mean": m, "test_accuracy_std": s,
                              "fit_seconds": statistics.fmean(r["fit_seconds"] for r in refs)}
        for rule in rules:
            runs = [r for r in report["runs"] if r["suite_task"] == spec and r["label"] == rule]
            m, s = _mean_std([r["test_accuracy"] for r in runs])
            entry = {"test_accuracy_mean": m, "test_accuracy_std": s, "runs": len(runs),
                     "val_accuracy_mean": _mean_std([r["val_accuracy"] for r in runs])[0],
                     "seconds_per_epoch": statistics.fmean(r["seconds_per_epoch"] for r in runs),
                     "above_majority_points": 100 * (m - majority)}
            if refs:
                entry["gap_to_reference_points"] = 100 * (row[REFERENCE]["test_accuracy_mean"] - m)
            row["rules"][rule] = entry
        rows.append(row)
    result = {"sets": list(sets), "rules": list(rules), "seeds": seeds, "reference": REFERENCE if reference else None,
              "config": base.to_dict(), "rows": rows, "targets": _targets(rows, rules)}
    write_json(out / "accuracy.json", result)
    atomic_write(out / "accuracy.md", lambda f: f.write(accuracy_markdown(result)))
    return result


def _targets(rows: list[dict[str, Any]], rules: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Issue 16's targets per rule: mean gap to the reference over TARGET_SETS, the worst margin above
    the majority rate, JapaneseVowels' accuracy."""
    targets: dict[str, Any] = {}
    for rule in rules:
        t: dict[str, Any] = {"min_points_above_majority": min(r["rules"][rule]["above_majority_points"] for r in rows)}
        on = [r for r in rows if r["set"] in TARGET_SETS and REFERENCE in r]
        if len(on) == len(TARGET_SETS):
            t["mean_gap_to_reference_points"] = statistics.fmean(r["rules"][rule]["gap_to_reference_points"]
                                                                 for r in on)
        jv = [r for r in rows if r["set"] == "JapaneseVowels"]
        if jv:
            t["japanesevowels_accuracy"] = jv[0]["rules"][rule]["test_accuracy_mean"]
        targets[rule] = t
    return targets


def accuracy_markdown(result: dict[str, Any]) -> str:
    """The per-set table (test accuracy %, mean ± std over seeds; gap = reference − rule, points) and the
    targets."""
    rules, ref = result["rules"], result["reference"]
    head = ["set", "majority"] + ([ref] if ref else []) + rules + ([f"{r} gap" for r in rules] if ref else []) + \
        [f"{r} s/epoch" for r in rules]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def pct(d: dict[str, Any]) -> str:
        return f"{100 * d['test_accuracy_mean']:.1f} ± {100 * d['test_accuracy_std']:.1f}"

    for row in result["rows"]:
        cells = [row["set"], f"{100 * row['majority_rate']:.1f}"] + ([pct(row[ref])] if ref else [])
        cells += [pct(row["rules"][r]) for r in rules]
        if ref:
            cells += [f"{row['rules'][r]['gap_to_reference_points']:+.1f}" for r in rules]
        cells += [f"{row['rules'][r]['seconds_per_epoch']:.2f}" for r in rules]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Seeds {result['seeds']}, {_epochs_text(result['config']['epochs'])}, model {result['config']['model']}; "
              "test accuracy (%) at the epoch of best validation accuracy"
              + (f"; {ref} fitted on the same training samples (validation held out)." if ref else "."), ""]
    for rule, t in result["targets"].items():
        parts = [f"lowest margin above majority {t['min_points_above_majority']:+.1f} points"]
        if "mean_gap_to_reference_points" in t:
            parts.insert(0, f"mean gap to {ref} over {', '.join(TARGET_SETS)} {t['mean_gap_to_reference_points']:.1f} "
                            "points")
        if "japanesevowels_accuracy" in t:
            parts.append(f"JapaneseVowels {100 * t['japanesevowels_accuracy']:.1f} %")
        lines.append(f"- {rule}: " + "; ".join(parts))
    return "\n".join(lines) + "\n"


def _epochs_text(epochs: int | None) -> str:
    """The run's epochs as the table's note states them (None: the trainer's planned epochs)."""
    if epochs is not None:
        return f"{epochs} epochs"
    from ..config import DEFAULT_EPOCHS, MIN_BATCHES
    return f"the trainer's epochs ({DEFAULT_EPOCHS}, or {MIN_BATCHES:,} batches on a small set)"
