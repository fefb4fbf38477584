"""The batch-1 streaming step (one ``rule.step`` per time step, as ``solsa bench speed`` times it) of two source
trees, interleaved in one run: each round runs a fresh process per tree that times 2,000 steps of the
default SOLSA on the paper network (12-100-100-9, one thread, an update every 100 steps, untimed);
prints the median µs per step of each tree and their ratio (docs/benchmarks.md §7).

    python3 benchmarks/stream_step_ab.py /work/main/src src          # before (main) vs this tree
    python3 benchmarks/stream_step_ab.py /work/main/src src --credit same-step --rounds 5
    python3 benchmarks/stream_step_ab.py /work/main/src src --raw    # the kernel call alone (no Python around it)
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

WORKER = r"""
import json, sys, time, torch
from solsa.bench.common import NetSpec, build_learner, make_batch
torch.set_num_threads(1)
spec = NetSpec(options={"credit": sys.argv[1]})
x, y, w = make_batch(100, 1, spec)
learner = build_learner("solsa", spec)
rule = learner.rule
rule.reset(1)
rule.step(x[0], y, w[0])  # builds the fused stepper and sets its parameter pointers
fused = rule._fused
xs, ws = [x[t].contiguous() for t in range(100)], [w[t].contiguous() for t in range(100)]
out, loss = torch.empty(1, spec.classes), torch.empty(())


def raw(t):  # quick_step's kernel call, without the Python around it
    if hasattr(fused, "_all_layers"):  # a tree whose kernel compares W with a copy each step
        fused.plan.w_dirty = fused._all_layers
    fused._step(fused._plan_ref, xs[t].data_ptr(), y.data_ptr(), 1, ws[t].data_ptr(), fused.loss_kind,
                out.data_ptr(), loss.data_ptr(), fused._gbuf_ptr)


step = raw if sys.argv[3] == "raw" else lambda t: rule.step(xs[t], y, ws[t])
times = []
for i in range(int(sys.argv[2]) + 300):
    t = i % 100
    t0 = time.perf_counter()
    step(t)
    if i >= 300:
        times.append(time.perf_counter() - t0)
    if t == 99:
        learner.update()
        rule.reset(1)
        fused = rule._fused  # restart keeps the stepper; a rebuilt one is picked up here
print(json.dumps({"us": sorted(times)[len(times) // 2] * 1e6, "backend": rule.active_backend}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--credit", default="cascade")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--raw", action="store_true", help="time the kernel call alone (the fused stepper's _step)")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    runs: dict[str, list[float]] = {"before": [], "after": []}
    for _ in range(args.rounds):
        for label in runs:
            env = {**os.environ, "PYTHONPATH": os.path.abspath(getattr(args, label))}
            out = subprocess.run([sys.executable, "-c", WORKER, args.credit, str(args.steps),
                                  "raw" if args.raw else "step"], env=env, check=True,
                                 capture_output=True, text=True).stdout
            res = json.loads(out.strip().splitlines()[-1])
            runs[label].append(res["us"])
            print(f"{label:<7} {res['us']:7.2f} us/step  ({res['backend']})", flush=True)
    med = {k: statistics.median(v) for k, v in runs.items()}
    result = {"credit": args.credit, "raw": args.raw, "rounds": args.rounds, "steps": args.steps, "us_per_step": runs,
              "median_us": med, "ratio_after_before": med["after"] / med["before"]}
    print(f"median: before {med['before']:.2f} us, after {med['after']:.2f} us, "
          f"after/before {result['ratio_after_before']:.3f}")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
