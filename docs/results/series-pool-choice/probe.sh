#!/usr/bin/env bash
# Validation probe of the uea pooling bound `max_steps` (docs/series.md §9) against today's default
# (MAX_STEPS=100, one-channel encoder `delay` taps=5 dilations=3). One SOLSA run per configuration, set and
# seed, every other option at its default, one run at a time, OMP_NUM_THREADS=1. ItalyPowerDemand (24 steps)
# is never pooled, so its runs equal the default's: they are not rerun (analyse.py reads the default's).
# Usage: bash probe.sh OUT_DIR CONFIG...   with CONFIG one of the names below (then: python analyse.py OUT_DIR)
# Run from the worktree root with PYTHONPATH=src (or an installed solsa). RULE=bptt|eprop adds --rule.
set -euo pipefail
out=${1:?OUT_DIR}; shift
declare -A OPTS=(
  [pool200]="--task-option max_steps=200"
  [pool300]="--task-option max_steps=300"
  [pool100]="--task-option max_steps=100"
  [pool600]="--task-option max_steps=600"
)
rule=${RULE:+--rule $RULE}
for cfg in "$@"; do
  [ -n "${OPTS[$cfg]:-}" ] || { echo "unknown config $cfg" >&2; exit 2; }
  for seed in ${SEEDS:-0 1 2}; do
    for set in ${SETS:-ACSF1 OSULeaf}; do
      dir="$out/$cfg/$set-s$seed"
      [ -f "$dir/metrics.json" ] && continue
      mkdir -p "$out/$cfg"
      start=$(date +%s)
      # shellcheck disable=SC2086
      OMP_NUM_THREADS=1 solsa train --task "uea:$set" --seed "$seed" ${OPTS[$cfg]} $rule --out "$dir" --force \
        --quiet > "$dir.log" 2>&1
      echo "$cfg $set s$seed $(( $(date +%s) - start )) s" >&2
    done
  done
done
