"""All files the German market exchanges for one local day, addressed with the registry's market-partner ids:
the MaLo load profiles (edi), the MaBiS sum series as CSV and MSCONS, the aggregation levels and the
schedules (mabis). Pure: settled rows and results in, `{file name: bytes}` out (docs/export-format.md)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Mapping

from stromledger.periods import local_day_periods
from stromledger.registry import Registry

from . import edi, mabis

SERIES_CSV = "series.csv"
SCHEDULES_CSV = "schedules.csv"
AGGREGATIONS_CSV = "aggregations.csv"


@dataclass(frozen=True, slots=True)
class MarketDay:
    files: dict[str, bytes]
    incomplete: tuple[tuple[str, int], ...]  # MaLo-days not sent: (MaLo-ID, quarter hours without a value)


def partner_ids(registry: Registry) -> dict[str, str]:
    """EIC of every grid area (its grid operator) and balancing group (its BRP) -> market-partner id. Raises
    ValueError naming the first one the genesis gives none."""
    out = {}
    for x in [*registry.grid_areas.values(), *registry.balancing_groups.values()]:
        if not x.market_partner_id:
            raise ValueError(f"{x.eic} ({x.name}) has no market_partner_id in the genesis: market messages "
                             "are addressed with 13-digit market-partner ids")
        out[x.eic] = x.market_partner_id
    return out


def market_day_files(registry: Registry, day: dt.date, rows: Mapping[int, Mapping[str, object]],
                     results: Mapping[int, object], prepared: int, tz: str = "Europe/Berlin") -> MarketDay:
    """The day's files. `rows[period]` maps MaLo-ID -> the latest settled MeterRow, `results[period]` is the
    latest PeriodResult, for every period of the local day. A MaLo's messages go to its supplier (LF) when the
    genesis names one, else to its group's BRP; they come from its grid area's operator."""
    ids = partner_ids(registry)
    periods = [p.index for p in local_day_periods(day, tz, registry.period_seconds)]
    missing = [p for p in periods if p not in rows or p not in results]
    if missing:
        raise ValueError(f"{len(missing)} period(s) of {day} are not settled, first {missing[0]}")
    first = rows[periods[0]]
    recipient, sender = {}, {}
    for malo, row in first.items():
        if row.balancing_group:
            recipient[malo] = registry.supplier_of(malo, periods[0]) or ids[row.balancing_group]
            sender[malo] = ids[row.grid_area]
    spans = [(registry.period(p).start, registry.period(p).end) for p in periods]
    malo_days = edi.malo_day_files(spans, [rows[p] for p in periods], recipient, sender, prepared)
    versions = {p: results[p].version for p in periods}
    lists = {p: list(rows[p].values()) for p in periods}
    losses = {p: {a.area: a.loss for a in results[p].areas} for p in periods}
    files = {**malo_days.files,
             SERIES_CSV: mabis.series_csv(registry, periods, lists, versions, losses),
             SCHEDULES_CSV: mabis.schedules_csv(registry, periods, results),
             AGGREGATIONS_CSV: mabis.aggregations_csv(registry, periods, lists, versions),
             **mabis.series_mscons(registry, periods, lists, versions, ids, prepared)}
    return MarketDay(files, malo_days.incomplete)
