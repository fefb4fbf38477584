"""``solsa export CHECKPOINT OUT.nir``: a trained network as a NIR graph."""

from __future__ import annotations

import argparse
import sys
import warnings

from .nir_export import DEFAULT_DT

__all__ = ["add_parser"]


def add_parser(sub) -> None:
    """Register ``solsa export`` on the sub-parsers of ``solsa``."""
    p = sub.add_parser("export", help="write a checkpoint's network as a NIR graph (snnTorch, Norse, Lava, chips)")
    p.add_argument("checkpoint", help="checkpoint.pt written by `solsa train`")
    p.add_argument("out", help="output .nir file")
    p.add_argument("--dt", type=float, default=DEFAULT_DT,
                   help=f"time step in seconds for τ = dt/(1-decay), stored in the graph (default {DEFAULT_DT:g}: "
                        "snnTorch's importer assumes it; pass Norse's from_nir the same dt)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluation import network_from_checkpoint
    from .nir_export import NIRCompatibilityWarning, to_nir, write_nir

    net, _, _ = network_from_checkpoint(args.checkpoint)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NIRCompatibilityWarning)
        graph = to_nir(net, dt=args.dt)
    write_nir(graph, args.out)
    kinds = " → ".join(type(graph.nodes[b]).__name__ for _, b in graph.edges)
    print(f"wrote {args.out}: Input → {kinds} (dt = {args.dt:g} s)")
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    return 0
