#!/usr/bin/env bash
# Validation probe of a uea candidate against the default (paired.md; docs/series.md §12, and
# ../series-dil-choice/paired.md).
# One SOLSA run per configuration, set and seed, every other option at its default, one run at a time,
# OMP_NUM_THREADS=1. Usage: bash probe.sh OUT_DIR CONFIG...   (CONFIG: base, slow, full, dil5); then python paired.py OUT_DIR
set -euo pipefail
out=${1:?OUT_DIR}; shift
declare -A OPTS=([base]="" [slow]="--alpha 0.8 --beta 1.7"
  [full]="--trace-dtype full" [dil5]="--trace-dtype full --task-option dilations=5")  # the last two: ../series-dil-choice
for cfg in "$@"; do
  [ -n "${OPTS[$cfg]+x}" ] || { echo "unknown config $cfg" >&2; exit 2; }
  for seed in ${SEEDS:-14 15 16 17}; do
    for set in ${SETS:-ACSF1 ItalyPowerDemand OSULeaf}; do
      dir="$out/$cfg/$set-s$seed"
      [ -f "$dir/metrics.json" ] && continue
      mkdir -p "$out/$cfg"
      start=$(date +%s)
      # shellcheck disable=SC2086
      OMP_NUM_THREADS=1 solsa train --task "uea:$set" --seed "$seed" ${OPTS[$cfg]} --out "$dir" --force \
        --quiet > "$dir.log" 2>&1
      echo "$cfg $set s$seed $(( $(date +%s) - start )) s" >&2
    done
  done
done
