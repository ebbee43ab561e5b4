"""`stromledger submit`: send signed readings to a validator once, and print its receipt."""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

from stromledger.cascade import Batch, Reading, Reason, Schedule, make_batch, sign_reading, sign_schedule
from stromledger.crypto import SigningKey
from stromledger.periods import Period, parse_utc
from stromledger.registry import Registry

from ..feed import InboxError, read_batch_file

PASSPHRASE_ENV = "STROMLEDGER_PASSPHRASE"
CSV_COLUMNS = ("malo_id", "period", "version", "import_wh", "export_wh", "register")
SCHEDULE_COLUMNS = ("from_group", "to_group", "period", "wh")
SKIPS_VERIFICATION = ("note: submit sends straight to a validator, past the meter-point node: no node verifies these "
                      "readings against the seal with Merkle proofs. To have them verified, write them into the "
                      "node's inbox instead: stromledger batch make --home DIR --readings CSV --meter-keys DIR")
TRUE, FALSE = {"1", "true", "yes", "y", "register"}, {"", "0", "false", "no", "n", "interval"}

DESCRIPTION = """\
Send signed meter readings or schedules to a validator once and print its receipt: how many items it
accepted, how many it already had (duplicates), and each rejected item with its reason.

This goes straight to the validator, past the meter-point node: no node verifies these readings against the
seal with Merkle proofs afterwards. For readings that should be verified, and for periods that have not
ended yet, write batch files into the meter-point node's inbox instead (`stromledger batch make`): the node
holds them until their period has ended, retries, and verifies them once sealed.

Give canonical Batch files (made by a metering system, `stromledger batch make`, or saved by
`stromledger submit --save`), a CSV file of readings with --readings and the meters' key files with
--meter-keys, and/or a CSV file of schedules with --schedules. Batches are signed with the key of the node
in --home (a meter operator's or a balancing-group operator's node home); Batch files whose signature is all
zeros are signed with it too. Each batch holds one period, so a period that has not begun is refused alone.
Every batch goes to the first validator in the home's config.toml [[peers]], or, if that one cannot be
reached, to the others in turn.

Readings CSV columns (a header line is required; extra columns are ignored):
  malo_id     the market location id (11 digits)
  period      the period's start in UTC (2026-11-21T10:00:00Z), its ISO interval
              (2026-11-21T10:00:00Z/PT15M) or its index
  version     1 for the original reading, 2, 3 ... for your corrections (default 1)
  import_wh   energy taken from the grid in the period (A+, OBIS 1-0:1.29.0), whole Wh
  export_wh   energy fed into the grid (A-, OBIS 1-0:2.29.0), whole Wh
  register    true if import_wh/export_wh are the cumulative registers 1.8.0/2.8.0 at the period's end
              (default false)
Each reading is signed with the meter's key from --meter-keys DIR/<malo_id>.key (made with
`stromledger keys gen`; encrypted ones need $STROMLEDGER_PASSPHRASE).

Schedules CSV columns (balancing-group operators; signed with the --home node's key, which must operate the
from or the to group; a trade counts once both groups' operators signed the same line):
  from_group  the EIC of the balancing group the energy leaves
  to_group    the EIC of the balancing group it goes to
  period      as above; up to the genesis' schedule_horizon_periods ahead, before the period is sealed
  wh          the energy, whole Wh (at least 1)

Exit status: 0 if every item was accepted (or was a duplicate), 1 if the validator rejected anything or
no validator could be reached, 2 if the input is wrong.

Examples:
  stromledger submit --home ~/mop-node data/inbox/2026-11-21T1000.batch
  stromledger submit --home ~/mop-node --readings readings.csv --meter-keys ~/meter-keys
  stromledger submit --home ~/brp-node --schedules trades.csv
"""


