#!/usr/bin/env bash
# Cost of one SOLSA run per max_steps, measured interleaved (docs/series.md §9): ROUNDS rounds, each running
# every (set, max_steps) once for EPOCHS epochs, the order rotated each round, one process at a time,
# OMP_NUM_THREADS=1. Prints per run: the process's CPU seconds (user + system, data loading included) and the
# training seconds summed over history.csv's epochs (wall); the lines it printed are kept in cost.txt here.
# Usage: bash cost.sh OUT   (from the worktree root, PYTHONPATH=src)
set -euo pipefail
out=${1:?OUT}; mkdir -p "$out"
steps=(${STEPS:-100 200 300})  # STEPS="300 600": other bounds
for round in $(seq 1 "${ROUNDS:-2}"); do
  for i in "${!steps[@]}"; do
    m=${steps[$(( (i + round) % ${#steps[@]} ))]}
    for set in ACSF1 OSULeaf; do
      dir="$out/$set-m$m-r$round"
      OMP_NUM_THREADS=1 /usr/bin/time -f "%U %S" -o "$dir.time" solsa train --task "uea:$set" --seed 0 \
        --task-option max_steps="$m" --epochs "${EPOCHS:-40}" --out "$dir" --force --quiet > "$dir.log" 2>&1
      echo "$set $m $round cpu $(awk '{print $1 + $2}' "$dir.time") train $(python3 -c "import csv,sys; \
print(round(sum(float(r['epoch_seconds']) for r in csv.DictReader(open(sys.argv[1]))), 2))" "$dir/history.csv")"
    done
  done
done
