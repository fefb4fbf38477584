"""Read the linear-encoder probe (probe.sh) by RULE.md: §8's rule, its code (series-delay-choice/analyse.py).

Usage: python analyse.py HISTORIES [--test]
  HISTORIES: a folder with default/SET-sS/history.csv and linear16/SET-sS/history.csv (keep.py's copy of the
  runs: python docs/results/series-delay-choice/keep.py OUT $PWD/docs/results/series-linear-encoder/histories).
  Only the sets that both configurations have for every seed enter (RULE.md: if time ran out). --test prints
  the test accuracy too, after the decision. Writes choice.json in HISTORIES.
"""

import importlib.util
import json
import statistics
import sys
from pathlib import Path

spec = importlib.util.spec_from_file_location(
    "delay_choice", Path(__file__).resolve().parent.parent / "series-delay-choice" / "analyse.py")
rule = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rule)


def main(folder: Path, show_test: bool) -> None:
    configs = {name: rule.collect(folder / name) for name in ("default", "linear16")}
    seeds = [0, 1, 2]
    rule.SETS = tuple(s for s in rule.SETS if all(set(seeds) <= set(c.get(s, {})) for c in configs.values()))
    print(f"sets complete for seeds {seeds}: {', '.join(rule.SETS)}")
    result = rule.decide(configs, "default")
    result["sets"] = list(rule.SETS)
    if show_test:
        print("\ntest accuracy (%) at the chosen epoch, mean ± std over seeds (read after the decision)")
        for name, runs in result["configurations"].items():
            r = runs["runs"]
            print(f"| {name} | " + " | ".join(
                f"{statistics.fmean(r[s][k]['test'] for k in r[s]):.1f} ± "
                f"{statistics.stdev([r[s][k]['test'] for k in r[s]]):.1f}" for s in rule.SETS) + " |")
    (folder / "choice.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]), "--test" in sys.argv[2:])
