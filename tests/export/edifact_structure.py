"""An independent structural checker for MSCONS interchanges, written from the EDI@Energy MSCONS MIG 2.4c
segment table (segment groups, their order, mandatory/conditional and repeat counts) and the interchange
rules of ISO 9735 (UNB/UNZ, UNH/UNT counts and references). It shares no code with stromledger's writers:
it splits segments itself and checks the tag sequence against a grammar transcribed from the guide:

    UNH M1 | BGM M1 | DTM M9 | SG1 C9: RFF M1, DTM C9 | SG2 C99: NAD M1, (SG4 C9: CTA M1, COM C5)
    UNS M1 | SG5 M99999: NAD M1 | SG6 M99999: LOC M1, DTM C9, (SG7 C99: RFF, DTM) (SG8 C99: CCI, DTM)
    SG9 C99999: LIN M1, PIA C9 | SG10 C99999: QTY M1, DTM C9, STS C9 | UNT M1

plus the German usage checked here: RFF+Z13 (Pruefidentifikator) present, NAD+MS and NAD+MR with a 13-digit
market-partner id of code list 293, UNB ids with code list 500, QTY qualifiers 220 (true) and 67 (substitute,
then with STS), one QTY per quarter hour of the local day, consecutive and complete.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from zoneinfo import ZoneInfo

MESSAGE_GRAMMAR = re.compile(
    r"UNH BGM (DTM ){1,9}(RFF (DTM ){0,9}){0,9}(NAD (CTA (COM ){0,5}){0,9}){0,99}UNS "
    r"(NAD (LOC (DTM ){0,9}(RFF (DTM ){0,9}){0,99}(CCI (DTM ){0,9}){0,99}"
    r"(LIN (PIA ){0,9}(QTY (DTM ){0,9}(STS ){0,9})*)*)+)+UNT ")


def split(text: str) -> list[list[list[str]]]:
    """Segments -> elements -> components, honouring the release character (UNA:+.? ' only)."""
    assert text.startswith("UNA:+.? '"), "service string advice UNA:+.? ' expected"
    body = text[len("UNA:+.? '"):].lstrip("\n")
    segments, elements, comps, cur = [], [], [], ""
    i = 0
    while i < len(body):
        c = body[i]
        if c == "?":
            cur += body[i + 1]
            i += 2
            continue
        if c == ":":
            comps.append(cur)
            cur = ""
        elif c == "+":
            comps.append(cur)
            elements.append(comps)
            comps, cur = [], ""
        elif c == "'":
            comps.append(cur)
            elements.append(comps)
            segments.append(elements)
            elements, comps, cur = [], [], ""
            if body[i + 1:i + 2] == "\n":
                i += 1
        else:
            cur += c
        i += 1
    assert not (elements or comps or cur), "the last segment is not terminated"
    return segments


def gs1_ok(ident: str) -> bool:
    if not (len(ident) == 13 and ident.isdigit()):
        return False
    total = sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(ident[:12]))
    return (10 - total % 10) % 10 == int(ident[12])


def _instant(value: str) -> int:
    assert re.fullmatch(r"\d{12}\+00", value), f"DTM value {value!r} is not CCYYMMDDHHMM+00 (format 303)"
    y, mo, d, h, mi = int(value[:4]), int(value[4:6]), int(value[6:8]), int(value[8:10]), int(value[10:12])
    return calendar.timegm((y, mo, d, h, mi, 0, 0, 0, 0))


def local_day_quarter_hours(start: int) -> int:
    zone = ZoneInfo("Europe/Berlin")
    day = dt.datetime.fromtimestamp(start, zone)
    assert (day.hour, day.minute) == (0, 0), f"{day} is not a local midnight"
    nxt = dt.datetime(day.year, day.month, day.day, tzinfo=zone) + dt.timedelta(days=1)
    nxt = dt.datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone)
    return (int(nxt.timestamp()) - start) // 900


