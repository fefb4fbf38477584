#!/bin/sh
# docs/benchmarks.md §7 "e-prop on its own network (model native) on the compiled path": seconds_per_epoch and
# test accuracy of `solsa train --model native` on JapaneseVowels, e-prop on the compiled path (backend auto: fused)
# and the reference path, ROUNDS rounds (default 3) with the rows interleaved. Run from the repository root;
# reads DIR/*/metrics.json afterwards (OUT=DIR, default below). RULE=bptt: the same for BPTT ("BPTT on recurrent
# ALIF layers", OUT=/tmp/bptt_native).
OUT=${OUT:-/tmp/online_seq_native}
mkdir -p $OUT
for rep in $(seq 1 ${ROUNDS:-3}); do
 for backend in auto reference; do
  PYTHONPATH=src OMP_NUM_THREADS=1 python -m solsa.cli train --task uea:JapaneseVowels --rule ${RULE:-eprop} --model native \
   --epochs ${EPOCHS:-3} --backend $backend --out $OUT/${RULE:-eprop}_${backend}_$rep --force --quiet > $OUT/${RULE:-eprop}_${backend}_$rep.log 2>&1
 done
done
