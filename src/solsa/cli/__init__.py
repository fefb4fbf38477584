"""The ``solsa`` command line: a thin layer over the public API."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

from .options import add_config_options, flag, parse_scalar, resolve_config
from ..compare import COMPARE_DEFAULTS, SUITES

__all__ = ["main"]


def _add_gradcheck(sub) -> None:
    from ..functional import RESET_MODES
    from .options import parse_bool
    from ..functional import NEURONS
    from ..layers import ADAPT, FILTER_GRANULARITIES, LAM_GRANULARITIES, READOUTS, RHO
    from ..rules.credit import CREDIT_MODES, DEFAULT_CREDIT
    from ..rules.solsa import TRACE_DTYPES
    from ..surrogate import SURROGATES

    p = sub.add_parser("gradcheck", help="compare the SOLSA gradient with BPTT on a random network")
    p.add_argument("--layers", type=int, default=1, help="number of LIF layers, output layer included (default 1)")
    p.add_argument("--T", type=int, default=50, help="sequence length (default 50)")
    p.add_argument("--reset", default="subtract", choices=RESET_MODES)
    p.add_argument("--surrogate", default="gaussian", choices=list(SURROGATES))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=int, default=0,
                   help="summarise seeds 0..N-1 (mean per-layer cosine, seeds with BPTT's sign); overrides --seed")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--hidden", type=int, default=20, help="width of each hidden layer (default 20)")
    p.add_argument("--readout", default="spike", choices=READOUTS)
    p.add_argument("--filter-granularity", default="layer", choices=FILTER_GRANULARITIES)
    p.add_argument("--lam-granularity", default="neuron", choices=LAM_GRANULARITIES,
                   help="one membrane decay per layer or per neuron, in every layer (default neuron)")
    p.add_argument("--credit", default=DEFAULT_CREDIT, choices=list(CREDIT_MODES),
                   help=f"SOLSA's cross-layer credit (docs/credit.md; default {DEFAULT_CREDIT}); "
                        "modes other than same-step print same-step's numbers beside")
    p.add_argument("--alpha", type=float, default=0.5, help="initial synaptic decay of every layer (default 0.5)")
    p.add_argument("--lam", type=float, default=0.7, help="membrane decay of every layer (default 0.7)")
    p.add_argument("--weight-scale", type=float, default=2.0, help="weight scale (default 2.0: every layer spikes)")
    p.add_argument("--neuron", default="lif", choices=NEURONS, help="lif or alif (adaptive threshold) in every "
                   "spiking layer (default lif)")
    p.add_argument("--adapt", type=float, default=ADAPT, help=f"ALIF threshold rise per spike (default {ADAPT})")
    p.add_argument("--rho", type=float, default=RHO, help=f"ALIF adaptation decay (default {RHO})")
    p.add_argument("--recurrent", type=parse_bool, default=False, metavar="BOOL",
                   help="recurrent weights in every spiking layer: SOLSA's traces are then truncated (default false)")
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--trace-dtype", default=None, choices=list(TRACE_DTYPES),
                   help="store SOLSA's [B, N_out, N_in] traces in this dtype (arithmetic in --dtype); prints the "
                        "error against full storage")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run_gradcheck)


def _run_gradcheck(args) -> int:
    import torch

    from ..gradcheck import gradcheck, gradcheck_seeds

    options = dict(
        layers=args.layers, T=args.T, reset=args.reset, surrogate=args.surrogate,
        batch=args.batch, hidden=args.hidden, readout=args.readout, filter_granularity=args.filter_granularity,
        lam_granularity=args.lam_granularity, credit=args.credit, alpha=args.alpha, lam=args.lam,
        weight_scale=args.weight_scale, neuron=args.neuron, adapt=args.adapt, rho=args.rho, recurrent=args.recurrent,
        dtype=getattr(torch, args.dtype), trace_dtype=args.trace_dtype,
    )
    if args.seeds:
        report = gradcheck_seeds(args.seeds, **options)
        cos_key, sign_key, what = "per_layer_cosine_mean", "per_layer_sign_agreement", f"seeds 0..{args.seeds - 1}"
    else:
        report = gradcheck(seed=args.seed, **options)
        cos_key, sign_key, what = "per_layer_cosine", "per_layer_sign", f"seed {args.seed}"
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"SOLSA (credit={args.credit}) vs BPTT: {args.layers} layer(s), T={args.T}, reset={args.reset}, "
          f"surrogate={args.surrogate}, readout={args.readout}, neuron={args.neuron}, "
          f"recurrent={str(args.recurrent).lower()}, {report['dtype']}, {what}")
    print(f"spike rate per layer: {report.get('spike_rate_mean', report.get('spike_rate'))}")
    sign = (lambda v: f"{v:4.1f}/{args.seeds}") if args.seeds else (lambda v: f"{v:7.2f}")
    print(f"cosine: {'mean over seeds' if args.seeds else 'per layer'}; sign: "
          f"{'seeds with BPTT sign (tensors: summed fraction of entries)' if args.seeds else 'fraction of entries with BPTT sign'}")
    base = report.get("same_step")
    columns = [args.credit] + (["same-step"] if base else [])
    print(f"{'parameter':<10} {'layer':>5} {'max_rel_error':>13}" + "".join(f"   {c + ' cosine':>17} {'sign':>7}" for c in columns))
    for kind, err in report["max_rel_error"].items():
        for i, cos in enumerate(report[cos_key][kind]):
            line = f"{kind if i == 0 else '':<10} {i + 1:>5} {f'{err:.3e}' if i == 0 else '':>13}"
            line += f"   {cos:>17.4f} {sign(report[sign_key][kind][i]):>7}"
            if base:
                line += f"   {base[cos_key][kind][i]:>17.4f} {sign(base[sign_key][kind][i]):>7}"
            print(line)
    if "storage_rel_error" in report:
        print(f"trace_dtype {args.trace_dtype}: max relative error against full storage: "
              + ", ".join(f"{k} {v:.2e}" for k, v in report["storage_rel_error"].items()))
    return 0


def _add_config_file(p) -> None:
    p.add_argument("--config", help="TOML or YAML file of options (command-line options override it)")


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train one SNN (default: SOLSA on JapaneseVowels)")
    _add_config_file(p)
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
    print(f"  train-state bytes {m['train_state_bytes']:,}  steps processed {m['steps_processed_fraction']:.3f}  "
          f"optimizer steps {m['update_steps']}  schedule {m['schedule']['offsets_from_end']} from the end  "
          f"backend {m['backend']}")
    for row in m["learned_filters"]:
        a = row["alpha"]
        print(f"  layer {row['layer']}: α {sum(a) / len(a):.3f}  β {sum(row['beta']) / len(row['beta']):.3f}  "
              f"λ {sum(row['lam']) / len(row['lam']):.3f}")
    print(f"  wrote {out}/metrics.json, history.csv, checkpoint.pt, report.png")
    return 0


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="test accuracy of a checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("--task", help="task spec (default: the checkpoint's task)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true")
    p.add_argument("--metrics", action="store_true",
                   help="also NeuroBench's metrics: activation sparsity, synaptic operations, footprint")
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args) -> int:
    from ..evaluation import evaluate_checkpoint

    r = evaluate_checkpoint(args.checkpoint, args.task, args.device)
    if args.metrics:
        from ..interop.neurobench import checkpoint_metrics, format_metrics

        r["neurobench"] = checkpoint_metrics(args.checkpoint, args.task, args.device)
    if args.json:
        print(json.dumps(r))
    else:
        print(f"{r['task']}: test accuracy {r['test_accuracy']:.4f} (recorded at training: {r['recorded_test_accuracy']})")
        if args.metrics:
            print(format_metrics(r["neurobench"]))
    return 0


def _add_tasks(sub) -> None:
    p = sub.add_parser("tasks", help="list the tasks and encoders")
    p.set_defaults(func=_run_tasks)


def _run_tasks(args) -> int:
    from ..tasks import list_encoders, list_tasks

    print("tasks (--task):")
    for name, desc in list_tasks():
        print(f"  {name:<14} {desc}")
    print("encoders (--encoder):")
    for name, desc in list_encoders():
        print(f"  {name:<14} {desc}")
    return 0


def _add_rules(sub) -> None:
    p = sub.add_parser("rules", help="list the learning rules")
    p.set_defaults(func=_run_rules)


def _run_rules(args) -> int:
    from ..rules import RULES

    for name, spec in RULES.items():
        print(f"  {name:<18} {spec.description}")
    return 0


def _search_option(text: str) -> tuple[str, list]:
    key, sep, values = text.partition("=")
    if not sep or not key or not values:
        raise argparse.ArgumentTypeError(f"search options are KEY=V1,V2,..., got {text!r}")
    return key.replace("-", "_"), [parse_scalar(v) for v in values.split(",")]


def _add_compare(sub) -> None:
    p = sub.add_parser("compare", help="every rule x seed on the same data, model, epochs and search budget")
    _add_config_file(p)
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
                     search=search, tune=args.tune, models=models, progress=not args.quiet, log=_stderr)
    print((Path(args.out) / "summary.md").read_text())
    print(f"wrote {args.out}/results.json, summary.json, summary.md, summary.csv, compare.png "
          f"({len(report['runs'])} runs)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="solsa", description="Online learning for spiking neural networks.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_evaluate(sub)
    _add_tasks(sub)
    _add_rules(sub)
    _add_compare(sub)
    _add_gradcheck(sub)
    from .bench import add_parser as add_bench
    from .export import add_parser as add_export

    add_bench(sub)
    add_export(sub)
    from .stream import add_parser as add_stream

    add_stream(sub)
    from .tune import add_parser as add_tune

    add_tune(sub)
    return parser


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def error_message(err: Exception) -> str:
    """The library's message, with a leading option name (``batch_size must ...``) shown as its flag."""
    text = str(err)
    if isinstance(err, OSError) and err.strerror:  # "[Errno 20] Not a directory: 'x'" -> "Not a directory: x"
        text = err.strerror + (f": {err.filename}" if err.filename else "")
    option = getattr(err, "option", None)
    if option and text.startswith(option):
        text = flag(option) + text[len(option):]
    return text


def _one_line_warning(command: str):
    """``warnings.formatwarning`` for the command line: ``solsa COMMAND: warning: ...`` (not Python's
    ``file:line:`` form with a source line); whoever records warnings (a test) still gets them as objects."""
    return lambda message, category, filename, lineno, line=None: f"solsa {command}: warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    shown = warnings.formatwarning
    warnings.formatwarning = _one_line_warning(args.command)
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError, RuntimeError) as err:  # OSError: files and folders
        print(f"solsa {args.command}: error: {error_message(err)}", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = shown


if __name__ == "__main__":
    sys.exit(main())
