#!/bin/sh
# The worked example of docs/embedded.md: JapaneseVowels streamed through the exported C learner and through
# `solsa stream` (SGD with momentum 0.9, the trainer's `sgd`; every other option at its default).
# Usage: sh benchmarks/embedded/run.sh [OUT_DIR] [STEPS] [DTYPE]
#   (default runs/embedded, the whole stream, float32; DTYPE float64: the C learner in double beside
#   `solsa stream --dtype float64`)
set -e
OUT=${1:-runs/embedded}
STEPS=${2:-}
DTYPE=${3:-float32}
python3 benchmarks/embedded/prepare.py "$OUT" --optimizer sgd --dtype "$DTYPE"
solsa export "$OUT/checkpoint.pt" "$OUT/c" --format c --learn --momentum 0.9 --dtype "$DTYPE"
cc -std=c99 -Wall -Werror -O2 -I "$OUT/c" benchmarks/embedded/stream_main.c "$OUT/c/solsa_model.c" -o "$OUT/stream" -lm
echo "== the C learner"
"$OUT/stream" "$OUT/stream.bin" 0.002 $STEPS
echo "== solsa stream"
solsa stream --task uea:JapaneseVowels --optimizer sgd --dtype "$DTYPE" ${STEPS:+--steps $STEPS} --quiet \
    --out "$OUT/python" --force