class InputError(ValueError):
    pass


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("submit", help="send signed readings to a validator once and print the receipt",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--home", required=True, metavar="DIR", help="the node home whose key signs the batches and "
                                                               "whose [[peers]] are the validators to send to")
    p.add_argument("files", nargs="*", metavar="FILE", help="canonical Batch files to send")
    add_input_options(p)
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each validator (default 30)")
    p.add_argument("--save", metavar="DIR", help="also write the signed batches to DIR as canonical Batch files")
    p.set_defaults(func=_main)


# -- input -------------------------------------------------------------------------------------------------


def parse_period(text: str, registry: Registry) -> int:
    text = text.strip()
    length = registry.period_seconds
    if text.isdigit():
        return int(text)
    try:
        if "/" in text:
            period = Period.from_iso(text)
            if period.length != length:
                raise InputError(f"{text}: this chain's periods are {length} s long")
            return period.index
        start = int(parse_utc(text).timestamp())
    except ValueError as e:
        raise InputError(str(e)) from None
    if start % length:
        raise InputError(f"{text} is not the start of a {length} s period")
    return start // length


def _int(row: dict, name: str, default: str | None = None) -> int:
    value = (row.get(name) or "").strip() or default
    if value is None:
        raise InputError(f"{name} is missing")
    if not value.isdigit():
        raise InputError(f"{name} must be a whole non-negative number, not {value!r}")
    return int(value)


def read_readings_csv(path: str | Path, registry: Registry, key_for: Callable[[str], SigningKey]) -> list[Reading]:
    """Sign every row of a readings CSV with its meter's key; InputError names the first bad line."""
    readings = []
    with open(path, newline="") as f:
        rows = csv.DictReader(f)
        missing = [c for c in ("malo_id", "period", "import_wh", "export_wh") if c not in (rows.fieldnames or [])]
        if missing:
            raise InputError(f"{path}: the header lacks the column(s) {', '.join(missing)}")
        for line, row in enumerate(rows, start=2):
            try:
                malo = (row.get("malo_id") or "").strip()
                if malo not in registry.meter_points:
                    raise InputError(f"MaLo {malo!r} is not in the genesis")
                flag = (row.get("register") or "").strip().lower()
                if flag not in TRUE | FALSE:
                    raise InputError(f"register must be true or false, not {flag!r}")
                readings.append(sign_reading(
                    key_for(malo), registry.chain_id, malo, parse_period(row.get("period") or "", registry),
                    _int(row, "import_wh"), _int(row, "export_wh"), version=_int(row, "version", "1"),
                    register=flag in TRUE))
            except InputError as e:
                raise InputError(f"{path} line {line}: {e}") from None
    return readings


def read_schedules_csv(path: str | Path, registry: Registry, key: SigningKey) -> list[Schedule]:
    """Sign every row of a schedules CSV (from_group, to_group, period, wh) with the balancing-group operator's
    `key`, which must operate one of the two groups; InputError names the first bad line."""
    schedules = []
    with open(path, newline="") as f:
        rows = csv.DictReader(f)
        missing = [c for c in SCHEDULE_COLUMNS if c not in (rows.fieldnames or [])]
        if missing:
            raise InputError(f"{path}: the header lacks the column(s) {', '.join(missing)}")
        for line, row in enumerate(rows, start=2):
            try:
                frm, to = (row.get("from_group") or "").strip(), (row.get("to_group") or "").strip()
                for eic in (frm, to):
                    if eic not in registry.balancing_groups:
                        raise InputError(f"balancing group {eic!r} is not in the genesis")
                if key.public not in (registry.group_keys[frm], registry.group_keys[to]):
                    raise InputError(f"this node's key operates neither {frm} nor {to}: only their operators sign "
                                     f"a schedule between them")
                wh = _int(row, "wh")
                if frm == to or wh == 0:
                    raise InputError("a schedule needs two different groups and at least 1 Wh")
                schedules.append(sign_schedule(key, registry.chain_id, frm, to,
                                               parse_period(row.get("period") or "", registry), wh))
            except InputError as e:
                raise InputError(f"{path} line {line}: {e}") from None
    return schedules


