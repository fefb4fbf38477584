"""The paired test of the slow synaptic filters against today's uea default (paired.md holds the rule, fixed before
the runs).

Usage: python paired.py OUT_DIR [--json FILE]   (OUT_DIR as written by probe.sh). Reads validation accuracy only
(metrics.json's val_accuracy at the trainer's chosen epoch). Per seed d = three-set mean under `slow` minus under
`base`; `slow` is adopted iff mean(d) > 2 * std(d, n - 1) / sqrt(n).
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path

SETS = ("ACSF1", "ItalyPowerDemand", "OSULeaf")
SEEDS = (14, 15, 16, 17)
CONFIGS = ("base", "slow")


def val(out: Path, cfg: str, name: str, seed: int) -> float:
    """Validation accuracy (%) of one run at the trainer's chosen epoch."""
    return 100.0 * json.loads((out / cfg / f"{name}-s{seed}" / "metrics.json").read_text())["val_accuracy"]


def main(argv: list[str]) -> int:
    out = Path(argv[0])
    runs = {c: {n: {s: val(out, c, n, s) for s in SEEDS} for n in SETS} for c in CONFIGS}
    per_seed = {c: [statistics.fmean(runs[c][n][s] for n in SETS) for s in SEEDS] for c in CONFIGS}
    diffs = [y - x for x, y in zip(per_seed["base"], per_seed["slow"])]
    mean, se = statistics.fmean(diffs), statistics.stdev(diffs) / math.sqrt(len(diffs))
    adopt = mean > 2 * se
    result = {"seeds": list(SEEDS), "runs": runs, "per_seed": per_seed, "diffs": diffs,
              "per_set": {c: {n: statistics.fmean(runs[c][n].values()) for n in SETS} for c in CONFIGS},
              "mean_diff": mean, "se": se, "threshold": 2 * se, "adopt_slow": adopt,
              "decision": "alpha=0.8 beta=1.7 for uea" if adopt else "unchanged (alpha=0, beta=1)"}
    print("| seed | " + " | ".join(f"{n} base / slow" for n in SETS) + " | mean base | mean slow | d |")
    print("|---" * (len(SETS) + 4) + "|")
    for i, s in enumerate(SEEDS):
        cells = " | ".join(f"{runs['base'][n][s]:.1f} / {runs['slow'][n][s]:.1f}" for n in SETS)
        print(f"| {s} | {cells} | {per_seed['base'][i]:.1f} | {per_seed['slow'][i]:.1f} | {diffs[i]:+.2f} |")
    print(f"mean d {mean:+.2f}, SE {se:.2f}, 2 SE {2 * se:.2f}; decision: {result['decision']}")
    if "--json" in argv:
        Path(argv[argv.index("--json") + 1]).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
