"""Profile one training epoch of JapaneseVowels (batch 8, the paper network 12-100-100-9, one thread) per rule
with cProfile; prints the 14 functions with the most own time (docs/benchmarks.md, "Per-step overhead").

    PYTHONPATH=src python3 benchmarks/profile_epoch.py            # bptt, solsa (cascade), solsa same-step
    PYTHONPATH=src python3 benchmarks/profile_epoch.py bptt       # one rule
"""
import cProfile
import pstats
import sys

import torch

from solsa.bench.speed import epoch_seconds
from solsa.tasks import load_task

torch.set_num_threads(1)
task = load_task("uea:JapaneseVowels", seed=0)
rows = [(a, {}) for a in sys.argv[1:]] or [("bptt", {}), ("solsa", {}), ("solsa", {"credit": "same-step"})]
for name, extra in rows:
    run, rule = epoch_seconds(name, task, None, batch_size=8, filter_granularity="layer", **extra)
    run()  # warm-up
    pr = cProfile.Profile()
    pr.enable()
    s = run()
    pr.disable()
    print(f"==== {name} {extra} backend={rule.active_backend}: {s:.2f} s/epoch (under cProfile)")
    pstats.Stats(pr).sort_stats("tottime").print_stats(14)
