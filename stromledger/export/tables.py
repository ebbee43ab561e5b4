"""The CSV and JSON Lines files of an export: their columns (fixed order) and their rows.

Column lists are the single definition of each file's layout: the builder writes them and the verifier
parses against them. docs/export-format.md describes every column.
"""

from __future__ import annotations

import re
from itertools import compress, repeat
from operator import eq, itemgetter
from typing import Iterable, Sequence

from stromledger.cascade.messages import MISMATCHED, MISSING, ONE_SIDED, QUALITY_NAMES, PeriodResult
from stromledger.cascade.rows import MeterRow
from stromledger.periods import Period, format_utc
from stromledger.registry import SOURCES, Registry, RegistryChange
from stromledger.registry.changes import change_json

from .text import CHUNK, csv_bytes, json_line

METER_POINTS_CSV = "meter-points.csv"
METER_POINTS_JSONL = "meter-points.jsonl"
GROUPS_CSV = "balancing-groups.csv"
AREAS_CSV = "areas.csv"
SCHEDULES_CSV = "schedules.csv"
CHANGES_CSV = "changes.csv"
REGISTRY_CHANGES_JSONL = "registry-changes.jsonl"  # the registry changes in effect (docs/registry.md)

METER_POINT_COLUMNS = (
    "period_start", "period_end", "malo_id", "grid_area", "balancing_group", "import_wh", "export_wh", "source",
    "quality", "version", "seal_hash", "kind", "reading_version", "reading_register", "reading_import_wh",
    "reading_export_wh", "reading_sig",
)
INT_COLUMNS = frozenset(("import_wh", "export_wh", "version", "reading_version", "reading_register",
                         "reading_import_wh", "reading_export_wh"))
# Missing is not zero: a meter point period of quality `missing` has no energy value. These columns are then
# empty in CSV and null in JSON Lines; the settlement books nothing for it, and the sums below count it.
ENERGY_COLUMNS = ("import_wh", "export_wh")
MIX_COLUMNS = tuple(f"mix_{s}_wh" for s in SOURCES)
GROUP_COLUMNS = (
    "period_start", "period_end", "version", "balancing_group", "injection_wh", "withdrawal_wh", "loss_wh",
    "schedules_in_wh", "schedules_out_wh", "imbalance_wh", *MIX_COLUMNS, "missing_values",
)
AREA_COLUMNS = (
    "period_start", "period_end", "version", "grid_area", "injection_wh", "withdrawal_wh", "exchange_in_wh",
    "exchange_out_wh", "loss_wh", "loss_balancing_group", "missing_values", "loss_implausible",
)
SCHEDULE_COLUMNS = (
    "period_start", "period_end", "version", "from_group", "to_group", "status", "wh", "from_signed_wh",
    "to_signed_wh",
)
CHANGE_COLUMNS = ("malo_id", "field", "old", "new")
# Meter-point columns compared between versions for changes.csv (the others are fixed per period, or differ
# in every version, like seal_hash).
CHANGE_FIELDS = tuple(c for c in METER_POINT_COLUMNS if c not in ("period_start", "period_end", "malo_id",
                                                                  "seal_hash"))
SCHEDULE_STATUS = {ONE_SIDED: "one_sided", MISMATCHED: "mismatched"}
QUALITY_BY_NAME = {name: q for q, name in QUALITY_NAMES.items()}


def interval(period: Period) -> tuple[str, str]:
    return format_utc(period.start), format_utc(period.end)


def meter_record(period: Period, seal_hash: bytes, row: MeterRow) -> dict:
    """One meter point's exported fields, typed (str or int), keyed by column."""
    start, end = interval(period)
    known = row.quality != MISSING
    return {
        "period_start": start, "period_end": end, "malo_id": row.malo_id, "grid_area": row.grid_area,
        "balancing_group": row.balancing_group, "import_wh": row.import_wh if known else None,
        "export_wh": row.export_wh if known else None,
        "source": row.source, "quality": QUALITY_NAMES[row.quality], "version": row.version,
        "seal_hash": seal_hash.hex(), "kind": row.kind, "reading_version": row.reading_version,
        "reading_register": int(row.register), "reading_import_wh": row.reading_import,
        "reading_export_wh": row.reading_export, "reading_sig": row.reading_sig.hex(),
    }


