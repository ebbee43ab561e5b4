"""Settlement periods: (index, length) aligned to the Unix epoch, in UTC.

A period's index is `start_seconds // length`. It is written as an ISO 8601 interval with its start and
duration, e.g. `2026-11-21T10:00:00Z/PT15M`. Local calendar days (for billing) are computed with zoneinfo,
so a Europe/Berlin day has 92 periods in spring, 100 in autumn and 96 otherwise.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

UTC = dt.timezone.utc
DEFAULT_LENGTH = 900


@dataclass(frozen=True, slots=True, order=True)
class Period:
    index: int
    length: int = DEFAULT_LENGTH

    def __post_init__(self) -> None:
        if type(self.index) is not int or type(self.length) is not int:
            raise TypeError("period index and length are integers")
        if self.length <= 0 or self.index < 0:
            raise ValueError("period length must be positive and index non-negative")

    @classmethod
    def containing(cls, unix_seconds: int, length: int = DEFAULT_LENGTH) -> Period:
        return cls(unix_seconds // length, length)

    @classmethod
    def starting_at(cls, start: dt.datetime, length: int = DEFAULT_LENGTH) -> Period:
        secs = _unix(start)
        if secs % length:
            raise ValueError(f"{start.isoformat()} is not aligned to a {length} s period")
        return cls(secs // length, length)

    @property
    def start(self) -> int:
        return self.index * self.length

    @property
    def end(self) -> int:
        return self.start + self.length

    @property
    def start_utc(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.start, UTC)

    @property
    def end_utc(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.end, UTC)

    def gate_closure(self, grace: int) -> int:
        """Unix seconds after which readings for this period become corrections."""
        return self.end + grace

    def next(self) -> Period:
        return Period(self.index + 1, self.length)

    def iso(self) -> str:
        return f"{format_utc(self.start)}/{iso_duration(self.length)}"

    @classmethod
    def from_iso(cls, text: str) -> Period:
        try:
            start_s, dur_s = text.split("/")
        except ValueError:
            raise ValueError(f"{text!r} is not START/DURATION") from None
        length = parse_iso_duration(dur_s)
        return cls.starting_at(parse_utc(start_s), length)

    def __str__(self) -> str:
        return self.iso()


def gate_margin_ms(grace_seconds: int) -> int:
    """How long before gate closure "in time" ends, in ms: a batch a validator admitted earlier must be in a
    new proposal, a proposal received earlier is too early (the clock tolerance), and a light node expects a
    reading acknowledged earlier in version 1. One second (NTP keeps clocks within tens of milliseconds; the
    rest covers pushing a batch to the other validators), or half the grace if that is shorter."""
    return min(1000, grace_seconds * 500)


def _unix(t: dt.datetime) -> int:
    if t.tzinfo is None:
        raise ValueError("naive datetimes are ambiguous: give a timezone")
    delta = t - dt.datetime(1970, 1, 1, tzinfo=UTC)
    if delta.microseconds:
        raise ValueError("periods start on whole seconds")
    return delta.days * 86400 + delta.seconds


def format_utc(unix_seconds: int) -> str:
    return dt.datetime.fromtimestamp(unix_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(text: str) -> dt.datetime:
    if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", text):
        raise ValueError(f"{text!r} is not a UTC instant like 2026-11-21T10:00:00Z")
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def iso_duration(seconds: int) -> str:
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    out = "PT" + (f"{h}H" if h else "") + (f"{m}M" if m else "") + (f"{s}S" if s else "")
    return out if out != "PT" else "PT0S"


def parse_iso_duration(text: str) -> int:
    m = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?", text)
    if not m or text == "PT":
        raise ValueError(f"{text!r} is not a duration like PT15M")
    h, mi, s = (int(g) if g else 0 for g in m.groups())
    seconds = h * 3600 + mi * 60 + s
    if seconds <= 0:
        raise ValueError("a period has positive length")
    return seconds


def local_day_periods(day: dt.date, tz: str = "Europe/Berlin", length: int = DEFAULT_LENGTH) -> list[Period]:
    """The periods of one local calendar day, from local midnight to the next local midnight."""
    zone = ZoneInfo(tz)
    start = _unix(dt.datetime(day.year, day.month, day.day, tzinfo=zone))
    nxt = day + dt.timedelta(days=1)
    end = _unix(dt.datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone))
    if start % length or end % length:
        raise ValueError(f"local midnight in {tz} is not aligned to {length} s periods")
    return [Period(i, length) for i in range(start // length, end // length)]
