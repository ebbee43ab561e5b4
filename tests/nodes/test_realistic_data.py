"""The demo grid's statistics against published figures for Germany (sources in docs/realistic-data.md):
annual energy per customer class, PV full-load hours, wind capacity factor and smoothness, a load-dominated
area, a visible daily shape, and supplier imbalances of a few percent. A year of weather is cheap (one vector
per quarter hour for the whole area); per-meter load is checked on sample days."""

from __future__ import annotations

import datetime as dt
from statistics import mean

import numpy as np
import pytest

from nodes.datagen.devnet_genesis import devnet_registry
from nodes.datagen.grid_mix import meter_specs
from nodes.datagen.profiles import (
    MeterSpec, Profiles, SLP_CLASSES, heat_pump_norm, pv_per_kwp, slp_year, temperature_c, weather_days, wind_power,
)
from nodes.feed import SimulatedFeed, devnet_trades, portfolio_wh, supplier_groups

UTC = dt.timezone.utc
YEAR_START = dt.datetime(2025, 1, 1, tzinfo=UTC)
REG = devnet_registry(validators=4, balancing_groups=3, meters=1_000, period_seconds=10, seed=2)
MALOS, SPECS = meter_specs(REG, seed=2)


@pytest.fixture(scope="module")
def year():
    return weather_days(seed=1, start=YEAR_START, days=365)


def by_class(name: str) -> list[MeterSpec]:
    return [s for s in SPECS if s.load_class == name and not s.pv_kwp]


def test_annual_energy_per_class_in_the_published_ranges():
    households = [s.annual_kwh for s in by_class("h0_dyn")]
    assert len(households) > 600
    assert 2_700 <= mean(households) <= 3_400  # German average about 3,000 kWh/a (many single households)
    assert 1_200 <= min(households) and max(households) <= 6_000
    heat_pumps = [s.annual_kwh for s in by_class("heat_pump")]
    assert heat_pumps and all(3_000 <= e <= 6_500 for e in heat_pumps)
    wallboxes = [s.annual_kwh for s in by_class("wallbox")]
    assert wallboxes and all(1_500 <= e <= 3_500 for e in wallboxes)
    business = [s.annual_kwh for s in SPECS if s.load_class[:1] in ("g", "l")]
    assert len(business) > 50 and all(8_000 <= e <= 100_000 for e in business)  # SLP customers: < 100 MWh/a
    assert {s.load_class for s in SPECS} >= {"h0_dyn", "g0", "g1", "g4", "heat_pump", "wallbox", "industry"}


def test_the_slp_years_carry_the_annual_energy():
    frame = slp_year(2025)  # W per kWh/a: a year of quarter hours integrates to 1 kWh per kWh/a
    totals = frame.sum() / 4 / 1000
    assert all(abs(totals[c] - 1) < 0.002 for c in SLP_CLASSES)
    times = frame.index.tz_localize("UTC")
    assert abs(float(np.sum(np.maximum(15 - temperature_c(times, np.zeros(len(times))), 0))) > 0)
    assert heat_pump_norm(2025) > 0


def test_households_follow_the_day_and_the_profiles_integrate_to_the_annual_energy():
    homes = [MeterSpec("h0_dyn", 3_000)] * 400
    profiles = Profiles(homes, seed=3, start=dt.datetime(2025, 1, 13, tzinfo=UTC))  # a January Monday, UTC
    day = np.array([profiles.power_w(q)[0].sum() for q in range(96)]) / len(homes)
    night, evening = day[2 * 4], day[18 * 4]  # 03:00 and 19:00 local (CET = UTC + 1)
    assert evening > 2 * night
    slp = slp_year(2025)["h0_dyn"]
    expected = float(slp["2025-01-13 01:00":"2025-01-14 00:45"].sum()) * 3_000 / 4  # Wh of one home that day
    assert abs(day.sum() / 4 - expected) / expected < 0.05  # the scatter averages out over 400 homes


def test_pv_full_load_hours(year):
    times, w = year
    hours = float(pv_per_kwp(times, w.clear_sky_index).sum()) / 4 / 1000  # kWh per kWp
    assert 900 <= hours <= 1_100  # Germany: about 900-1,100 kWh/kWp a year
    monthly = (pv_per_kwp(times, w.clear_sky_index) / 4000).reshape(-1)  # kWh per kWp per quarter hour
    june = monthly[times.month == 6].sum()
    december = monthly[times.month == 12].sum()
    assert june > 4 * december


@pytest.mark.parametrize("capacity_w", [2_300_000, 800_000])  # an E-82/2300, an E-53/800
def test_wind_capacity_factor_and_smoothness(year, capacity_w):
    _, w = year
    power = wind_power(capacity_w, w.wind_speed)
    assert 0.20 <= power.mean() / capacity_w <= 0.25  # German onshore fleet: about 20-25 %
    hourly = power.reshape(-1, 4).mean(axis=1)
    assert np.mean(np.abs(np.diff(hourly))) / capacity_w < 0.06  # a park changes by a few % of rated per hour
    assert power.max() > 0.95 * capacity_w and (power < 0.01 * capacity_w).mean() > 0.02  # storms and calms


def test_the_area_is_load_dominated_with_realistic_generation(year):
    times, w = year
    load_mwh = sum(s.annual_kwh for s in SPECS) / 1000
    pv_hours = float(pv_per_kwp(times, w.clear_sky_index).sum()) / 4 / 1000
    gen_mwh = sum(s.pv_kwp for s in SPECS) * pv_hours / 1000
    for s in SPECS:
        if s.generator:
            gen_mwh += float(np.sum(_generation(s, times, w))) / 4 / 1e6
    assert 0.4 <= gen_mwh / load_mwh <= 0.9
    assert any(s.generator == "wind" for s in SPECS) and any(s.pv_kwp > 500 for s in SPECS)


def _generation(spec: MeterSpec, times, w):
    from nodes.datagen.profiles import generator_power

    return generator_power(spec.generator, spec.rated_w, times, w)


def test_supplier_imbalances_are_a_few_percent_of_their_throughput():
    reg = devnet_registry(validators=2, balancing_groups=3, meters=300, period_seconds=10, seed=5)
    feed = SimulatedFeed(reg, seed=5, start=dt.datetime(2026, 3, 2, tzinfo=UTC), register_every=0)
    g0 = reg.genesis_period
    shares = {g: [] for g in supplier_groups(reg)}
    for p in range(g0, g0 + 2 * 96, 2):  # two days, every second quarter hour
        truth = portfolio_wh(reg, feed, p)
        scheduled = dict.fromkeys(truth, 0)
        for t in devnet_trades(reg, p, 5, feed):
            if not t.one_sided:
                if t.to_group in scheduled:
                    scheduled[t.to_group] += t.wh
                if t.from_group in scheduled:
                    scheduled[t.from_group] -= t.wh
        for g in truth:
            if truth[g]:
                shares[g].append(abs(scheduled[g] - truth[g]) / abs(truth[g]))
    for g, s in shares.items():
        assert 0.005 <= mean(s) <= 0.06, (g, mean(s))  # a few percent, never zero, never the throughput
