"""``solsa train``: one run (or its resume)."""

from __future__ import annotations

import os

from .options import add_config_file, add_config_options, flag, resolve_config


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train one SNN (default: SOLSA on JapaneseVowels)")
    add_config_file(p)
    add_config_options(p)
    p.add_argument("--out", help="output folder (default runs/TASK_RULE_seedN)")
    p.add_argument("--force", action="store_true", help="overwrite an existing run in --out")
    p.add_argument("--resume", metavar="DIR", help="continue the unfinished run in DIR with its own settings "
                   "(to the same result as an uninterrupted run)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_train)


def _run_train(args) -> int:
    from .options import given_options
    from ..runs import default_out_dir
    from ..training import resume, train

    if args.resume:
        extra = sorted(given_options(args)) + (["config"] if args.config else []) + (["out"] if args.out else [])
        if extra:
            raise ValueError(f"--resume continues a run with its own settings; drop {', '.join(map(flag, extra))}")
        out = args.resume
        m = resume(out, progress=not args.quiet)
    else:
        cfg, _ = resolve_config(args)
        out = args.out or default_out_dir(cfg)
        m = train(cfg, out, force=args.force, progress=not args.quiet)
    if os.environ.get("RANK", "0") != "0":  # a data-parallel run: process 0 reports and writes
        return 0
    print(f"{m['rule']} on {m['task']} (seed {m['seed']}, {m['epochs']} epochs, {m['wall_seconds']:.1f} s)")
    print(f"  chosen epoch {m['best_epoch']} (on validation): train {m['train_accuracy']:.4f}  "
          f"val {m['val_accuracy']:.4f}  test {m['test_accuracy']:.4f}  (best test {m['best_test_accuracy']:.4f})")
    storage = f" (traces {m['trace_storage']})" if m.get("trace_storage") else ""
    print(f"  train-state bytes {m['train_state_bytes']:,}{storage}  steps processed {m['steps_processed_fraction']:.3f}  "
          f"optimizer steps {m['update_steps']}  schedule {m['schedule']['offsets_from_end']} from the end  "
          f"backend {m['backend']}")
    for row in m["learned_filters"]:
        a = row["alpha"]
        print(f"  layer {row['layer']}: α {sum(a) / len(a):.3f}  β {sum(row['beta']) / len(row['beta']):.3f}  "
              f"λ {sum(row['lam']) / len(row['lam']):.3f}")
    print(f"  wrote {out}/metrics.json, history.csv, checkpoint.pt, report.png")
    return 0
