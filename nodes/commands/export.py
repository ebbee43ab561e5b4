"""`stromledger export verify|period`: check a billing export offline, or write one from a node's store.

The logic lives in stromledger.export (verify_export, export_period); this module parses arguments, reads
files and prints.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Iterator

from stromledger.export import ExportError, export_period, read_export, verify_export
from stromledger.periods import Period, parse_utc
from stromledger.registry import GenesisError, Registry, load_genesis, view

VERIFY_HELP = """\
Check an export directory (exports/<period start>/v<version>/) with nothing but the chain's genesis file:
the commit certificate (more than 2/3 of the genesis validators signed the seal), every file's SHA-256 and
record count from manifest.json, that the seal in the manifest has the seal hash, that the meter-point rows
recompute the sealed totals and Merkle root, that CSV and JSON Lines agree, and that the MSCONS quantities
match. An area chain's export (manifest scope = the area's EIC) is checked against that area's view of the
genesis; a network export (scope "network") by its committee's certificate, the area checkpoints it carries
and the cross-level checks. Exit status 0: valid. 1: invalid, with each problem as FILE: WHERE: REASON: DETAIL. 2: the directory
or the genesis file cannot be read."""

PERIOD_HELP = """\
Write the export of a committed period from a node's store (the node may keep running). PERIOD is a period
index (1994728), a period start in UTC (2026-11-21T10:00:00Z) or an ISO interval
(2026-11-21T10:00:00Z/PT15M). Without --version the latest committed version is exported; a correction
(version 2 and up) includes changes.csv against the version before. A version can be exported once the
next height after the seal that settled it has committed: that seal carries the commit certificate every
validator puts in the export (so the newest committed height cannot be exported yet; wait one period).
The export is written under
<out>/exports/<period start, e.g. 20261121T100000Z>/v<version>/ (default out: <home>/data) and never
overwrites a different one. Check it with `stromledger export verify`."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="verify or write period-close billing exports",
                       description="Billing exports: per committed period and version, CSV, JSON Lines and "
                                   "EDIFACT MSCONS files with a manifest that proves them. See "
                                   "docs/export-format.md.")
    es = p.add_subparsers(dest="export_command", metavar="ACTION")

    v = es.add_parser("verify", help="check an export directory against the genesis file", description=VERIFY_HELP)
    v.add_argument("directory", metavar="DIR", help="the export directory (the one holding manifest.json)")
    v.add_argument("--genesis", required=True, metavar="FILE",
                   help="the chain's genesis.toml (with the meter-point CSV file it names)")
    v.add_argument("--previous", metavar="DIR", help="for a correction: the export of the version before, to "
                                                     "check changes.csv line by line")
    v.add_argument("--json", action="store_true", help="print the result as JSON")
    v.set_defaults(func=_verify)

    e = es.add_parser("period", help="write the export of a committed period from a node home",
                      description=PERIOD_HELP)
    e.add_argument("--home", required=True, metavar="DIR", help="the node's home directory")
    e.add_argument("--period", required=True, metavar="PERIOD", help="index, UTC start or ISO interval")
    e.add_argument("--version", type=int, metavar="V", help="settlement version (default: the latest)")
    e.add_argument("--genesis", metavar="FILE", help="genesis file (default: the one in the home's config.toml)")
    e.add_argument("--out", metavar="DIR", help="base directory of exports/ (default: <home>/data, or "
                                                "<home>/data/chains/<EIC> with --area)")
    e.add_argument("--area", metavar="EIC", help="a validator home: export from this grid area's chain (the "
                                                 "network chain's exports are written by the node itself)")
    e.set_defaults(func=_period)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _load_registry(path: str | Path) -> Registry | None:
    try:
        return load_genesis(path)
    except GenesisError as e:
        print(f"{path}: not a usable genesis file:", file=sys.stderr)
        for d in e.defects:
            if d.severity == "error":
                print(f"  {d}", file=sys.stderr)
        return None