def meter_records(period: Period, seal_hash: bytes, rows: Iterable[MeterRow]) -> list[dict]:
    """`meter_record` of every row (the period's interval and the seal hash formatted once)."""
    start, end = interval(period)
    seal = seal_hash.hex()
    names = QUALITY_NAMES
    return [{
        "period_start": start, "period_end": end, "malo_id": r[0], "grid_area": r[1], "balancing_group": r[2],
        "import_wh": r[5] if r[4] != MISSING else None, "export_wh": r[6] if r[4] != MISSING else None,
        "source": r[13], "quality": names[r[4]], "version": r[3], "seal_hash": seal, "kind": r[12],
        "reading_version": r[7], "reading_register": int(r[8]), "reading_import_wh": r[9],
        "reading_export_wh": r[10], "reading_sig": r[11].hex(),
    } for r in rows]


# Text that every writer (csv QUOTE_MINIMAL, canonical JSON) puts down unchanged: printable ASCII without
# the CSV delimiter and quote and JSON's backslash. Values of this form are written without the csv module
# and json.dumps; any other value sends the whole file through them.
_PLAIN = re.compile(r"[ !#-+\--\[\]-~]*")


def _plain_columns(*columns: list) -> bool:
    # plain is a property of each character: a column is plain if its values joined are
    plain = _PLAIN.fullmatch
    return all(set(map(type, column)) <= {str} and plain("".join(column)) for column in columns)


def meter_points_files(period: Period, seal_hash: bytes,
                       rows: Sequence[MeterRow]) -> tuple[bytes, bytes, int | None]:
    """meter-points.csv and meter-points.jsonl, byte for byte what `meter_points_csv` and
    `meter_points_jsonl` make of `meter_records`, and their record count (None: count the bytes)."""
    lines = MeterPointLines.of(period, seal_hash, rows)
    if lines is None:
        records = meter_records(period, seal_hash, rows)
        return meter_points_csv(records), meter_points_jsonl(records), None
    parts = [lines.lines(rows[at:at + CHUNK]) for at in range(0, len(rows), CHUNK)]
    return b"".join([lines.csv_header, *map(itemgetter(0), parts)]), b"".join(map(itemgetter(1), parts)), len(rows)


