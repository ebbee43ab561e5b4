"""`stromledger genesis`: check a genesis file, or write a devnet genesis."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from nodes.datagen.devnet_genesis import DEVNET_PERIOD_SECONDS
from stromledger.periods import format_utc, iso_duration
from stromledger.registry import Registry, check_genesis


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "genesis", help="check a genesis file, write one from a draft, or write a devnet genesis",
        description="The genesis file (TOML) fixes a chain: its id, period length and gate closure, the "
                    "validators, grid areas, balancing groups, meter operators and meter points (usually in a "
                    "CSV file whose SHA-256 the genesis pins). Every node of a chain must use the same genesis.")
    sub = p.add_subparsers(dest="genesis_command", metavar="ACTION")
    check = sub.add_parser(
        "check", help="check a genesis file and print a summary or every defect",
        description="Read FILE and its meter-point file, check every id, key, reference and hash, and print a "
                    "summary (chain, periods, counts per area, balancing group and energy source, validators, "
                    "the registry hash). If anything is wrong, print every defect with its place "
                    "(file, table/row or CSV line, field) instead. Exit status 0 if the genesis is usable, "
                    "1 if not. Warnings (e.g. fewer than 4 validators) do not fail the check.")
    check.add_argument("file", metavar="FILE", type=Path, help="the genesis TOML file, e.g. configs/devnet.toml")
    check.set_defaults(func=run_check)
    make = sub.add_parser(
        "devnet", help="write a devnet genesis with deterministic test keys",
        description="Write DIR/devnet.toml and DIR/devnet-meter-points.csv: a local test network whose keys "
                    "come from fixed labels (validator-1, bg-operator-1, meter-<MaLo-ID>, ...; see "
                    "nodes.datagen.devnet_genesis). Never use these keys outside a devnet.")
    make.add_argument("--dir", type=Path, required=True, help="directory to write into (created if missing)")
    make.add_argument("--validators", type=int, default=4, help="number of validators, two per grid area "
                                                                "(default 4)")
    make.add_argument("--balancing-groups", type=int, default=3, help="supplier balancing groups, besides one "
                                                                      "loss group per area (default 3)")
    make.add_argument("--meters", type=int, default=200, help="meter points, tie lines included (default 200)")
    make.add_argument("--period-seconds", type=int, default=DEVNET_PERIOD_SECONDS, metavar="SECONDS",
                      help=f"settlement period length (default {DEVNET_PERIOD_SECONDS}, as `stromledger devnet`)")
    make.add_argument("--seed", type=int, default=1, help="seed for the generated mix (default 1)")
    make.add_argument("--genesis", help="UTC start of the first period, e.g. 2026-01-01T00:00:00Z "
                                        "(default 2026-01-01T00:00:00Z)")
    make.set_defaults(func=run_devnet)
    new = sub.add_parser(
        "new", help="write a genesis from a draft: check characters and the meter-point file's hash computed",
        description="Complete DRAFT (a genesis in the usual format, docs/domain.md) into DIR/genesis.toml and "
                    "its meter-point CSV: EICs written with 15 characters get their check character, MaLo-IDs "
                    "with 10 digits their check digit (in the TOML and the CSV), and [meter_point_file] sha256 "
                    "(empty or left out) becomes the SHA-256 of the completed CSV. The draft's layout and comments "
                    "stay. Then the result is checked as by `genesis check`. Exit status 0 if the genesis is "
                    "usable, 1 if not (every defect printed), 2 if the draft cannot be read.")
    new.add_argument("draft", metavar="DRAFT", type=Path, help="the draft genesis TOML (its CSV beside it)")
    new.add_argument("--out", required=True, type=Path, help="directory to write genesis.toml and the CSV into")
    new.set_defaults(func=run_new)
    adopt = sub.add_parser(
        "adopt", help="start a stopped node home on a new genesis (re-genesis), keeping the old data",
        description="Re-genesis a node home: check FILE and that the home's key is registered in it for the "
                    "home's role, then move DIR/data (ledger, exports, inbox) and the old genesis copy to "
                    "DIR/data.<UTC time>/ (kept for reference, never deleted), copy FILE (and its meter-point "
                    "CSV) into the home and create an empty data/. config.toml and the key stay. The node must "
                    "be stopped. Exit status 0 done, 1 refused (nothing changed), 2 DIR is not a node home.")
    adopt.add_argument("--home", required=True, metavar="DIR", help="the node's home directory")
    adopt.add_argument("--genesis", required=True, metavar="FILE", type=Path, help="the new genesis TOML file")
    adopt.set_defaults(func=run_adopt)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_check(args: argparse.Namespace) -> int:
    console = Console(highlight=False)
    console.width = max(console.width, 140)  # EICs and keys stay on one line
    registry, defects = check_genesis(args.file)
    errors = [d for d in defects if d.severity == "error"]
    for d in defects:  # no markup: "[[validators]]" must print as it is
        console.print(str(d), style="red" if d.severity == "error" else "yellow", markup=False, soft_wrap=True)
    if registry is None:
        console.print(f"{args.file}: {len(errors)} error(s): not a usable genesis", style="red", markup=False)
        return 1
    print_summary(console, registry)
    return 0


def run_new(args: argparse.Namespace) -> int:
    import sys

    from nodes.genesis_draft import DraftError, write_from_draft

    try:
        path = write_from_draft(args.draft, args.out)
    except DraftError as e:
        print(f"cannot complete the draft: {e}", file=sys.stderr)
        return 2
    print(path)
    args.file = path
    return run_check(args)


def run_devnet(args: argparse.Namespace) -> int:
    from nodes.datagen.devnet_genesis import make_devnet_genesis
    from stromledger.periods import parse_utc

    options = {}
    if args.genesis:
        try:
            options["genesis_start"] = int(parse_utc(args.genesis).timestamp())
        except ValueError as e:
            print(f"--genesis: {e}")
            return 2
    try:
        path = make_devnet_genesis(args.dir, args.validators, args.balancing_groups, args.meters,
                                   args.period_seconds, args.seed, **options)
    except ValueError as e:
        print(f"cannot make that devnet: {e}")
        return 2
    print(path)
    return 0


def run_adopt(args: argparse.Namespace) -> int:
    import datetime as dt
    import sys

    from nodes.home import ConfigError
    from nodes.setup import InitError, adopt_genesis

    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    try:
        archive = adopt_genesis(args.home, args.genesis, stamp)
    except ConfigError as e:
        print(f"{args.home} is not a node home: {e}", file=sys.stderr)
        return 2
    except (InitError, OSError) as e:
        print(f"adopt refused: {e}", file=sys.stderr)
        return 1
    print(f"{args.home} now uses {args.genesis}; its previous data and genesis are in {archive}")
    return 0


def print_summary(console: Console, reg: Registry) -> None:
    p = reg.params
    console.print(f"chain          {p.chain_id}")
    console.print(f"registry hash  {reg.hash.hex()}")
    console.print(f"genesis        {format_utc(p.genesis_period * p.period_seconds)} (period {p.genesis_period})")
    console.print(f"period         {p.period_seconds} s ({iso_duration(p.period_seconds)}), gate closure "
                  f"{p.grace_seconds} s after period end, corrections up to {p.correction_window} periods back")

    areas = Table(title="grid areas")
    for col in ("EIC", "name", "operator", "loss group", "meter points", "tie lines", "validators"):
        areas.add_column(col)
    per_area = Counter(m.grid_area for m in reg.meter_points.values() if m.kind != "boundary")
    ties = Counter()
    for malo in reg.boundary:
        m = reg.meter_points[malo]
        for a in {m.area_out, m.area_in} - {""}:
            ties[a] += 1
    vals = Counter(v.grid_area for v in reg.validators)
    for a in reg.grid_areas.values():
        areas.add_row(a.eic, a.name, a.operator, a.loss_group, str(per_area[a.eic]), str(ties[a.eic]),
                      str(vals[a.eic]))
    console.print(areas)

    groups = Table(title="balancing groups")
    for col in ("EIC", "name", "meter points at genesis", "role"):
        groups.add_column(col)
    per_group = Counter(m.balancing_group for m in reg.meter_points.values() if m.kind != "boundary")
    for g in reg.balancing_groups.values():
        role = "loss group of " + ", ".join(reg.loss_groups[g.eic]) if g.eic in reg.loss_groups else "supplier"
        groups.add_row(g.eic, g.name, str(per_group[g.eic]), role)
    console.print(groups)

    sources = Table(title="meter points by kind and energy source")
    for col in ("kind", "source", "count", "max power (kW)"):
        sources.add_column(col)
    count: Counter = Counter()
    power: Counter = Counter()
    for m in reg.meter_points.values():
        count[m.kind, m.source] += 1
        power[m.kind, m.source] += m.max_power_w
    for key in sorted(count):
        sources.add_row(key[0], key[1], str(count[key]), f"{power[key] // 1000:,}")
    console.print(sources)

    validators = Table(title=f"validators (n = {len(reg.validators)}, tolerates "
                             f"f = {(len(reg.validators) - 1) // 3} faulty)")
    for col in ("#", "name", "public key", "grid area"):
        validators.add_column(col)
    for i, v in enumerate(reg.validators, 1):
        validators.add_row(str(i), v.name, v.public_key.hex(), v.grid_area)
    console.print(validators)
    console.print(f"{len(reg.meter_operators)} meter operator(s), {len(reg.meter_points)} meter points, "
                  f"{len(reg.assignments)} supplier switch(es)")
