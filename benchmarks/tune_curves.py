"""Validation curves under k-fold cross-validation: the data behind ``solsa tune``'s defaults for
``val_patience`` and ``repeats`` (docs/tune.md, "How the defaults were chosen").

For each task and configuration, every fold of ``--shuffles`` different 5-fold shuffles of the training data
is trained for ``--epochs`` epochs with no early stop, and its validation accuracy per epoch recorded. From
those curves (validation data only; the test split is never read):

- per patience P: the epochs a trial would train (stopped when validation has not improved for P epochs) as a
  share of the full run, and the validation accuracy it would lose (best before the stop vs. best of the full
  run), mean over the curves;
- the spread of the cross-validation score: the standard deviation of the R x k fold scores, and how far the
  5-fold mean of one shuffle lies from another's (what repeating k-fold averages away).

    nice -n 10 python3 benchmarks/tune_curves.py --out docs/results/tune-curves

Writes ``OUT/curves.json`` (every curve) and ``OUT/summary.json``; prints the tables.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from solsa.config import TrainConfig
from solsa.evaluation import load_task_of
from solsa.tune.folds import fold_tasks
from solsa.training import train

# the defaults and two other points of the search space (a slow learner, slow filters with delta input)
CONFIGS = {
    "defaults": {},
    "lr5e-4": {"lr": 5e-4},
    "delta-slow-filters": {"encoder": "delta", "alpha": 0.8, "beta": 1.7, "hidden": (32,)},
}


def stop_epoch(curve: list[float], patience: int) -> int:
    """The epoch (1-based) at which a run with this validation curve stops under ``patience``."""
    best, best_epoch = -1.0, 0
    for epoch, v in enumerate(curve, 1):
        if v > best:
            best, best_epoch = v, epoch
        elif epoch - best_epoch >= patience:
            return epoch
    return len(curve)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", default="uea:ItalyPowerDemand,uea:BasicMotions")
    p.add_argument("--configs", default=",".join(CONFIGS))
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--shuffles", type=int, default=3)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--out", default="docs/results/tune-curves")
    p.add_argument("--summary-only", action="store_true", help="summarise OUT/curves.json; train nothing")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    curves = json.loads((out / "curves.json").read_text()) if args.summary_only else []
    for task_spec in [] if args.summary_only else args.tasks.split(","):
        for name in args.configs.split(","):
            cfg = TrainConfig(task=task_spec, epochs=args.epochs, threads=1).replace(**CONFIGS[name])
            task = load_task_of(cfg)
            for shuffle in range(args.shuffles):
                for fold, fold_task in enumerate(fold_tasks(task, args.folds, shuffle)):
                    rows: list[dict] = []
                    t0 = time.perf_counter()
                    train(cfg, None, progress=False, task=fold_task, log=None, on_epoch=lambda e, r: rows.append(r))
                    curves.append({"task": task_spec, "config": name, "shuffle": shuffle, "fold": fold,
                                   "val_accuracy": [r["val_accuracy"] for r in rows],
                                   "seconds": time.perf_counter() - t0})
                    print(f"{task_spec} {name} shuffle {shuffle} fold {fold}: best val "
                          f"{max(curves[-1]['val_accuracy']):.3f} in {curves[-1]['seconds']:.1f} s", flush=True)
            (out / "curves.json").write_text(json.dumps(curves))
    summarise(curves, out)


def summarise(curves: list[dict], out: Path) -> None:
    """Print and write the patience and spread tables of ``curves``."""
    summary: dict = {"curves": len(curves), "patience": {}, "spread": {}}
    groups = sorted({(c["task"], c["config"]) for c in curves})
    print("\npatience: epochs trained (share of the full run), best fold validation accuracy lost (points, mean and "
          "worst over the curves), the CV score (mean best fold accuracy) of each task and configuration")
    for patience in (3, 5, 8, 10, 15, 20, 30, 0):
        stops = [stop_epoch(c["val_accuracy"], patience) if patience else len(c["val_accuracy"]) for c in curves]
        share = statistics.fmean(e / len(c["val_accuracy"]) for c, e in zip(curves, stops))
        kept = [max(c["val_accuracy"][:e]) for c, e in zip(curves, stops)]
        lost = [max(c["val_accuracy"]) - k for c, k in zip(curves, kept)]
        cv = {f"{task} {name}": statistics.fmean(k for c, k in zip(curves, kept) if (c["task"], c["config"]) == (task, name))
              for task, name in groups}
        summary["patience"][patience] = {"epoch_share": share, "lost_mean": statistics.fmean(lost), "lost_max": max(lost),
                                         "cv_score": cv}
        print(f"  P={patience if patience else 'off':>3}: epochs {share:.2f}  lost {100 * statistics.fmean(lost):5.2f}  "
              f"worst {100 * max(lost):4.1f}   " + "  ".join(f"{k.split(':')[-1]} {100 * v:.1f}" for k, v in cv.items()))
    print("\nspread of the CV score (points): std over folds; std of one shuffle's k-fold mean across shuffles")
    for task_spec, name in groups:
        mine = [c for c in curves if c["task"] == task_spec and c["config"] == name]
        shuffles = sorted({c["shuffle"] for c in mine})
        scores = {s: [max(c["val_accuracy"]) for c in mine if c["shuffle"] == s] for s in shuffles}
        means = [statistics.fmean(v) for v in scores.values()]
        folds_sd = statistics.stdev([v for vs in scores.values() for v in vs])
        shuffle_sd = statistics.stdev(means) if len(means) > 1 else float("nan")
        summary["spread"][f"{task_spec} {name}"] = {"fold_std": folds_sd, "shuffle_mean_std": shuffle_sd,
                                                   "shuffle_means": means}
        print(f"  {task_spec:<22} {name:<20} fold std {100 * folds_sd:5.1f}  shuffle-mean std "
              f"{100 * shuffle_sd:4.1f}  means {', '.join(f'{100 * m:.1f}' for m in means)}")
    (out / "summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
