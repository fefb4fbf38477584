"""``solsa bench``: the command-line entry of the benchmarks."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks: memory, workload, speed")
    bench = p.add_subparsers(dest="bench", required=True)
    del bench  # the benchmarks register their sub-commands here


