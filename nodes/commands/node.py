"""`stromledger node run --home DIR`: run the node that DIR was initialised for, until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import importlib
import sys

import trio

ROLE_MODULES = {"validator": "nodes.validator", "balancing-group": "nodes.balancing_group",
                "meter-point": "nodes.meter_point"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("node", help="run a node", description="Run a node from its home directory.")
    ns = p.add_subparsers(dest="node_command", metavar="ACTION")
    run = ns.add_parser(
        "run", help="run the node in --home until interrupted",
        description="Runs the validator, balancing-group or meter-point node set up in --home (see "
                    "`stromledger init`). Logs go to stderr; the node keeps data/status.json current for "
                    "`stromledger status`. SIGINT or SIGTERM stops it cleanly; it resumes where it stopped. "
                    "An encrypted key file needs its passphrase in $STROMLEDGER_PASSPHRASE.")
    run.add_argument("--home", required=True, help="the node's home directory")
    run.set_defaults(func=_run)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _run(args: argparse.Namespace) -> int:
    from nodes.home import ConfigError
    from nodes.runtime import open_context
    from stromledger.keys import KeyFileError
    from stromledger.registry import GenesisError

    try:
        ctx = open_context(args.home)
    except (ConfigError, KeyFileError, GenesisError, OSError) as e:
        print(f"cannot start the node in {args.home}: {e}", file=sys.stderr)
        return 1
    from nodes.logs import configure_logging

    log = ctx.config.log  # the home's [log] section; --log-format and --log-level still win
    configure_logging(args.log_format or log["format"], args.log_level, log["levels"])
    module = importlib.import_module(ROLE_MODULES[ctx.config.role])
    return int(trio.run(module.run, ctx) or 0)
