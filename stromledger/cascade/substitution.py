"""Substitute values for a meter point without a reading at gate closure (pure: integers and a month table).

The rule, in order (docs/cascade.md, "Qualities and versions"):
1. the same quarter hour of the day before (a comparable day), if the state still holds it with a value
   (the correction window reaches back a day) and it was no register meter's gap share;
2. otherwise the previous quarter hour's settled value, carried forward;
3. a PV generator feeds in nothing while it is dark all over Germany (DARK_HOURS_UTC, by month);
4. never more than the connection's capacity (max_power_w over the period).
A register meter is never substituted this way: its gap is filled when the next register reading arrives.
"""

from __future__ import annotations

import datetime as dt

from stromledger.registry import Registry

# Per month, the UTC hours in which the sun is below the horizon everywhere in Germany (47-55 N, 6-15 E):
# (dark from this hour on, dark before this hour). Conservative: the latest sunset in the west (Aachen) and
# the earliest sunrise in the east (Goerlitz), to the whole hour, with the twilight on the light side.
DARK_HOURS_UTC = {1: (17, 6), 2: (18, 6), 3: (19, 4), 4: (19, 3), 5: (20, 2), 6: (21, 2), 7: (21, 2), 8: (20, 3),
                  9: (19, 4), 10: (18, 5), 11: (17, 6), 12: (16, 7)}
DAY_SECONDS = 86_400


def dark(start: int, end: int) -> bool:
    """Is every instant of [start, end) dark in Germany? (UTC seconds; periods of up to a few hours)"""
    for t in (start, end - 1):
        moment = dt.datetime.fromtimestamp(t, dt.timezone.utc)
        dusk, dawn = DARK_HOURS_UTC[moment.month]
        if dawn <= moment.hour < dusk:
            return False
    return end - start <= 6 * 3600


def comparable_period(registry: Registry, period: int) -> int | None:
    """The same quarter hour of the day before, when the period length divides a day."""
    length = registry.period_seconds
    if DAY_SECONDS % length:
        return None
    return period - DAY_SECONDS // length


def substitute(registry: Registry, malo: str, period: int, previous: tuple[int, int],
               comparable: tuple[int, int] | None) -> tuple[int, int]:
    """(import Wh, export Wh) to book for a meter point without a reading: `comparable` is the settled value of
    the comparable period (None when unknown), `previous` that of the period before."""
    imp, exp = comparable if comparable is not None else previous
    mp = registry.meter_points[malo]
    if mp.source == "pv" and exp:
        p = registry.period(period)
        if dark(p.start, p.end):
            exp = 0
    cap = registry.max_wh(malo)
    return min(imp, cap), min(exp, cap)
