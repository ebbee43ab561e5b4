"""MaBiS series: per grid area x balancing group, the day's quarter-hour sums that the grid operator sends the
balance-responsible party (BRP, BKV) and the TSO (Bilanzkreissummenzeitreihe), as CSV and as MSCONS.

Computed from the settled rows of each period (the same rows the period exports carry), so they add up to the
sealed cells exactly; a sum says how many meter-point values it lacks (`missing_values`: missing is not zero).
The area's grid loss, booked by its loss group, is its own row (`loss_wh`, signed) in the CSV. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from stromledger.cascade.messages import MISSING, SUBSTITUTED
from stromledger.registry import Registry

from . import edi
from .tables import interval
from .text import csv_bytes

SERIES_COLUMNS = ("period_start", "period_end", "version", "grid_area", "balancing_group", "meter_points",
                  "withdrawal_wh", "injection_wh", "loss_wh", "substituted_values", "missing_values")


@dataclass(frozen=True, slots=True)
class CellSum:
    meter_points: int
    wd: int
    inj: int
    substituted: int
    missing: int


def cell_sums(rows: Sequence) -> dict[tuple[str, str], CellSum]:
    """Per (area, group): the sums over the period's non-boundary rows, with counts of what they contain."""
    acc: dict[tuple[str, str], list[int]] = {}
    for r in rows:
        if not r.balancing_group:
            continue
        a = acc.setdefault((r.grid_area, r.balancing_group), [0, 0, 0, 0, 0])
        a[0] += 1
        a[1] += r.import_wh
        a[2] += r.export_wh
        a[3] += r.quality == SUBSTITUTED
        a[4] += r.quality == MISSING
    return {k: CellSum(*v) for k, v in sorted(acc.items())}


def series_csv(registry: Registry, periods: Sequence[int], rows_by_period: Mapping[int, Sequence],
               versions: Mapping[int, int], losses: Mapping[int, Mapping[str, int]]) -> bytes:
    """One line per period and (area, group) with meter points, plus one per period and area for the loss,
    booked on the area's loss group (meter_points 0). `losses[period][area]` is the sealed area loss."""
    lines = []
    for p in periods:
        start, end = interval(registry.period(p))
        keyed = {k: [s.meter_points, s.wd, s.inj, "", s.substituted, s.missing]
                 for k, s in cell_sums(rows_by_period[p]).items()}
        for area, loss in losses[p].items():
            keyed.setdefault((area, registry.grid_areas[area].loss_group), [0, 0, 0, "", 0, 0])[3] = loss
        for (area, group), v in sorted(keyed.items()):
            lines.append([start, end, versions[p], area, group, *v])
    return csv_bytes(SERIES_COLUMNS, lines)


def series_mscons(registry: Registry, periods: Sequence[int], rows_by_period: Mapping[int, Sequence],
                  versions: Mapping[int, int], partner_ids: Mapping[str, str], prepared: int) -> dict[str, bytes]:
    """The day's sum series as MSCONS: one interchange per (area operator, BRP), one message per (area, group)
    with every period of the day. `partner_ids` maps each area EIC (its grid operator) and group EIC (its
    BRP) to a market-partner id."""
    spans = [(registry.period(p).start, registry.period(p).end) for p in periods]
    sums = [cell_sums(rows_by_period[p]) for p in periods]
    keys = sorted(set().union(*sums))
    by_pair: dict[tuple[str, str], list[edi.DaySeries]] = {}
    for area, group in keys:
        totals = [(s[area, group].wd, s[area, group].inj, versions[p]) if (area, group) in s else (0, 0, versions[p])
                  for p, s in zip(periods, sums)]
        by_pair.setdefault((partner_ids[area], partner_ids[group]), []).append(
            edi.group_sum_series(area, group, spans, totals))
    day = registry.period(periods[0]).start_utc.strftime("%Y%m%dT%H%MZ")
    return {f"mabis-{day}-{s}-{r}.edi": edi.build_interchange(series, sender=s, recipient=r,
                                                             pi=edi.PI_GROUP_SUM_SERIES, prepared=prepared)
            for (s, r), series in sorted(by_pair.items())}


SCHEDULE_COLUMNS = ("period_start", "period_end", "version", "from_party", "to_party", "external", "wh")


def schedules_csv(registry: Registry, periods: Sequence[int], results: Mapping[int, object]) -> bytes:
    """The matched schedules of the day's periods (the FPI/FPE behind the groups' imbalances); `external` is 1
    for a schedule with a party outside the network (the exchange, another control area)."""
    lines = []
    for p in periods:
        start, end = interval(registry.period(p))
        r = results[p]
        for s in r.schedules:
            external = int(s.from_group in registry.external_parties or s.to_group in registry.external_parties)
            lines.append([start, end, r.version, s.from_group, s.to_group, external, s.wh])
    return csv_bytes(SCHEDULE_COLUMNS, lines)


# -- aggregation levels ------------------------------------------------------------------------------------

# As Energinet's opengeh-wholesale aggregates: per grid area, per (area, balance-responsible party), per
# (area, supplier) and per (area, supplier, BRP). The BRP's series is its balancing group's.
LEVELS = ("area", "area_brp", "area_supplier", "area_supplier_brp")
AGGREGATION_COLUMNS = ("level", "period_start", "period_end", "version", "grid_area", "supplier",
                       "balancing_group", "meter_points", "withdrawal_wh", "injection_wh", "missing_values")


def aggregate(registry: Registry, period: int, rows: Sequence) -> dict[str, dict[tuple[str, str, str], list[int]]]:
    """level -> (area, supplier, group) -> [meter points, withdrawal Wh, injection Wh, missing values], over
    the period's non-boundary rows; the key's parts a level does not split by are "". A meter point without
    a supplier in the registry counts under supplier ""."""
    out: dict[str, dict[tuple[str, str, str], list[int]]] = {level: {} for level in LEVELS}
    for r in rows:
        if not r.balancing_group:
            continue
        supplier = registry.supplier_of(r.malo_id, period)
        a, g = r.grid_area, r.balancing_group
        for level, key in (("area", (a, "", "")), ("area_brp", (a, "", g)), ("area_supplier", (a, supplier, "")),
                           ("area_supplier_brp", (a, supplier, g))):
            acc = out[level].setdefault(key, [0, 0, 0, 0])
            acc[0] += 1
            acc[1] += r.import_wh
            acc[2] += r.export_wh
            acc[3] += r.quality == MISSING
    return out


def aggregations_csv(registry: Registry, periods: Sequence[int], rows_by_period: Mapping[int, Sequence],
                     versions: Mapping[int, int]) -> bytes:
    """Every aggregation level of every period, levels in LEVELS order, keys sorted."""
    lines = []
    for p in periods:
        start, end = interval(registry.period(p))
        levels = aggregate(registry, p, rows_by_period[p])
        for level in LEVELS:
            for (area, supplier, group), v in sorted(levels[level].items()):
                lines.append([level, start, end, versions[p], area, supplier, group, *v])
    return csv_bytes(AGGREGATION_COLUMNS, lines)
