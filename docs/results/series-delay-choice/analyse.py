"""Read probe.sh's runs: each run's chosen epoch (the trainer's: best validation accuracy, ties to the lower
validation loss, within the planned epochs) and its validation accuracy; choose on validation only.

Usage: python analyse.py OUT_DIR [BANK_HISTORIES] [--test]
  OUT_DIR: probe.sh's folder (OUT_DIR/CONFIG/SET-sS/history.csv); this folder's histories/ keeps the columns
  read here. BANK_HISTORIES (optional): a folder of SET-sS/history.csv runs of today's default (`bank`), e.g.
  ../series-min-batches-choice/histories, used for the `bank` row where OUT_DIR has no bank runs (its first
  1,875 batches are the default run: docs/series.md §7).
Rule fixed before the runs: a delay configuration replaces `bank` only if its mean validation accuracy over
the three sets and the seeds exceeds bank's by more than the seed spread, the larger of the two
configurations' ranges (max - min over seeds) of the per-seed three-set mean, on two seeds or more. Test
accuracy is printed only with --test (run it after the choice), for the chosen configuration and bank.
Writes choice.json in OUT_DIR.
"""

import csv
import json
import math
import statistics
import sys
from pathlib import Path

SETS = ("ACSF1", "ItalyPowerDemand", "OSULeaf")
MIN_BATCHES, DEFAULT_EPOCHS = 1875, 60


def chosen(hist: Path) -> dict:
    """The row the trainer keeps within the planned epochs (solsa.training: key [val_accuracy, -val_loss])."""
    rows = list(csv.DictReader(hist.open()))
    epochs = max(DEFAULT_EPOCHS, math.ceil(MIN_BATCHES / int(rows[0]["update_steps"])))
    if len(rows) < epochs:
        raise SystemExit(f"{hist}: {len(rows)} epochs, the default plans {epochs}")
    rows = rows[:epochs]
    best = max(rows, key=lambda r: (float(r["val_accuracy"]), -float(r["val_loss"])))
    return {"val": 100 * float(best["val_accuracy"]), "test": 100 * float(best["test_accuracy"]),
            "epoch": int(best["epoch"]), "seconds": sum(float(r["epoch_seconds"]) for r in rows)}


def collect(folder: Path) -> dict:
    """{set: {seed: chosen row}} for every SET-sS/history.csv in ``folder``."""
    runs: dict = {}
    for s in SETS:
        for hist in sorted(folder.glob(f"{s}-s*/history.csv")):
            runs.setdefault(s, {})[int(hist.parent.name.rsplit("-s", 1)[1])] = chosen(hist)
    return runs


def main(out: Path, bank_hist: Path | None, show_test: bool) -> None:
    configs = {p.name: collect(p) for p in sorted(out.iterdir()) if p.is_dir() and p.name != "histories"}
    if "bank" not in configs and bank_hist is not None:
        configs["bank"] = collect(bank_hist)
    result = decide(configs, "bank", show_test)
    (out / "choice.json").write_text(json.dumps(result, indent=1))


def decide(configs: dict, base_name: str, show_test: bool = False) -> dict:
    """Print the validation table of ``configs`` ({name: collect()}) and apply the rule against
    ``base_name``; with ``show_test``, the test table of the decision and the base. Returns choice.json's
    content: {"seeds", "decision", "configurations"}."""
    seeds = sorted({k for c in configs.values() for runs in c.values() for k in runs})
    # only seeds every configuration has on every set, so the rows compare the same splits
    seeds = [k for k in seeds if all(k in c.get(s, {}) for c in configs.values() for s in SETS)]
    if not seeds:
        raise SystemExit("no seed with every configuration on every set yet")
    mean = statistics.fmean
    summary = {}
    print(f"validation accuracy (%) at the chosen epoch, seeds {seeds} (the choice reads this table only)")
    print("| configuration | " + " | ".join(SETS) + " | mean | per-seed means | s/run |")
    print("|---|" + "---|" * (len(SETS) + 3))
    for name, c in configs.items():
        per_seed = [mean(c[s][k]["val"] for s in SETS) for k in seeds]
        sets = {s: mean(c[s][k]["val"] for k in seeds) for s in SETS}
        secs = mean(c[s][k]["seconds"] for s in SETS for k in seeds)
        summary[name] = {"val_mean": mean(per_seed), "per_seed_mean": per_seed, "per_set": sets,
                         "seed_range": max(per_seed) - min(per_seed), "train_seconds_per_run": secs,
                         "runs": {s: {k: c[s][k] for k in seeds} for s in SETS}}
        print(f"| {name} | " + " | ".join(f"{sets[s]:.1f}" for s in SETS) + f" | {mean(per_seed):.1f} | "
              + " / ".join(f"{v:.1f}" for v in per_seed) + f" | {secs:.0f} |")
    base = summary[base_name]
    best = max((n for n in summary if n != base_name), key=lambda n: summary[n]["val_mean"], default=None)
    decision = base_name
    if best is not None:
        lead = summary[best]["val_mean"] - base["val_mean"]
        spread = max(summary[best]["seed_range"], base["seed_range"])
        print(f"\nbest candidate: {best}, lead over {base_name} {lead:+.1f} points, seed spread {spread:.1f}")
        decision = best if lead > spread and len(seeds) > 1 else base_name
    print(f"decision: {decision}" + ("" if len(seeds) > 1 else " (one seed: no decision)"))
    if decision != base_name and show_test:
        print("\ntest accuracy (%) at the chosen epoch, mean ± std over seeds (read after choosing)")
        for n in (base_name, decision):
            r = summary[n]["runs"]
            print(f"| {n} | " + " | ".join(
                f"{mean(r[s][k]['test'] for k in seeds):.1f} ± "
                f"{statistics.stdev([r[s][k]['test'] for k in seeds]) if len(seeds) > 1 else 0.0:.1f}"
                for s in SETS) + " |")
    return {"seeds": seeds, "decision": decision, "configurations": summary}


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--test"]
    main(Path(args[0]), Path(args[1]) if len(args) > 1 else None, "--test" in sys.argv[1:])
