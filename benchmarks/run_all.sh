#!/usr/bin/env bash
# Reproduce docs/benchmarks.md: the three benchmarks at their defaults (the paper's network:
# 12 inputs, hidden 100,100, 9 classes, batch 4), results and plots into docs/bench/.
# Takes about 15-25 minutes on 2 cores. Run on an otherwise idle machine for stable timings.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/bench}
mkdir -p "$out"
nproc; grep -m1 "model name" /proc/cpuinfo || true; python -c "import torch; print('torch', torch.__version__)"
solsa bench memory   --out "$out/memory.json" --jobs 2
solsa bench workload --out "$out/workload.json"
solsa bench speed    --out "$out/speed.json"
