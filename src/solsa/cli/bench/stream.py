"""``solsa bench stream`` and ``solsa bench longrun``: the stream learner's facade cost and a long run."""

from __future__ import annotations

import argparse

from ...validation import check_positive_int
from .common import _finish, _log, _spec, _threads


# ---- stream learner: facade cost, long run --------------------------------------------------------------------

def _stream_common(p: argparse.ArgumentParser, out: str) -> None:
    p.add_argument("--hidden", default=None, help="hidden layer sizes (default 100,100: the paper's network)")
    p.add_argument("--inputs", type=int, default=None, help="input channels (default 12)")
    p.add_argument("--classes", type=int, default=None, help="classes / output neurons (default 9)")
    p.add_argument("--update-every", type=int, default=10, help="steps between updates (default 10)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--quick", action="store_true", help="smoke run in seconds (tiny network, few steps)")
    p.add_argument("--out", default=out, help=f"JSON result; the plot goes beside it (default {out})")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(model="full", readout=None)


def _add_stream(bench) -> None:
    p = bench.add_parser("stream", help="time per step of the stream learner (learn_one, river's loop) vs the "
                                       "rule's own step, batch 1")
    _stream_common(p, "runs/bench/stream.json")
    p.add_argument("--block", type=int, default=None, help="steps per timed block (default 100)")
    p.add_argument("--repeats", type=int, default=None, help="blocks per mode (default 30)")
    p.set_defaults(func=_run_stream)


def _run_stream(args) -> int:
    from ...bench.stream import plot_facade, run_facade

    _threads(args)
    result = run_facade(_spec(args), update_every=check_positive_int("update_every", args.update_every),
                        block=check_positive_int("block", args.block or (10 if args.quick else 100)),
                        repeats=check_positive_int("repeats", args.repeats or (2 if args.quick else 30)),
                        log=_log(args.quiet))
    for r in result["rows"]:
        print(f"{r['mode']:<30} median {r['step_us']['median']:8.1f} us/step  {r['ratio_to_rule']:5.2f}x the rule")
    print(f"targets: {result['targets']}")
    return _finish(args, result, plot_facade)


def _add_longrun(bench) -> None:
    p = bench.add_parser("longrun", help="one endless stream through the stream learner: steps/s, RSS, "
                                        "max |trace|, NaN/inf")
    _stream_common(p, "runs/bench/longrun.json")
    p.add_argument("--steps", type=int, default=None, help="stream steps (default 1,000,000)")
    p.add_argument("--segment", type=int, default=50, help="steps each label is held (default 50; no reset)")
    p.set_defaults(func=_run_longrun)


def _run_longrun(args) -> int:
    from ...bench.stream import plot_longrun, run_longrun

    _threads(args)
    steps = check_positive_int("steps", args.steps or (2000 if args.quick else 1_000_000))
    r = run_longrun(steps, _spec(args), update_every=check_positive_int("update_every", args.update_every),
                    segment=check_positive_int("segment", args.segment), log=_log(args.quiet))
    print(f"{r['steps']:,} steps in {r['seconds']:.1f} s: {r['steps_per_second']:,.0f} steps/s; RSS "
          f"{r['rss_start_bytes'] / 2**20:.1f} -> {r['rss_end_bytes'] / 2**20:.1f} MiB (max "
          f"{r['rss_max_bytes'] / 2**20:.1f}); max |trace| {r['max_abs_trace']:.4g}; max |param| "
          f"{r['max_abs_param']:.4g}; all finite: {r['all_finite']}")
    return _finish(args, r, plot_longrun)
