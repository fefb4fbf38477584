"""Read probe.sh's runs against today's default (MAX_STEPS=100, the `delay5x3` runs of
../series-delay-choice/histories): each run's chosen epoch (the trainer's) and its validation accuracy.

Usage: python analyse.py OUT_DIR [--test]
  OUT_DIR: probe.sh's folder (OUT_DIR/CONFIG/SET-sS/history.csv) or this folder's histories/.
ItalyPowerDemand (24 steps) is never pooled, so a candidate's ItalyPowerDemand runs are the default's own
(not rerun): its rows are taken from the default's histories.
Rule fixed before the runs (the one of ../series-delay-choice/analyse.py): a candidate replaces the default
only if its mean validation accuracy over ACSF1, ItalyPowerDemand, OSULeaf and the seeds exceeds the
default's by more than the seed spread, the larger of the two configurations' ranges (max - min over seeds)
of the per-seed three-set mean, on two seeds or more. Test accuracy is printed only with --test (after the
choice). Writes choice.json in OUT_DIR.
"""

import importlib.util
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("delay_analyse", HERE.parent / "series-delay-choice" / "analyse.py")
delay = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(delay)
SETS = delay.SETS
DEFAULT = "pool100"  # max_steps=100, the default: series-delay-choice's delay5x3 runs
UNPOOLED = "ItalyPowerDemand"  # 24 steps: the same runs under every max_steps >= 24


def main(out: Path, show_test: bool) -> None:
    base = delay.collect(HERE.parent / "series-delay-choice" / "histories" / "delay5x3")
    configs = {DEFAULT: base}
    for p in sorted(out.iterdir()):
        if p.is_dir() and p.name.startswith("pool") and p.name != DEFAULT:
            configs[p.name] = delay.collect(p) | {UNPOOLED: base[UNPOOLED]}
    result = delay.decide(configs, DEFAULT, show_test)  # s/run there: ItalyPowerDemand's are the default's
    print("\ntraining seconds per run (history.csv's epochs summed), mean over the seeds, pooled sets")
    for name, c in result["configurations"].items():
        print(f"| {name} | " + " | ".join(
            f"{s} {statistics.fmean(r['seconds'] for r in c['runs'][s].values()):.0f}"
            for s in SETS if s != UNPOOLED) + " |")
    (out / "choice.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--test"]
    main(Path(args[0]), "--test" in sys.argv[1:])
