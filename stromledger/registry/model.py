"""The registry: the parties, areas, balancing groups and meter points a chain knows, fixed by its genesis.

Everything here is plain data built once at start-up and only read afterwards, so it is safe to share between
worker threads. Lookups that run once per reading (meter point by MaLo-ID, balancing group of a meter point
in a period) are dict lookups; supplier switches are kept per meter point as sorted period lists (bisect).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from functools import cached_property
from typing import Iterable, NamedTuple

import msgpack

from stromledger.crypto import sha256
from stromledger.periods import Period

# Energy sources a meter point can have. "grid" means plain consumption (no generation behind the meter).
GENERATION_SOURCES = ("battery", "biomass", "chp", "coal", "gas", "hydro", "nuclear", "other", "pv", "wind")
SOURCES = GENERATION_SOURCES + ("grid",)
KINDS = ("consumer", "producer", "prosumer", "boundary")

REGISTRY_HASH_DOMAIN = "stromledger/registry/1"
DEFAULT_LOSS_PLAUSIBILITY_PERCENT = 10  # distribution grids lose a few percent; ten is far outside that


@dataclass(frozen=True, slots=True)
class Validator:
    name: str
    public_key: bytes
    grid_area: str  # EIC of the grid area whose operator runs this validator


@dataclass(frozen=True, slots=True)
class GridArea:
    eic: str  # Y-EIC of the balancing area
    name: str
    operator: str  # the grid operator (DSO/TSO) by name
    loss_group: str  # EIC of the balancing group that books this area's grid loss
    market_partner_id: str = ""  # the grid operator's 13-digit market-partner id (sender of market messages)
    committee: tuple[str, ...] = ()  # validator names running this area's chain; () = every validator


@dataclass(frozen=True, slots=True)
class BalancingGroup:
    eic: str  # Y-EIC
    name: str
    operator_key: bytes  # the balance responsible party's key: signs schedules
    market_partner_id: str = ""  # the balance-responsible party's (BKV) 13-digit market-partner id


@dataclass(frozen=True, slots=True)
class ExternalParty:
    """A market party outside the network that balancing groups trade with: a power exchange, a balancing
    group or TSO of another control area. It holds no key here: a schedule to or from it is signed by the
    in-network group's operator alone, and it is energy leaving (to it) or entering (from it) the network."""

    eic: str  # any valid EIC (exchanges are usually X- or Y-coded)
    name: str


@dataclass(frozen=True, slots=True)
class Supplier:
    """A supplier (Lieferant, LF): sells the energy of its meter points and belongs to the balancing group
    (Bilanzkreis) of a balance-responsible party (BKV, the group's operator), which balances that energy."""

    id: str  # 13-digit market-partner id (BDEW code number)
    name: str
    balancing_group: str  # EIC of the group its meter points are balanced in


@dataclass(frozen=True, slots=True)
class MeterOperator:
    name: str
    public_key: bytes  # submits batches of its meters' readings


class MeterPoint(NamedTuple):
    """One market location. A tuple, because a registry holds up to millions of them.

    Boundary meters (tie lines) measure the exchange between `area_out` and `area_in`: the meter's import
    direction (A+) is energy flowing from `area_out` into `area_in`, its export direction (A-) the reverse.
    One side may be "" (outside the network). Boundary meters belong to no balancing group.
    """

    malo_id: str
    kind: str  # consumer, producer, prosumer or boundary
    source: str  # one of SOURCES
    grid_area: str  # EIC of the area that operates the meter point
    balancing_group: str  # EIC of its balancing group from genesis on ("" for boundary meters)
    meter_operator: str  # name of the meter operator
    meter_key: bytes  # the meter's Ed25519 public key: signs its readings
    max_power_w: int  # connection capacity; no period may exceed max_power_w * period_seconds / 3600 Wh
    area_out: str = ""
    area_in: str = ""
    supplier: str = ""  # market-partner id of its supplier from genesis on ("" if the registry names none)


@dataclass(frozen=True, slots=True, order=True)
class Assignment:
    """A supplier switch: from `from_period` on, meter point `malo_id` is in balancing group `group` (and
    supplied by `supplier`, the market-partner id of a supplier of that group, when the registry names one)."""

    malo_id: str
    from_period: int
    group: str
    supplier: str = ""


@dataclass(frozen=True, slots=True)
class ChainParams:
    chain_id: str
    genesis_period: int  # index of the first settled period (= first height)
    period_seconds: int
    grace_seconds: int  # gate closure = period end + grace
    correction_window: int  # a seal at height h may still correct periods h - correction_window .. h - 1
    schedule_horizon: int  # schedules may be submitted up to this many periods ahead
    # An area's grid loss is implausible when |loss| exceeds this share (percent) of the energy through the
    # area, max(inj + exin, wd + exout); such areas are flagged in every result, never corrected.
    loss_plausibility_percent: int = DEFAULT_LOSS_PLAUSIBILITY_PERCENT