def meter_key_loader(directory: str | Path, registry: Registry) -> Callable[[str], SigningKey]:
    from stromledger.keys import KeyFileError, read_key_file

    cache: dict[str, SigningKey] = {}

    def load(malo: str) -> SigningKey:
        if malo not in cache:
            path = Path(directory) / f"{malo}.key"
            try:
                key = read_key_file(path, os.environ.get(PASSPHRASE_ENV))
            except (OSError, KeyFileError, ValueError) as e:
                raise InputError(f"cannot read the meter key {path}: {e}") from None
            if key.public != registry.meter_points[malo].meter_key:
                raise InputError(f"{path} is not the key the genesis lists for MaLo {malo}")
            cache[malo] = key
        return cache[malo]

    return load


def load_batch_file(path: str | Path, key: SigningKey, chain_id: str) -> bytes:
    """A Batch file's canonical bytes; a batch whose signature is all zeros is signed with `key` first."""
    try:
        return read_batch_file(path, key, chain_id).encode()  # canonical: the file's own bytes when signed
    except InboxError as e:
        raise InputError(str(e)) from None


def batches_of(readings: Sequence[Reading], key: SigningKey, chain_id: str, size: int,
               schedules: Sequence[Schedule] = ()) -> list[bytes]:
    """Signed batches of at most `size` items, each for ONE period (a validator refuses a batch whole when one
    of its periods has not begun, so one period still to come must not hold back the others), by period."""
    from nodes.meter_point import MAX_BATCH

    size = max(1, min(size, MAX_BATCH))
    out = []
    for period in sorted({r.period for r in readings} | {s.period for s in schedules}):
        mine = [r for r in readings if r.period == period]
        out += [make_batch(key, chain_id, mine[i:i + size]).encode() for i in range(0, len(mine), size)]
        theirs = [s for s in schedules if s.period == period]
        out += [make_batch(key, chain_id, (), theirs[i:i + size]).encode() for i in range(0, len(theirs), size)]
    return out


# -- sending -----------------------------------------------------------------------------------------------


async def send_all(net, validators: Sequence[bytes], chain_id: str, batches: Sequence[tuple[str, bytes]], *,
                   timeout: float, out=None) -> int:
    """Submit each (name, batch bytes) and print its receipt; the exit status."""
    out = out or sys.stdout
    from nodes.meter_point import SubmitFailed, batch_refused, reason_label, submit_batch
    from stromledger.cascade import Batch as BatchMsg

    status = 0
    for name, data in batches:
        try:
            validator, receipt = await submit_batch(net, validators, data, chain_id, timeout=timeout)
        except SubmitFailed as e:
            print(f"{name}: NOT SENT: no validator took it: {e}", file=out)
            status = 1
            continue
        batch = BatchMsg.decode(data)
        head = f"{name}: batch {receipt.batch.hex()[:16]} -> validator {validator.hex()[:16]}:"
        if receipt.batch_reason == Reason.DUPLICATE:
            print(f"{head} already received earlier: nothing new", file=out)
            continue
        if batch_refused(receipt):
            print(f"{head} REFUSED as a whole: {reason_label(receipt.batch_reason)}", file=out)
            status = max(status, 1)
            continue
        print(f"{head} {receipt.accepted} accepted, {receipt.duplicates} duplicates, "
              f"{len(receipt.rejected)} rejected", file=out)
        for item in receipt.rejected:
            items = batch.readings if item.kind == 1 else batch.schedules
            if item.kind == 1 and item.index < len(items):
                what = f"reading {item.index} (MaLo {items[item.index].malo_id}, period {items[item.index].period})"
            elif item.kind == 3 and item.index < len(batch.changes):
                what = f"registry change {item.index} ({batch.changes[item.index].describe()})"
            else:
                what = f"{'reading' if item.kind == 1 else 'schedule'} {item.index}"
            print(f"  rejected {what}: {reason_label(item.reason)}: {item.message}", file=out)
        if receipt.rejected:
            status = max(status, 1)
    return status


