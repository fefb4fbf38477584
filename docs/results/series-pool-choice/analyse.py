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
    seeds = [k for k in sorted(base[SETS[0]]) if all(k in c.get(s, {}) for c in configs.values() for s in SETS)]
    if not seeds:
        raise SystemExit("no seed with every configuration on every set yet")
    mean = statistics.fmean
    summary = {}
    print(f"validation accuracy (%) at the chosen epoch, seeds {seeds} (the choice reads this table only)")
    print("| configuration | " + " | ".join(SETS) + " | mean | per-seed means | training s/run (pooled sets) |")
    print("|---|" + "---|" * (len(SETS) + 3))
    for name, c in configs.items():
        per_seed = [mean(c[s][k]["val"] for s in SETS) for k in seeds]
        sets = {s: mean(c[s][k]["val"] for k in seeds) for s in SETS}
        secs = {s: mean(c[s][k]["seconds"] for k in seeds) for s in SETS if s != UNPOOLED}
        summary[name] = {"val_mean": mean(per_seed), "per_seed_mean": per_seed, "per_set": sets,
                         "seed_range": max(per_seed) - min(per_seed), "train_seconds_per_run": secs,
                         "runs": {s: {k: c[s][k] for k in seeds} for s in SETS}}
        print(f"| {name} | " + " | ".join(f"{sets[s]:.1f}" for s in SETS) + f" | {mean(per_seed):.1f} | "
              + " / ".join(f"{v:.1f}" for v in per_seed) + " | "
              + " / ".join(f"{s} {v:.0f}" for s, v in secs.items()) + " |")
    best = max((n for n in summary if n != DEFAULT), key=lambda n: summary[n]["val_mean"], default=None)
    decision = DEFAULT
    if best is not None:
        lead = summary[best]["val_mean"] - summary[DEFAULT]["val_mean"]
        spread = max(summary[best]["seed_range"], summary[DEFAULT]["seed_range"])
        print(f"\nbest candidate: {best}, lead over {DEFAULT} {lead:+.1f} points, seed spread {spread:.1f}")
        decision = best if lead > spread and len(seeds) > 1 else DEFAULT
    print(f"decision: {decision}" + ("" if len(seeds) > 1 else " (one seed: no decision)"))
    if decision != DEFAULT and show_test:
        print("\ntest accuracy (%) at the chosen epoch, mean ± std over seeds (read after choosing)")
        for n in (DEFAULT, decision):
            r = summary[n]["runs"]
            print(f"| {n} | " + " | ".join(
                f"{mean(r[s][k]['test'] for k in seeds):.1f} ± "
                f"{statistics.stdev([r[s][k]['test'] for k in seeds]) if len(seeds) > 1 else 0.0:.1f}"
                for s in SETS) + " |")
    (out / "choice.json").write_text(json.dumps({"seeds": seeds, "decision": decision,
                                                 "configurations": summary}, indent=1))


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--test"]
    main(Path(args[0]), "--test" in sys.argv[1:])
