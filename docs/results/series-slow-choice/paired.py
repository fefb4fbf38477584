"""The paired test of the slow synaptic filters against today's uea default (paired.md holds the rule, fixed before
the runs).

Usage: python paired.py OUT_DIR [--configs BASE,CANDIDATE] [--seeds 14,15,16,17] [--json FILE]   (OUT_DIR as
written by probe.sh; the defaults are this round's, ../series-dil-choice/paired.md's is --configs full,dil5
--seeds 18,19,20,21). Reads validation accuracy only (metrics.json's val_accuracy at the trainer's chosen epoch).
Per seed d = three-set mean under the candidate minus under the base; the candidate is adopted iff
mean(d) > 2 * std(d, n - 1) / sqrt(n).
"""

from __future__ import annotations

import importlib.util
import json
import math
import statistics
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location("pool_paired", Path(__file__).resolve().parents[1]
                                               / "series-pool-choice" / "paired.py")
pool_paired = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pool_paired)
_option = pool_paired._option  # --configs / --seeds, as the pooling rounds read them
SETS = ("ACSF1", "ItalyPowerDemand", "OSULeaf")
SEEDS = (14, 15, 16, 17)
CONFIGS = ("base", "slow")


def val(out: Path, cfg: str, name: str, seed: int) -> float:
    """Validation accuracy (%) of one run at the trainer's chosen epoch."""
    return 100.0 * json.loads((out / cfg / f"{name}-s{seed}" / "metrics.json").read_text())["val_accuracy"]


def main(argv: list[str]) -> int:
    out = Path(argv[0])
    configs, seeds = _option(argv, "--configs", CONFIGS), _option(argv, "--seeds", SEEDS)
    base, cand = configs
    runs = {c: {n: {s: val(out, c, n, s) for s in seeds} for n in SETS} for c in configs}
    per_seed = {c: [statistics.fmean(runs[c][n][s] for n in SETS) for s in seeds] for c in configs}
    diffs = [y - x for x, y in zip(per_seed[base], per_seed[cand])]
    mean, se = statistics.fmean(diffs), statistics.stdev(diffs) / math.sqrt(len(diffs))
    adopt = mean > 2 * se
    result = {"seeds": list(seeds), "runs": runs, "per_seed": per_seed, "diffs": diffs,
              "per_set": {c: {n: statistics.fmean(runs[c][n].values()) for n in SETS} for c in configs},
              "mean_diff": mean, "se": se, "threshold": 2 * se, f"adopt_{cand}": adopt,
              "decision": f"{cand} adopted" if adopt else f"unchanged ({base})"}
    print("| seed | " + " | ".join(f"{n} {base} / {cand}" for n in SETS) + f" | mean {base} | mean {cand} | d |")
    print("|---" * (len(SETS) + 4) + "|")
    for i, s in enumerate(seeds):
        cells = " | ".join(f"{runs[base][n][s]:.1f} / {runs[cand][n][s]:.1f}" for n in SETS)
        print(f"| {s} | {cells} | {per_seed[base][i]:.1f} | {per_seed[cand][i]:.1f} | {diffs[i]:+.2f} |")
    print(f"mean d {mean:+.2f}, SE {se:.2f}, 2 SE {2 * se:.2f}; decision: {result['decision']}")
    if "--json" in argv:
        Path(argv[argv.index("--json") + 1]).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
