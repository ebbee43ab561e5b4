"""EDIFACT MSCONS (UN D.04B, BDEW profile 2.4c) files: one interchange per balancing group and period version.

Layout (one segment per line; docs/export-format.md explains every element):

    UNA:+.? '
    UNB+UNOC:3+<sender>:<500 | ZZ>+<recipient>:<500 | ZZ>+<YYMMDD>:<HHMM>+<reference>'
    UNH+1+MSCONS:D:04B:UN:2.4c'
    BGM+7+<document number>+<9 original | 5 replacement>'
    DTM+137:<CCYYMMDDHHMM>?+00:303'
    NAD+MS+<sender>::<293 | ZZZ>'
    NAD+MR+<recipient>::<293 | 305>'
    UNS+D'
    NAD+DP'
    LOC+172+<MaLo-ID>'                 per meter point of the group with a value, by MaLo-ID
    LIN+<n>'                           import (A+), then export (A-)
    PIA+5+1-0?:1.29.0:SRW'
    QTY+<qualifier>:<kWh, 3 decimals>:KWH'
    DTM+163:<period start>?+00:303'    (format 304, with seconds, only for periods not on whole minutes)
    DTM+164:<period end>?+00:303'
    UNT+<segments UNH..UNT>+1'
    UNZ+1+<reference>'

Parties are addressed as the German market does, with 13-digit market-partner ids (BDEW code numbers: code
list 500 in UNB, 293 in NAD), where the genesis gives them: the sender is the grid operator of an area chain's
area, the recipient the balancing group's BRP. Without them the sender is the chain id (ZZ / ZZZ) and the
recipient the group's EIC (ZZ / 305).

Nothing depends on a clock: the preparation time is the end of the period whose seal committed this version,
and the references are derived from the seal hash.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from operator import itemgetter
from typing import Iterable, Sequence

from stromledger.cascade.messages import CORRECTED, MEASURED, MISSING, SUBSTITUTED
from stromledger.cascade.rows import MeterRow
from stromledger.crypto import sha256

from .text import CHUNK, FormatError, kwh, parse_kwh

UNA = "UNA:+.? '"
MESSAGE_TYPE = ("MSCONS", "D", "04B", "UN", "2.4c")
OBIS_IMPORT = "1-0:1.29.0"  # A+, energy taken from the grid
OBIS_EXPORT = "1-0:2.29.0"  # A-, energy fed into the grid
# QTY qualifier per quality flag. A corrected value is a measured value that arrived (or changed) after gate
# closure: a true value, sent again in a later version (BGM message function 5, replacement). A missing value
# has no QTY at all (0 would be summed as a real zero); its meter point is left out of the file.
QUALIFIERS = {MEASURED: "220", CORRECTED: "220", SUBSTITUTED: "67"}
ORIGINAL, REPLACEMENT = "9", "5"
_SPECIAL = "?':+"
_SPECIAL_RE = re.compile("[?':+]")
_MILLI = tuple(f"{i:03d}" for i in range(1000))  # the three decimals of kWh
_POINT_FIELDS = itemgetter(0, 4, 5, 6)  # of a MeterRow: malo_id, quality, import_wh, export_wh


UNB_AGENCY = "500"  # UNB: BDEW code number (market-partner id)
NAD_AGENCY = "293"  # NAD: BDEW


@dataclass(frozen=True, slots=True)
class Party:
    """An interchange partner: its id and the code list agencies of its id in UNB and in NAD."""

    id: str
    unb_agency: str
    nad_agency: str

    @classmethod
    def market_partner(cls, partner_id: str) -> Party:
        return cls(partner_id, UNB_AGENCY, NAD_AGENCY)

    @classmethod
    def chain(cls, chain_id: str) -> Party:
        return cls(sender_id(chain_id), "ZZ", "ZZZ")

    @classmethod
    def eic(cls, eic: str) -> Party:
        return cls(eic, "ZZ", "305")


def file_name(group: str) -> str:
    return f"mscons-{group}.edi"


def sender_id(chain_id: str) -> str:
    """The chain id as an EDIFACT party id (at most 35 characters; longer ids are shortened with a hash)."""
    if len(chain_id) <= 35:
        return chain_id
    return f"{chain_id[:26]}-{sha256(chain_id.encode()).hex()[:8]}"


def reference(seal_hash: bytes, group: str, period: int, version: int) -> str:
    """35 upper-case hex characters unique per (seal, group, period, version); the interchange reference is
    its first 14 (the most UNB allows), the document number all 35."""
    data = b"stromledger/mscons/1\x00" + seal_hash + group.encode() + period.to_bytes(8, "big") + \
        version.to_bytes(4, "big")
    return sha256(data).hex().upper()[:35]


def _utc(unix_s: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(unix_s, dt.timezone.utc)


def time_303(unix_s: int) -> str:
    """CCYYMMDDHHMM with the UTC offset, format 303 (before escaping: 202611211000+00)."""
    return _utc(unix_s).strftime("%Y%m%d%H%M") + "+00"


def dtm(qualifier: str, unix_s: int) -> tuple[str, str, str]:
    """A DTM composite in UTC: format 303 (CCYYMMDDHHMM+00) for whole minutes, as every production period
    boundary is; format 304 (CCYYMMDDHHMMSS+00) only for instants within a minute (devnets' short periods)."""
    if unix_s % 60 == 0:
        return (qualifier, time_303(unix_s), "303")
    return (qualifier, _utc(unix_s).strftime("%Y%m%d%H%M%S") + "+00", "304")


_ESCAPES = str.maketrans({c: "?" + c for c in _SPECIAL})


def escape(text: str) -> str:
    """EDIFACT release character before every separator (one C-level pass, not a loop per character)."""
    return text.translate(_ESCAPES)


def segment(tag: str, *elements: Sequence[str] | str) -> str:
    parts = [tag]
    for e in elements:
        parts.append(escape(e) if isinstance(e, str) else ":".join(escape(c) for c in e))
    return "+".join(parts) + "'"


class Interchange:
    """The MSCONS interchange of one balancing group, written piece by piece: `head()`, then `points(rows)`
    for its meter points in MaLo-ID order (in as many calls as the caller likes), then `tail()`. The pieces
    joined are one file; line numbers and the segment count run on across `points` calls."""

    def __init__(self, *, sender: Party, recipient: Party, group: str, seal_hash: bytes, period: int,
                 version: int, start: int, end: int, prepared: int):
        ref = reference(seal_hash, group, period, version)
        self.icr = icr = ref[:14]
        t = _utc(prepared)
        self.body = [
            segment("UNH", "1", MESSAGE_TYPE),
            segment("BGM", "7", ref, ORIGINAL if version == 1 else REPLACEMENT),
            segment("DTM", dtm("137", prepared)),
            segment("NAD", "MS", (sender.id, "", sender.nad_agency)),
            segment("NAD", "MR", (recipient.id, "", recipient.nad_agency)),
            segment("UNS", "D"),
            segment("NAD", "DP"),
        ]
        self.unb = segment("UNB", ("UNOC", "3"), (sender.id, sender.unb_agency),
                           (recipient.id, recipient.unb_agency), (t.strftime("%y%m%d"), t.strftime("%H%M")), icr)
        # Per meter point one text of its 11 segments (LOC, then LIN PIA QTY DTM DTM for import and for
        # export). Line numbers, qualifiers and kWh figures hold no separator: written directly, as segment()
        # would; the MaLo-IDs are escaped only if one of them holds a separator.
        dates = segment("DTM", dtm("163", start)) + "\n" + segment("DTM", dtm("164", end))
        pia_import, pia_export = (segment("PIA", "5", (obis, "SRW")) for obis in (OBIS_IMPORT, OBIS_EXPORT))
        # the parts between the values, joined in advance (by quality: its qualifier)
        self.to_import = {q: f"'\n{pia_import}\nQTY+{qualifier}:" for q, qualifier in QUALIFIERS.items()}
        self.to_export = {q: f"'\n{pia_export}\nQTY+{qualifier}:" for q, qualifier in QUALIFIERS.items()}
        self.between, self.after = f":KWH'\n{dates}\nLIN+", f":KWH'\n{dates}\n"
        self.group = group
        self.written = 0  # meter points so far

    def head(self) -> bytes:
        return ("\n".join([UNA, self.unb, *self.body]) + "\n").encode("ascii")

    def points(self, rows: Iterable[MeterRow]) -> bytes:
        """The segments of the meter points among `rows` that have a value (a missing one has none)."""
        fields = [f for f in map(_POINT_FIELDS, rows) if f[1] != MISSING]  # (MaLo-ID, quality, import, export)
        escaped = _SPECIAL_RE.search("".join([f[0] for f in fields])) is not None
        to_import, to_export, between, after, milli = self.to_import, self.to_export, self.between, self.after, \
            _MILLI
        line = 2 * self.written
        out = []
        add = out.append
        for malo, quality, imp, exp in fields:
            if type(imp) is not int or imp < 0 or type(exp) is not int or exp < 0:
                kwh(imp), kwh(exp)  # raises, naming the value
            if escaped:
                malo = escape(malo)
            add(f"LOC+172+{malo}'\nLIN+{line + 1}{to_import[quality]}{imp // 1000}.{milli[imp % 1000]}{between}"
                f"{line + 2}{to_export[quality]}{exp // 1000}.{milli[exp % 1000]}{after}")
            line += 2
        self.written += len(fields)
        return "".join(out).encode("ascii")

    def tail(self) -> bytes:
        unt = segment("UNT", str(len(self.body) + 11 * self.written + 1), "1")
        return (unt + "\n" + segment("UNZ", "1", self.icr) + "\n").encode("ascii")


def build_mscons(*, rows: Sequence[MeterRow], **interchange) -> bytes:
    """The MSCONS interchange of one balancing group's meter points (rows in MaLo-ID order); `interchange`:
    the arguments of Interchange."""
    x = Interchange(**interchange)
    return b"".join([x.head(), *(x.points(rows[at:at + CHUNK]) for at in range(0, len(rows), CHUNK)), x.tail()])


# -- reading back (for verification) -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Segment:
    number: int  # 1-based position in the file (the UNA service string advice is number 1); also its line
    tag: str
    elements: tuple[tuple[str, ...], ...]  # elements after the tag, each a tuple of components

    def get(self, element: int, component: int = 0) -> str:
        """Component `component` of element `element` (0-based, after the tag); "" when absent."""
        if element >= len(self.elements) or component >= len(self.elements[element]):
            return ""
        return self.elements[element][component]


def parse_segments(data: bytes) -> list[Segment]:
    """Split an interchange into segments. Only the separators UNA:+.? ' are accepted; a line break may
    follow a segment terminator and nowhere else."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as e:
        raise FormatError(f"byte {e.start}: not ASCII") from None
    if not text.startswith(UNA + "\n"):
        raise FormatError(f"segment 1: must be the service string advice {UNA}")
    out: list[Segment] = []
    elements: list[tuple[str, ...]] = []
    components: list[str] = []
    cur: list[str] = []
    i, n = len(UNA) + 1, len(text)
    number = 2
    at_start = True
    while i < n:
        c = text[i]
        if at_start and c == "\n":
            raise FormatError(f"segment {number}: empty line")
        at_start = False
        if c == "?":
            if i + 1 >= n or text[i + 1] not in _SPECIAL:
                raise FormatError(f"segment {number}: release character '?' before {text[i + 1:i + 2]!r}")
            cur.append(text[i + 1])
            i += 2
            continue
        if c == ":":
            components.append("".join(cur))
            cur = []
        elif c == "+":
            components.append("".join(cur))
            elements.append(tuple(components))
            components, cur = [], []
        elif c == "'":
            components.append("".join(cur))
            elements.append(tuple(components))
            tag = elements[0]
            if len(tag) != 1 or not (len(tag[0]) == 3 and tag[0].isalpha() and tag[0].isupper()):
                raise FormatError(f"segment {number}: {'+'.join(':'.join(e) for e in elements)[:30]!r} has no tag")
            out.append(Segment(number, tag[0], tuple(elements[1:])))
            elements, components, cur = [], [], []
            number += 1
            at_start = True
            if i + 1 < n and text[i + 1] == "\n":
                i += 1
        elif c in "\n\r":
            raise FormatError(f"segment {number}: a line break inside a segment")
        else:
            cur.append(c)
        i += 1
    if cur or components or elements:
        raise FormatError(f"segment {number}: not terminated by '")
    return out


@dataclass(frozen=True, slots=True)
class Quantity:
    segment: int  # number of the QTY segment
    malo_id: str
    obis: str
    qualifier: str
    wh: int
    start: tuple[str, str]  # (value as written, unescaped, e.g. 202611211000+00; format code 303 or 304)
    end: tuple[str, str]


def read_quantities(segments: Sequence[Segment]) -> list[Quantity]:
    """Every QTY of the message with its location (LOC+172), OBIS code (PIA+5) and interval (DTM+163/164).
    Raises FormatError naming the segment where the structure is broken."""
    out: list[Quantity] = []
    malo = obis = ""
    pending: dict | None = None

    def flush(at: int) -> None:
        nonlocal pending
        if pending is not None:
            if not pending["start"] or not pending["end"]:
                raise FormatError(f"segment {at}: QTY in segment {pending['segment']} lacks DTM+163 and DTM+164")
            out.append(Quantity(**pending))
            pending = None

    for s in segments:
        if s.tag in ("LOC", "LIN", "PIA", "QTY", "UNT"):
            flush(s.number)
        if s.tag == "LOC":
            if s.get(0) != "172" or not s.get(1):
                raise FormatError(f"segment {s.number}: expected LOC+172+<MaLo-ID>")
            malo, obis = s.get(1), ""
        elif s.tag == "LIN":
            obis = ""
        elif s.tag == "PIA":
            if s.get(0) != "5":
                raise FormatError(f"segment {s.number}: expected PIA+5 (OBIS code)")
            obis = s.get(1)
        elif s.tag == "QTY":
            if not malo or not obis:
                raise FormatError(f"segment {s.number}: QTY outside LOC+172 / PIA+5")
            if s.get(0, 2) != "KWH" or len(s.elements) != 1 or len(s.elements[0]) != 3:
                raise FormatError(f"segment {s.number}: expected QTY+<qualifier>:<value>:KWH")
            try:
                wh = parse_kwh(s.get(0, 1))
            except FormatError as e:
                raise FormatError(f"segment {s.number}: {e}") from None
            pending = dict(segment=s.number, malo_id=malo, obis=obis, qualifier=s.get(0, 0), wh=wh, start="", end="")
        elif s.tag == "DTM" and pending is not None:
            if s.get(0, 2) not in ("303", "304"):
                raise FormatError(f"segment {s.number}: expected date format 303 or 304")
            if s.get(0, 0) == "163":
                pending["start"] = (s.get(0, 1), s.get(0, 2))
            elif s.get(0, 0) == "164":
                pending["end"] = (s.get(0, 1), s.get(0, 2))
    flush(segments[-1].number if segments else 0)
    return out


def count_quantities(data: bytes) -> int:
    """The record count of an MSCONS file in the manifest: its QTY segments."""
    return sum(1 for s in parse_segments(data) if s.tag == "QTY")
