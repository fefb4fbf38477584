"""``solsa export CHECKPOINT OUT.nir``: a trained network as a NIR graph; ``--format c``: as a C99 library
(with ``--learn``, its SOLSA learner too: :mod:`solsa.export_c`)."""

from __future__ import annotations

import argparse
import sys
import warnings

from ..interop.nir_export import DEFAULT_DT

__all__ = ["add_parser"]

FORMATS = ("nir", "c")


def add_parser(sub) -> None:
    """Register ``solsa export`` on the sub-parsers of ``solsa``."""
    from ..export_c import DTYPES

    p = sub.add_parser("export", help="write a checkpoint's network as a NIR graph (snnTorch, Norse, Lava, chips) "
                                      "or, with --format c, as a C99 library that can keep learning on a device")
    p.add_argument("checkpoint", help="checkpoint.pt written by `solsa train`")
    p.add_argument("out", help="output .nir file (--format nir) or folder (--format c: solsa_model.h, .c, .json)")
    p.add_argument("--format", choices=FORMATS, default="nir", help="nir (default) or c (docs/embedded.md)")
    p.add_argument("--learn", action="store_true",
                   help="--format c: export the SOLSA learner too (solsa_learn_step, solsa_apply)")
    p.add_argument("--dtype", choices=DTYPES, default="float32", help="--format c: float32 (default), float64 "
                   "(every value a double) or q15: fixed-point inference (int16 weights, int32 state; not with --learn)")
    p.add_argument("--momentum", type=float, default=0.0,
                   help="--format c --learn: SGD momentum of solsa_apply (default 0: plain SGD; 0.9 is the "
                        "trainer's sgd)")
    p.add_argument("--dt", type=float, default=DEFAULT_DT,
                   help=f"time step in seconds for τ = dt/(1-decay), stored in the graph (default {DEFAULT_DT:g}: "
                        "snnTorch's importer assumes it; pass Norse's from_nir the same dt)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.format == "c":
        return _run_c(args)
    if args.learn or args.dtype != "float32" or args.momentum:
        from ..validation import OptionError

        raise OptionError("format", "--learn, --dtype and --momentum apply to --format c only")
    from ..evaluation import network_from_checkpoint
    from ..interop.nir_export import NIRCompatibilityWarning, to_nir, write_nir

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


def _run_c(args: argparse.Namespace) -> int:
    from ..export_c import export_checkpoint

    m = export_checkpoint(args.checkpoint, args.out, learn=args.learn, dtype=args.dtype, momentum=args.momentum)
    b = m["bytes"]
    what = "network and SOLSA learner" if m["learn"] else "network (inference)"
    print(f"wrote {args.out}/solsa_model.h, solsa_model.c ({what}): parameters {b['params']:,} bytes, "
          f"state {b['state']:,} bytes (traces {b['traces']:,}, accumulators {b['grads']:,}, "
          f"momentum {b['momentum']:,}, scratch {b['work']:,}, encoder {b['encoder']:,})")
    inp = m["input"]
    if inp["encoder"] == "delay":
        print(f"input: {inp['channels']} raw channel(s) a step through the delay line (delays "
              f"{', '.join(map(str, inp['lags']))}: {m['n_net_inputs']} network inputs)")
    if inp["preprocess"]:
        print("the device feeds samples as the task's loader left them (pooled, normalised: solsa_model.json "
              "input.preprocess; docs/embedded.md)")
    return 0