class Registry:
    """The genesis content, indexed for the hot path. Build it with `load_genesis` (checked) or directly
    (synthetic data, tests)."""

    def __init__(
        self,
        params: ChainParams,
        validators: Iterable[Validator],
        grid_areas: Iterable[GridArea],
        balancing_groups: Iterable[BalancingGroup],
        meter_operators: Iterable[MeterOperator],
        meter_points: Iterable[MeterPoint],
        assignments: Iterable[Assignment] = (),
        external_parties: Iterable[ExternalParty] = (),
        suppliers: Iterable[Supplier] = (),
        *,
        network_committee: Iterable[str] = (),
        scope: str = "",
        root_chain_id: str = "",
    ):
        self.params = params
        # The genesis registry has scope "" and settles everything; a chain's view (registry/scopes.py) has
        # scope "network" or an area EIC. Readings and schedules are signed under the genesis chain id
        # (`root_chain_id`): they are facts about the grid, and the view decides which chain may settle them.
        self.scope = scope
        self.root_chain_id = root_chain_id or params.chain_id
        self.network_committee: tuple[str, ...] = tuple(network_committee)  # () = every validator
        self.validators: tuple[Validator, ...] = tuple(validators)  # genesis order = proposer order
        self.grid_areas: dict[str, GridArea] = {a.eic: a for a in sorted(grid_areas, key=lambda a: a.eic)}
        self.balancing_groups: dict[str, BalancingGroup] = {
            g.eic: g for g in sorted(balancing_groups, key=lambda g: g.eic)}
        self.meter_operators: dict[str, MeterOperator] = {
            o.name: o for o in sorted(meter_operators, key=lambda o: o.name)}
        self.meter_points: dict[str, MeterPoint] = {m.malo_id: m for m in meter_points}
        self.malo_order: tuple[str, ...] = tuple(sorted(self.meter_points))
        self.assignments: tuple[Assignment, ...] = tuple(sorted(assignments))
        switches: dict[str, tuple[list[int], list[str]]] = {}
        for a in self.assignments:
            periods, groups = switches.setdefault(a.malo_id, ([], []))
            periods.append(a.from_period)
            groups.append(a.group)
        self._switches = switches
        self.loss_groups: dict[str, tuple[str, ...]] = {}  # loss group EIC -> the areas whose loss it books
        for a in self.grid_areas.values():
            self.loss_groups[a.loss_group] = self.loss_groups.get(a.loss_group, ()) + (a.eic,)
        self.group_keys: dict[str, bytes] = {g.eic: g.operator_key for g in self.balancing_groups.values()}
        self.external_parties: dict[str, ExternalParty] = {
            x.eic: x for x in sorted(external_parties, key=lambda x: x.eic)}
        self.suppliers: dict[str, Supplier] = {x.id: x for x in sorted(suppliers, key=lambda x: x.id)}
        supplier_switches: dict[str, tuple[list[int], list[str]]] = {}
        for a in self.assignments:
            if a.supplier:
                periods, names = supplier_switches.setdefault(a.malo_id, ([], []))
                periods.append(a.from_period)
                names.append(a.supplier)
        self._supplier_switches = supplier_switches
        self.submitter_keys: frozenset[bytes] = frozenset(
            [v.public_key for v in self.validators]
            + [o.public_key for o in self.meter_operators.values()]
            + [g.operator_key for g in self.balancing_groups.values()])
        self.boundary: tuple[str, ...] = tuple(m for m in self.malo_order if self.meter_points[m].kind == "boundary")
        self._overrides_cache: dict[int, dict[str, str]] = {}
        # Filled in registry versions with changes in effect (registry/changes.py), for precise reasons:
        self.retired: dict[str, int] = {}  # MaLo-ID -> the period it was retired from
        self.old_keys: dict[str, frozenset[bytes]] = {}  # MaLo-ID -> meter keys rotated out
        self.closed_groups: dict[str, int] = {}  # balancing group EIC -> the period it was closed from

    # -- parameters, for short call sites ----------------------------------------------------------------

    @property
    def chain_id(self) -> str:
        return self.params.chain_id

    @property
    def genesis_period(self) -> int:
        return self.params.genesis_period

    @property
    def period_seconds(self) -> int:
        return self.params.period_seconds

    @property
    def correction_window(self) -> int:
        return self.params.correction_window

    def period(self, index: int) -> Period:
        return Period(index, self.params.period_seconds)

    # -- lookups -----------------------------------------------------------------------------------------

    def group_of(self, malo_id: str, period: int) -> str:
        """The balancing group of a meter point in a period ("" for boundary meters)."""
        mp = self.meter_points[malo_id]
        sw = self._switches.get(malo_id)
        if sw is None:
            return mp.balancing_group
        i = bisect.bisect_right(sw[0], period)
        return sw[1][i - 1] if i else mp.balancing_group

    def group_overrides(self, period: int) -> dict[str, str]:
        """Meter points whose balancing group in `period` differs from their genesis group (supplier switches
        in effect), for settling a whole period without a bisect per meter point."""
        cached = self._overrides_cache.get(period)
        if cached is None:
            cached = {}
            for malo, (periods, groups) in self._switches.items():
                i = bisect.bisect_right(periods, period)
                if i and groups[i - 1] != self.meter_points[malo].balancing_group:
                    cached[malo] = groups[i - 1]
            if len(self._overrides_cache) > 64:
                self._overrides_cache.clear()
            self._overrides_cache[period] = cached
        return cached

    def supplier_of(self, malo_id: str, period: int) -> str:
        """The market-partner id of a meter point's supplier in a period ("" when the registry names none)."""
        sw = self._supplier_switches.get(malo_id)
        if sw is not None:
            i = bisect.bisect_right(sw[0], period)
            if i:
                return sw[1][i - 1]
        return self.meter_points[malo_id].supplier

    def max_wh(self, malo_id: str, periods: int = 1) -> int:
        """The most energy the meter point can move in one direction in `periods` periods (floor, Wh)."""
        return self.meter_points[malo_id].max_power_w * self.params.period_seconds * periods // 3600

    @property
    def settles_schedules(self) -> bool:
        """Schedules are settled by the genesis registry's chain and the network chain, never by an area's."""
        return self.scope in ("", "network")

    def validator_keys(self) -> tuple[bytes, ...]:
        return tuple(v.public_key for v in self.validators)

    # -- the canonical hash ------------------------------------------------------------------------------

    def canonical_bytes(self) -> bytes:
        """The registry's content as one canonical msgpack array; see docs/domain.md for the layout."""
        p = self.params
        content = [
            REGISTRY_HASH_DOMAIN,
            [p.chain_id, p.genesis_period, p.period_seconds, p.grace_seconds, p.correction_window,
             p.schedule_horizon],
            [[v.name, v.public_key, v.grid_area] for v in self.validators],
            [[a.eic, a.name, a.operator, a.loss_group] for a in self.grid_areas.values()],
            [[g.eic, g.name, g.operator_key] for g in self.balancing_groups.values()],
            [[o.name, o.public_key] for o in self.meter_operators.values()],
            [list(self.meter_points[m][:10]) for m in self.malo_order],
            [[a.malo_id, a.from_period, a.group] for a in self.assignments],
        ]
        # Later additions are appended, tagged, only when present: registries without them keep their hash.
        if p.loss_plausibility_percent != DEFAULT_LOSS_PLAUSIBILITY_PERCENT:
            content.append(["loss_plausibility_percent", p.loss_plausibility_percent])
        ids = sorted((x.eic, x.market_partner_id) for x in [*self.grid_areas.values(),
                                                            *self.balancing_groups.values()] if x.market_partner_id)
        if ids:
            content.append(["market_partner_ids", [list(x) for x in ids]])
        if self.external_parties:
            content.append(["external_parties", [[x.eic, x.name] for x in self.external_parties.values()]])
        if self.suppliers:
            content.append(["suppliers", [[x.id, x.name, x.balancing_group] for x in self.suppliers.values()],
                            [[m, self.meter_points[m].supplier] for m in self.malo_order
                             if self.meter_points[m].supplier],
                            [[a.malo_id, a.from_period, a.supplier] for a in self.assignments if a.supplier]])
        if self.network_committee or any(a.committee for a in self.grid_areas.values()):
            # which validators run which chain: part of what every chain's validators agreed on
            content.append(["committees", [[a.eic, list(a.committee)] for a in self.grid_areas.values()],
                            list(self.network_committee)])
        return msgpack.packb(content, use_bin_type=True)

    @property
    def version(self) -> bytes:
        """The content address of this registry version: `hash` for the genesis (view) itself, else the hash of
        the genesis view's hash and the digests of the changes in effect (registry/changes.py)."""
        return self.__dict__.get("_version") or self.hash

    @cached_property
    def hash(self) -> bytes:
        """SHA-256 of `canonical_bytes()`: pins the genesis content, whatever its file formatting."""
        return sha256(self.canonical_bytes())

    def __repr__(self) -> str:
        return (f"Registry({self.chain_id!r}, {len(self.validators)} validators, {len(self.grid_areas)} areas, "
                f"{len(self.balancing_groups)} groups, {len(self.meter_points)} meter points)")
