"""The fused kernel's step of two source trees in ONE process: another tree's kernel sources are compiled
beside this tree's, and the same learner's plan steps through each alternately (blocks of 300 calls, the
median of the blocks; one thread). Valid while the two kernels share the Plan layout (the same ABI version).

    PYTHONPATH=src python3 benchmarks/kernel_ab.py /work/main/src cascade 8    # before (main) vs this tree
    CLOCK=cpu PYTHONPATH=src python3 benchmarks/kernel_ab.py /work/main/src cascade 1   # the thread's CPU time
                                                                                     # (less sensitive to load)
"""
import ctypes
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

import torch

from solsa.bench.common import NetSpec, build_learner, make_batch
from solsa.fast import build

torch.set_num_threads(1)
other, credit, B = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
rounds = int(os.environ.get("ROUNDS", 40))
tmp = Path(tempfile.mkdtemp())
for path in [*(other / "solsa/fast").glob("*.h"), other / "solsa/fast/kernel.cpp"]:  # the other tree's own files
    shutil.copy(path, tmp / path.name)
subprocess.run(build.compiler_command(shutil.which("g++"), tmp / "kernel.cpp", tmp / "k.so", True), check=True)
before = ctypes.CDLL(str(tmp / "k.so"))
build._declare(before)
assert before.solsa_abi_version() == build.ABI_VERSION, "the two kernels' Plan layouts differ"
spec = NetSpec(options={"credit": credit})
x, y, w = make_batch(100, B, spec)
learner = build_learner("solsa", spec)
rule = learner.rule
rule.reset(B)
xs, ws = [x[t].contiguous() for t in range(100)], [w[t].contiguous() for t in range(100)]
for t in range(100):
    rule.step(xs[t], y, ws[t])  # sets the plan's parameter pointers
f = rule._fused
sfx = "f32" if f.dtype == torch.float32 else "f64"
steps = {"before": getattr(before, f"solsa_step_{sfx}"), "after": getattr(build.load_kernel(), f"solsa_step_{sfx}")}
out, loss = torch.empty(B, spec.classes, dtype=f.dtype), torch.empty((), dtype=f.dtype)


def run(fn, n):
    for i in range(n):
        if hasattr(f, "_all_layers"):  # a tree whose kernel compares W with a copy each step
            f.plan.w_dirty = f._all_layers
        fn(f._plan_ref, xs[i % 100].data_ptr(), y.data_ptr(), 1, ws[i % 100].data_ptr(), f.loss_kind,
           out.data_ptr(), loss.data_ptr(), f._gbuf_ptr)


clock = time.thread_time if os.environ.get("CLOCK") == "cpu" else time.perf_counter
res = {k: [] for k in steps}
for _ in range(rounds):
    for k, fn in steps.items():
        res[k].append(timeit.Timer(lambda: run(fn, 300), timer=clock).timeit(number=1) / 300 * 1e6)
med = {k: statistics.median(v) for k, v in res.items()}
print(f"{credit}, batch {B}: kernel step before {med['before']:.2f} us, after {med['after']:.2f} us, "
      f"after/before {med['after'] / med['before']:.3f} ({rounds} blocks of 300 calls each, "
      f"{'thread CPU time' if clock is time.thread_time else 'wall time'})")
