#!/usr/bin/env bash
# The validation probe behind TrainConfig.epochs' default (docs/series.md §7).
# One long SOLSA run per development set and seed, every other option at its default, long enough for
# 2,500 optimizer steps (and at least 60 epochs); the run's history.csv holds the validation accuracy of
# every epoch, so a shorter budget's choice is the best validation epoch within its prefix
# (nothing in a run depends on its epoch count; checked by analyse.py against a 60-epoch run).
# Usage: bash probe.sh OUT_DIR   (then: python analyse.py OUT_DIR)
set -euo pipefail
out=${1:?OUT_DIR}
for seed in 0 1 2; do
  for set in ItalyPowerDemand BasicMotions JapaneseVowels OSULeaf ACSF1; do
    dir="$out/$set-s$seed"
    [ -f "$dir/metrics.json" ] && continue
    epochs=$(python -c "import math; from solsa.tasks import load_task; t = load_task('uea:$set', seed=$seed); print(max(60, math.ceil(2500 / math.ceil(len(t.train) / 16))))")
    OMP_NUM_THREADS=1 solsa train --task "uea:$set" --seed "$seed" --epochs "$epochs" --out "$dir" --force --quiet > "$dir.log" 2>&1
  done
done
