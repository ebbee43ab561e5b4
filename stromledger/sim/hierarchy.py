"""The simulator over the hierarchy: K area committees and the network committee, each running the real
consensus machine on its own chain id, and the network deciding, per height, which certified area results
it uses.

Each area runs as an ordinary `Simulation` (its own seed stream, its own byzantine members and faults).
Every honest area decision becomes a checkpoint: the decided value's hash and the area committee's commit
certificate. It reaches each network validator after a seeded transit delay; a **stalled** area's
checkpoints come `stall_ms` late (its committee stalled beyond its bound, then recovered), long after the
network's deadline. The network committee then runs as a `Simulation` whose application (`NetworkApp`)
builds and judges `SimNetworkValue`s by the rules of the real network chain (docs/consensus.md):

- a value lists the checkpoints it uses for the first time: (period, area, area value hash, certificate),
  for periods up to its height; each certificate must verify against the area's committee and chain id;
- an (area, period) already used by the committed network chain may not be used again;
- an area with no checkpoint for the value's own period is settled as absent (no entry). Validity does not
  depend on what a validator holds: with a time-dependent valid() (prevote nil on a value that leaves out a
  checkpoint this validator holds) the simulator found heights that never decide: validators locked on a
  value others had judged invalid for good. A proposer that leaves a checkpoint out delays it to a new
  version at a later height;
- a later value that uses a checkpoint of an earlier period is that period's new version.

`check_hierarchy` proves agreement, validity, liveness, no double signing and evidence per chain (the
single-chain checker on every committee) and the cross-level invariants: every checkpoint the decided
network chain uses is the value every honest member of that area decided, with a certificate of that
area's committee; no (area, period) is used twice; and, with an honest network committee, every checkpoint
that reached the network in time is used by the end (so a late area gets its new version).
"""

from __future__ import annotations

import bisect
import dataclasses
import random
from typing import Optional

from stromledger.codec import U8, U16, U32, U64, Blob, CodecError, Hash, Message, Seq, message, nested
from stromledger.consensus.certificate import CertificateError, verify_certificate
from stromledger.consensus.messages import CommitCertificate

from .checker import Violation, check
from .runner import SimNode, SimResult, Simulation
from .scenario import SimConfig, height_budget

MAX_CERTIFICATE = 72 * 1024


@nested
class SimAreaEntry(Message):
    period: U64
    area: U16
    value_hash: Hash
    certificate: Blob(MAX_CERTIFICATE)


@message(48)
class SimNetworkValue(Message):
    height: U64
    round: U32
    builder: U16
    twin: U8  # 0 honest; 1, 2 the twins of an equivocator (they build different values)
    entries: Seq(SimAreaEntry, 100_000)  # sorted by (period, area)


@dataclasses.dataclass(frozen=True)
class HierarchyConfig:
    seed: int
    areas: int = 3
    validators: int = 4  # per area committee
    byzantine: int = 0  # equivocators in every committee (the network's too)
    network_validators: int = 4
    faults: str = "none"  # in every committee
    heights: int = 6
    stalled: int = 1  # the last `stalled` areas deliver their checkpoints stall_ms late
    stall_ms: int = 6_000
    deadline_ms: int = 400  # the network's height h is due this long after the areas' height h
    transit_ms: tuple[int, int] = (5, 80)
    height_interval_ms: int = 2_000
    byzantine_mode: Optional[str] = None

    def __post_init__(self) -> None:
        if self.areas < 1 or not 0 <= self.stalled <= self.areas:
            raise ValueError("need areas >= 1 and 0 <= stalled <= areas")

    @property
    def extra_heights(self) -> int:
        """Network heights after the areas' last one, so late checkpoints can still be used."""
        return self.stall_ms // max(1, self.height_interval_ms) + 3

    def area_config(self, area: int) -> SimConfig:
        return SimConfig(seed=self.seed * 1_000 + area, validators=self.validators, byzantine=self.byzantine,
                         byzantine_mode=self.byzantine_mode, faults=self.faults, heights=self.heights,
                         height_interval_ms=self.height_interval_ms, chain_id=area_chain_id(area))

    def network_config(self) -> SimConfig:
        return SimConfig(seed=self.seed * 1_000 + 999, validators=self.network_validators,
                         byzantine=self.byzantine, byzantine_mode=self.byzantine_mode, faults=self.faults,
                         heights=self.heights + self.extra_heights, height_interval_ms=self.height_interval_ms,
                         chain_id=NETWORK_CHAIN_ID)


NETWORK_CHAIN_ID = "stromledger-sim/network"


