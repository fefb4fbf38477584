"""Issue 16's gap to MiniRocket over ACSF1, ItalyPowerDemand, OSULeaf with the default pooling bound.

Usage: python gap.py [DIR ...]   (from anywhere; default DIR: this folder, max_steps=300 the default)
ACSF1 and OSULeaf from the DIRs' accuracy.json (`solsa bench accuracy --sets ACSF1,OSULeaf --seeds 3`; a rule
is read from the first DIR that has it, a rule in none is skipped); ItalyPowerDemand (24 steps, pooled by no
bound) from ../series-delay-default/accuracy.json. MiniRocket from each row, or, for a run with
--no-reference, from this folder's rows (MiniRocket always sees the full length: pooling does not change it).
Gap per rule: mean over the three sets of (MiniRocket's mean test accuracy - the rule's), in points; written
to the first DIR's gap.json.
"""

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SETS = ("ACSF1", "ItalyPowerDemand", "OSULeaf")


def rows(path: Path) -> dict:
    return {r["set"]: r for r in json.loads(path.read_text())["rows"]}


dirs = [Path(d).resolve() for d in sys.argv[1:]] or [HERE]
news = [rows(d / "accuracy.json") for d in dirs]
old = rows(HERE.parent / "series-delay-default" / "accuracy.json")
ref = old | rows(HERE / "accuracy.json")  # MiniRocket for a --no-reference run (ItalyPowerDemand: the old rows)
result = {}
for rule in ("solsa", "bptt", "eprop"):
    if not any(rule in new[n]["rules"] for new in news for n in new):
        continue  # a rule in none of the DIRs
    table = {n: old[n] for n in SETS}
    for new in reversed(news):  # the first DIR that has the rule wins
        table |= {n: new[n] for n in SETS if n in new and rule in new[n]["rules"]}
    if any(rule not in table[n]["rules"] for n in SETS):
        continue
    gaps = {n: 100 * ((table[n].get("minirocket") or ref[n]["minirocket"])["test_accuracy_mean"]
                      - table[n]["rules"][rule]["test_accuracy_mean"]) for n in SETS}
    result[rule] = {"per_set": gaps, "mean_gap": sum(gaps.values()) / len(gaps)}
    print(f"{rule}: " + ", ".join(f"{n} {100 * table[n]['rules'][rule]['test_accuracy_mean']:.1f} "
                                  f"(gap {g:.1f})" for n, g in gaps.items()) + f"; mean gap {result[rule]['mean_gap']:.1f}")
(dirs[0] / "gap.json").write_text(json.dumps(result, indent=1))
