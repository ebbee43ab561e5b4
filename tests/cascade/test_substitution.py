"""Substitutes: the same quarter hour of the day before when the window still holds it, else the previous
quarter hour; PV feeds in nothing in the dark; never more than the connection's capacity."""

from __future__ import annotations

import pytest

from stromledger.cascade import Ledger, SUBSTITUTED
from stromledger.cascade.substitution import dark, substitute
from stromledger.periods import parse_utc

from .tiny import G, HOUSE1, PV, Net, entry, make_registry

DAY = 96


def at(text: str) -> int:
    return int(parse_utc(text).timestamp())


@pytest.mark.parametrize("start, is_dark", [
    ("2026-06-21T12:00:00Z", False), ("2026-06-21T23:00:00Z", True), ("2026-06-21T02:45:00Z", False),
    ("2026-12-21T16:30:00Z", True), ("2026-12-21T07:30:00Z", False), ("2026-01-01T00:15:00Z", True),
])
def test_dark_in_germany(start, is_dark):
    assert dark(at(start), at(start) + 900) is is_dark


def test_the_comparable_day_is_preferred_over_the_previous_quarter_hour():
    reg = make_registry(window=DAY)
    net, ledger = Net(reg), Ledger(reg)
    for k in range(DAY + 6):
        items = [net.reading(HOUSE1, G + k, 100 + k)] if k != DAY + 5 else []
        items.append(net.reading(PV, G + k, 0, 2000 + k))  # a PV reading even at night: a sensor says so
        net.settle(ledger, net.batch(items))
    # HOUSE1 misses 01:15 on day 2: the value of 01:15 the day before (105), not of 01:00 (100 + 100)
    assert entry(ledger, G + DAY + 5, HOUSE1)[:4] == (1, SUBSTITUTED, 105, 0)


def test_pv_is_zero_in_the_dark_and_kept_in_daylight():
    reg = make_registry()
    noon, night = at("2026-06-21T12:00:00Z") // 900, at("2026-06-21T23:00:00Z") // 900
    assert substitute(reg, PV, noon, (5, 4000), None) == (5, 4000)
    assert substitute(reg, PV, night, (5, 4000), None) == (5, 0)
    assert substitute(reg, PV, night, (5, 4000), (7, 3000)) == (7, 0)  # the comparable value first, then dark
    assert substitute(reg, HOUSE1, night, (5, 4000), None) == (5, 4000)  # only PV


def test_a_substitute_never_exceeds_the_connection():
    reg = make_registry()
    cap = reg.max_wh(HOUSE1)
    assert substitute(reg, HOUSE1, G, (cap + 10, 0), None) == (cap, 0)
