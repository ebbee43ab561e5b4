import datetime as dt

import pytest
from hypothesis import given, strategies as st

from stromledger.periods import Period, local_day_periods, parse_iso_duration


def test_iso_roundtrip_and_index():
    p = Period.from_iso("2026-11-21T10:00:00Z/PT15M")
    assert p.length == 900 and p.start == 1_795_255_200
    assert p.index == p.start // 900
    assert p.iso() == "2026-11-21T10:00:00Z/PT15M"
    assert p.end_utc == dt.datetime(2026, 11, 21, 10, 15, tzinfo=dt.timezone.utc)
    assert p.gate_closure(120) == p.end + 120
    assert Period.containing(p.start + 899) == p and Period.containing(p.end) == p.next()


def test_rejects_misaligned_and_naive():
    with pytest.raises(ValueError):
        Period.from_iso("2026-11-21T10:05:00Z/PT15M")
    with pytest.raises(ValueError):
        Period.starting_at(dt.datetime(2026, 11, 21, 10, 0))
    with pytest.raises(ValueError):
        parse_iso_duration("PT")
    with pytest.raises(TypeError):
        Period(1.5)  # type: ignore[arg-type]


def test_local_days_in_berlin():
    assert len(local_day_periods(dt.date(2026, 3, 29), "Europe/Berlin")) == 92
    assert len(local_day_periods(dt.date(2026, 10, 25), "Europe/Berlin")) == 100
    day = local_day_periods(dt.date(2026, 11, 21), "Europe/Berlin")
    assert len(day) == 96
    assert day[0].iso() == "2026-11-20T23:00:00Z/PT15M"  # local midnight is 23:00 UTC in winter
    assert [p.index for p in day] == list(range(day[0].index, day[0].index + 96))


@given(st.integers(min_value=0, max_value=10**8), st.sampled_from([1, 5, 60, 300, 900, 3600]))
def test_iso_roundtrip_any(index, length):
    p = Period(index % (253_402_300_000 // length), length)  # stay before year 10000
    assert Period.from_iso(p.iso()) == p
