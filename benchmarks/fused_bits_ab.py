"""Are two source trees' fused SOLSA kernels the same bits? Each tree runs, in its own process, the default
learner's streaming step (batch 1) and a batch of 4 for 3 updates of 60 steps, for cascade / next / same-step
credit x one alpha per layer / per channel, and cascade with float16 and bfloat16 traces; prints every
output, loss or parameter that differs, and the largest difference (docs/benchmarks.md §7).

    python3 benchmarks/fused_bits_ab.py /work/main/src src
"""
import argparse
import os
import subprocess
import sys
import tempfile

import torch

WORKER = r"""
import sys, torch
from solsa.bench.common import NetSpec, build_learner, make_batch
torch.set_num_threads(1)
out = {}
for credit, td in (("cascade", None), ("same-step", None), ("next", None), ("cascade", "float16"),
                   ("cascade", "bfloat16")):
    for gran in ("layer", "channel"):
        for B in (1, 4):
            torch.manual_seed(0)
            spec = NetSpec(filter_granularity=gran, options={"credit": credit, **({"trace_dtype": td} if td else {})})
            x, y, w = make_batch(60, B, spec)
            learner = build_learner("solsa", spec)
            rule = learner.rule
            ys = []
            for _ in range(3):
                rule.reset(B)
                for t in range(60):
                    r = rule.step(x[t], y, w[t])
                    ys += [r.output.reshape(-1).clone(), r.loss.reshape(1).clone()]
                learner.update()
            assert rule.active_backend == "fused", rule.active_backend
            out[f"{credit}-{td}-{gran}-B{B}"] = {"outputs and losses": torch.cat(ys),
                                                 **{n: p.detach().clone() for n, p in rule.net.named_parameters()}}
torch.save(out, sys.argv[1])
"""


def run(tree: str, path: str) -> dict:
    env = {**os.environ, "PYTHONPATH": os.path.abspath(tree), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", WORKER, path], env=env, check=True)
    return torch.load(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before")
    ap.add_argument("after")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        a, b = run(args.before, os.path.join(tmp, "a.pt")), run(args.after, os.path.join(tmp, "b.pt"))
    worst, differ = 0.0, 0
    for case, tensors in a.items():
        for name, t in tensors.items():
            if not torch.equal(t, b[case][name]):
                d = (t.double() - b[case][name].double()).abs().max().item()
                worst, differ = max(worst, d), differ + 1
                print(f"{case} {name}: differs, max |diff| {d:.3g}")
    print(f"{len(a)} cases: {differ} tensors differ; max |diff| {worst:.3g}" if differ else
          f"{len(a)} cases: every output, loss and parameter the same bits")


if __name__ == "__main__":
    main()
