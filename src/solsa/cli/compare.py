"""``solsa compare``: rules side by side over seeds (and the paper suite)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..compare import COMPARE_DEFAULTS, SUITES
from .options import add_config_file, add_config_options, parse_scalar, resolve_config, stderr


def _search_option(text: str) -> tuple[str, list]:
    key, sep, values = text.partition("=")
    if not sep or not key or not values:
        raise argparse.ArgumentTypeError(f"search options are KEY=V1,V2,..., got {text!r}")
    return key.replace("-", "_"), [parse_scalar(v) for v in values.split(",")]


def add_parser(sub) -> None:
    p = sub.add_parser("compare", help="every rule x seed on the same data, model, epochs and search budget")
    add_config_file(p)
    add_config_options(p, exclude=("rule",), defaults=COMPARE_DEFAULTS)
    p.add_argument("--rules", default="solsa,bptt,eprop,ottt,ostl", help="comma-separated rules (see `solsa rules`)")
    p.add_argument("--seeds", default="3", help="number of seeds N (seeds 0..N-1)")
    p.add_argument("--suite", choices=list(SUITES), help="run every bundled task of the suite (with --task: only "
                   "that one); its per-task settings are in solsa.compare.SUITES; options you give win over them")
    p.add_argument("--search", action="append", type=_search_option, metavar="KEY=V1,V2",
                   help="grid searched per rule on validation (repeatable; default lr=0.001,0.003; 'none' to skip)")
    p.add_argument("--no-search", action="store_true", help="use the given settings for every rule")
    p.add_argument("--tune", type=int, default=0, metavar="N",
                   help="instead of the grid: an optuna study of N trials per task and rule over the space of "
                        "`solsa tune` (options you give are fixed); then the chosen settings on every seed")
    p.add_argument("--models", help="comma-separated neuron models every rule trains, e.g. paper,full (default: "
                   "--model, or with --suite both: each rule on its paper's model and on the full SOLSA model)")
    p.add_argument("--out", default="runs/compare", help="output folder; finished runs in it are kept and skipped")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_run_compare)


def _run_compare(args) -> int:
    from ..compare import COMPARE_DEFAULTS, compare, plan_tasks
    from ..validation import OptionError, check_choice, check_positive_int

    rules = [r.strip() for r in args.rules.split(",") if r.strip()]
    try:
        n_seeds = int(args.seeds)
    except ValueError:
        raise OptionError("seeds", f"seeds must be a positive integer, got {args.seeds!r}") from None
    check_positive_int("seeds", n_seeds)
    cfg, given = resolve_config(args, defaults={**COMPARE_DEFAULTS, **({"rule": rules[0]} if rules else {})})
    if args.tune and args.search:
        raise OptionError("tune", "tune replaces the grid search; give --tune or --search, not both")
    search = {} if args.no_search or args.tune else dict(args.search or [("lr", [0.001, 0.003])])
    tasks = None
    if args.suite and args.task:  # one task of the suite, with its settings
        planned = plan_tasks(cfg, args.suite, given)
        tasks = {args.task: planned[check_choice("task", args.task, planned)]}
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    report = compare(cfg, rules, list(range(n_seeds)), args.out, tasks=tasks, suite=args.suite, given=given,
                     search=search, tune=args.tune, models=models, progress=not args.quiet, log=stderr)
    print((Path(args.out) / "summary.md").read_text())
    print(f"wrote {args.out}/results.json, summary.json, summary.md, summary.csv, compare.png "
          f"({len(report['runs'])} runs)")
    return 0
