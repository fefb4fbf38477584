"""The ``solsa`` command line: a thin layer over the public API."""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["main"]


def _add_gradcheck(sub) -> None:
    p = sub.add_parser("gradcheck", help="compare the SOLSA gradient with BPTT on a random network")
    p.add_argument("--layers", type=int, default=1, help="number of LIF layers, output layer included (default 1)")
    p.add_argument("--T", type=int, default=50, help="sequence length (default 50)")
    p.add_argument("--reset", default="subtract", choices=["subtract", "zero", "none"])
    p.add_argument("--surrogate", default="gaussian", choices=["gaussian", "fast_sigmoid", "atan", "triangle"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--hidden", type=int, default=20, help="width of each hidden layer (default 20)")
    p.add_argument("--readout", default="spike", choices=["spike", "leaky"])
    p.add_argument("--filter-granularity", default="layer", choices=["layer", "channel"])
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run_gradcheck)


def _run_gradcheck(args) -> int:
    import torch

    from .gradcheck import gradcheck

    report = gradcheck(
        layers=args.layers, T=args.T, reset=args.reset, surrogate=args.surrogate, seed=args.seed,
        batch=args.batch, hidden=args.hidden, readout=args.readout,
        filter_granularity=args.filter_granularity, dtype=getattr(torch, args.dtype),
    )
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"SOLSA vs BPTT: {args.layers} layer(s), T={args.T}, reset={args.reset}, surrogate={args.surrogate}, "
          f"readout={args.readout}, {report['dtype']}")
    print(f"spike rate per layer: {report['spike_rate']}")
    print(f"{'parameter':<10} {'max_rel_error':>14} {'cosine':>10}   per-layer cosine")
    for kind, err in report["max_rel_error"].items():
        layers = ", ".join(f"{c:.4f}" for c in report["per_layer_cosine"][kind])
        print(f"{kind:<10} {err:>14.3e} {report['cosine'][kind]:>10.6f}   [{layers}]")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="solsa", description="Online learning for spiking neural networks.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_gradcheck(sub)
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
