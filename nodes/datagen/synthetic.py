"""Deterministic synthetic grids for tests and benchmarks: a registry of any size and signed readings,
schedules and batches for any period, all derived from a seed (no clock, no global randomness).

    grid = make_synthetic(100_000, seed=1)
    batches = grid.batches(grid.registry.genesis_period)
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass, field
from stromledger.crypto import SigningKey, sha256
from stromledger.ids import make_eic, make_malo_id
from stromledger.registry import (
    Assignment, BalancingGroup, ChainParams, GridArea, MeterOperator, MeterPoint, Registry, Validator,
)

from stromledger.cascade.checks import CheckedBatch, make_batch, sign_reading, sign_schedule
from stromledger.cascade.messages import Batch, Reading, Schedule

from .grid_mix import customer_mix, time_lapse

GENESIS_2026 = 1_767_225_600  # 2026-01-01T00:00:00Z


def eic_for(tag: str, n: int, object_type: str = "Y") -> str:
    """A valid 16-character EIC from a short tag and a number (issuing office 11, Germany)."""
    body = f"{tag}{n}"
    if len(body) > 12:
        raise ValueError(f"{body!r} is longer than the 12 characters an EIC has room for")
    for filler in "-XZ0":
        try:
            return make_eic(f"11{object_type}{body.ljust(12, filler)}")
        except ValueError:
            continue
    raise ValueError(f"no valid EIC for {body!r}")  # pragma: no cover - some filler always works


def malo_for(n: int, base: int = 5_000_000_000) -> str:
    return make_malo_id(f"{base + n:010d}")


def key_for(seed: int, label: str) -> SigningKey:
    return SigningKey(sha256(f"stromledger-synthetic\x00{seed}\x00{label}".encode()))


@dataclass
class Synthetic:
    registry: Registry
    seed: int
    submitter: SigningKey  # a registered meter operator's key
    group_keys: dict[str, SigningKey]  # balancing group EIC -> its operator's key
    shared_meter_keys: int = 0
    _meter_keys: dict[str, SigningKey] = field(default_factory=dict, repr=False)
    _profiles: object = field(default=None, repr=False)
    _ordinary: list[str] = field(default_factory=list, repr=False)

    def meter_key(self, malo_id: str) -> SigningKey:
        k = self._meter_keys.get(malo_id)
        if k is None:
            label = f"meter-{malo_id}"
            if self.shared_meter_keys:
                label = f"meter-key-{int(malo_id[:10]) % self.shared_meter_keys}"
            k = self._meter_keys[malo_id] = key_for(self.seed, label)
        return k

    def energies(self, period: int) -> dict[str, tuple[int, int]]:
        """Every meter point's (import Wh, export Wh) in `period`: the profiles of its customer class
        (nodes.datagen.profiles; period k after genesis is the k-th quarter hour from the genesis time), and on
        each area's first tie line to the outside what the area needs beyond its own generation (plus a 3 %
        loss). Within each meter point's max power."""
        reg = self.registry
        if self._profiles is None:
            from .grid_mix import meter_specs
            from .profiles import Profiles

            self._ordinary, specs = meter_specs(reg, self.seed)
            start = dt.datetime.fromtimestamp(reg.genesis_period * reg.period_seconds, dt.timezone.utc)
            self._profiles = Profiles(specs, self.seed, start)
        imp, exp = self._profiles.energy_wh(period - reg.genesis_period)
        out = {m: (min(i, reg.max_wh(m)), min(e, reg.max_wh(m)))
               for m, i, e in zip(self._ordinary, imp.tolist(), exp.tolist())}
        need = dict.fromkeys(reg.grid_areas, 0)
        for m, (i, e) in out.items():
            need[reg.meter_points[m].grid_area] += round(i * 1.03) - e
        for m in reg.boundary:
            mp = reg.meter_points[m]
            if mp.area_in:  # a tie between two areas of the network: idle in this data set
                out[m] = (0, 0)
                continue
            into = max(-reg.max_wh(m), min(reg.max_wh(m), need.pop(mp.area_out, 0)))
            out[m] = (0, into) if into >= 0 else (-into, 0)  # import direction = out of the area
        return out

    def values(self, period: int, *, skip: float = 0.0) -> list[tuple[str, int, int]]:
        """(malo_id, import Wh, export Wh) for the period in registry order (see `energies`); a share `skip`
        of the meter points sends nothing (they will be substituted)."""
        rng = random.Random(self.seed * 1_000_003 + period)
        energies = self.energies(period)
        return [(m, *energies[m]) for m in self.registry.malo_order if not (skip and rng.random() < skip)]

    def readings(self, period: int, *, skip: float = 0.0, version: int = 1) -> list[Reading]:
        chain = self.registry.chain_id
        return [sign_reading(self.meter_key(m), chain, m, period, imp, exp, version=version)
                for m, imp, exp in self.values(period, skip=skip)]

    def schedules(self, period: int, count: int) -> list[Schedule]:
        """`count` trades between random pairs of groups, each signed by both sides (so they match)."""
        rng = random.Random(self.seed * 7_919 + period)
        groups = sorted(self.group_keys)
        out = []
        pairs = set()
        for _ in range(count):
            a, b = rng.sample(groups, 2)
            if (a, b) in pairs:
                continue
            pairs.add((a, b))
            wh = rng.randint(1, 50_000_000)
            chain = self.registry.chain_id
            out.append(sign_schedule(self.group_keys[a], chain, a, b, period, wh))
            if self.group_keys[b].public != self.group_keys[a].public:
                out.append(sign_schedule(self.group_keys[b], chain, a, b, period, wh))
        return out

    def batches(self, period: int, *, size: int = 10_000, skip: float = 0.0, schedules: int = 0) -> list[Batch]:
        readings = self.readings(period, skip=skip)
        sched = self.schedules(period, schedules) if schedules else []
        chain = self.registry.chain_id
        out = [make_batch(self.submitter, chain, readings[i:i + size]) for i in range(0, len(readings), size)]
        if sched:
            out.append(make_batch(self.submitter, chain, (), sched))
        return out


