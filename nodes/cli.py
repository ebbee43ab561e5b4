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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stromledger",
        description="A coinless, cascading-consensus balancing ledger for electricity.",
    )
    parser.add_argument("--version", action="version", version=f"stromledger {__version__}")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    parser.add_argument("--log-format", choices=("text", "json"), default=None,
                        help="text (default) or json (one object per line); a node's config.toml [log] format "
                             "applies when this is not given")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
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
