"""Seconds per training epoch of the trainer's defaults (`solsa train` with no options but the task) against
BPTT, and of the memory candidates of issue 17 (docs/benchmarks.md §0b). One thread; the rules interleaved
in every repeat; CPU seconds of this process (time.process_time: a loaded shared machine stretches wall time,
not CPU time); the first repeat warms up. Prints a table and writes JSON.

    PYTHONPATH=src python3 benchmarks/epoch_default.py --task uea:JapaneseVowels --out docs/bench/memory-default/epoch-jv.json
    PYTHONPATH=src python3 benchmarks/epoch_default.py --task patterns --task-option steps=300 --max-batches 4 \\
        --out docs/bench/memory-default/epoch-300.json
"""
import argparse
import json
import time

import torch

from solsa.bench.common import machine_info
from solsa.bench.speed import epoch_seconds
from solsa.tasks import load_task

# name -> (rule, TrainConfig options beside the trainer's defaults)
CANDIDATES = {
    "bptt": ("bptt", {}),
    "solsa (default: filter first, trace_dtype auto = float16)": ("solsa", {}),
    "solsa, filter first, full-precision traces (the default before)": ("solsa", {"trace_dtype": "full"}),
    "solsa, filter per channel, full-precision traces": ("solsa", {"filter_granularity": "channel",
                                                                    "trace_dtype": "full"}),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="uea:JapaneseVowels")
    p.add_argument("--task-option", action="append", default=[], metavar="KEY=INT")
    p.add_argument("--max-batches", type=int, default=None, help="batches per epoch (default all)")
    p.add_argument("--repeats", type=int, default=3, help="timed epochs per rule (after one warm-up)")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    options = {k: int(v) for k, v in (kv.split("=", 1) for kv in args.task_option)}
    task = load_task(args.task, seed=0, **options)
    runners = {name: epoch_seconds(rule, task, args.max_batches, **opts) for name, (rule, opts) in CANDIDATES.items()}
    samples = {name: [] for name in CANDIDATES}
    for rep in range(args.repeats + 1):
        for name, (run, _) in runners.items():
            t0 = time.process_time()
            run()
            if rep:
                samples[name].append(time.process_time() - t0)
    median = {name: sorted(v)[len(v) // 2] for name, v in samples.items()}
    rows = [{"candidate": name, "rule": CANDIDATES[name][0], "options": CANDIDATES[name][1],
             "backend": runners[name][1].active_backend, "cpu_seconds_per_epoch": median[name],
             "samples": samples[name], "ratio_to_bptt": median[name] / median["bptt"]} for name in CANDIDATES]
    for r in rows:
        print(f"{r['candidate']:<48} {r['backend']:<9} {r['cpu_seconds_per_epoch']:.3f} s/epoch  "
              f"{r['ratio_to_bptt']:.3f} x BPTT")
    result = {"benchmark": "epoch_default", "task": args.task, "task_options": options, "T": task.train.steps,
              "max_batches": args.max_batches, "repeats": args.repeats, "rows": rows, "machine": machine_info()}
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