def area_chain_id(area: int) -> str:
    return f"stromledger-sim/area/{area}"


@dataclasses.dataclass
class HierarchyResult:
    config: HierarchyConfig
    areas: list[SimResult]
    network: SimResult
    arrivals: dict[int, list[tuple[int, int, int, bytes, bytes]]]  # network validator -> sorted (time, ...)

    def honest_area_values(self, area: int) -> dict[int, set[bytes]]:
        """period -> the value hashes honest members of the area decided."""
        r = self.areas[area]
        honest = {n.id for n in r.honest_nodes()}
        out: dict[int, set[bytes]] = {}
        for d in r.decisions:
            if d.node in honest:
                out.setdefault(d.height, set()).add(d.value_hash)
        return out


class _Certificates:
    """Certificate checks shared by every network node of a run (each is the same pure verdict)."""

    def __init__(self, area_keys: list[list[bytes]]):
        self.area_keys = area_keys
        self.cache: dict[tuple, bool] = {}

    def holds(self, e: SimAreaEntry) -> bool:
        key = (e.area, e.period, e.value_hash, e.certificate)
        got = self.cache.get(key)
        if got is None:
            got = False
            if e.area < len(self.area_keys):
                try:
                    cert = CommitCertificate.decode(e.certificate)
                    verify_certificate(cert, e.value_hash, self.area_keys[e.area], area_chain_id(e.area), e.period)
                    got = True
                except (CodecError, CertificateError):
                    pass
            self.cache[key] = got
        return got


class NetworkApp:
    """A network validator's application: the checkpoints it holds at the current virtual time, and the
    checkpoints its committed network chain already used."""

    def __init__(self, node: SimNode, arrivals: list[tuple], clock, certificates: _Certificates, first: int):
        self.node, self.arrivals, self.clock, self.certs, self.first = node, arrivals, clock, certificates, first
        self.times = [a[0] for a in arrivals]
        self._used: dict[int, set[tuple[int, int]]] = {}

    def held(self) -> dict[tuple[int, int], SimAreaEntry]:
        out: dict[tuple[int, int], SimAreaEntry] = {}
        for _, area, period, value_hash, cert in self.arrivals[:bisect.bisect_right(self.times, self.clock())]:
            out.setdefault((area, period), SimAreaEntry(period, area, value_hash, cert))  # first one wins
        return out

    def used_before(self, height: int) -> set[tuple[int, int]]:
        used: set[tuple[int, int]] = set()
        for h in range(self.first, height):
            commit = self.node.commits.get(h)
            if commit is None:
                continue
            if h not in self._used:
                v = SimNetworkValue.decode(commit.value)
                self._used[h] = {(e.area, e.period) for e in v.entries}
            used |= self._used[h]
        return used

    def build_value(self, height: int, round: int) -> bytes:
        used = self.used_before(height)
        entries = sorted((e for k, e in self.held().items() if e.period <= height and k not in used),
                         key=lambda e: (e.period, e.area))
        twin = {"": 0, "A": 1, "B": 2}[self.node.twin]
        if twin == 2 and entries:
            entries = entries[:-1]  # the other twin leaves one out: the two propose different values
        return SimNetworkValue(height, round, self.node.validator, twin, tuple(entries)).encode()

    def validate(self, height: int, value: bytes) -> bool:
        try:
            v = SimNetworkValue.decode(value)
        except CodecError:
            return False
        if v.height != height:
            return False
        keys = [(e.period, e.area) for e in v.entries]
        if keys != sorted(set(keys)) or any(e.period > height for e in v.entries):
            return False
        used = self.used_before(height)
        return not any((e.area, e.period) in used or not self.certs.holds(e) for e in v.entries)


def simulate_hierarchy(config: HierarchyConfig) -> HierarchyResult:
    areas = [Simulation(config.area_config(i)).run() for i in range(config.areas)]
    net_sim = Simulation(config.network_config())
    rng = random.Random(f"stromledger-sim-checkpoints/{config.seed}")
    stalled = set(range(config.areas - config.stalled, config.areas))
    arrivals: dict[int, list[tuple]] = {v: [] for v in range(config.network_validators)}
    for i, r in enumerate(areas):
        honest = {n.id for n in r.honest_nodes()}
        for d in r.decisions:  # every honest member pushes its checkpoint to every network validator
            if d.node not in honest:
                continue
            late = config.stall_ms if i in stalled else 0
            for v in arrivals:
                at = d.time + late - config.deadline_ms + rng.randint(*config.transit_ms)
                arrivals[v].append((at, i, d.height, d.value_hash, d.commit.certificate.encode()))
    for v in arrivals:
        arrivals[v].sort()
    certs = _Certificates([r.validator_keys for r in areas])
    first = config.network_config().first_height
    for node in net_sim.nodes:
        node.app = NetworkApp(node, arrivals[node.validator], lambda: net_sim.now, certs, first)
    network = net_sim.run()
    return HierarchyResult(config, areas, network, arrivals)


