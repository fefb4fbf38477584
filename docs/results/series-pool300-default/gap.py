"""Issue 16's gap to MiniRocket over ACSF1, ItalyPowerDemand, OSULeaf with max_steps=300 the default.

Usage: python gap.py   (from anywhere)
ACSF1 and OSULeaf from this folder's accuracy.json (`solsa bench accuracy --sets ACSF1,OSULeaf --seeds 3`);
ItalyPowerDemand (24 steps, pooled by neither 100 nor 300) from ../series-delay-default/accuracy.json.
Gap per rule: mean over the three sets of (MiniRocket's mean test accuracy - the rule's), in points.
"""

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
SETS = ("ACSF1", "ItalyPowerDemand", "OSULeaf")


def rows(path: Path) -> dict:
    return {r["set"]: r for r in json.loads(path.read_text())["rows"]}


new, old = rows(HERE / "accuracy.json"), rows(HERE.parent / "series-delay-default" / "accuracy.json")
table = {name: (new if name in new else old)[name] for name in SETS}
result = {}
for rule in ("solsa", "bptt", "eprop"):
    gaps = {n: table[n]["rules"][rule]["gap_to_reference_points"] for n in SETS}
    result[rule] = {"per_set": gaps, "mean_gap": sum(gaps.values()) / len(gaps)}
    print(f"{rule}: " + ", ".join(f"{n} {100 * table[n]['rules'][rule]['test_accuracy_mean']:.1f} "
                                  f"(gap {g:.1f})" for n, g in gaps.items()) + f"; mean gap {result[rule]['mean_gap']:.1f}")
(HERE / "gap.json").write_text(json.dumps(result, indent=1))
