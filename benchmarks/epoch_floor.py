"""Why the epoch-time target of issue 17 (the default ≤ 0.3 × BPTT per epoch) is below an arithmetic floor.

For one batch of a task, with the trainer's defaults: the arithmetic each rule asks for per training sequence
(`solsa.bench.ops.OpCounter` on the rule's PyTorch reference path, which does the fused kernel's arithmetic;
matrix products 2·M·N·K, every other op one per element of its largest tensor — so a multiply-add on a trace
counts 1, not 2: SOLSA's figure is a lower bound), and the CPU time of the rule's default (compiled) backend on
the same batch (one thread, rules interleaved, median of the repeats). From these: each rule's achieved rate
(operations per CPU second), and the rate SOLSA's counted arithmetic would need to take TARGET × BPTT's time.

    PYTHONPATH=src python3 benchmarks/epoch_floor.py --task uea:JapaneseVowels --out docs/bench/epoch-floor/jv.json
    PYTHONPATH=src python3 benchmarks/epoch_floor.py --task patterns --task-option steps=300 \\
        --out docs/bench/epoch-floor/patterns300.json
"""
import argparse
import json
import time

import torch

from solsa.bench.common import machine_info
from solsa.bench.ops import OpCounter
from solsa.config import TrainConfig
from solsa.factories import build_learner, build_network
from solsa.tasks import iterate_batches, load_task

RULES = ("bptt", "solsa")


def _learner(rule: str, backend: str, task):
    cfg = TrainConfig(rule=rule, backend=backend)
    torch.manual_seed(0)
    return build_learner(cfg, build_network(cfg, task.n_inputs, task.n_classes))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="uea:JapaneseVowels")
    p.add_argument("--task-option", action="append", default=[], metavar="KEY=INT")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--target", type=float, default=0.3, help="the issue's epoch-time ratio to BPTT")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    task = load_task(args.task, seed=0, **{k: int(v) for k, v in (kv.split("=", 1) for kv in args.task_option)})
    batch = next(iter(iterate_batches(task.train, TrainConfig().batch_size, shuffle=False)))
    ops = {}
    for rule in RULES:
        learner = _learner(rule, "reference", task)
        with OpCounter() as c:
            learner.sequence(batch.x, batch.y, batch.mask)
        ops[rule] = c.total
    learners = {rule: _learner(rule, "auto", task) for rule in RULES}
    samples = {rule: [] for rule in RULES}
    for rep in range(args.repeats + 1):
        for rule, learner in learners.items():
            t0 = time.process_time()
            learner.sequence(batch.x, batch.y, batch.mask)
            if rep:
                samples[rule].append(time.process_time() - t0)
    sec = {rule: sorted(v)[len(v) // 2] for rule, v in samples.items()}
    rate = {rule: ops[rule] / sec[rule] for rule in RULES}
    needed = ops["solsa"] / (args.target * sec["bptt"])
    rows = {rule: {"ops_per_sequence": ops[rule], "backend": learners[rule].rule.active_backend
                   if hasattr(learners[rule].rule, "active_backend") else "auto",
                   "cpu_seconds_per_sequence": sec[rule], "samples": samples[rule], "ops_per_second": rate[rule]}
            for rule in RULES}
    T, B = batch.x.shape[0], batch.x.shape[1]
    print(f"{args.task}: T = {T}, B = {B}, one thread")
    for rule in RULES:
        r = rows[rule]
        print(f"  {rule:<6} {r['ops_per_sequence'] / 1e6:8.2f} Mop/sequence  {r['cpu_seconds_per_sequence'] * 1e3:7.2f} ms"
              f"  {r['ops_per_second'] / 1e9:6.2f} Gop/s")
    print(f"  SOLSA / BPTT: arithmetic {ops['solsa'] / ops['bptt']:.2f} x, time {sec['solsa'] / sec['bptt']:.2f} x")
    print(f"  {args.target} x BPTT's time needs SOLSA at {needed / 1e9:.2f} Gop/s: {needed / rate['solsa']:.1f} x its rate,"
          f" {needed / rate['bptt']:.1f} x BPTT's")
    result = {"benchmark": "epoch_floor", "task": args.task, "task_options": args.task_option, "T": T, "batch": B,
              "target": args.target, "rows": rows, "ops_ratio": ops["solsa"] / ops["bptt"],
              "time_ratio": sec["solsa"] / sec["bptt"], "needed_ops_per_second": needed,
              "needed_over_solsa_rate": needed / rate["solsa"], "needed_over_bptt_rate": needed / rate["bptt"],
              "machine": machine_info()}
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
