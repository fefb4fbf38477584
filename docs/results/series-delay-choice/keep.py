"""Copy the columns analyse.py reads (and metrics.json) of probe.sh's finished runs into histories/ here.

Usage: python keep.py OUT_DIR [DEST]   (DEST: a folder under this one, default histories)
"""

import csv
import shutil
import sys
from pathlib import Path

COLUMNS = ("epoch", "val_accuracy", "val_loss", "test_accuracy", "update_steps", "epoch_seconds")

for metrics in sorted(Path(sys.argv[1]).glob("*/*-s*/metrics.json")):
    dest = Path(__file__).parent / (sys.argv[2] if len(sys.argv) > 2 else "histories") / metrics.parent.parent.name / metrics.parent.name
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(metrics, dest / "metrics.json")
    with (metrics.parent / "history.csv").open() as f, (dest / "history.csv").open("w", newline="") as g:
        w = csv.DictWriter(g, COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(csv.DictReader(f))