def make_synthetic(meters: int, seed: int = 0, *, areas: int = 4, groups: int = 8, validators: int = 4,
                   period_seconds: int = 900, correction_window: int = 4, grace_seconds: int = 60,
                   genesis_period: int | None = None, switches: int = 0,
                   shared_meter_keys: int = 0) -> Synthetic:
    """A registry with `meters` meter points (the customers and plants of a German distribution area, see
    grid_mix.customer_mix, plus per area a tie line to the next area and one to outside the network), `groups` supplier
    groups plus one loss group per area, and `switches` supplier switches two periods after genesis."""
    if meters < 1 or areas < 1 or groups < 2:
        raise ValueError("need at least one meter point, one area and two groups")
    rng = random.Random(seed)
    if genesis_period is None:
        genesis_period = GENESIS_2026 // period_seconds
    params = ChainParams(f"synthetic-{seed}", genesis_period, period_seconds, grace_seconds, correction_window,
                         2 * 86400 // period_seconds)
    area_ids = [eic_for("SYNAREA", i) for i in range(areas)]
    group_ids = [eic_for("SYNBG", i) for i in range(groups)]
    loss_ids = [eic_for("SYNLOSS", i) for i in range(areas)]
    group_keys = {g: key_for(seed, f"group-{g}") for g in group_ids + loss_ids}
    bgs = [BalancingGroup(g, f"Supplier {i}", group_keys[g].public) for i, g in enumerate(group_ids)]
    bgs += [BalancingGroup(g, f"Losses area {i}", group_keys[g].public) for i, g in enumerate(loss_ids)]
    grid_areas = [GridArea(a, f"Area {i}", f"Grid operator {i}", loss_ids[i]) for i, a in enumerate(area_ids)]
    vals = [Validator(f"validator-{i + 1}", key_for(seed, f"validator-{i + 1}").public, area_ids[i % areas])
            for i in range(validators)]
    submitter = key_for(seed, "meter-operator")
    operators = [MeterOperator("Synthetic Metering", submitter.public)]
    grid = Synthetic(None, seed, submitter, group_keys, shared_meter_keys)  # type: ignore[arg-type]
    points = []
    n_boundary = min(meters, 2 * areas)
    lapse = time_lapse(period_seconds)  # a period carries a simulated quarter hour's energy
    mix = iter(customer_mix(meters - n_boundary, rng))
    for i in range(meters):
        malo = malo_for(i)
        key = grid.meter_key(malo).public
        if i < n_boundary:
            a = i // 2
            out, into = (area_ids[a], area_ids[(a + 1) % areas]) if i % 2 == 0 else (area_ids[a], "")
            if out == into:
                into = ""
            points.append(MeterPoint(malo, "boundary", "grid", area_ids[a], "", operators[0].name, key,
                                     math.ceil(50_000_000 * max(1, meters // 2_000) * lapse), out, into))
            continue
        area = area_ids[rng.randrange(areas)]
        group = group_ids[rng.randrange(groups)]
        kind, source, capacity = next(mix)
        power = math.ceil(capacity * lapse)
        points.append(MeterPoint(malo, kind, source, area, group, operators[0].name, key, power))
    assignments = []
    movable = [p for p in points if p.kind != "boundary"]
    for p in rng.sample(movable, min(switches, len(movable))):
        target = group_ids[(group_ids.index(p.balancing_group) + 1) % groups]
        assignments.append(Assignment(p.malo_id, genesis_period + 2, target))
    grid.registry = Registry(params, vals, grid_areas, bgs, operators, points, assignments)
    return grid


def unverified(registry: Registry, batch: Batch) -> CheckedBatch:
    """BENCHMARKS ONLY: a CheckedBatch that trusts every signature, to time settlement without Ed25519.
    Never use it on batches from the network."""
    from stromledger.cascade.checks import reading_precheck, schedule_precheck

    return CheckedBatch.of(batch.digest(), batch, tuple(reading_precheck(registry, r) for r in batch.readings),
                           tuple(schedule_precheck(registry, s) for s in batch.schedules))