def _verify(args: argparse.Namespace) -> int:
    registry = _load_registry(args.genesis)
    if registry is None:
        return 2
    try:
        files = read_export(args.directory)
        previous = read_export(args.previous) if args.previous else None
    except OSError as e:
        print(f"cannot read the export: {e}", file=sys.stderr)
        return 2
    report = verify_export(files, registry, previous)
    if args.json:
        print(json.dumps({
            "valid": report.ok, "chain_id": report.chain_id, "height": report.height, "period": report.period,
            "version": report.version, "seal_hash": report.seal_hash, "files": report.files,
            "meter_points": report.meter_points,
            "problems": [{"reason": p.reason, "file": p.file, "where": p.where, "message": p.message}
                         for p in report.problems],
        }, indent=2, sort_keys=True))
    elif report.ok:
        print(f"OK {args.directory}: {report}")
    else:
        print(f"INVALID {args.directory}: {len(report.problems)} problem(s)")
        for p in report.problems:
            print(f"  {p}")
    return 0 if report.ok else 1


def parse_period(text: str, period_seconds: int) -> int:
    """A period index from '1994728', '2026-11-21T10:00:00Z' or '2026-11-21T10:00:00Z/PT15M'."""
    if re.fullmatch(r"[0-9]+", text):
        return int(text)
    if "/" in text:
        p = Period.from_iso(text)
        if p.length != period_seconds:
            raise ValueError(f"{text}: this chain's periods are {period_seconds} s long")
        return p.index
    start = int(parse_utc(text).timestamp())
    if start % period_seconds:
        raise ValueError(f"{text} is not the start of a {period_seconds} s period")
    return start // period_seconds


def _genesis_of_home(home: Path) -> Path:
    try:
        from nodes.home import ConfigError, load_config
    except ImportError:  # pragma: no cover - the home module is part of the nodes package
        return home / "genesis.toml"
    try:
        return load_config(home).genesis_path
    except ConfigError:
        return home / "genesis.toml"


@contextlib.contextmanager
def _open_store(home: Path, area: str | None = None) -> Iterator[object]:
    """The home's store (or an area chain's, in a validator home); when a running node holds it, a consistent
    snapshot copy (SQLite's backup API)."""
    from stromledger.store import DB_FILE, Store, StoreLocked

    from nodes.chains import chain_store_path

    path = chain_store_path(home / "data", area) if area else home / DB_FILE
    if not path.exists():
        raise ExportError(f"no ledger database at {path}: is {home} a node home?")
    try:
        store = Store(path)
    except StoreLocked:
        store = None
    if store is not None:
        try:
            yield store
        finally:
            store.close()
        return
    with tempfile.TemporaryDirectory(prefix="stromledger-export-") as tmp:
        copy = Path(tmp) / "ledger.sqlite3"
        src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            dst = sqlite3.connect(copy)
            try:
                src.backup(dst)
            finally:
                dst.close()
        finally:
            src.close()
        store = Store(copy)
        try:
            yield store
        finally:
            store.close()


def _period(args: argparse.Namespace) -> int:
    home = Path(args.home)
    genesis = Path(args.genesis) if args.genesis else _genesis_of_home(home)
    registry = _load_registry(genesis)
    if registry is None:
        return 2
    try:
        period = parse_period(args.period, registry.period_seconds)
    except ValueError as e:
        print(f"--period: {e}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else home / "data"
    if args.area:
        if args.area not in registry.grid_areas:
            print(f"--area: {args.area} is not a grid area of the genesis", file=sys.stderr)
            return 2
        out = Path(args.out) if args.out else home / "data" / "chains" / args.area
        registry = view(registry, args.area)
    try:
        with _open_store(home, args.area) as store:
            path = export_period(store, registry, period, args.version, out)
    except ExportError as e:
        hint = "" if args.area or "NetworkSeal" not in str(e) else \
            " (a validator home's ledger is the network chain, whose exports the node writes to data/exports; " \
            "--area EIC exports from an area chain)"
        print(f"cannot export period {period}: {e}{hint}", file=sys.stderr)
        return 1
    print(path)
    return 0
