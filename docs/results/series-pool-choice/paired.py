"""The paired test of max_steps=300 on fresh seeds 6-9 (paired.md holds the rule, fixed before the runs).

Usage: python paired.py OUT_DIR [--json FILE]   (OUT_DIR as written by probe.sh: pool100/, pool300/)
Reads validation accuracy only (metrics.json's val_accuracy, at the trainer's chosen epoch); ItalyPowerDemand
(never pooled) is read from pool100 for both configurations. Per seed d = three-set mean at 300 minus at 100;
300 is adopted iff mean(d) > 2 * std(d, n - 1) / sqrt(n).
"""

from __future__ import annotations

import importlib.util
import math
import statistics
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location("pool_confirm", Path(__file__).resolve().parent / "confirm.py")
confirm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(confirm)
SETS = confirm.SETS  # ACSF1, ItalyPowerDemand, OSULeaf
SEEDS = (6, 7, 8, 9)
CONFIGS = ("pool100", "pool300")


def decide(diffs: list[float]) -> dict:
    """paired.md's rule on the per-seed differences: adopt iff the mean exceeds twice its standard error."""
    mean = statistics.fmean(diffs)
    se = statistics.stdev(diffs) / math.sqrt(len(diffs))
    adopt = mean > 2 * se
    return {"mean_diff": mean, "se": se, "threshold": 2 * se, "adopt_300": adopt,
            "decision": "max_steps=300" if adopt else "max_steps=100 (unchanged)"}


def main(argv: list[str]) -> int:
    out = Path(argv[0])
    runs = {cfg: {n: {s: confirm.val(out, cfg, n, s) for s in SEEDS} for n in SETS} for cfg in CONFIGS}
    per_seed = {cfg: [statistics.fmean(runs[cfg][n][s] for n in SETS) for s in SEEDS] for cfg in CONFIGS}
    diffs = [b - a for a, b in zip(per_seed["pool100"], per_seed["pool300"])]
    result = {"seeds": list(SEEDS), "runs": runs, "per_seed": per_seed, "diffs": diffs,
              "per_set": {cfg: {n: statistics.fmean(runs[cfg][n].values()) for n in SETS} for cfg in CONFIGS}}
    result |= decide(diffs)
    print("| seed | " + " | ".join(f"{n} 100 / 300" for n in SETS) + " | mean 100 | mean 300 | d |")
    print("|---" * (len(SETS) + 4) + "|")
    for i, s in enumerate(SEEDS):
        cells = " | ".join(f"{runs['pool100'][n][s]:.1f} / {runs['pool300'][n][s]:.1f}" for n in SETS)
        print(f"| {s} | {cells} | {per_seed['pool100'][i]:.1f} | {per_seed['pool300'][i]:.1f} | {diffs[i]:+.2f} |")
    print(f"mean d {result['mean_diff']:+.2f}, SE {result['se']:.2f}, 2 SE {result['threshold']:.2f}; "
          f"decision: {result['decision']}")
    confirm.save(argv, result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
