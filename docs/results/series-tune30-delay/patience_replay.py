"""Replay tune's val_patience (15) on the full-length default runs of docs/series.md §8 (delay 5 x 3, seeds 0-2):
the epoch a patience-P stop would end each run, and the best validation accuracy it would have kept.

    python docs/results/series-tune30-delay/patience_replay.py [P]
"""

import csv
import sys
from pathlib import Path

HISTORIES = Path(__file__).resolve().parents[1] / "series-delay-choice" / "histories" / "delay5x3"


def replay(values: list[float], patience: int) -> int:
    """The number of epochs a run stopping after ``patience`` epochs without a better accuracy trains."""
    best, best_at = -1.0, 0
    for i, v in enumerate(values):
        if v > best:
            best, best_at = v, i
        elif i - best_at >= patience:
            return i + 1
    return len(values)


def main(patience: int = 15) -> None:
    print(f"run  epochs  best (at)  patience {patience}: stops at, best kept")
    for folder in sorted(HISTORIES.iterdir()):
        with open(folder / "history.csv") as f:
            values = [float(r["val_accuracy"]) for r in csv.DictReader(f)]
        stop = replay(values, patience)
        at = max(range(len(values)), key=values.__getitem__) + 1
        print(f"{folder.name:<20} {len(values):>4}  {max(values):.3f} ({at:>3})  {stop:>4}, {max(values[:stop]):.3f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 15)
