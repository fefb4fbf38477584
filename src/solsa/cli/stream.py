"""``solsa stream``: the command line of :mod:`solsa.stream.run` (prequential learning on a stream)."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from .options import add_config_options, flag, given_options, resolve_config
from ..config import option_fields
from ..stream.run import STREAM_OPTIONS
from ..validation import OptionError

__all__ = ["add_parser"]

# TrainConfig options that mean nothing for a stream (batches, epochs, schedules, held-out data)
_STREAM_FLAGS = ("csv", "drift-at", "passes", "steps", "update-every", "checkpoint-every", "print-every", "window",
                 "classes", "max-classes", "horizon", "out", "force", "resume", "quiet")
_NOT_STREAM = ("epochs", "batch_size", "schedule", "search_period", "early_stop", "early_stop_rho", "early_stop_p",
               "early_stop_h", "early_stop_warmup", "val_fraction", "device", "memory_budget")


def _fraction(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1), got {text!r}") from None


def add_parser(sub) -> None:
    """Register ``solsa stream`` on the ``solsa`` sub-command parser."""
    p = sub.add_parser(
        "stream", help="learn a stream one time step at a time (test-then-train), from a task or a CSV file",
        description="Prequential learning: every step is predicted, then learned. Source: --task (its series "
                    "one after another, a label per series) or --csv FILE / --csv - (standard input; columns: "
                    "features, optional 'label' (empty: not known yet) and 'segment' (a new id starts a segment)).")
    s = p.add_argument_group("stream options")
    s.add_argument("--csv", dest="stream_csv", metavar="FILE", help="read the stream from a CSV file ('-': standard input) "
                   "instead of --task")
    s.add_argument("--drift-at", dest="stream_drift_at", type=_fraction, metavar="FRACTION",
                   help="task streams: permute the label mapping from this fraction of the stream on")
    s.add_argument("--passes", dest="stream_passes", type=int, help="task streams: times the whole set is played (default 1)")
    s.add_argument("--steps", dest="stream_steps", type=int, help="stop after this many steps in all (default: the whole stream)")
    s.add_argument("--update-every", dest="stream_update_every", type=int, metavar="N",
                   help="apply the gradient every N labelled steps (default: at the end of each segment)")
    s.add_argument("--checkpoint-every", dest="stream_checkpoint_every", type=int, metavar="N", help="write checkpoint.pt every N steps "
                   "(always at the end)")
    s.add_argument("--print-every", dest="stream_print_every", type=int, metavar="N", help="a progress line every N steps (default 1000)")
    s.add_argument("--window", dest="stream_window", type=int, metavar="N", help="labelled steps of the windowed accuracy (default 500)")
    s.add_argument("--classes", dest="stream_classes", help="CSV streams: the labels known up front, comma-separated")
    s.add_argument("--max-classes", dest="stream_max_classes", type=int, metavar="N",
                   help="CSV streams: output neurons, i.e. labels that can appear (default: the number of --classes)")
    s.add_argument("--horizon", dest="stream_horizon", type=int, metavar="N",
                   help="steps over which a prediction's weight of earlier outputs in a segment decays "
                        f"(default {STREAM_OPTIONS['horizon']}; matters for long segments)")
    s.add_argument("--out", dest="stream_out", help="output folder (default runs/stream_SOURCE_RULE_seedN)")
    s.add_argument("--force", dest="stream_force", action="store_true", help="overwrite an existing run in --out")
    s.add_argument("--resume", dest="stream_resume", metavar="DIR", help="continue the run in DIR from its checkpoint (its options; "
                   "only --steps and --print-every may change)")
    s.add_argument("--quiet", dest="stream_quiet", action="store_true", help="no progress lines")
    # a run option spelled like a stream flag (one added to TrainConfig later) gives way to the stream's
    own = {n.replace("-", "_") for n in _STREAM_FLAGS}
    add_config_options(p, exclude=(*_NOT_STREAM, *(f.name for f in option_fields() if f.name in own)))
    p.set_defaults(func=_run)


def _options(args) -> dict:
    """The stream options given (``STREAM_OPTIONS`` keys)."""
    keys = ("csv", "drift_at", "passes", "steps", "update_every", "checkpoint_every", "print_every", "window",
            "max_classes", "horizon")
    opts = {k: getattr(args, f"stream_{k}") for k in keys if getattr(args, f"stream_{k}") is not None}
    if args.stream_classes is not None:
        opts["classes"] = [c.strip() for c in args.stream_classes.split(",") if c.strip()]
    return opts


def _default_out(cfg, csv: str | None) -> Path:
    source = ("stdin" if csv == "-" else Path(csv).stem) if csv else cfg.task
    return Path("runs") / re.sub(r"[^A-Za-z0-9_.-]+", "-", f"stream_{source}_{cfg.rule}_seed{cfg.seed}").strip("-")


def _run(args) -> int:
    from ..stream.run import resume_stream, run_stream

    log = (lambda s: None) if args.stream_quiet else (lambda s: print(s, flush=True))
    if args.stream_resume:
        fixed = sorted(set(_options(args)) - {"steps", "print_every"} | set(given_options(args))
                       | ({"out"} if args.stream_out else set()) | ({"force"} if args.stream_force else set()))
        if fixed:
            raise OptionError("resume", f"resume continues with the run's own options; only --steps and "
                                        f"--print-every may be given (got {', '.join(flag(k) for k in fixed)})")
        m = resume_stream(args.stream_resume, steps=args.stream_steps, print_every=args.stream_print_every, log=log)
        out = Path(args.stream_resume)
    else:
        cfg, _ = resolve_config(args)
        out = Path(args.stream_out) if args.stream_out else _default_out(cfg, args.stream_csv)
        m = run_stream(cfg, out, force=args.stream_force, log=log, **_options(args))
    _summary(m, out)
    return 0


def _summary(m: dict, out: Path) -> None:
    def pct(v) -> str:
        return "n/a" if v is None else f"{v:.4f}"

    src = m["source"]
    name = src.get("task") or src.get("file")
    state = "finished" if m["finished"] else "stopped (resume with --resume)"
    print(f"{m['config']['rule']} on the stream of {name}: {m['steps']:,} steps ({m['labelled_steps']:,} labelled), "
          f"{m['segments']:,} segments, {m['updates']:,} updates, {state}")
    print(f"  prequential accuracy {pct(m['prequential_accuracy'])}  window {pct(m['window_accuracy'])}  "
          f"at segment ends {pct(m['segment_accuracy'])}")
    if m["drift_step"] is not None:
        print(f"  labels permuted at step {m['drift_step']:,}: window accuracy before {pct(m['window_accuracy_before_drift'])}"
              f", accuracy after {pct(m['accuracy_after_drift'])}")
    sps = m["steps_per_second"]
    print(f"  {m['wall_seconds']:.1f} s, {'n/a' if sps is None else f'{sps:,.0f}'} steps/s, backend {m['backend']}, "
          f"train-state bytes {m['train_state_bytes']:,}")
    print(f"  wrote {out}/metrics.json, accuracy.csv, stream.png, checkpoint.pt", file=sys.stdout)
