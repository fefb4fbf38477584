"""``solsa bench memory`` and ``solsa bench workload``."""

from __future__ import annotations

from ...layers import FILTER_GRANULARITIES
from ...validation import check_choice, check_positive_int
from .common import _common, _finish, _log, _spec, _threads


# ---- memory -----------------------------------------------------------------------------------------------------

def _add_memory(bench) -> None:
    p = bench.add_parser("memory", help="train-state bytes and measured peak RSS against T, per rule")
    _common(p, "runs/bench/memory.json")
    p.add_argument("--T", default=None, help="sequence lengths (default 30,100,300,1000,3000,10000)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--filter-granularity", default=",".join(FILTER_GRANULARITIES),
                   help=f"some of {', '.join(FILTER_GRANULARITIES)}, comma-separated (default all)")
    p.add_argument("--no-rss", action="store_true", help="exact accounting only, no subprocess measurement")
    p.add_argument("--jobs", type=int, default=1, help="measurement subprocesses run at once (default 1)")
    p.add_argument("--break-even-batches", default=None,
                   help="batch sizes of the break-even table (default 1,4,32,128)")
    p.add_argument("--break-even-hiddens", default=None,
                   help="more hidden widths (two layers, at --batch) for the break-even table (default 256,512; "
                        "'none' for none)")
    p.add_argument("--suite", default=None,
                   help="the default rule's bytes beside BPTT's for every task of this compare suite (default "
                        "paper; 'none' to skip; skipped by --quick unless given)")
    p.add_argument("--candidates", action="store_true",
                   help="also measure the storage candidates on the paper network at T=100 "
                        "(bytes, seconds, gradient against float64)")
    p.set_defaults(func=_run_memory)


def _run_memory(args) -> int:
    from ...bench.common import parse_ints, parse_rules
    from ...bench.memory import DEFAULT_T, plot_memory, run_memory

    _threads(args)
    grans = [g.strip() for g in args.filter_granularity.split(",") if g.strip()]
    for g in grans:
        check_choice("filter_granularity", g, FILTER_GRANULARITIES)
    Ts = parse_ints(args.T, "T") if args.T else ([5, 20] if args.quick else list(DEFAULT_T))
    be = parse_ints(args.break_even_batches, "break_even_batches") if args.break_even_batches else (
        [2] if args.quick else [1, 4, 32, 128])
    if args.break_even_hiddens is None:
        widths = [] if args.quick else [256, 512]
    elif args.break_even_hiddens.strip().lower() == "none":
        widths = []
    else:
        widths = parse_ints(args.break_even_hiddens, "break_even_hiddens")
    depth = len(_spec(args).hidden) or 1
    result = run_memory(parse_rules(args.rules), Ts, args.batch, _spec(args), grans, rss=not args.no_rss,
                        break_even_batches=be, break_even_hiddens=[(w,) * depth for w in widths],
                        jobs=max(1, args.jobs), log=_log(args.quiet))
    suite = args.suite or (None if args.quick else "paper")
    if suite and suite.lower() != "none":
        from ...compare import SUITES
        from ...bench.memory_default import suite_ratios

        check_choice("suite", suite, SUITES)
        result["suite"] = suite_ratios(suite, log=_log(args.quiet))
    if args.candidates:
        from ...bench.memory_default import storage_candidates

        result["candidates"] = storage_candidates(batch=args.batch, log=_log(args.quiet))
    _print_memory(result)
    return _finish(args, result, plot_memory)


def _print_memory(result: dict) -> None:
    print(f"{'granularity':<11} {'rule':<16} {'T':>6} {'train_state_bytes':>18} {'peak_rss_delta':>15}")
    for r in result["rows"]:
        print(f"{r['filter_granularity']:<11} {r['rule']:<16} {r['T']:>6} {str(r.get('train_state_bytes')):>18} "
              f"{str(r.get('peak_rss_delta_bytes')):>15}" + (f"  error: {r['error']}" if r.get("error") else ""))
    for c in result["break_even"]:
        if c.get("break_even_T") is not None:
            print(f"break-even {c['rule']:<14} filter per {c['filter_granularity']:<7} batch {c['batch']:<4} "
                  f"hidden {'x'.join(map(str, c['hidden'])):<8}: "
                  f"{c['rule']} holds more than BPTT for T < {c['break_even_T']}")
    for gran, t in result["targets"].items():
        print(f"targets ({gran}): {t}")
    for r in result.get("suite", []):
        print(f"suite {r['task']:<24} T={r['T']:<4} batch {r['batch']:<3} filter per {r['filter_granularity']:<7} "
              f"solsa {r['solsa_bytes']:>10} bptt {r['bptt_bytes']:>10} ratio {r['ratio_to_bptt']:.3f}")
    for r in result.get("candidates", []):
        print(f"candidate {r['candidate']:<22} {r['train_state_bytes']:>9} bytes  {r['backend']:<9} "
              f"{r['seconds_per_sequence']:.3f} s/seq  cosine {r['cosine_to_float64']:.8f}  "
              f"max rel err {r['max_rel_error_to_float64']:.2e}")


# ---- workload ---------------------------------------------------------------------------------------------------

def _add_workload(bench) -> None:
    p = bench.add_parser("workload", help="time and operations per time step of a training sequence, per rule")
    _common(p, "runs/bench/workload.json")
    p.add_argument("--T", type=int, default=None, help="sequence length (default 100)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--repeats", type=int, default=None, help="repeats per rule (default 20)")
    p.add_argument("--no-ops", action="store_true", help="skip the operation count")
    p.set_defaults(func=_run_workload)


def _run_workload(args) -> int:
    from ...bench.common import parse_rules
    from ...bench.workload import plot_workload, run_workload

    _threads(args)
    T = args.T or (6 if args.quick else 100)
    repeats = args.repeats or (2 if args.quick else 20)
    check_positive_int("T", T)
    check_positive_int("repeats", repeats)
    result = run_workload(parse_rules(args.rules), T, args.batch, _spec(args), repeats, count_ops=not args.no_ops,
                          log=_log(args.quiet))
    print(f"{'rule':<16} {'backend':<10} {'mean step':>11} {'peak/mean t':>12} {'peak/mean ops':>14} {'latency':>10}")
    for e in result["rules"]:
        print(f"{e['rule']:<16} {e['backend']:<10} {e['mean_step_seconds'] * 1e6:>9.1f}us "
              f"{e['peak_to_mean_time']:>12.2f} {e.get('peak_to_mean_ops', float('nan')):>14.2f} "
              f"{e['latency_to_updated_weights_seconds']['median'] * 1e3:>8.2f}ms")
    return _finish(args, result, plot_workload)
