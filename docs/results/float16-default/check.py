"""Issue 17's 10-seed check of float16 trace storage (rule.md, fixed before the runs).

Usage: python check.py OUT [--f16 NAME] [--json FILE]; OUT/TASK/{f32,NAME}/results.json as written by
`solsa compare` (NAME: f16, or f16n for the addendum's rerun).
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path

TASKS = ("patterns", "patterns-slow-readout")


def test_acc(path: Path) -> dict[int, float]:
    """Seed -> test accuracy (%) of the SOLSA rows of one compare run."""
    rows = json.loads((path / "results.json").read_text())
    return {r["seed"]: 100.0 * r["test_accuracy"] for r in rows if r["rule"] == "solsa"}


def main(argv: list[str]) -> int:
    out, result = Path(argv[0]), {}
    arm = argv[argv.index("--f16") + 1] if "--f16" in argv else "f16"
    for task in TASKS:
        a, b = test_acc(out / task / "f32"), test_acc(out / task / arm)
        seeds = sorted(a)
        d = [b[s] - a[s] for s in seeds]
        mean, se = statistics.fmean(d), statistics.stdev(d) / math.sqrt(len(d))
        result[task] = {"seeds": seeds, "f32": [a[s] for s in seeds], "f16": [b[s] for s in seeds], "diffs": d,
                        "mean_f32": statistics.fmean(a.values()), "mean_f16": statistics.fmean(b.values()),
                        "mean_diff": mean, "se": se, "passes": mean >= -se}
        print(f"{task}: f32 {result[task]['mean_f32']:.2f}, f16 {result[task]['mean_f16']:.2f}, "
              f"d {mean:+.2f} ± {se:.2f} (SE) -> {'passes' if mean >= -se else 'fails'}")
    result["adopt_float16"] = all(result[t]["passes"] for t in TASKS)
    print("decision:", "float16 becomes the default" if result["adopt_float16"] else "float32 stays the default")
    if "--json" in argv:
        Path(argv[argv.index("--json") + 1]).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
