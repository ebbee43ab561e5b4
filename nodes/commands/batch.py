"""`stromledger batch make`: sign readings or schedules from CSV into canonical Batch files, offline."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DESCRIPTION = """\
Sign the readings (--readings CSV with --meter-keys DIR) and/or schedules (--schedules CSV) into canonical
Batch files, one period per file, without contacting anyone. The batches are signed with the key of the node
in --home; the CSV columns are those of `stromledger submit --help`.

Files are written atomically (a .tmp name, then renamed) as <period start>-<batch hash>.batch into --out,
by default a meter-point home's inbox (<home>/data/inbox): that node holds each file until its period has
ended, sends it, retries what a validator refuses as future, and verifies the readings once sealed.

Exit status: 0 written, 2 wrong input (the first bad line is named) or DIR is not a node home."""


def register(sub: argparse._SubParsersAction) -> None:
    from .submit import add_input_options

    p = sub.add_parser("batch", help="make signed Batch files from CSV, offline",
                       description="Canonical Batch files: what a meter-point node's inbox and "
                                   "`stromledger submit` take.")
    actions = p.add_subparsers(dest="batch_command", metavar="ACTION")
    make = actions.add_parser("make", help="sign readings or schedules from CSV into Batch files (offline)",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    make.add_argument("--home", required=True, metavar="DIR", help="the node home whose key signs the batches")
    add_input_options(make)
    make.add_argument("--out", metavar="DIR", help="where to write the files (default: a meter-point home's "
                                                   "data/inbox)")
    make.set_defaults(func=_make)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def write_batch_files(batches: list[bytes], out: Path, period_seconds: int) -> list[Path]:
    """Write each Batch atomically as <first period start>-<hash>.batch; returns the paths."""
    from stromledger.cascade import Batch
    from stromledger.crypto import sha256
    from stromledger.periods import format_utc

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for data in batches:
        batch = Batch.decode(data)
        period = min([r.period for r in batch.readings] + [s.period for s in batch.schedules])
        stamp = format_utc(period * period_seconds).replace("-", "").replace(":", "")
        path = out / f"{stamp}-{sha256(data).hex()[:12]}.batch"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        paths.append(path)
    return paths


def _make(args: argparse.Namespace) -> int:
    from .submit import InputError, csv_batches, open_home

    ctx = open_home(args.home)
    if ctx is None:
        return 2
    if args.out:
        out = Path(args.out)
    elif ctx.config.role == "meter-point":
        out = ctx.config.data_dir / "inbox"
    else:
        print("--out DIR is needed: only a meter-point home has an inbox to write into", file=sys.stderr)
        return 2
    try:
        made = csv_batches(args, ctx)
    except (InputError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not made:
        print("nothing to sign: give --readings CSV (with --meter-keys DIR) or --schedules CSV", file=sys.stderr)
        return 2
    paths = write_batch_files([data for _, data in made], out, ctx.registry.period_seconds)
    for path in paths:
        print(path)
    print(f"{len(paths)} batch file(s) written to {out}", file=sys.stderr)
    return 0
