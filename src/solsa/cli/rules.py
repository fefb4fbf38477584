"""``solsa rules``: the learning rules and what each can do."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("rules", help="list the learning rules")
    p.set_defaults(func=_run_rules)


def _run_rules(args) -> int:
    from ..rules import RULES

    for name, spec in RULES.items():
        print(f"  {name:<18} {spec.description}")
    return 0
