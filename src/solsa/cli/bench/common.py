"""What the ``solsa bench`` sub-commands share: the common flags, the network spec, the result writer."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ...config import MODELS
from ...layers import READOUTS
from ...validation import check_positive_int

QUICK_NET = {"inputs": 6, "hidden": (8,), "classes": 3}

def _log(quiet: bool):
    return (lambda s: None) if quiet else (lambda s: print(s, file=sys.stderr, flush=True))


def _common(p: argparse.ArgumentParser, out: str) -> None:
    p.add_argument("--rules", default=None,
                   help="comma-separated rules, NAME or NAME@BACKEND (e.g. solsa@reference); "
                        "default: every non-ablation rule in `solsa rules`")
    p.add_argument("--hidden", default=None, help="hidden layer sizes (default 100,100)")
    p.add_argument("--inputs", type=int, default=None, help="input channels (default 12)")
    p.add_argument("--classes", type=int, default=None, help="classes / output neurons (default 9)")
    p.add_argument("--model", choices=MODELS, default="full",
                   help="full: every rule trains the SOLSA model (default); paper: each rule's own neuron model")
    p.add_argument("--readout", choices=READOUTS, default=None, help="default: the trainer's")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: at these sizes more threads only add OpenMP wake-up latency)")
    p.add_argument("--quick", action="store_true", help="smoke run in seconds (tiny sizes, few repeats)")
    p.add_argument("--out", default=out, help=f"JSON result; the plot goes beside it (default {out})")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


def _spec(args, granularity: str = "layer"):
    from ...config import parse_hidden
    from ...bench.common import NetSpec

    net: dict[str, Any] = dict(QUICK_NET) if args.quick else {}
    if args.hidden is not None:
        net["hidden"] = parse_hidden(args.hidden)
    if args.inputs is not None:
        net["inputs"] = args.inputs
    if args.classes is not None:
        net["classes"] = args.classes
    return NetSpec(filter_granularity=granularity, model=args.model, readout=args.readout, **net)


def _finish(args, result: dict, plot) -> int:
    from ...bench.common import write_result

    result["options"] = {k: v for k, v in vars(args).items() if k != "func"}
    path = write_result(args.out, result)
    msg = f"wrote {path}"
    if not args.no_plot:
        png = plot(result, Path(args.out).with_suffix(".png"))
        msg += f" and {png}"
    print(msg)
    return 0


def _threads(args) -> None:
    import torch

    torch.set_num_threads(check_positive_int("threads", args.threads))