class MeterPointLines:
    """Lines of meter-points.csv and meter-points.jsonl, formatted directly, one line of each per meter
    point: byte for byte what the csv module and `json_line` write, for rows whose text values are all
    plain (MaLo-IDs, EICs, kinds, sources and timestamps always are; `of` checks)."""

    csv_header = (",".join(METER_POINT_COLUMNS) + "\n").encode("utf-8")

    @classmethod
    def of(cls, period: Period, seal_hash: bytes, rows: Sequence[MeterRow]) -> MeterPointLines | None:
        """The formatter for these rows; None if some text value is not plain (then the generic writers)."""
        start, end = interval(period)
        if not _plain_columns([start, end, *QUALITY_NAMES.values()],
                              *(list(map(itemgetter(i), rows)) for i in (0, 1, 2, 12, 13))):
            return None
        return cls(start, end, seal_hash.hex())

    @classmethod
    def of_registry(cls, period: Period, seal_hash: bytes, registry: Registry) -> MeterPointLines | None:
        """The formatter for rows whose text is the registry's (MaLo-IDs, areas, groups, kinds, sources), for
        rows read a chunk at a time (a node's stored rows). None if some of that text is not plain."""
        start, end = interval(period)
        mps = registry.meter_points.values()
        if not _plain_columns([start, end, *QUALITY_NAMES.values()], list(registry.malo_order),
                              list(registry.grid_areas), list(registry.balancing_groups),
                              list({mp.kind for mp in mps}), list({mp.source for mp in mps})):
            return None
        return cls(start, end, seal_hash.hex())

    def __init__(self, start: str, end: str, seal: str):
        names = QUALITY_NAMES
        # The parts that are the same for every meter point, or for every one of a quality, joined in
        # advance (an f-string of at most 30 parts is built in one step).
        self.pre, self.cseal = f"{start},{end},", f",{seal},"
        self.cq = {q: f",{name}," for q, name in names.items()}
        self.jq = {q: f'","period_end":"{end}","period_start":"{start}","quality":"{name}","reading_export_wh":'
                   for q, name in names.items()}
        self.jseal = f',"seal_hash":"{seal}","source":"'

    def lines(self, rows: Iterable[MeterRow]) -> tuple[bytes, bytes]:
        """The CSV and the JSON Lines lines of `rows` (a few thousand at a time: their memory is reused
        chunk after chunk instead of a gigabyte of fresh str at 1M meter points)."""
        pre, cseal, cq, jq, jseal = self.pre, self.cseal, self.cq, self.jq, self.jseal
        csv_lines, json_lines = [], []
        csv_add, json_add = csv_lines.append, json_lines.append
        for m, area, group, version, q, imp, exp, rver, reg, rimp, rexp, sig, kind, source in rows:
            # every value as text once, for both lines
            sig = sig.hex()
            reg = "1" if reg is True else "0" if reg is False else str(int(reg))
            rimp, rexp, version, rver = str(rimp), str(rexp), str(version), str(rver)
            if q == MISSING:
                csv_add(f"{pre}{m},{area},{group},,,{source}{cq[q]}{version}{cseal}{kind},{rver},{reg},{rimp},"
                        f"{rexp},{sig}\n")
                imp = exp = "null"
            else:
                imp, exp = str(imp), str(exp)
                csv_add(f"{pre}{m},{area},{group},{imp},{exp},{source}{cq[q]}{version}{cseal}{kind},{rver},{reg},"
                        f"{rimp},{rexp},{sig}\n")
            # canonical JSON: keys sorted
            json_add(f'{{"balancing_group":"{group}","export_wh":{exp},"grid_area":"{area}","import_wh":{imp},'
                     f'"kind":"{kind}","malo_id":"{m}{jq[q]}{rexp},"reading_import_wh":{rimp},'
                     f'"reading_register":{reg},"reading_sig":"{sig}","reading_version":{rver}{jseal}{source}",'
                     f'"version":{version}}}\n')
        return "".join(csv_lines).encode("utf-8"), "".join(json_lines).encode("utf-8")


def row_of_record(rec: dict) -> MeterRow:
    """The MeterRow a (checked) record stands for: the inverse of `meter_record` (a missing value is booked
    as nothing, 0 Wh, in the settlement's sums)."""
    return MeterRow(rec["malo_id"], rec["grid_area"], rec["balancing_group"], rec["version"],
                    QUALITY_BY_NAME[rec["quality"]], rec["import_wh"] or 0, rec["export_wh"] or 0,
                    rec["reading_version"],
                    bool(rec["reading_register"]), rec["reading_import_wh"], rec["reading_export_wh"],
                    bytes.fromhex(rec["reading_sig"]), rec["kind"], rec["source"])


def meter_points_csv(records: Sequence[dict]) -> bytes:
    return csv_bytes(METER_POINT_COLUMNS, ([_cell(r[c]) for c in METER_POINT_COLUMNS] for r in records))


def _cell(value) -> object:
    return "" if value is None else value