def check_interchange(text: str, pi: str) -> list[dict]:
    """Check one interchange; returns per message {"location": ..., "lines": {obis: [(start, end, qualifier,
    kWh text, has_sts)]}}. AssertionError names the first problem."""
    segs = split(text)
    tags = [s[0][0] for s in segs]
    assert tags[0] == "UNB" and tags[-1] == "UNZ", "an interchange is UNB ... UNZ"
    unb, unz = segs[0], segs[-1]
    assert unb[1] == ["UNOC", "3"], "syntax UNOC version 3"
    for party in (unb[2], unb[3]):
        assert party[1] == "500" and gs1_ok(party[0]), f"UNB party {party} is not a market-partner id (500)"
    icr = unb[5][0]
    assert unz[2][0] == icr, "UNZ reference differs from UNB"
    messages, cur = [], None
    for s in segs[1:-1]:
        if s[0][0] == "UNH":
            assert cur is None, "UNH inside a message"
            cur = [s]
        else:
            assert cur is not None, f"{s[0][0]} outside a message"
            cur.append(s)
            if s[0][0] == "UNT":
                messages.append(cur)
                cur = None
    assert cur is None, "a message without UNT"
    assert int(unz[1][0]) == len(messages), "UNZ message count"
    return [_check_message(m, pi, unb[2][0], unb[3][0]) for m in messages]


def _check_message(m: list, pi: str, sender: str, recipient: str) -> dict:
    tags = " ".join(s[0][0] for s in m) + " "
    assert MESSAGE_GRAMMAR.fullmatch(tags), f"segment order breaks the MIG: {tags[:200]}"
    unh, unt = m[0], m[-1]
    assert unh[2][:5] == ["MSCONS", "D", "04B", "UN", "2.4c"], "UNH message type MSCONS:D:04B:UN:2.4c"
    assert int(unt[1][0]) == len(m) and unt[2][0] == unh[1][0], "UNT count/reference"
    assert m[1][1] == ["7"] and m[1][3][0] in ("9", "5"), "BGM+7 original (9) or replacement (5)"
    rff = [s for s in m if s[0][0] == "RFF" and s[1][0] == "Z13"]
    assert rff and rff[0][1][1] == pi, f"RFF+Z13:{pi} (Pruefidentifikator)"
    nads = {s[1][0]: s[2] for s in m if s[0][0] == "NAD" and len(s) > 2}
    assert nads["MS"] == [sender, "", "293"] and nads["MR"] == [recipient, "", "293"], "NAD+MS/MR ::293"
    location = tuple((s[1][0], s[2][0]) for s in m if s[0][0] == "LOC")
    lines: dict[str, list] = {}
    obis = None
    period_start = period_end = None
    for i, s in enumerate(m):
        tag = s[0][0]
        if tag == "DTM" and m[i - 1][0][0] in ("LOC", "DTM") and obis is None:
            if s[1][0] == "163":
                period_start = _instant(s[1][1])
            elif s[1][0] == "164":
                period_end = _instant(s[1][1])
        elif tag == "PIA":
            assert s[1][0] == "5" and s[2][1] == "SRW" and re.fullmatch(r"1-1:[12]\.29\.0", s[2][0]), \
                f"PIA+5 with a German-market OBIS code, got {s[2]}"
            obis = s[2][0]
            lines[obis] = []
        elif tag == "QTY":
            qualifier, value = s[1][0], s[1][1]
            assert qualifier in ("220", "67"), f"QTY qualifier {qualifier} (220 true, 67 substitute)"
            assert re.fullmatch(r"(0|[1-9]\d*)\.\d{3}", value), f"QTY value {value!r}"
            start = _instant(m[i + 1][1][1]) if m[i + 1][1][0] == "163" else None
            end = _instant(m[i + 2][1][1]) if m[i + 2][1][0] == "164" else None
            sts = m[i + 3][0][0] == "STS" if i + 3 < len(m) else False
            assert start is not None and end is not None, "every QTY has DTM+163 and DTM+164"
            assert sts == (qualifier == "67") or len(location) > 1, "STS exactly with a substitute value (67)"
            lines[obis].append((start, end, qualifier, value, sts))
    assert period_start is not None and period_end is not None, "SG6 carries the day as DTM+163/164"
    want = local_day_quarter_hours(period_start)
    for o, values in lines.items():
        assert len(values) == want, f"{o}: {len(values)} quarter hours, the local day has {want}"
        assert values[0][0] == period_start and values[-1][1] == period_end, f"{o} does not cover the day"
        assert all(a[1] == b[0] and a[1] - a[0] == 900 for a, b in zip(values, values[1:])), f"{o}: gaps"
    return {"location": location, "lines": lines}
