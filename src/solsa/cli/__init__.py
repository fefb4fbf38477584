"""The ``solsa`` command line: a thin layer over the public API."""

from __future__ import annotations

import argparse
import sys
import warnings


from . import bench, compare, evaluate, export, gradcheck, rules, stream, tasks, train, tune
from .options import flag

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="solsa", description="Online learning for spiking neural networks.")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in (train, evaluate, tasks, rules, compare, gradcheck, bench, export, stream, tune):
        command.add_parser(sub)
    return parser


def error_message(err: Exception) -> str:
    """The library's message, with a leading option name (``batch_size must ...``) shown as its flag."""
    text = str(err)
    if isinstance(err, OSError) and err.strerror:  # "[Errno 20] Not a directory: 'x'" -> "Not a directory: x"
        text = err.strerror + (f": {err.filename}" if err.filename else "")
    option = getattr(err, "option", None)
    if option and text.startswith(option):
        text = flag(option) + text[len(option):]
    return text


def _one_line_warning(command: str):
    """``warnings.formatwarning`` for the command line: ``solsa COMMAND: warning: ...`` (not Python's
    ``file:line:`` form with a source line); whoever records warnings (a test) still gets them as objects."""
    return lambda message, category, filename, lineno, line=None: f"solsa {command}: warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    shown = warnings.formatwarning
    warnings.formatwarning = _one_line_warning(args.command)
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError, RuntimeError) as err:  # OSError: files and folders
        print(f"solsa {args.command}: error: {error_message(err)}", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = shown


if __name__ == "__main__":
    sys.exit(main())
