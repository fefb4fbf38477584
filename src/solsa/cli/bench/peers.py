"""``solsa bench peers``: ms per training batch beside a compiled peer (braintrace, when installed)."""

from __future__ import annotations

from pathlib import Path

from ...validation import check_positive_int
from .common import _log


def _add_peers(bench) -> None:
    p = bench.add_parser("peers", help="ms per training batch of solsa's BPTT and SOLSA beside braintrace's BPTT, "
                                      "ES-D-RTRL and D-RTRL (when installed), one thread")
    p.add_argument("--task", default="uea:JapaneseVowels")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--hidden", default="100,100", help="hidden layer sizes (default 100,100)")
    p.add_argument("--repeats", type=int, default=None, help="timed epochs (default 5)")
    p.add_argument("--max-batches", type=int, default=None, help="batches per epoch (default all)")
    p.add_argument("--no-peer", action="store_true", help="solsa's rows only, even when braintrace is installed")
    p.add_argument("--compiled", action="store_true",
                   help="add BPTT's backend=compiled row (compiles each length and layer shape first: minutes)")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 batches, 1 timed epoch")
    p.add_argument("--out", default="runs/bench/peers.json", help="JSON result; the markdown table goes beside it")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=_run_peers)


def _run_peers(args) -> int:
    from ...bench.common import write_result
    from ...bench.peers import peers_markdown, run_peers
    from ...bench.peers_braintrace import single_thread_jax
    from ...config import parse_hidden

    single_thread_jax()  # before anything imports jax
    result = run_peers(args.task, check_positive_int("batch", args.batch), parse_hidden(args.hidden),
                       repeats=check_positive_int("repeats", args.repeats or (1 if args.quick else 5)),
                       max_batches=args.max_batches or (2 if args.quick else None), peer=not args.no_peer,
                       compiled=args.compiled, log=_log(args.quiet))
    text = peers_markdown(result)
    print(text, end="")
    result["options"] = {k: v for k, v in vars(args).items() if k != "func"}
    path = write_result(args.out, result)
    md = Path(args.out).with_suffix(".md")
    md.write_text(text, encoding="utf-8")
    print(f"wrote {path} and {md}")
    return 0
