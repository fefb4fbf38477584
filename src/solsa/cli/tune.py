"""``solsa tune``: the command-line entry of :func:`solsa.tune.tune`.

Every training flag given (``--epochs 2``, ``--rule bptt``, ``--encoder delta``) is fixed and leaves the
search space; ``--space KEY=LOW:HIGH[:log]`` / ``KEY=A,B`` and ``--space-file`` change it.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from .options import add_config_options, resolve_config

__all__ = ["add_parser"]


def _space_option(text: str) -> tuple[str, str]:
    key, sep, spec = text.partition("=")
    if not sep or not key or not spec:
        raise argparse.ArgumentTypeError(f"space entries are KEY=LOW:HIGH[:log] or KEY=A,B,C, got {text!r}")
    return key.strip(), spec.strip()


def add_parser(sub) -> None:
    """Register ``solsa tune`` on the ``solsa`` sub-command parser."""
    p = sub.add_parser("tune", help="search a task's settings on validation (optuna); test the chosen one once")
    p.add_argument("--config", help="TOML or YAML file of options; its options are fixed like flags")
    add_config_options(p)
    g = p.add_argument_group("search")
    g.add_argument("--trials", type=int, help="the study's total number of trials (finished ones count)")
    g.add_argument("--budget", type=float, metavar="SECONDS", help="stop starting trials after this many seconds")
    g.add_argument("--space", action="append", type=_space_option, metavar="KEY=RANGE",
                   help="change or add a search range: KEY=LOW:HIGH, KEY=LOW:HIGH:log, KEY=LOW:HIGH:step=N "
                        "or KEY=A,B,C (repeatable; see --show-space)")
    g.add_argument("--space-file", help="TOML file with a [space] table (KEY = \"LOW:HIGH\" or a list); "
                   "only its keys are searched")
    g.add_argument("--cv-folds", type=int, help="k-fold cross-validation with k folds (0: the validation split; "
                   "default: 5 folds below 200 training samples, else the validation split)")
    g.add_argument("--repeats", type=int, metavar="R", help="repeated k-fold: R shuffles of the k folds, R x k runs "
                   "per trial, scored by their mean, spread by their std (default 2 under k-fold)")
    g.add_argument("--seeds", type=int, default=1, metavar="N", help="train the chosen configuration on N seeds "
                   "(--seed, --seed + 1, ...) and report the test accuracy's mean ± std (default 1)")
    g.add_argument("--storage", help="optuna storage URL shared by workers (default sqlite:///OUT/study.db)")
    g.add_argument("--study-name", help="study name in the storage (default TASK-RULE)")
    g.add_argument("--grace", type=int, default=20, metavar="SECONDS",
                   help="a trial whose worker sent no heartbeat for this long is failed and run again "
                        "(default 20; give every worker the same)")
    g.add_argument("--no-final", action="store_true", help="do not train the chosen configuration on the test split")
    g.add_argument("--show-space", action="store_true", help="print the search space (after fixed options) and exit")
    p.add_argument("--out", help="output folder (default runs/tune/TASK_RULE); rerun to continue the study")
    p.add_argument("--quiet", action="store_true", help="no line per trial")
    p.set_defaults(func=_run_tune)


def _space(args):
    from ..io import load_config_file
    from ..tune.space import DEFAULT_SPACE, parse_dimension, space_from_file
    from ..validation import OptionError

    space = dict(DEFAULT_SPACE)
    if args.space_file:
        data = load_config_file(args.space_file)
        if not isinstance(data.get("space"), dict):
            raise OptionError("space_file", f"space_file {args.space_file} needs a [space] table")
        space = space_from_file(data["space"])
    for key, spec in args.space or []:
        space[key] = parse_dimension(key, spec)
    return space


def _pm(mean: float, std: float | None) -> str:
    return f"{mean:.4f}" + (f" ± {std:.4f}" if std is not None else "")


def _run_tune(args) -> int:
    from ..config import trial_patience_text
    from ..tune import tune
    from ..tune.space import active_space, space_text

    cfg, given = resolve_config(args)
    space = _space(args)
    if args.show_space:
        for key, text in space_text(active_space(space, cfg, given)).items():
            print(f"  {key:<26} {text}")
        return 0
    out = Path(args.out or Path("runs") / "tune" / re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{cfg.task}_{cfg.rule}"))
    log = None if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    r = tune(cfg, out, given=given, trials=args.trials, budget=args.budget, space=space, storage=args.storage,
             study_name=args.study_name, cv_folds=args.cv_folds, repeats=args.repeats, final=not args.no_final,
             seeds=args.seeds, log=log, grace=args.grace)
    states = ", ".join(f"{n} {s}" for s, n in r["trial_states"].items())
    print(f"solsa tune: {r['rule']} on {r['task']}: {r['trials']} trials ({states}), scored on {r['scoring']}")
    batches, epochs = r.get("val_patience_batches"), r["val_patience"]
    print(f"  each run of a trial stopped after {trial_patience_text(batches) if batches else f'{epochs} epochs'}, "
          "without a better validation accuracy" if batches or epochs
          else "  each run of a trial trained every epoch (val_patience 0)")
    if r["start_trial"] and r["start_trial"]["val_accuracy"] is not None:
        print(f"  start (trial {r['start_trial']['number']}, the given/default settings): "
              f"val {_pm(r['start_trial']['val_accuracy'], r['start_trial']['val_std'])}")
    over = f" (± std over the {r['repeats'] * r['cv_folds']} folds)" if r["cv_folds"] else ""
    print(f"  chosen (trial {r['best_trial']}): val {_pm(r['best_val_accuracy'], r['best_val_std'])}{over}  "
          f"{r['changes']}")
    if r.get("start_kept"):
        t = r["top_minus_start"]
        lead = (f"led by {t['mean']:+.4f} ± {t['standard_error']:.4f} over the folds" if t is not None
                else f"scored {r['top_val_accuracy']:.4f}")
        print(f"  the start is kept: the best-scoring trial {r['top_trial']} {lead}, not more than the noise")
    d = r["best_minus_start"]
    if d is not None and r["start_trial"] and r["best_trial"] != r["start_trial"]["number"]:
        print(f"  chosen minus start, paired over the {d['folds']} folds: {d['mean']:+.4f} ± {d['standard_error']:.4f} "
              "(mean ± standard error)")
    if "final" in r:
        f, s = r["final"], r["final_seeds"]
        print(f"  chosen configuration retrained on the task's split: val {f['val_accuracy']:.4f}  "
              f"test {f['test_accuracy']:.4f} (the only test evaluation)  ({f['wall_seconds']:.1f} s)")
        if len(s["seeds"]) > 1:
            print(f"  on {len(s['seeds'])} seeds ({', '.join(map(str, s['seeds']))}): val {_pm(s['val_mean'], s['val_std'])}"
                  f"  test {_pm(s['test_mean'], s['test_std'])} (mean ± std)  "
                  f"[{', '.join(f'{a:.4f}' for a in s['test_accuracy'])}]")
    print(f"  search {r['search_seconds']:.1f} s of trials; this call {r['wall_seconds_this_call']:.1f} s")
    print(f"  wrote {out}/best.toml, trials.csv, tune.json, tune.png; study in {r['storage']}")
    return 0
