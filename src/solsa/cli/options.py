"""The command-line flags of the run options, generated from :class:`~solsa.config.TrainConfig`'s fields.

A small generator over the dataclass fields (rather than a library such as
simple-parsing or tyro: it is 80 lines, keeps argparse's familiar ``--help``, and
adds no dependency): each field becomes ``--name-with-dashes`` in its group,
with its type, valid values and help (the default appended) taken from the
field. Every flag defaults to None, so the options the user *gave* are known
(they win over a config file and over a suite's per-task settings).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any, Iterable

from ..config import GROUPS, TrainConfig, option_choices, option_fields, option_type, parse_hidden, parse_scalar

__all__ = ["add_config_options", "given_options", "resolve_config", "flag", "parse_bool", "parse_scalar", "parse_task_option"]


def flag(option: str) -> str:
    """The command-line flag of a library option: ``batch_size`` -> ``--batch-size``."""
    return "--" + option.replace("_", "-")


def parse_bool(text: str) -> bool:
    low = text.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def parse_task_option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"task options are KEY=VALUE, got {text!r}")
    return key, parse_scalar(value)


def _hidden(text: str) -> tuple[int, ...]:
    try:
        return parse_hidden(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_config_options(parser: argparse.ArgumentParser, exclude: Iterable[str] = (),
                       defaults: dict[str, Any] | None = None) -> None:
    """Add a flag for every :class:`TrainConfig` option not in ``exclude``, grouped as in the config; the help
    shows ``defaults`` where the command has its own (``solsa compare``: :data:`~solsa.compare.COMPARE_DEFAULTS`)."""
    exclude, defaults = set(exclude), defaults or {}
    groups = {name: parser.add_argument_group(f"{name} options") for name in GROUPS}
    for f in option_fields():
        if f.name in exclude:
            continue
        kind, choices = option_type(f), option_choices(f)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        default = defaults.get(f.name, default)
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        kw: dict[str, Any] = {"help": f.metadata["help"] + ("" if default is None else f" (default {shown})")}
        if kind is dict:  # task_options: repeatable KEY=VALUE
            groups[f.metadata["group"]].add_argument(
                "--task-option", dest="task_options", action="append", type=parse_task_option, metavar="KEY=VALUE",
                help=f"{f.metadata['help']} (repeatable)")
            continue
        if kind is bool:
            kw.update(type=parse_bool, metavar="BOOL")
        elif kind is tuple:
            kw.update(type=_hidden, metavar="SIZES")
        else:
            kw["type"] = kind
            if choices is not None:
                kw["choices"] = [c for c in choices if c is not None]
        groups[f.metadata["group"]].add_argument(flag(f.name), dest=f.name, default=None, **kw)


def given_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options the user gave on the command line (flags left at None are not given)."""
    given = {}
    for f in option_fields():
        value = getattr(args, f.name, None)
        if value is None:
            continue
        given[f.name] = dict(value) if f.name == "task_options" else value
    return given


def resolve_config(args: argparse.Namespace, defaults: dict[str, Any] | None = None) -> tuple[TrainConfig, dict]:
    """``(config, given)``: TrainConfig defaults < ``defaults`` < ``--config`` file < command-line options.

    ``given`` holds the options the user set (in the file or on the command line).
    """
    from ..io import load_config_file

    given: dict[str, Any] = load_config_file(args.config) if getattr(args, "config", None) else {}
    for key, value in given_options(args).items():
        if key == "task_options":
            value = {**given.get("task_options", {}), **value}
        given[key] = value
    return TrainConfig.from_dict({**(defaults or {}), **given}), given


def add_config_file(p: argparse.ArgumentParser) -> None:
    """``--config FILE``: options from a TOML or YAML file (given flags override it)."""
    p.add_argument("--config", help="TOML or YAML file of options (command-line options override it)")


def stderr(message: str) -> None:
    """Progress and notices of a command: one line on standard error."""
    print(message, file=sys.stderr, flush=True)
