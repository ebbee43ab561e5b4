"""The `stromledger` command. Each subcommand lives in nodes/commands/<name>.py and exposes
`register(subparsers)`, which adds its parser and sets `func(args) -> int` (the exit code)."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from stromledger import __version__

from . import commands
from .logs import configure_logging


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# Placeholders by option name, the same in every command's --help (an option may still name its own).
PLACEHOLDERS = {"home": "DIR", "dir": "DIR", "genesis": "FILE", "key": "FILE", "out": "PATH", "previous": "DIR",
                "timeout": "SECONDS", "faults": "KIND"}
TYPE_PLACEHOLDERS = {"int": "N", "_positive": "N", "_ints": "N,N", "float": "NUMBER"}

EXIT_CODES = """\
Exit status of every command:
  0    success: done, valid, healthy
  1    the command ran and the answer is no: refused, invalid, rejected items, a node not healthy or not
       running, a node that cannot run (store or port in use, database of another genesis)
  2    wrong usage or input: unknown option or bad value, DIR is not a node home, config.toml or an input
       file is wrong or unreadable
  130  interrupted (Ctrl-C)"""
EXIT_SHORT = ("Exit status: 0 success, 1 the answer is no (refused, invalid, not healthy), 2 wrong usage or input, "
              "130 interrupted (`stromledger --help` has the table).")


def log_level(text: str) -> str:
    level = text.upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(LOG_LEVELS)}")
    return level


def add_global_options(parser: argparse.ArgumentParser, top: bool) -> None:
    """--log-level and --log-format on the top parser and, so they may also follow the subcommand, on every
    subparser (there without a default, so it does not override one given before the subcommand)."""
    parser.add_argument("--log-level", type=log_level, metavar="LEVEL",
                        default="INFO" if top else argparse.SUPPRESS,
                        help="DEBUG, INFO, WARNING or ERROR (default INFO); before or after the command")
    parser.add_argument("--log-format", choices=("text", "json"), default=None if top else argparse.SUPPRESS,
                        help="text (default) or json, one object per line; a node's config.toml [log] format "
                             "applies when this is not given")


def subparsers(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.values()


def finish(parser: argparse.ArgumentParser) -> None:
    """Every subparser, however deep: a description (its one-line help if it has none), the global options,
    the shared placeholders and the exit-code line."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                sub = action.choices[choice.dest]
                if not sub.description and choice.help:
                    sub.description = choice.help[0].upper() + choice.help[1:] + "."
    for sub in subparsers(parser):
        add_global_options(sub, top=False)
        for action in sub._actions:
            if action.option_strings and action.nargs != 0 and action.metavar is None and not action.choices:
                action.metavar = PLACEHOLDERS.get(action.dest) or \
                    ("SECONDS" if action.dest.endswith("_seconds") else None) or \
                    TYPE_PLACEHOLDERS.get(getattr(action.type, "__name__", ""))
        if sub.epilog is None and "Exit status" not in (sub.description or ""):
            sub.epilog = EXIT_SHORT
        finish(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stromledger",
        description="A coinless, cascading-consensus balancing ledger for electricity.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"stromledger {__version__}")
    add_global_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    finish(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    configure_logging(args.log_format or "text", args.log_level)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
