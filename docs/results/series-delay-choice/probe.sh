#!/usr/bin/env bash
# Validation probe of the `delay` encoder (docs/series.md §8) against today's one-channel default `bank`.
# One SOLSA run per configuration, one-channel development set and seed, every other option at its default
# (epochs: the trainer's own, 1,875 batches on these sets), one run at a time, OMP_NUM_THREADS=1.
# Usage: bash probe.sh OUT_DIR CONFIG...   with CONFIG one of the names below (then: python analyse.py OUT_DIR)
# Run from the worktree root with PYTHONPATH=src (or an installed solsa).
set -euo pipefail
out=${1:?OUT_DIR}; shift
declare -A OPTS=(
  [bank]="--encoder bank"
  [delay9x4]="--encoder delay --task-option taps=9 --task-option dilations=4 --task-option smooth=0"
  [delay9x4s4]="--encoder delay --task-option taps=9 --task-option dilations=4 --task-option smooth=4"
  [delay5x3]="--encoder delay --task-option taps=5 --task-option dilations=3 --task-option smooth=0"
  [delay9x2]="--encoder delay --task-option taps=9 --task-option dilations=2 --task-option smooth=0"
)
for cfg in "$@"; do
  [ -n "${OPTS[$cfg]:-}" ] || { echo "unknown config $cfg" >&2; exit 2; }
  for seed in ${SEEDS:-0 1}; do
    for set in ItalyPowerDemand OSULeaf ACSF1; do
      dir="$out/$cfg/$set-s$seed"
      [ -f "$dir/metrics.json" ] && continue
      mkdir -p "$out/$cfg"
      start=$(date +%s)
      # shellcheck disable=SC2086
      OMP_NUM_THREADS=1 solsa train --task "uea:$set" --seed "$seed" ${OPTS[$cfg]} --out "$dir" --force --quiet \
        > "$dir.log" 2>&1
      echo "$cfg $set s$seed $(( $(date +%s) - start )) s" >&2
    done
  done
done
