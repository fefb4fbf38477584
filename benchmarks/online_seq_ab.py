"""e-prop, OSTL and OTTT (and BPTT): a training batch on the compiled whole-sequence path (backend "fused", what
"auto" takes) beside the reference path (one ``step`` per time step; BPTT's: autograd through the PyTorch
whole-sequence path), interleaved in one process (docs/benchmarks.md §7, "e-prop, OSTL, OTTT: the time loop in
compiled code", and "BPTT on recurrent ALIF layers").

JapaneseVowels with the trainer's defaults (``solsa train``: 12-100-100-9, batch 16, leaky readout, one update
per batch with Adam), one thread; one warm-up epoch, then ``--rounds`` epochs per row with the rows interleaved;
prints each row's median ms per batch and the reference ÷ fused ratio of each rule. ``--model native``: e-prop's
own recurrent ALIF network (every rule on it; "e-prop on the native model" in that section).

    PYTHONPATH=src python3 benchmarks/online_seq_ab.py --rounds 5
    OMP_NUM_THREADS=1 PYTHONPATH=src python3 benchmarks/online_seq_ab.py --model native --rounds 5
    OMP_NUM_THREADS=1 PYTHONPATH=src python3 benchmarks/online_seq_ab.py --model native --rules bptt --rounds 7
    OMP_NUM_THREADS=1 PYTHONPATH=src python3 benchmarks/online_seq_ab.py --neuron alif --rules bptt --rounds 7
"""
import argparse
import json
import os
import statistics
import time

import torch

from solsa.config import TrainConfig
from solsa.factories import build_learner, build_network
from solsa.tasks import iterate_batches, load_task


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="uea:JapaneseVowels")
    ap.add_argument("--rules", default="eprop,ostl,ottt")
    ap.add_argument("--model", default="full", help="the model option of solsa train (full, paper, native)")
    ap.add_argument("--neuron", default="lif", help="the neuron option of solsa train (lif, alif)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default=None, help="write the result as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    task = load_task(args.task, seed=0)
    rows = {}
    for rule in args.rules.split(","):
        for backend in ("fused", "reference"):
            cfg = TrainConfig(rule=rule, backend=backend, model=args.model, neuron=args.neuron)
            torch.manual_seed(0)
            learner = build_learner(cfg, build_network(cfg, task.n_inputs, task.n_classes))
            batches = list(iterate_batches(task.train, cfg.batch_size, shuffle=True,
                                           generator=torch.Generator().manual_seed(0)))
            rows[f"{rule} {backend}"] = (learner, batches, [])

    def epoch(learner, batches) -> tuple[float, float]:
        """Wall and CPU (this process) ms per batch."""
        start, cpu = time.perf_counter(), time.process_time()
        for b in batches:
            learner.sequence(b.x, b.y, b.mask, keep_outputs=False)
        return ((time.perf_counter() - start) / len(batches) * 1e3, (time.process_time() - cpu) / len(batches) * 1e3)

    for learner, batches, _ in rows.values():  # warm-up (builds the library, first-call costs)
        epoch(learner, batches)
    for _ in range(args.rounds):
        for learner, batches, times in rows.values():
            times.append(epoch(learner, batches))
    result = {"task": args.task, "model": args.model, "neuron": args.neuron, "rounds": args.rounds, "load_average": os.getloadavg(),
              "ms_per_batch": {}, "cpu_ms_per_batch": {}, "backend": {}, "ratio": {}, "cpu_ratio": {}}
    for label, (learner, _, times) in rows.items():
        result["ms_per_batch"][label] = statistics.median(t[0] for t in times)
        result["cpu_ms_per_batch"][label] = statistics.median(t[1] for t in times)
        result["backend"][label] = learner.rule.active_backend
    for rule in args.rules.split(","):
        for ms, ratio in (("ms_per_batch", "ratio"), ("cpu_ms_per_batch", "cpu_ratio")):
            result[ratio][rule] = result[ms][f"{rule} reference"] / result[ms][f"{rule} fused"]
    print(json.dumps(result, indent=1))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
