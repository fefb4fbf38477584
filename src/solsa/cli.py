"""The ``solsa`` command line: a thin layer over the public API."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["main"]


def _add_gradcheck(sub) -> None:
    from .rules.credit import CREDIT_MODES

    p = sub.add_parser("gradcheck", help="compare the SOLSA gradient with BPTT on a random network")
    p.add_argument("--layers", type=int, default=1, help="number of LIF layers, output layer included (default 1)")
    p.add_argument("--T", type=int, default=50, help="sequence length (default 50)")
    p.add_argument("--reset", default="subtract", choices=["subtract", "zero", "none"])
    p.add_argument("--surrogate", default="gaussian", choices=["gaussian", "fast_sigmoid", "atan", "triangle"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=int, default=0,
                   help="summarise seeds 0..N-1 (mean per-layer cosine, seeds with BPTT's sign); overrides --seed")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--hidden", type=int, default=20, help="width of each hidden layer (default 20)")
    p.add_argument("--readout", default="spike", choices=["spike", "leaky"])
    p.add_argument("--filter-granularity", default="layer", choices=["layer", "channel"])
    p.add_argument("--lam-granularity", default="neuron", choices=["layer", "neuron"],
                   help="one membrane decay per layer or per neuron, in every layer (default neuron)")
    p.add_argument("--credit", default="same-step", choices=list(CREDIT_MODES),
                   help="SOLSA's cross-layer credit (docs/credit.md; default same-step); "
                        "other modes print same-step's numbers beside")
    p.add_argument("--alpha", type=float, default=0.5, help="initial synaptic decay of every layer (default 0.5)")
    p.add_argument("--lam", type=float, default=0.7, help="membrane decay of every layer (default 0.7)")
    p.add_argument("--weight-scale", type=float, default=2.0, help="weight scale (default 2.0: every layer spikes)")
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run_gradcheck)


def _run_gradcheck(args) -> int:
    import torch

    from .gradcheck import gradcheck, gradcheck_seeds

    options = dict(
        layers=args.layers, T=args.T, reset=args.reset, surrogate=args.surrogate,
        batch=args.batch, hidden=args.hidden, readout=args.readout, filter_granularity=args.filter_granularity,
        lam_granularity=args.lam_granularity, credit=args.credit, alpha=args.alpha, lam=args.lam,
        weight_scale=args.weight_scale, dtype=getattr(torch, args.dtype),
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
          f"surrogate={args.surrogate}, readout={args.readout}, {report['dtype']}, {what}")
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
    return 0


def _bool(text: str) -> bool:
    low = text.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _task_option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"task options are KEY=VALUE, got {text!r}")
    if value.lower() in ("true", "false"):
        return key, value.lower() == "true"
    for conv in (int, float):
        try:
            return key, conv(value)
        except ValueError:
            pass
    return key, value


def add_train_options(p: argparse.ArgumentParser) -> None:
    """The options of ``solsa train`` (also accepted by ``solsa compare``). Defaults live in TrainConfig."""
    g = p.add_argument_group("run")
    g.add_argument("--task", help="task spec, see `solsa tasks` (default uea:JapaneseVowels)")
    g.add_argument("--epochs", type=int)
    g.add_argument("--seed", type=int)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--lr", type=float)
    g.add_argument("--optimizer", choices=["adam", "rmsprop", "sgd", "adamw"])
    g.add_argument("--device", help="torch device, e.g. cpu or cuda")
    g.add_argument("--threads", type=int, help="torch CPU threads")
    g.add_argument("--config", help="TOML or YAML file of options (command-line options override it)")
    g.add_argument("--encoder", help="input encoder, see `solsa tasks`")
    g.add_argument("--task-option", action="append", type=_task_option, metavar="KEY=VALUE",
                   help="option passed to the task loader (repeatable), e.g. steps=30")
    g.add_argument("--val-fraction", type=float)
    m = p.add_argument_group("model")
    m.add_argument("--model", choices=["full", "paper"],
                   help="full: the SOLSA model; paper: the neuron model of the rule's own paper")
    m.add_argument("--hidden", help="hidden layer sizes, e.g. 100,100")
    m.add_argument("--readout", choices=["spike", "leaky"])
    m.add_argument("--loss", choices=["mse", "ce"])
    m.add_argument("--readout-lam", type=float, help="membrane decay of the leaky readout (default 0)")
    m.add_argument("--readout-alpha", type=float, help="initial α of the output layer (default: --alpha)")
    m.add_argument("--alpha", type=float, help="initial synaptic decay α in [0, 1)")
    m.add_argument("--beta", type=float, help="initial synaptic gain β > 0")
    m.add_argument("--lam", type=float, help="membrane decay λ in [0, 1)")
    m.add_argument("--learn-alpha", type=_bool, metavar="BOOL")
    m.add_argument("--learn-beta", type=_bool, metavar="BOOL")
    m.add_argument("--learn-lam", type=_bool, metavar="BOOL")
    m.add_argument("--filter-granularity", choices=["layer", "channel"])
    m.add_argument("--lam-granularity", choices=["layer", "neuron"])
    m.add_argument("--reset", choices=["subtract", "zero", "none"])
    m.add_argument("--surrogate", choices=["gaussian", "fast_sigmoid", "atan", "triangle"])
    m.add_argument("--width", type=float, help="surrogate width")
    m.add_argument("--threshold", type=float)
    m.add_argument("--weight-scale", type=float)
    e = p.add_argument_group("enhancements")
    e.add_argument("--schedule", help="weight-update schedule: end, every:K or search:K")
    e.add_argument("--search-period", type=int, help="epochs between additions of a search:K point")
    e.add_argument("--early-stop", type=_bool, metavar="BOOL", help="skip the rest of confidently-right sequences")
    e.add_argument("--early-stop-rho", type=float, help="fraction of the batch that must be confidently right")
    e.add_argument("--early-stop-p", type=float, help="class probability that counts as confident")
    e.add_argument("--early-stop-h", type=int, help="how many checks must pass before stopping")
    e.add_argument("--early-stop-warmup", type=int, help="epochs before early stop is allowed")


def resolve_train_config(args: argparse.Namespace, **overrides):
    """TrainConfig defaults < --config file < command-line options < ``overrides``."""
    from .io import load_config_file
    from .training import TrainConfig

    data: dict = load_config_file(args.config) if getattr(args, "config", None) else {}
    for f in TrainConfig.__dataclass_fields__:
        value = getattr(args, f, None)
        if value is not None:
            data[f] = value
    if getattr(args, "task_option", None):
        data["task_options"] = {**data.get("task_options", {}), **dict(args.task_option)}
    data.update(overrides)
    return TrainConfig.from_dict(data)


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train one SNN (default: SOLSA on JapaneseVowels)")
    add_train_options(p)
    p.add_argument("--rule", help="learning rule, see `solsa rules` (default solsa)")
    p.add_argument("--out", help="output folder (default runs/TASK_RULE_seedN)")
    p.add_argument("--force", action="store_true", help="overwrite an existing run in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_train)


def _run_train(args) -> int:
    from .training import default_out_dir, train

    cfg = resolve_train_config(args)
    out = args.out or default_out_dir(cfg)
    m = train(cfg, out, force=args.force, progress=not args.quiet)
    print(f"{m['rule']} on {m['task']} (seed {m['seed']}, {m['epochs']} epochs, {m['wall_seconds']:.1f} s)")
    print(f"  chosen epoch {m['best_epoch']} (on validation): train {m['train_accuracy']:.4f}  "
          f"val {m['val_accuracy']:.4f}  test {m['test_accuracy']:.4f}  (best test {m['best_test_accuracy']:.4f})")
    print(f"  train-state bytes {m['train_state_bytes']:,}  steps processed {m['steps_processed_fraction']:.3f}  "
          f"optimizer steps {m['update_steps']}  schedule {m['schedule']['offsets_from_end']} from the end")
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
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args) -> int:
    from .training import evaluate_checkpoint

    r = evaluate_checkpoint(args.checkpoint, args.task, args.device)
    if args.json:
        print(json.dumps(r))
    else:
        print(f"{r['task']}: test accuracy {r['test_accuracy']:.4f} (recorded at training: {r['recorded_test_accuracy']})")
    return 0


def _add_tasks(sub) -> None:
    p = sub.add_parser("tasks", help="list the tasks and encoders")
    p.set_defaults(func=_run_tasks)


def _run_tasks(args) -> int:
    from .tasks import list_encoders, list_tasks

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
    from .rules import RULES

    for name, spec in RULES.items():
        print(f"  {name:<18} {spec.description}")
    return 0


def _search_option(text: str) -> tuple[str, list]:
    key, sep, values = text.partition("=")
    if not sep or not key or not values:
        raise argparse.ArgumentTypeError(f"search options are KEY=V1,V2,..., got {text!r}")
    parsed = []
    for v in values.split(","):
        for conv in (int, float):
            try:
                parsed.append(conv(v))
                break
            except ValueError:
                pass
        else:
            parsed.append(v)
    return key.replace("-", "_"), parsed


def _add_compare(sub) -> None:
    p = sub.add_parser("compare", help="every rule x seed on the same data, model, epochs and search budget")
    add_train_options(p)
    p.add_argument("--rules", default="solsa,bptt,eprop,ottt,ostl", help="comma-separated rules (see `solsa rules`)")
    p.add_argument("--seeds", default="3", help="number of seeds N (seeds 0..N-1)")
    p.add_argument("--suite", choices=["paper"], help="run every bundled task of the suite (overrides --task); "
                   "its per-task settings are in solsa.compare.SUITES")
    p.add_argument("--search", action="append", type=_search_option, metavar="KEY=V1,V2",
                   help="grid searched per rule on validation (repeatable; default lr=0.001,0.003; 'none' to skip)")
    p.add_argument("--no-search", action="store_true", help="use the given settings for every rule")
    p.add_argument("--out", default="runs/compare", help="output folder; finished runs in it are kept and skipped")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_run_compare)


def _run_compare(args) -> int:
    from .compare import SUITES, compare

    rules = [r.strip() for r in args.rules.split(",") if r.strip()]
    try:
        n_seeds = int(args.seeds)
    except ValueError:
        raise ValueError(f"--seeds must be a positive integer, got {args.seeds!r}") from None
    if n_seeds < 1:
        raise ValueError(f"--seeds must be a positive integer, got {args.seeds!r}")
    # each rule on its own paper's neuron model unless --model full is asked for
    cfg = resolve_train_config(args, **({"rule": rules[0]} if rules else {}), model=args.model or "paper")
    tasks = SUITES[args.suite] if args.suite else {cfg.task: {}}
    if args.suite:  # options given on the command line win over the suite's per-task settings
        given = {f: getattr(args, f) for f in ("epochs", "batch_size", "lr", "filter_granularity", "alpha", "lam")
                 if getattr(args, f, None) is not None}
        tasks = {t: {**o, **given} for t, o in tasks.items()}
    search = {} if args.no_search else dict(args.search or [("lr", [0.001, 0.003])])
    report = compare(cfg, rules, list(range(n_seeds)), args.out, tasks=tasks, search=search, progress=not args.quiet)
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
    from .bench.cli import add_parser as add_bench

    add_bench(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError, FileExistsError) as err:
        print(f"solsa {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