def add_input_options(p: argparse.ArgumentParser) -> None:
    """The CSV inputs `submit` and `batch make` share."""
    p.add_argument("--readings", metavar="CSV", help="a CSV file of readings to sign (columns above)")
    p.add_argument("--meter-keys", metavar="DIR", help="directory of the meters' key files, <malo_id>.key")
    p.add_argument("--schedules", metavar="CSV", help="a CSV file of schedules (from_group, to_group, period, wh) "
                                                      "to sign with this node's key (a balancing-group operator's)")
    p.add_argument("--batch-size", type=int, default=5000, metavar="N",
                   help="items per batch (default 5000, at most 20000); every batch holds one period")


def csv_batches(args: argparse.Namespace, ctx) -> list[tuple[str, bytes]]:
    """(name, signed Batch bytes) for --readings and --schedules, one period per batch; InputError if wrong."""
    reg = ctx.registry
    readings: list[Reading] = []
    schedules: list[Schedule] = []
    if args.readings:
        if not args.meter_keys:
            raise InputError("--readings needs --meter-keys DIR to sign each reading with its meter's key")
        readings = read_readings_csv(args.readings, reg, meter_key_loader(args.meter_keys, reg))
    if args.schedules:
        schedules = read_schedules_csv(args.schedules, reg, ctx.key)
    made = batches_of(readings, ctx.key, reg.chain_id, args.batch_size, schedules)
    source = " + ".join(str(f) for f in (args.readings, args.schedules) if f)
    return [(f"{source}[{i + 1}/{len(made)}]", b) for i, b in enumerate(made)]


def open_home(home: str):
    """The home's NodeContext (config, key, genesis), or None after saying on stderr why it cannot be used."""
    from nodes.home import ConfigError
    from nodes.runtime import open_context
    from stromledger.keys import KeyFileError
    from stromledger.registry import GenesisError

    try:
        return open_context(home)
    except (ConfigError, KeyFileError, GenesisError, OSError) as e:
        print(f"cannot open the node home {home}: {e}", file=sys.stderr)
        return None


def _main(args: argparse.Namespace) -> int:
    ctx = open_home(args.home)
    if ctx is None:
        return 2
    reg = ctx.registry
    try:
        batches = [(str(f), load_batch_file(f, ctx.key, reg.chain_id)) for f in args.files]
        batches += csv_batches(args, ctx)
    except (InputError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not batches:
        print("nothing to send: give Batch files, --readings CSV or --schedules CSV (see --help)", file=sys.stderr)
        return 2
    if args.save:
        from stromledger.crypto import sha256

        Path(args.save).mkdir(parents=True, exist_ok=True)
        for _, data in batches:
            (Path(args.save) / f"{sha256(data).hex()[:16]}.batch").write_bytes(data)
    if any(Batch.decode(b).readings for _, b in batches):
        print(SKIPS_VERIFICATION, file=sys.stderr)
    return send_to_peers(args.home, ctx, batches, args.timeout)


def send_to_peers(home: str, ctx, batches: Sequence[tuple[str, bytes]], timeout: float,
                  listen: str | None = None) -> int:
    """Submit (name, batch bytes) to the validators in the home's config.toml [[peers]], print each receipt;
    the exit status (2 when the home names no validator). `listen`: instead of the home's own address."""
    import trio

    from nodes.runtime import make_network

    validators = [p.key for p in ctx.config.peers if p.key != ctx.key.public]
    if not validators:
        print(f"{home}/config.toml lists no [[peers]]: no validator to send to", file=sys.stderr)
        return 2

    async def go() -> int:
        net = make_network(ctx, listen)
        async with net:
            return await send_all(net, validators, ctx.registry.chain_id, batches, timeout=timeout)

    return trio.run(go)