def check_hierarchy(result: HierarchyResult) -> list[Violation]:
    out: list[Violation] = []
    for i, r in enumerate(result.areas):
        out += [dataclasses.replace(v, detail=f"area {i}: {v.detail}") for v in check(r)]
    out += [dataclasses.replace(v, detail=f"network: {v.detail}") for v in check(result.network)]
    out += _cross_level(result)
    return out


def _cross_level(result: HierarchyResult) -> list[Violation]:
    out = []
    net = result.network
    honest = {n.id for n in net.honest_nodes()}
    decided = {}
    for d in net.decisions:
        if d.node in honest:
            decided.setdefault(d.height, d.value)
    values = {i: result.honest_area_values(i) for i in range(len(result.areas))}
    used: dict[tuple[int, int], int] = {}
    for h in sorted(decided):
        v = SimNetworkValue.decode(decided[h])
        for e in v.entries:
            key = (e.area, e.period)
            if key in used:
                out.append(Violation("cross_level", h, f"area {e.area} period {e.period} used again (first at "
                                                       f"height {used[key]})"))
            used.setdefault(key, h)
            if values[e.area].get(e.period, set()) != {e.value_hash}:
                out.append(Violation("cross_level", h, f"area {e.area} period {e.period}: the network used "
                                                       f"{e.value_hash.hex()[:12]}, honest area members decided "
                                                       f"{sorted(x.hex()[:12] for x in values[e.area].get(e.period, ()))}"))
    cfg = result.config
    if cfg.byzantine == 0:
        # With an honest network committee every checkpoint that reached every network validator in time is used.
        ncfg = net.config
        last = ncfg.first_height + ncfg.heights - 1
        budget = height_budget(ncfg, max((n.round_at_heal for n in net.honest_nodes()), default=0))
        cutoff = max(net.plan.heal_at, (last - ncfg.first_height) * ncfg.height_interval_ms) - budget
        reached: dict[tuple[int, int], int] = {}
        for v, items in result.arrivals.items():
            for at, area, period, _, _ in items:
                k = (v, area, period)
                reached[k] = min(reached.get(k, at), at)
        for area, periods in values.items():
            for period in periods:
                if len(periods[period]) != 1:
                    continue
                latest = max(reached.get((v, area, period), 1 << 62) for v in result.arrivals)
                if latest <= cutoff and (area, period) not in used:
                    out.append(Violation("cross_level", period, f"area {area} period {period}: certified "
                                                                f"checkpoint in by {latest} ms, never used"))
    return out


@dataclasses.dataclass
class HierarchySummary:
    runs: int = 0
    violations: dict[str, int] = dataclasses.field(default_factory=dict)
    failing_seeds: list[int] = dataclasses.field(default_factory=list)
    examples: list[tuple[int, Violation]] = dataclasses.field(default_factory=list)
    absent: int = 0  # (height, area) settled as absent in a network height's own period
    late_versions: int = 0  # checkpoints used for an earlier period: new versions
    network_heights: int = 0

    def add(self, result: HierarchyResult, violations: list[Violation]) -> None:
        self.runs += 1
        if violations:
            self.failing_seeds.append(result.config.seed)
            for v in violations:
                self.violations[v.kind] = self.violations.get(v.kind, 0) + 1
            self.examples += [(result.config.seed, v) for v in violations[: max(0, 5 - len(self.examples))]]
        net = result.network
        honest = {n.id for n in net.honest_nodes()}
        seen = {}
        for d in net.decisions:
            if d.node in honest:
                seen.setdefault(d.height, SimNetworkValue.decode(d.value))
        areas = result.config.areas
        for h, v in seen.items():
            if h < net.config.first_height + result.config.heights:
                self.absent += areas - len({e.area for e in v.entries if e.period == h})
            self.late_versions += len({e.period for e in v.entries if e.period < h})
        self.network_heights += len(seen)


def run_hierarchy_seeds(base: HierarchyConfig, seeds) -> HierarchySummary:
    summary = HierarchySummary()
    for seed in seeds:
        result = simulate_hierarchy(dataclasses.replace(base, seed=seed))
        summary.add(result, check_hierarchy(result))
    return summary
