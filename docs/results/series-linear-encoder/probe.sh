#!/usr/bin/env bash
# Validation probe of the learned linear encoder (docs/series.md §10; the rule: RULE.md, written before the runs).
# Usage (worktree root, PYTHONPATH=src): bash docs/results/series-linear-encoder/probe.sh OUT_DIR CONFIG...
# CONFIG: linear16 (the candidate) or default (no flag: the check that the stored default histories reproduce).
set -euo pipefail
out=${1:?OUT_DIR}; shift
declare -A OPTS=(
  [linear16]="--encoder linear --task-option channels=16"
  [default]=""
)
for cfg in "$@"; do
  [ -n "${OPTS[$cfg]+set}" ] || { echo "unknown config $cfg" >&2; exit 2; }
  for set in ${SETS:-ItalyPowerDemand OSULeaf ACSF1}; do
    for seed in ${SEEDS:-0 1 2}; do
      dir="$out/$cfg/$set-s$seed"
      [ -f "$dir/metrics.json" ] && continue
      mkdir -p "$out/$cfg"
      start=$(date +%s)
      # shellcheck disable=SC2086
      OMP_NUM_THREADS=1 python -m solsa.cli train --task "uea:$set" --seed "$seed" ${OPTS[$cfg]} --out "$dir" \
        --force --quiet > "$dir.log" 2>&1
      echo "$cfg $set s$seed $(( $(date +%s) - start )) s" >&2
    done
  done
done
