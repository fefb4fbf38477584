"""Where one BPTT training epoch spends its time: JapaneseVowels, batch 8, the paper network 12-100-100-9, one
thread, the trainer's defaults (docs/benchmarks.md §7).

Prints the CPU time per batch of the four parts of a training step (weights and reset, forward, backward,
update: Adam, its coordinates and the clamp), then torch.profiler's table of one epoch by self time.

    PYTHONPATH=src python3 benchmarks/profile_bptt.py              # backend auto (the compiled scan)
    PYTHONPATH=src python3 benchmarks/profile_bptt.py reference    # the PyTorch whole-sequence path
    PYTHONPATH=src python3 benchmarks/profile_bptt.py auto native  # model native (recurrent ALIF hidden layers)
"""
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

from solsa.config import TrainConfig
from solsa.factories import build_learner, build_network
from solsa.losses import sequence_weights
from solsa.tasks import iterate_batches, load_task

torch.set_num_threads(1)
backend = sys.argv[1] if len(sys.argv) > 1 else "auto"
model = sys.argv[2] if len(sys.argv) > 2 else "full"
task = load_task("uea:JapaneseVowels", seed=0)
batches = list(iterate_batches(task.train, 8, shuffle=True, generator=torch.Generator().manual_seed(0)))
cfg = TrainConfig(rule="bptt", hidden=(100, 100), batch_size=8, filter_granularity="layer", backend=backend,
                  model=model)
torch.manual_seed(0)
learner = build_learner(cfg, build_network(cfg, task.n_inputs, task.n_classes))
rule = learner.rule
parts = dict.fromkeys(("weights and reset", "forward", "backward", "update"), 0.0)


def epoch(record: bool) -> None:
    for b in batches:
        t0 = time.process_time()
        weights = sequence_weights(b.mask, rule.net.readout_score)
        rule.reset(b.x.shape[1])
        t1 = time.process_time()
        rule.run_sequence(b.x, b.y, weights)
        t2 = time.process_time()
        rule.flush()
        t3 = time.process_time()
        learner.apply()
        t4 = time.process_time()
        if record:
            for key, seconds in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                parts[key] += seconds


epoch(False)  # warm-up
repeats = 5
for _ in range(repeats):
    epoch(True)
total = sum(parts.values())
print(f"BPTT backend={rule.active_backend}: {total / repeats / len(batches) * 1e3:.2f} ms CPU per batch "
      f"({len(batches)} batches, {sum(b.x.shape[0] for b in batches)} steps per epoch)")
for key, seconds in parts.items():
    print(f"  {key:<18} {seconds / repeats / len(batches) * 1e3:6.3f} ms  {seconds / total:5.1%}")
with profile(activities=[ProfilerActivity.CPU]) as prof:
    epoch(False)
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))
