#!/bin/bash
# one tune per data set, in order, one at a time (each log: /tmp/tune30_NAME.log, copied to NAME/tune.log)
cd "$(dirname "$0")/../../.."  # the repository root
for NAME in "$@"; do
  echo "=== $NAME start $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)"
  /usr/bin/time -v env PYTHONPATH=src python -c 'import sys;from solsa.cli import main;sys.exit(main(sys.argv[1:]))' \
     tune --task uea:$NAME --trials 30 --seeds 3 --out docs/results/series-tune30-delay/$NAME \
     > /tmp/tune30_$NAME.log 2>&1
  echo "=== $NAME end $(date -u +%FT%TZ) rc $? load $(cut -d' ' -f1-3 /proc/loadavg)"
done
