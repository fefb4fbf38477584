"""Read probe.sh's histories: for each candidate epoch budget, the epoch the trainer would choose (best
validation accuracy, ties to the lower validation loss, within the budget's first epochs) and its accuracy.

Usage: python analyse.py OUT_DIR  -> prints the tables of docs/series.md §7 and writes choice.json there
(OUT_DIR: probe.sh's folder, or histories/ here, which keeps the columns this script reads of the probe run).
Candidates: today's 60 epochs, and max(60 epochs, U batches) for U in CANDIDATES. The choice reads
validation only; test accuracy is printed after, for the chosen candidate and today's.
"""

import csv
import json
import math
import statistics
import sys
from pathlib import Path

SETS = ("ACSF1", "ItalyPowerDemand", "OSULeaf", "BasicMotions", "JapaneseVowels")
CANDIDATES = (625, 1250, 1875, 2500)
DEFAULT_EPOCHS = 60


def chosen(rows, epochs):
    """The row the trainer keeps among the first ``epochs`` (solsa.training: key [val_accuracy, -val_loss])."""
    return max(rows[:epochs], key=lambda r: (float(r["val_accuracy"]), -float(r["val_loss"])))


def main(out: Path) -> None:
    names = ["60 epochs"] + [f"{u} batches" for u in CANDIDATES]
    table = {n: {s: {"val": [], "test": [], "epochs": []} for s in SETS} for n in names}
    for s in SETS:
        for hist in sorted(out.glob(f"{s}-s*/history.csv")):
            rows = list(csv.DictReader(hist.open()))
            batches = int(rows[0]["update_steps"])
            for n, u in zip(names, (None, *CANDIDATES)):
                epochs = DEFAULT_EPOCHS if u is None else max(DEFAULT_EPOCHS, math.ceil(u / batches))
                if epochs > len(rows):
                    raise SystemExit(f"{hist} has {len(rows)} epochs, {n} needs {epochs}")
                r = chosen(rows, epochs)
                table[n][s]["val"].append(100 * float(r["val_accuracy"]))
                table[n][s]["test"].append(100 * float(r["test_accuracy"]))
                table[n][s]["epochs"].append(epochs)
    mean = lambda xs: statistics.fmean(xs) if xs else float("nan")
    print("mean validation accuracy (%) over seeds, by candidate (the choice reads this table only)")
    print("| candidate | " + " | ".join(SETS) + " | mean | one-channel mean |")
    print("|---|" + "---|" * (len(SETS) + 2))
    summary = {}
    for n in names:
        vals = [mean(table[n][s]["val"]) for s in SETS]
        one = [mean(table[n][s]["val"]) for s in SETS[:3]]
        summary[n] = {"val_mean": mean(vals), "val_one_channel_mean": mean(one),
                      "per_set": {s: {k: v for k, v in table[n][s].items()} for s in SETS}}
        print(f"| {n} | " + " | ".join(f"{v:.1f}" for v in vals) + f" | {mean(vals):.1f} | {mean(one):.1f} |")
    best = max(names, key=lambda n: summary[n]["val_mean"])
    print(f"\nchosen on validation: {best}")
    print("\ntest accuracy (%) at the chosen epoch, mean over seeds (read after choosing)")
    print("| candidate | " + " | ".join(SETS) + " |")
    print("|---|" + "---|" * len(SETS))
    sd = lambda xs: statistics.stdev(xs) if len(xs) > 1 else 0.0
    for n in dict.fromkeys(["60 epochs", best]):
        print(f"| {n} | " + " | ".join(f"{mean(table[n][s]['test']):.1f} ± {sd(table[n][s]['test']):.1f}"
                                       for s in SETS) + " |")
    seeds = sorted({int(p.parent.name.rsplit('-s', 1)[1]) for p in out.glob("*-s*/history.csv")})
    (out / "choice.json").write_text(json.dumps({"seeds": seeds, "chosen": best, "candidates": summary}, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
