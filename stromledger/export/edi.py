"""EDIFACT MSCONS as the German market exchanges it (EDI@Energy MSCONS MIG 2.4c): day load profiles.

The period export (`mscons.py`) sends one group's quarter hour as it settles. The market exchanges whole local
days instead: one message per market location (MaLo) and Europe/Berlin day with every quarter hour of the day
(92 on the spring DST day, 100 in autumn, 96 otherwise), and the MaBiS balancing-group sum series
(Bilanzkreissummenzeitreihe) per grid area x balancing group, in the same layout. Parties are addressed with
their 13-digit market-partner ids (BDEW code numbers, code list 500 in UNB, 293 in NAD), not with EICs.

One message, as written here (segment groups of the MIG in brackets; docs/export-format.md explains each):

    UNH+<n>+MSCONS:D:04B:UN:2.4c'
    BGM+7+<document number>+<9 original | 5 replacement>'
    DTM+137:<prepared>?+00:303'
    RFF+Z13:<Pruefidentifikator>'                      [SG1]
    NAD+MS+<sender id>::293'  NAD+MR+<recipient id>::293'   [SG2]
    UNS+D'
    NAD+DP'                                            [SG5]
    LOC+172+<MaLo-ID>'  (or LOC+107+<group EIC> and LOC+237+<area EIC> for a sum series)   [SG6]
    DTM+163:<day start>?+00:303'  DTM+164:<day end>?+00:303'
    LIN+<n>'  PIA+5+<OBIS>:SRW'                        [SG9], one per direction
    QTY+<220|67>:<kWh>:KWH'  DTM+163:..'  DTM+164:..'  [STS+Z32++<method>']   [SG10], one per quarter hour
    UNT+<segments>+<n>'

Missing is not zero: a MaLo-day with a quarter hour that has no value (quality `missing`) is not written; it is
listed with the count of missing quarter hours (`incomplete`). A sum series says how many values it lacks in
the CSV series (export/mabis.py). Pure: no clock (the preparation time is given), no I/O.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from stromledger.cascade.messages import CORRECTED, MEASURED, MISSING, SUBSTITUTED
from stromledger.crypto import sha256
from stromledger.ids import IdError, make_market_partner_id, parse_market_partner_id  # noqa: F401

from .mscons import NAD_AGENCY, UNA, UNB_AGENCY, dtm, segment
from .text import kwh

MESSAGE_TYPE = ("MSCONS", "D", "04B", "UN", "2.4c")
# Pruefidentifikatoren (RFF+Z13): the AHB use case. Named here once; the values are our reading of the
# MSCONS AHB (load profile of a market location; balancing-group sum series) and are checked nowhere else.
PI_MALO_LOAD_PROFILE = "13025"
PI_GROUP_SUM_SERIES = "13012"
# German-market OBIS: medium 1 (electricity), channel 1 (the billing channel), 1.29.0 / 2.29.0 = A+ / A- energy
# per interval. The per-period export uses channel 0 (1-0:...), the channel of the meter itself.
OBIS_IMPORT = "1-1:1.29.0"
OBIS_EXPORT = "1-1:2.29.0"
TRUE_VALUE, SUBSTITUTE_VALUE = "220", "67"
QUALIFIER = {MEASURED: TRUE_VALUE, CORRECTED: TRUE_VALUE, SUBSTITUTED: SUBSTITUTE_VALUE}
# STS+Z32 (substitution method) with the method per value, read from the settled row (cascade.md): a register
# meter's gap spread between two register readings (the row's register flag), else an estimate by the
# cascade's substitution rule (comparable day, else the previous quarter hour; PV zero in the dark; capped).
# The codes are our reading of the code list and appear only here.
STS_SUBSTITUTION = "Z32"
METHOD_ESTIMATE = "Z88"
METHOD_REGISTER_SPREAD = "Z89"
LOC_MALO, LOC_GROUP, LOC_AREA = "172", "107", "237"
ORIGINAL, REPLACEMENT = "9", "5"


# -- market-partner ids ------------------------------------------------------------------------------------


def market_partner_problem(text: object) -> str | None:
    """Why `text` is not a 13-digit market-partner id, or None."""
    try:
        parse_market_partner_id(text)
        return None
    except IdError as e:
        return str(e)


# -- series ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Value:
    """One quarter hour of one direction. `wh` is None when the value is missing."""

    start: int
    end: int
    wh: int | None
    quality: int
    version: int
    method: str = ""  # the substitution method of a substitute (STS), "" otherwise


@dataclass(frozen=True, slots=True)
class DaySeries:
    """What one message carries: a location's import and export values for every period of a local day."""

    location: tuple[tuple[str, str], ...]  # (LOC qualifier, id) pairs
    day_start: int
    day_end: int
    imports: tuple[Value, ...]
    exports: tuple[Value, ...]

    @property
    def missing(self) -> int:
        return sum(v.wh is None for v in self.imports)

    @property
    def replacement(self) -> bool:
        return any(v.version > 1 for v in self.imports + self.exports)


