"""Replay a trial patience on kept validation histories: where it would stop each run and what it would keep.

    python docs/results/series-tune30-delay/patience_replay.py [P]
        tune's former fixed patience, P epochs (default 15), on the full-length default runs of docs/series.md §8
        (delay 5 x 3, 100 steps, seeds 0-2): the epoch each run stops at, the best validation accuracy kept
    PYTHONPATH=src python docs/results/series-tune30-delay/patience_replay.py --grid [--json FILE]
        the choice of ``VAL_PATIENCE_BATCHES`` (docs/results/tune-patience/RULE.md): every candidate P (batches)
        on today's default runs of the five development sets, stopping after ``solsa.config.trial_patience``
        epochs (max(VAL_PATIENCE epochs, P batches)), each history cut to the epochs the trainer plans today

Validation columns only (``val_accuracy``, ``update_steps``); the test columns are not read.
"""

from __future__ import annotations

import csv
import json
import statistics
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1]
HISTORIES = RESULTS / "series-delay-choice" / "histories" / "delay5x3"
GRID = (0, 75, 150, 250, 375, 500, 750, 1000)  # batches; 0: never stop
# today's default runs per set (RULE.md): (folder, glob of run folders)
SOURCES = {
    "ACSF1": [("series-pool-choice/histories/pool300", "ACSF1-s*"), ("series-pool-choice/confirm/pool300", "ACSF1-s*"),
              ("series-pool-choice/paired/pool300", "ACSF1-s*")],
    "ItalyPowerDemand": [("series-delay-choice/histories/delay5x3", "ItalyPowerDemand-s*"),
                         ("series-pool-choice/confirm/pool100", "ItalyPowerDemand-s*"),
                         ("series-pool-choice/paired/pool100", "ItalyPowerDemand-s*")],
    "OSULeaf": [("series-pool-choice/histories/pool300", "OSULeaf-s*"), ("series-pool-choice/confirm/pool300", "OSULeaf-s*"),
                ("series-pool-choice/paired/pool300", "OSULeaf-s*")],
    "BasicMotions": [("series-min-batches-choice/histories", "BasicMotions-s*")],
    "JapaneseVowels": [("series-min-batches-choice/histories", "JapaneseVowels-s*")],
}
MAX_LOSS, MAX_SET_LOSS, MAX_COST = 1.0, 2.0, 0.75  # the rule's bounds (points, points, share of planned epochs)


def replay(values: list[float], patience: int) -> int:
    """The epochs a run stopping after ``patience`` epochs without a better accuracy trains (0: all of them);
    the trainer's own test (``Trainer._out_of_patience``): a tie is not an improvement."""
    best, best_at = -1.0, 0
    for i, v in enumerate(values):
        if v > best:
            best, best_at = v, i
        elif patience and i - best_at >= patience:
            return i + 1
    return len(values)


def read(folder: Path) -> tuple[list[float], int]:
    """A run's validation accuracies per epoch and its batches per epoch."""
    with open(folder / "history.csv") as f:
        rows = list(csv.DictReader(f))
    return [float(r["val_accuracy"]) for r in rows], int(float(rows[0]["update_steps"]))


def grid(candidates: tuple[int, ...] = GRID) -> dict:
    """Replay every candidate on every run of :data:`SOURCES`; the per-set and overall means, and the choice."""
    from solsa.config import VAL_PATIENCE, default_epochs, trial_patience

    runs: dict[str, list[tuple[str, list[float], int]]] = {}
    for name, sources in SOURCES.items():
        for sub, pattern in sources:
            for folder in sorted((RESULTS / sub).glob(pattern)):
                values, batches = read(folder)
                planned = default_epochs(batches)
                if len(values) < planned:
                    raise ValueError(f"{folder}: {len(values)} epochs, fewer than the {planned} planned")
                runs.setdefault(name, []).append((f"{sub}/{folder.name}", values[:planned], batches))
    table = []
    for p in candidates:
        sets = {}
        for name, rs in runs.items():
            full = [max(v) for _, v, _ in rs]
            stops = [replay(v, trial_patience(b, p)) for _, v, b in rs]
            kept = [max(v[:s]) for (_, v, _), s in zip(rs, stops)]
            sets[name] = {"runs": len(rs), "patience_epochs": sorted({trial_patience(b, p) for _, _, b in rs}),
                          "full": 100 * statistics.fmean(full), "kept": 100 * statistics.fmean(kept),
                          "loss": 100 * statistics.fmean(f - k for f, k in zip(full, kept)),
                          "worst_loss": 100 * max(f - k for f, k in zip(full, kept)),
                          "cost": statistics.fmean(s / len(v) for (_, v, _), s in zip(rs, stops))}
        row = {"batches": p, "sets": sets, **{k: statistics.fmean(s[k] for s in sets.values())
                                              for k in ("full", "kept", "loss", "cost")}}
        row["passes"] = bool(p) and row["loss"] <= MAX_LOSS and row["cost"] <= MAX_COST and \
            all(s["loss"] <= MAX_SET_LOSS for s in sets.values())
        table.append(row)
    chosen = next((r["batches"] for r in table if r["passes"]), 0)
    return {"val_patience_epochs_floor": VAL_PATIENCE, "bounds": {"loss": MAX_LOSS, "set_loss": MAX_SET_LOSS,
            "cost": MAX_COST}, "runs": {n: [r[0] for r in rs] for n, rs in runs.items()}, "table": table,
            "chosen": chosen}


def print_grid(result: dict) -> None:
    names = list(result["runs"])
    print("| P (batches) | " + " | ".join(f"{n} kept / full (loss, cost)" for n in names)
          + " | mean kept / full | mean loss | mean cost | meets the rule |")
    print("|---" * (len(names) + 5) + "|")
    for r in result["table"]:
        cells = [f"{s['kept']:.1f} / {s['full']:.1f} ({s['loss']:.1f}, {s['cost']:.2f})" for s in r["sets"].values()]
        label = f"**{r['batches']}**" if r["batches"] == result["chosen"] else str(r["batches"] or "0 (never)")
        print(f"| {label} | " + " | ".join(cells) + f" | {r['kept']:.1f} / {r['full']:.1f} | {r['loss']:.2f} | "
              f"{r['cost']:.2f} | {'yes' if r['passes'] else 'no'} |")
    print(f"\nruns per set: {', '.join(f'{n} {len(v)}' for n, v in result['runs'].items())}; "
          f"chosen VAL_PATIENCE_BATCHES = {result['chosen']}")


def main(patience: int = 15) -> None:
    print(f"run  epochs  best (at)  patience {patience}: stops at, best kept")
    for folder in sorted(HISTORIES.iterdir()):
        values, _ = read(folder)
        stop = replay(values, patience)
        at = max(range(len(values)), key=values.__getitem__) + 1
        print(f"{folder.name:<20} {len(values):>4}  {max(values):.3f} ({at:>3})  {stop:>4}, {max(values[:stop]):.3f}")


if __name__ == "__main__":
    if "--grid" in sys.argv:
        result = grid()
        print_grid(result)
        if "--json" in sys.argv:
            Path(sys.argv[sys.argv.index("--json") + 1]).write_text(json.dumps(result, indent=1) + "\n")
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 15)