def missing_counts(registry: Registry, rows: Sequence[MeterRow], by_group: dict[str, int] | None = None,
                   by_area: dict[str, int] | None = None) -> tuple[dict[str, int], dict[str, int]]:
    """How many meter points lack their value, per balancing group and per grid area (a boundary meter counts
    for each area it joins): the sums in balancing-groups.csv and areas.csv say how many values they lack.
    Given `by_group` and `by_area`, the counts of `rows` are added to them (rows a chunk at a time)."""
    by_group = {} if by_group is None else by_group
    by_area = {} if by_area is None else by_area
    for r in compress(rows, map(eq, map(itemgetter(4), rows), repeat(MISSING))):  # the missing ones, in C
        if r.balancing_group:
            by_group[r.balancing_group] = by_group.get(r.balancing_group, 0) + 1
            areas = (r.grid_area,)
        else:
            mp = registry.meter_points[r.malo_id]
            areas = tuple(a for a in (mp.area_out, mp.area_in) if a)
        for a in areas:
            by_area[a] = by_area.get(a, 0) + 1
    return by_group, by_area


def meter_points_jsonl(records: Sequence[dict]) -> bytes:
    return "".join(json_line(r) + "\n" for r in records).encode("utf-8")


def registry_changes_jsonl(changes: Sequence[RegistryChange]) -> bytes:
    return "".join(json_line(change_json(c)) + "\n" for c in changes).encode("utf-8")


def groups_csv(period: Period, result: PeriodResult, missing: dict[str, int] | None) -> bytes:
    """`missing` None: the counts are not known here (the network export: they are in the area exports), so
    the column is empty, never 0."""
    start, end = interval(period)
    mix = {m.group: {s.source: s.wh for s in m.sources} for m in getattr(result, "mix", ())}  # network: none
    rows = []
    for g in result.groups:
        sources = mix.get(g.group, {})
        rows.append([start, end, result.version, g.group, g.inj, g.wd, g.loss, g.fpi, g.fpe, g.imb,
                     *(sources.get(s, 0) for s in SOURCES), "" if missing is None else missing.get(g.group, 0)])
    return csv_bytes(GROUP_COLUMNS, rows)


def areas_csv(period: Period, result: PeriodResult, registry: Registry, missing: dict[str, int]) -> bytes:
    start, end = interval(period)
    rows = [[start, end, result.version, a.area, a.inj, a.wd, a.exin, a.exout, a.loss,
             registry.grid_areas[a.area].loss_group, missing.get(a.area, 0), int(a.area in result.implausible_loss)]
            for a in result.areas]
    return csv_bytes(AREA_COLUMNS, rows)


def schedules_csv(period: Period, result: PeriodResult) -> bytes:
    start, end = interval(period)
    lines = [(s.from_group, s.to_group, "matched", s.wh, str(s.wh), str(s.wh)) for s in result.schedules]
    lines += [(i.from_group, i.to_group, SCHEDULE_STATUS.get(i.status, str(i.status)), 0,
               ";".join(map(str, i.from_wh)), ";".join(map(str, i.to_wh))) for i in result.schedule_issues]
    lines.sort(key=lambda x: (x[0], x[1]))
    return csv_bytes(SCHEDULE_COLUMNS, ([start, end, result.version, *x] for x in lines))


def changes(previous: Iterable[dict], current: Iterable[dict]) -> list[tuple[str, str, str, str]]:
    """(malo_id, field, old, new) for every exported field that differs between two versions' records, by
    MaLo-ID then column order. A meter point present in only one version lists its fields with "" opposite."""
    old = {r["malo_id"]: r for r in previous}
    new = {r["malo_id"]: r for r in current}
    out = []
    for malo in sorted(old.keys() | new.keys()):
        a, b = old.get(malo), new.get(malo)
        for f in CHANGE_FIELDS:
            va = "" if a is None or a[f] is None else str(a[f])
            vb = "" if b is None or b[f] is None else str(b[f])
            if va != vb:
                out.append((malo, f, va, vb))
    return out


def changes_csv(lines: Iterable[tuple[str, str, str, str]]) -> bytes:
    return csv_bytes(CHANGE_COLUMNS, lines)
