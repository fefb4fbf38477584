#!/bin/sh
# docs/benchmarks.md §7 "e-prop, OSTL, OTTT: the time loop in compiled code": seconds_per_epoch of `solsa train`
# on JapaneseVowels, each rule on the compiled path (backend auto: fused) and the reference path, 3 rounds with
# the rows interleaved. Run from the repository root; reads DIR/*/metrics.json afterwards (OUT=DIR, default below).
mkdir -p ${OUT:-/tmp/online_seq_jv}
for rep in 1 2 3; do
 for rule in eprop ostl ottt; do
  for backend in auto reference; do
   PYTHONPATH=src OMP_NUM_THREADS=1 python -m solsa.cli train --task uea:JapaneseVowels --rule $rule --epochs 3 --backend $backend --out ${OUT:-/tmp/online_seq_jv}/${rule}_${backend}_$rep --force --quiet > ${OUT:-/tmp/online_seq_jv}/${rule}_${backend}_$rep.log 2>&1
  done
 done
done

