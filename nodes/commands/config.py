"""`stromledger config check --home DIR`: everything a node checks at start, without starting it."""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path

DESCRIPTION = """\
Check a node home without starting the node (and without opening a port): config.toml against the schema
(every key of every section known, of the right type; docs/operations.md section 4), the key file (an
encrypted one needs $STROMLEDGER_PASSPHRASE), the genesis, that the key is registered in the genesis for
the configured role, the listen address and peers, and that the ledger database (if any) belongs to this
genesis. Prints one line per check; every problem is one line saying what to do.

Exit status: 0 the home is fine, 1 a problem was found, 2 DIR is not a node home (no config.toml)."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="check a node home's config.toml, key and genesis",
                       description="Check node homes.")
    actions = p.add_subparsers(dest="config_command", metavar="ACTION")
    check = actions.add_parser("check", help="check config.toml, key, genesis and database of a home",
                               description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    check.add_argument("--home", required=True, metavar="DIR", help="the node's home directory")
    check.set_defaults(func=_check)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def check_home(home: str | Path) -> tuple[list[str], list[str]]:
    """(what is fine, the problems) of a node home, each one line; stops at the first problem that makes
    the later checks meaningless."""
    import os

    from nodes.home import ConfigError, load_config
    from nodes.runtime import PASSPHRASE_ENV
    from nodes.setup import InitError, _check_listen, _check_registered
    from stromledger.keys import KeyFileError, read_key_file
    from stromledger.registry import GenesisError, load_genesis

    ok: list[str] = []
    try:
        config = load_config(home)
    except ConfigError as e:
        return ok, [str(e)]
    ok.append(f"config.toml: a {config.role} node named {config.name!r}, {len(config.peers)} peer(s)")
    try:
        key = read_key_file(config.key_path, os.environ.get(PASSPHRASE_ENV))
    except (OSError, KeyFileError, ValueError) as e:
        return ok, [f"key file {config.key_path}: {e}"]
    ok.append(f"key: public key {key.public.hex()}")
    try:
        registry = load_genesis(config.genesis_path)
    except (GenesisError, OSError) as e:
        return ok, [f"genesis {config.genesis_path}: {str(e).splitlines()[0]} (`stromledger genesis check "
                    f"{config.genesis_path}` lists every defect)"]
    ok.append(f"genesis: chain {registry.chain_id}, registry hash {registry.hash.hex()}")
    problems = []
    try:
        _check_registered(registry, config.role, key.public, config.balancing_group.get("groups"))
        ok.append(f"the key is registered as a {config.role} in the genesis")
    except InitError as e:
        problems.append(str(e).replace("--groups", "[balancing_group] groups"))
    try:
        _check_listen(config.listen)
        ok.append(f"listen: {config.listen}")
    except InitError as e:
        problems.append(str(e).replace("--listen", "listen"))
    if config.role == "validator":
        from nodes.history import retention_problem

        retention = retention_problem(config.history.get("retain_periods", 0), registry.correction_window)
        if retention:
            problems.append(retention)
    validators = set(registry.validator_keys())
    for i, peer in enumerate(config.peers):
        if peer.key not in validators:
            problems.append(f"[[peers]] #{i + 1} key {peer.key.hex()[:16]}... is no validator of this genesis")
    problems += _database_chain(config, registry)
    if not problems and (config.data_dir / "ledger.sqlite3").exists():
        ok.append("ledger database: belongs to this genesis")
    return ok, problems


def _database_chain(config, registry) -> list[str]:
    """The problem if the home's ledger databases were made with another genesis (read-only; none if no
    database). A validator's home holds one per chain it sits on: the network chain's is the home's
    ledger database, each area chain's is data/chains/<EIC>.sqlite3 (nodes/chains.py)."""
    from stromledger.registry import NETWORK, scopes_of, view
    from stromledger.store import DB_FILE

    from ..chains import chain_store_path

    if config.role != "validator":
        return _one_database_chain(config.home / DB_FILE, registry)
    problems = []
    for scope in scopes_of(registry, config.name):
        path = config.home / DB_FILE if scope == NETWORK else chain_store_path(config.data_dir, scope)
        problems += _one_database_chain(path, view(registry, scope))
    return problems


def _one_database_chain(path: Path, registry) -> list[str]:
    if not path.exists():
        return []
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
        try:
            rows = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('chain_id', 'genesis_hash')"))
        finally:
            conn.close()
    except sqlite3.Error as e:
        return [f"{path}: cannot read it: {e}"]
    if not rows:
        return []
    if rows.get("chain_id") != registry.chain_id.encode() or rows.get("genesis_hash") != registry.hash:
        stored = (rows.get("chain_id") or b"?").decode(errors="replace")
        return [genesis_mismatch(path, stored, registry.chain_id)]
    return []


REGENESIS_HINT = ("restore the home's right genesis.toml, or start the home on the new genesis with `stromledger "
                  "genesis adopt --home DIR --genesis FILE` (docs/operations.md, 'Re-genesis')")


def genesis_mismatch(path: Path, stored: str, chain_id: str) -> str:
    return f"{path} belongs to chain {stored!r}, but the home's genesis is {chain_id!r}: {REGENESIS_HINT}"


def _check(args: argparse.Namespace) -> int:
    ok, problems = check_home(args.home)
    for line in ok:
        print(f"ok       {line}")
    for line in problems:
        print(f"PROBLEM  {line}", file=sys.stderr)
    if problems and not (Path(args.home) / "config.toml").exists():
        return 2
    return 1 if problems else 0
