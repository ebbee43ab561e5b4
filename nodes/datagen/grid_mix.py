"""The customers and plants of a German distribution area, and what each meter point of a registry is.

The area: a rural area with wind and a small town in the north German plain (the site in profiles.SITE).
Per 1,000 meter points: about 690 households (BDEW H0), 40 heat pumps and 30 wallboxes on their own meters,
150 households with rooftop PV (40 of them with a home battery), 85 businesses and farms (G0-G6, L0-L2) and about
4 metered industrial customers sized to take industry's national share (44 %) of the load; the plants (wind turbines, PV parks, a biogas plant, a small hydro plant) are
sized to the area's load so that local generation covers about 60 % of it, as in many rural German areas.
Annual energies per class are in the published ranges (docs/realistic-data.md).

A registry carries no customer class: `meter_specs` derives it from the meter point's kind, source and
connection capacity (which `customer_mix` chooses per class) and a hash of its MaLo-ID, so every node derives
the same. A devnet period stands for a simulated quarter hour: its genesis scales the capacities by
900 s / period length (`time_lapse`), so a quarter hour's energy fits the period's limit.
"""

from __future__ import annotations

import hashlib
import math
import random

from stromledger.registry import MeterPoint, Registry

from .profiles import QUARTER_S, SLP_CLASSES, TURBINES, MeterSpec

# Connection capacities (W) that name a consumer class; other consumers go by size.
HEAT_PUMP_W = (9_000, 12_000)
WALLBOX_W = (11_000, 22_000)
HOUSEHOLD_W = (30_000, 43_000)  # 3 x 50 A and 3 x 63 A house connections
BUSINESS_W = (50_000, 80_000, 120_000, 200_000)
INDUSTRY_MIN_W = 250_000  # metered (RLM) industry from this connection on; sized to the area (customer_mix)
INDUSTRY_SHARE = 0.44  # of the area's load: German industry uses about 44 % of the electricity (BDEW)
PV_ROOF_KWP = (6, 8, 10, 12, 15)

# Annual energy ranges (kWh/a) per class; sources in docs/realistic-data.md.
HOUSEHOLD_KWH = ((1_400, 2_400, 0.41), (2_500, 3_500, 0.34), (3_300, 4_500, 0.12), (4_000, 6_000, 0.13))  # 1-4+ persons
HOUSEHOLD_SIZES = tuple(((lo, hi), share) for lo, hi, share in HOUSEHOLD_KWH)
HEAT_PUMP_KWH = (3_000, 6_500)
WALLBOX_KWH = (1_500, 3_500)
BUSINESS_KWH = (8_000, 100_000)  # standard-load-profile customers: below 100,000 kWh/a; log-uniform, most small
FARM_KWH = (8_000, 60_000)
INDUSTRY_FULL_LOAD_H = (2_500, 5_000)
G_WEIGHTS = (("g0", 0.40), ("g1", 0.20), ("g2", 0.10), ("g3", 0.05), ("g4", 0.15), ("g5", 0.05), ("g6", 0.05))
FARM_SHARE = 0.15  # of the businesses
# Generation sized to the area's load: share of the annual load each source covers (rooftop PV comes on top).
GENERATION_SHARE = {"wind": 0.30, "pv": 0.10, "biomass": 0.10, "hydro": 0.02}  # 52 %, with the roofs about 60 %
FULL_LOAD_H = {"wind": 2_000, "pv": 960, "biomass": 7_700, "hydro": 4_500}

CONSUMER_MIX = (  # (share of the meter points, kind, source, capacities W)
    (0.690, "consumer", "grid", HOUSEHOLD_W),
    (0.040, "consumer", "grid", HEAT_PUMP_W),
    (0.030, "consumer", "grid", WALLBOX_W),
    (0.110, "prosumer", "pv", tuple(k * 1000 for k in PV_ROOF_KWP)),
    (0.040, "prosumer", "battery", tuple(k * 1000 for k in PV_ROOF_KWP[1:4])),
    (0.086, "consumer", "grid", BUSINESS_W),
)


