"""``solsa bench speed``."""

from __future__ import annotations

from .common import _common, _finish, _log, _spec, _threads


# ---- speed ------------------------------------------------------------------------------------------------------

def _add_speed(bench) -> None:
    p = bench.add_parser("speed", help="throughput, streaming step latency and seconds per epoch, per rule")
    _common(p, "runs/bench/speed.json")
    p.add_argument("--batches", default=None, help="batch sizes of the throughput test (default 1,4,32)")
    p.add_argument("--hiddens", default=None,
                   help="hidden widths of the throughput test, one per network of two hidden layers (default 100,512)")
    p.add_argument("--T", type=int, default=None, help="sequence length of the throughput test (default 30)")
    p.add_argument("--repeats", type=int, default=None, help="repeats (default 5)")
    p.add_argument("--stream-steps", type=int, default=None, help="timed streaming steps per rule (default 2000)")
    p.add_argument("--epoch-rules", default="solsa,bptt,solsa@reference",
                   help="rules of the epoch test ('' to skip it)")
    p.add_argument("--epochs", type=int, default=None, help="timed epochs per rule (default 10)")
    p.add_argument("--epoch-task", default="uea:JapaneseVowels")
    p.add_argument("--epoch-threads", type=int, default=1)
    p.add_argument("--epoch-batches", type=int, default=None, help="stop each epoch after this many batches")
    p.set_defaults(func=_run_speed)


def _run_speed(args) -> int:
    from ...bench.common import parse_ints, parse_rules
    from ...bench.speed import plot_speed, run_speed

    _threads(args)
    q = args.quick
    rules = parse_rules(args.rules, extra=("solsa@reference",))
    batches = parse_ints(args.batches, "batches") if args.batches else ([1, 2] if q else [1, 4, 32])
    if args.hiddens:
        widths = parse_ints(args.hiddens, "hiddens")
        depth = len(_spec(args).hidden) or 1
        hiddens = [(w,) * depth for w in widths]
    else:
        hiddens = [_spec(args).hidden] if q else [(100, 100), (512, 512)]
    epoch_rules = parse_rules(args.epoch_rules) if args.epoch_rules.strip() else []
    result = run_speed(
        rules, batches, hiddens, T=args.T or (5 if q else 30), repeats=args.repeats or (1 if q else 5),
        spec=_spec(args), stream_steps=args.stream_steps or (20 if q else 2000), stream_block=10 if q else 100,
        stream_T=10 if q else 100, stream_hidden=_spec(args).hidden if (q or args.hidden) else (100, 100),
        epoch_rules=epoch_rules, epochs=args.epochs or (1 if q else 10), epoch_task=args.epoch_task or None,
        epoch_threads=args.epoch_threads, epoch_batches=args.epoch_batches or (2 if q else None),
        log=_log(args.quiet),
    )
    for r in result["streaming"]:
        print(f"streaming {r['rule']:<16} {r['backend']:<10} median {r['step_us']['median']:8.1f} us/step")
    for r in result.get("epoch", {}).get("rows", []):
        print(f"epoch     {r['rule']:<16} {r['backend']:<10} median {r['seconds_per_epoch']['median']:.3f} s")
    print(f"targets: {result['targets']}")
    return _finish(args, result, plot_speed)
