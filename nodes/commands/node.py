"""`stromledger node run --home DIR`: run the node that DIR was initialised for, until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import importlib
import sys

import trio

ROLE_MODULES = {"validator": "nodes.chains", "balancing-group": "nodes.balancing_group",
                "meter-point": "nodes.meter_point"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("node", help="run a node", description="Run a node from its home directory.")
    ns = p.add_subparsers(dest="node_command", metavar="ACTION")
    run = ns.add_parser(
        "run", help="run the node in --home until interrupted",
        description="Runs the validator, balancing-group or meter-point node set up in --home (see "
                    "`stromledger init`). Logs go to stderr; the node keeps data/status.json current for "
                    "`stromledger status`. SIGINT or SIGTERM stops it cleanly; it resumes where it stopped. "
                    "An encrypted key file needs its passphrase in $STROMLEDGER_PASSPHRASE. Exit status: 0 "
                    "stopped cleanly, 1 it could not run (store or port in use, database of another genesis, "
                    "a validator's sign guard empty or behind its store, a full or read-only disk: one line "
                    "naming the path), 2 DIR is not a usable node home "
                    "(config.toml, key or genesis; nothing was started).")
    run.add_argument("--home", required=True, metavar="DIR", help="the node's home directory")
    run.add_argument("--resume-signing-after-restore", action="store_true",
                     help="a validator refuses to sign when its sign guard is empty or behind its store (lost, "
                          "or restored from a backup); after restoring a backup, and only if the node signed "
                          "nothing since, pass this once to override that check (it is logged)")
    run.set_defaults(func=_run)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _run(args: argparse.Namespace) -> int:
    from nodes.home import ConfigError
    from nodes.runtime import open_context
    from stromledger.keys import KeyFileError
    from stromledger.registry import GenesisError

    try:
        ctx = open_context(args.home)  # config.toml is checked against its schema here, before any port opens
    except (ConfigError, KeyFileError, GenesisError, OSError) as e:
        print(f"cannot start the node in {args.home}: {e}", file=sys.stderr)
        return 2
    ctx.resume_signing_after_restore = args.resume_signing_after_restore
    from nodes.logs import configure_logging

    # The home's [log] section; --log-format and --log-level on the command line still win.
    configure_logging(args.log_format or ctx.config.log_format, args.log_level, ctx.config.log_levels)
    module = importlib.import_module(ROLE_MODULES[ctx.config.role])
    try:
        return int(trio.run(module.run, ctx) or 0)
    except BaseException as e:  # noqa: B036 - known conditions become one line; anything else stays loud
        known = known_failure(e, ctx)
        if known is None:
            raise
        print(f"cannot run the node in {args.home}: {known}", file=sys.stderr)
        return 1


def known_failure(error: BaseException, ctx) -> str | None:
    """A one-line message with what to do for the conditions an operator meets (store in use, port in use,
    database of another genesis or a newer version); None for anything else."""
    from nodes.consensus_guard import StartRefused
    from nodes.disk import disk_problem
    from stromledger.net import ListenError
    from stromledger.store import SchemaTooNew, StoreLocked, WrongChain

    if isinstance(error, BaseExceptionGroup):
        for leaf in error.exceptions:
            found = known_failure(leaf, ctx)
            if found:
                return found
        return None
    if isinstance(error, StartRefused):
        return str(error)
    disk = disk_problem(error)
    if disk is not None:
        return (f"stopped: cannot write {disk}. Free space or make the data directory writable, then start "
                f"the node again (it resumes where it stopped)")
    if isinstance(error, StoreLocked):
        return f"{error} Stop that node first: never run two nodes on one home."
    if isinstance(error, ListenError):
        return (f"cannot listen on {ctx.config.listen}: the port is in use by another process (is the node already "
                f"running?); stop it, or change `listen` in {ctx.config.home / 'config.toml'}")
    if isinstance(error, WrongChain):
        from .config import REGENESIS_HINT

        return f"{str(error).split(': wrong --home', 1)[0]}: {REGENESIS_HINT}"
    if isinstance(error, SchemaTooNew):
        return f"{error}: run the newer stromledger that wrote it, or restore the pre-upgrade backup"
    return None