def _pick(weights: tuple, u: float):
    acc = 0.0
    for item, w in weights:
        acc += w
        if u < acc:
            return item
    return weights[-1][0]


def _between(lo: float, hi: float, u: float) -> float:
    return lo + (hi - lo) * u


def _log_between(lo: float, hi: float, u: float) -> float:
    return lo * (hi / lo) ** u


def spec_for(mp: MeterPoint, capacity_w: int, seed: int) -> MeterSpec:
    """What is behind meter point `mp` whose real connection capacity is `capacity_w`."""
    digest = hashlib.sha256(f"spec/{seed}/{mp.malo_id}".encode()).digest()  # four independent draws
    draws = dict(zip(("size", "kwh", "farm", "g"), (int.from_bytes(digest[i:i + 8], "big") / 2**64
                                                     for i in range(0, 32, 8))))
    draws["l"] = draws["g"]
    u = draws.__getitem__
    household = MeterSpec("h0_dyn", _between(*_pick(HOUSEHOLD_SIZES, u("size")), u("kwh")))
    if mp.kind == "consumer":
        if capacity_w in HEAT_PUMP_W:
            return MeterSpec("heat_pump", _between(*HEAT_PUMP_KWH, u("kwh")))
        if capacity_w in WALLBOX_W:
            return MeterSpec("wallbox", _between(*WALLBOX_KWH, u("kwh")), wallbox_w=capacity_w)
        if capacity_w < BUSINESS_W[0]:
            return household
        if capacity_w < INDUSTRY_MIN_W:
            if u("farm") < FARM_SHARE:
                return MeterSpec(("l0", "l1", "l2")[int(3 * u("l"))], _between(*FARM_KWH, u("kwh")))
            return MeterSpec(_pick(G_WEIGHTS, u("g")), _log_between(*BUSINESS_KWH, u("kwh")))
        return MeterSpec("industry", capacity_w / 1000 * _between(*INDUSTRY_FULL_LOAD_H, u("kwh")))
    if mp.kind == "prosumer":
        kwp = capacity_w / 1000 if capacity_w <= 30_000 else capacity_w / 1000 / 3
        if mp.source == "pv":
            return MeterSpec(household.load_class, household.annual_kwh, pv_kwp=kwp)
        if mp.source == "battery":
            return MeterSpec(household.load_class, household.annual_kwh, pv_kwp=kwp, battery_kwh=round(kwp))
        return MeterSpec(household.load_class, household.annual_kwh, generator=mp.source, rated_w=capacity_w // 2)
    if mp.kind == "producer":
        if mp.source == "pv":
            return MeterSpec(pv_kwp=capacity_w / 1000, generator="", rated_w=0, load_class="")
        return MeterSpec(generator=mp.source, rated_w=capacity_w)
    raise ValueError(f"{mp.kind} meter points have no profile")


def time_lapse(period_seconds: int) -> float:
    """How many times faster than real time a chain with this period length runs its simulated quarter hours."""
    return QUARTER_S / period_seconds


def real_capacity(mp: MeterPoint, period_seconds: int) -> int:
    return round(mp.max_power_w / time_lapse(period_seconds))


def meter_specs(registry: Registry, seed: int) -> tuple[list[str], list[MeterSpec]]:
    """(MaLo-IDs, specs) of every non-boundary meter point, in registry order."""
    malos = [m for m in registry.malo_order if m not in registry.boundary]
    L = registry.period_seconds
    return malos, [spec_for(registry.meter_points[m], real_capacity(registry.meter_points[m], L), seed)
                   for m in malos]


# -- choosing the mix ------------------------------------------------------------------------------------------


def _expected_kwh(kind: str, source: str, capacity_w: int) -> float:
    """The mean annual load of a meter point of this class (for sizing the plants)."""
    if kind == "prosumer":
        return sum((lo + hi) / 2 * w for lo, hi, w in HOUSEHOLD_KWH)
    if capacity_w in HEAT_PUMP_W:
        return sum(HEAT_PUMP_KWH) / 2
    if capacity_w in WALLBOX_W:
        return sum(WALLBOX_KWH) / 2
    if capacity_w < BUSINESS_W[0]:
        return sum((lo + hi) / 2 * w for lo, hi, w in HOUSEHOLD_KWH)
    if capacity_w < INDUSTRY_MIN_W:
        lo, hi = BUSINESS_KWH
        return (1 - FARM_SHARE) * (hi - lo) / math.log(hi / lo) + FARM_SHARE * sum(FARM_KWH) / 2
    return capacity_w / 1000 * sum(INDUSTRY_FULL_LOAD_H) / 2


def _counts(n: int, shares: list[float]) -> list[int]:
    """Largest-remainder rounding of n x shares."""
    raw = [n * s / sum(shares) for s in shares]
    counts = [math.floor(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: counts[i] - raw[i])[:n - sum(counts)]:
        counts[i] += 1
    return counts


def customer_mix(n: int, rng: random.Random) -> list[tuple[str, str, int]]:
    """(kind, source, real capacity W) of `n` meter points: the customers, then the plants sized to them (one
    plant per source and 2,500 meter points: wind parks of whole turbines, PV parks, biogas, small hydro)."""
    if n < 1:
        return []
    per_source = max(1, n // 2_500)
    plants_room = max(0, min(4 * per_source, n - 1))
    industry = (max(1, round(n * 0.004)) if n >= 20 else 0) if n - plants_room > 1 else 0
    counts = _counts(n - plants_room - industry, [s for s, *_ in CONSUMER_MIX])
    out = [(kind, source, rng.choice(caps)) for c, (_, kind, source, caps) in zip(counts, CONSUMER_MIX)
           for _ in range(c)]
    slp_kwh = sum(_expected_kwh(*m) for m in out)
    if industry:  # metered industry sized to the area, so it takes its national share of the load
        each_kwh = slp_kwh * INDUSTRY_SHARE / (1 - INDUSTRY_SHARE) / industry
        capacity = max(INDUSTRY_MIN_W, round(each_kwh / (sum(INDUSTRY_FULL_LOAD_H) / 2) * 1000, -4))
        out += [("consumer", "grid", int(capacity))] * industry
    rng.shuffle(out)
    load_mwh = sum(_expected_kwh(*m) for m in out) / 1000
    plants = []
    budget_mwh = load_mwh * sum(GENERATION_SHARE.values())  # what the plants may make, all together
    for source in ("wind", "pv", "biomass", "hydro"):  # wind first: a turbine is the biggest step
        target = min(load_mwh * GENERATION_SHARE[source], budget_mwh) / per_source  # MWh a year of one plant
        if source == "wind":
            rated = 2_300_000 if target >= 1.6 * FULL_LOAD_H["wind"] else 800_000
            unit_mwh = rated / 1e6 * FULL_LOAD_H["wind"]
            units = round(target / unit_mwh) or (1 if target >= 0.35 * unit_mwh else 0)  # a village gets its one
            capacity = units * rated
        else:
            capacity = round(target / FULL_LOAD_H[source] * 1e6, -4 if source == "pv" else -3)  # 10 kW / 1 kW
        if capacity >= 50_000:
            plants += [("producer", source, int(capacity))] * per_source
            budget_mwh -= capacity / 1e6 * FULL_LOAD_H[source] * per_source
    out += plants[:plants_room]
    household = CONSUMER_MIX[0]
    out += [(household[1], household[2], rng.choice(household[3])) for _ in range(n - len(out))]
    return out


__all__ = ["CONSUMER_MIX", "customer_mix", "meter_specs", "real_capacity", "spec_for", "time_lapse", "SLP_CLASSES",
           "TURBINES"]