def _message(n: int, series: DaySeries, *, sender: str, recipient: str, pi: str, prepared: int,
             reference: str) -> list[str]:
    out = [
        segment("UNH", str(n), MESSAGE_TYPE),
        segment("BGM", "7", reference, REPLACEMENT if series.replacement else ORIGINAL),
        segment("DTM", dtm("137", prepared)),
        segment("RFF", ("Z13", pi)),
        segment("NAD", "MS", (sender, "", NAD_AGENCY)),
        segment("NAD", "MR", (recipient, "", NAD_AGENCY)),
        segment("UNS", "D"),
        segment("NAD", "DP"),
    ]
    out += [segment("LOC", qualifier, ident) for qualifier, ident in series.location]
    out += [segment("DTM", dtm("163", series.day_start)), segment("DTM", dtm("164", series.day_end))]
    for line, (obis, values) in enumerate(((OBIS_IMPORT, series.imports), (OBIS_EXPORT, series.exports)), 1):
        out += [f"LIN+{line}'", segment("PIA", "5", (obis, "SRW"))]
        for v in values:
            out += [f"QTY+{QUALIFIER[v.quality]}:{kwh(v.wh)}:KWH'", segment("DTM", dtm("163", v.start)),
                    segment("DTM", dtm("164", v.end))]
            if v.method:
                out.append(segment("STS", STS_SUBSTITUTION, "", v.method))
    out.append(segment("UNT", str(len(out) + 1), str(n)))
    return out


def reference(*parts: str | int) -> str:
    """35 upper-case hex characters derived from the parts (no clock, no randomness)."""
    data = "\x00".join(["stromledger/edi/1", *map(str, parts)]).encode()
    return sha256(data).hex().upper()[:35]


def build_interchange(series: Sequence[DaySeries], *, sender: str, recipient: str, pi: str, prepared: int) -> bytes:
    """One interchange from `sender` to `recipient` with one message per series (all complete: no value may
    be missing). Raises ValueError for an invalid market-partner id or a series with a missing value."""
    for who, ident in (("sender", sender), ("recipient", recipient)):
        problem = market_partner_problem(ident)
        if problem:
            raise ValueError(f"{who}: {problem}")
    icr = reference(sender, recipient, prepared, *(s.location for s in series))[:14]
    t = dt.datetime.fromtimestamp(prepared, dt.timezone.utc)
    lines = [UNA, segment("UNB", ("UNOC", "3"), (sender, UNB_AGENCY), (recipient, UNB_AGENCY),
                          (t.strftime("%y%m%d"), t.strftime("%H%M")), icr)]
    for n, s in enumerate(series, 1):
        if s.missing or any(v.wh is None for v in s.exports):
            raise ValueError(f"{s.location}: {s.missing} quarter hour(s) without a value; missing is never sent as 0")
        lines += _message(n, s, sender=sender, recipient=recipient, pi=pi, prepared=prepared,
                          reference=reference(icr, *s.location, s.day_start))
    lines.append(segment("UNZ", str(len(series)), icr))
    return ("\n".join(lines) + "\n").encode("ascii")


# -- MaLo days ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MaloDays:
    """The MSCONS interchanges of one local day, by file name, and the MaLo-days left out (MaLo-ID, missing
    quarter hours)."""

    files: dict[str, bytes]
    incomplete: tuple[tuple[str, int], ...]


def malo_day_series(malo: str, periods: Sequence[tuple[int, int]], rows: Sequence) -> DaySeries:
    """The series of one MaLo over the periods of a day: `rows[i]` is its settled MeterRow in periods[i]."""
    imports, exports = [], []
    for (start, end), r in zip(periods, rows, strict=True):
        known = r.quality != MISSING
        method = "" if r.quality != SUBSTITUTED else METHOD_REGISTER_SPREAD if r.register else METHOD_ESTIMATE
        imports.append(Value(start, end, r.import_wh if known else None, r.quality, r.version, method))
        exports.append(Value(start, end, r.export_wh if known else None, r.quality, r.version, method))
    return DaySeries(((LOC_MALO, malo),), periods[0][0], periods[-1][1], tuple(imports), tuple(exports))


def malo_day_files(periods: Sequence[tuple[int, int]], rows_by_period: Sequence[Mapping[str, object]],
                   recipient_of: Mapping[str, str], sender_of: Mapping[str, str], prepared: int) -> MaloDays:
    """The day's MSCONS files, one interchange per (sender, recipient) pair with one message per complete MaLo
    (MaLo-ID order). `rows_by_period[i]` maps MaLo-ID -> MeterRow for periods[i]; `recipient_of` and
    `sender_of` give each MaLo's recipient (its supplier's or group's market-partner id) and sender (its grid
    or metering operator's). MaLos without a recipient (boundary meters) are not sent."""
    by_pair: dict[tuple[str, str], list[DaySeries]] = {}
    incomplete = []
    for malo in sorted(recipient_of):
        series = malo_day_series(malo, periods, [rows[malo] for rows in rows_by_period])
        if series.missing:
            incomplete.append((malo, series.missing))
            continue
        by_pair.setdefault((sender_of[malo], recipient_of[malo]), []).append(series)
    day = dt.datetime.fromtimestamp(periods[0][0], dt.timezone.utc).strftime("%Y%m%dT%H%MZ")
    files = {f"mscons-{day}-{s}-{r}.edi": build_interchange(series, sender=s, recipient=r,
                                                            pi=PI_MALO_LOAD_PROFILE, prepared=prepared)
             for (s, r), series in sorted(by_pair.items())}
    return MaloDays(files, tuple(incomplete))


def group_sum_series(area: str, group: str, periods: Sequence[tuple[int, int]],
                     totals: Iterable[tuple[int, int, int]]) -> DaySeries:
    """A MaBiS sum series: per period (withdrawal Wh, injection Wh, settlement version) of one area x group."""
    imports, exports = [], []
    for (start, end), (wd, inj, version) in zip(periods, totals, strict=True):
        imports.append(Value(start, end, wd, MEASURED, version))
        exports.append(Value(start, end, inj, MEASURED, version))
    return DaySeries(((LOC_GROUP, group), (LOC_AREA, area)), periods[0][0], periods[-1][1], tuple(imports),
                     tuple(exports))
