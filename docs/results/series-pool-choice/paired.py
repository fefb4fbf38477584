"""The paired test of a pooling bound against the default (paired.md, paired600.md hold the rules, fixed before
the runs).

Usage: python paired.py OUT_DIR [--seeds 6,7,8,9] [--configs pool100,pool300] [--json FILE]
(OUT_DIR as written by probe.sh; the defaults are paired.md's round, paired600.md's is
``--seeds 10,11,12,13 --configs pool300,pool600``). Reads validation accuracy only (metrics.json's
val_accuracy, at the trainer's chosen epoch); ItalyPowerDemand (never pooled) is read from the first (baseline)
configuration for both. Per seed d = three-set mean at the candidate minus at the baseline; the candidate is
adopted iff mean(d) > 2 * std(d, n - 1) / sqrt(n).
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


def decide(diffs: list[float], base: str = "100", cand: str = "300") -> dict:
    """paired.md's rule on the per-seed differences: adopt iff the mean exceeds twice its standard error."""
    mean = statistics.fmean(diffs)
    se = statistics.stdev(diffs) / math.sqrt(len(diffs))
    adopt = mean > 2 * se
    return {"mean_diff": mean, "se": se, "threshold": 2 * se, f"adopt_{cand}": adopt,
            "decision": f"max_steps={cand}" if adopt else f"max_steps={base} (unchanged)"}


def _option(argv: list[str], flag: str, default: tuple) -> tuple:
    """The comma-separated value after ``flag`` in ``argv`` (``default`` without it), typed like ``default``."""
    if flag not in argv:
        return default
    return tuple(type(default[0])(v) for v in argv[argv.index(flag) + 1].split(","))


def main(argv: list[str]) -> int:
    out = Path(argv[0])
    seeds, configs = _option(argv, "--seeds", SEEDS), _option(argv, "--configs", CONFIGS)
    b, c = configs
    bs, cs = b.removeprefix("pool"), c.removeprefix("pool")
    runs = {cfg: {n: {s: confirm.val(out, cfg, n, s, shared=b) for s in seeds} for n in SETS} for cfg in configs}
    per_seed = {cfg: [statistics.fmean(runs[cfg][n][s] for n in SETS) for s in seeds] for cfg in configs}
    diffs = [y - x for x, y in zip(per_seed[b], per_seed[c])]
    result = {"seeds": list(seeds), "runs": runs, "per_seed": per_seed, "diffs": diffs,
              "per_set": {cfg: {n: statistics.fmean(runs[cfg][n].values()) for n in SETS} for cfg in configs}}
    result |= decide(diffs, bs, cs)
    print("| seed | " + " | ".join(f"{n} {bs} / {cs}" for n in SETS) + f" | mean {bs} | mean {cs} | d |")
    print("|---" * (len(SETS) + 4) + "|")
    for i, s in enumerate(seeds):
        cells = " | ".join(f"{runs[b][n][s]:.1f} / {runs[c][n][s]:.1f}" for n in SETS)
        print(f"| {s} | {cells} | {per_seed[b][i]:.1f} | {per_seed[c][i]:.1f} | {diffs[i]:+.2f} |")
    print(f"mean d {result['mean_diff']:+.2f}, SE {result['se']:.2f}, 2 SE {result['threshold']:.2f}; "
          f"decision: {result['decision']}")
    confirm.save(argv, result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
