"""The confirmation of max_steps=300 on fresh seeds 3-5 (confirm.md holds the rule, fixed before the runs).

Usage: python confirm.py OUT_DIR [--json FILE]   (OUT_DIR as written by probe.sh: pool100/, pool300/)
Reads validation accuracy only; ItalyPowerDemand (never pooled) is read from pool100 for both configurations.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SETS = ("ACSF1", "ItalyPowerDemand", "OSULeaf")
SEEDS = (3, 4, 5)


def val(out: Path, cfg: str, name: str, seed: int, shared: str = "pool100") -> float:
    """Validation accuracy (%) of one run; ItalyPowerDemand (never pooled) is read from ``shared``."""
    folder = shared if name == "ItalyPowerDemand" else cfg
    return 100.0 * json.loads((out / folder / f"{name}-s{seed}" / "metrics.json").read_text())["val_accuracy"]


def save(argv: list[str], result: dict) -> None:
    """Write ``result`` to the file named after ``--json`` in ``argv``, if any."""
    if "--json" in argv:
        Path(argv[argv.index("--json") + 1]).write_text(json.dumps(result, indent=1))


def main(argv: list[str]) -> int:
    out = Path(argv[0])
    result = {}
    for cfg in ("pool100", "pool300"):
        per_seed = [sum(val(out, cfg, n, s) for n in SETS) / len(SETS) for s in SEEDS]
        per_set = {n: sum(val(out, cfg, n, s) for s in SEEDS) / len(SEEDS) for n in SETS}
        result[cfg] = {"mean": sum(per_seed) / len(per_seed), "per_seed": per_seed, "per_set": per_set,
                       "seed_range": max(per_seed) - min(per_seed)}
    lead = result["pool300"]["mean"] - result["pool100"]["mean"]
    spread = max(result["pool100"]["seed_range"], result["pool300"]["seed_range"])
    every_seed = all(b > a for a, b in zip(result["pool100"]["per_seed"], result["pool300"]["per_seed"]))
    result["lead"], result["spread"], result["higher_on_every_seed"] = lead, spread, every_seed
    result["decision"] = "max_steps=300" if lead > spread and every_seed else "max_steps=100 (unchanged)"
    for cfg in ("pool100", "pool300"):
        r = result[cfg]
        print(f"{cfg}: mean val {r['mean']:.1f}  per seed {' / '.join(f'{v:.1f}' for v in r['per_seed'])}  "
              f"per set {', '.join(f'{k} {v:.1f}' for k, v in r['per_set'].items())}")
    print(f"lead {lead:+.1f} against spread {spread:.1f}; higher on every seed: {every_seed}; "
          f"decision: {result['decision']}")
    save(argv, result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
