"""The network chain's value: building and validating the NetworkSeal from certified area checkpoints.

Pure, like the cascade. `build_network_seal(genesis, state, height, batches, checkpoints)` builds the seal of
`height`: the network view's own PeriodSeal over the schedule batches (the unchanged cascade), then per
period in the correction window the certified area results it uses, and the NetworkResults that changed.
`rebuild_network_seal` validates a proposed seal by rebuilding it from the same inputs. `NetworkLedger`
ties it together for a node, like cascade.Ledger does for an area.

Rules (docs/cascade.md, "The network level"):
- for each period and area the network uses the certified result of the highest area height it has; an
  area with none is **absent**: no cells, its tie lines taken from the neighbour's certified seal (or 0 Wh
  with source "" if neither side is in), its loss = its net intake over its tie lines, booked to its loss
  group, and it is listed in `absent`;
- a tie line's flow comes from its operating area's seal, else from the other side's; when both are in and
  differ the line is `disputed` (flagged; the operator's values count);
- period `height` gets version 1; an earlier period in the window gets version + 1 when the set of area
  results it uses changes (a late checkpoint or an area correction). Schedules of a period are those of its
  version 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable, Mapping

import msgpack

from stromledger.cascade.checks import CheckedBatch, correctable_from
from stromledger.cascade.ledger import Ledger, LedgerError
from stromledger.cascade.messages import CellTotal, ScheduleIssue, ScheduleLine
from stromledger.cascade.rejections import Reason, Rejection
from stromledger.cascade.rows import area_and_group_totals, book_boundary, external_net  # the area level's own
from stromledger.cascade.settle import BatchLike, NotEligible, build_seal, rebuild_seal
from stromledger.cascade.state import SettledState, StateError
from stromledger.codec import CodecError
from stromledger.crypto import sha256
from stromledger.registry import NETWORK, Registry, registry_at, view
from stromledger.registry.market import MarketChange

from .checkpoint import Certified, verify_checkpoint
from .messages import ABSENT, AreaUse, NetworkChecks, NetworkResult, NetworkSeal, TieFlow

NETWORK_STATE_FORMAT = "stromledger/network-state/1"
ZERO_HASH = bytes(32)


@dataclass(frozen=True, slots=True)
class AreaPart:
    """What the network keeps of one area's certified result for one period."""

    height: int
    seal_hash: bytes
    version: int
    cells: tuple[CellTotal, ...]
    ties: tuple[tuple[str, int, int], ...]  # (malo_id, import_wh, export_wh) by MaLo-ID

    @classmethod
    def of(cls, cp: Certified, period: int) -> AreaPart:
        r = cp.results[period]
        flows = cp.ties[period]
        return cls(cp.height, cp.seal_hash, r.version, tuple(r.cells),
                   tuple((m, *flows[m]) for m in sorted(flows)))

    def to_wire(self) -> list:
        return [self.height, self.seal_hash, self.version, [c.to_wire() for c in self.cells],
                [list(t) for t in self.ties]]

    @classmethod
    def from_wire(cls, w: list) -> AreaPart:
        return cls(w[0], w[1], w[2], tuple(CellTotal.from_wire(c) for c in w[3]), tuple(tuple(t) for t in w[4]))


class NetworkState:
    """The network chain's settled state: the base cascade state (schedules), the last NetworkSeal, and per
    period in the window the area results used and the latest NetworkResult."""

    def __init__(self, base: SettledState):
        self.base = base
        self.seal_hash = ZERO_HASH
        self.parts: dict[int, dict[str, AreaPart]] = {}
        self.results: dict[int, NetworkResult] = {}

    @classmethod
    def genesis(cls, genesis: Registry) -> NetworkState:
        return cls(SettledState.genesis(view(genesis, NETWORK)))

    @property
    def height(self) -> int | None:
        return self.base.height

    def next_height(self, genesis: Registry) -> int:
        return self.base.next_height(genesis)

    def apply(self, genesis: Registry, outcome: NetworkOutcome) -> None:
        if outcome.seal.previous != self.seal_hash:
            raise StateError(f"network seal for height {outcome.height} does not follow the last one")
        self.base.apply(view(genesis, NETWORK), outcome.base)
        self.parts.update(outcome.parts)
        for r in outcome.seal.results:
            self.results[r.period] = r
        self.seal_hash = outcome.seal_hash
        lo = correctable_from(genesis, self.base.height + 1)
        for p in [p for p in self.parts if p < lo]:
            del self.parts[p]
        for p in [p for p in self.results if p < lo]:
            del self.results[p]

    def encode(self) -> bytes:
        return msgpack.packb([
            NETWORK_STATE_FORMAT, self.base.encode(), self.seal_hash,
            [[p, [[a, self.parts[p][a].to_wire()] for a in sorted(self.parts[p])]] for p in sorted(self.parts)],
            [[p, self.results[p].to_wire()] for p in sorted(self.results)],
        ], use_bin_type=True)

    @classmethod
    def decode(cls, data: bytes) -> NetworkState:
        try:
            fmt, base, seal_hash, parts, results = msgpack.unpackb(data, raw=False, strict_map_key=True)
            if fmt != NETWORK_STATE_FORMAT:
                raise StateError(f"unknown network state format {fmt!r}")
            s = cls(SettledState.decode(base))
            s.seal_hash = seal_hash
            s.parts = {p: {a: AreaPart.from_wire(w) for a, w in rows} for p, rows in parts}
            s.results = {p: NetworkResult.from_wire(w) for p, w in results}
        except StateError:
            raise
        except Exception as e:
            raise StateError(f"not a network state: {e}") from None
        if s.encode() != bytes(data):
            raise StateError("network state bytes are not canonical")
        return s


@dataclass(frozen=True, slots=True)
class NetworkOutcome:
    seal: NetworkSeal
    seal_bytes: bytes
    seal_hash: bytes
    base: object  # cascade.settle.Outcome of the base seal
    parts: dict[int, dict[str, AreaPart]] = field(default_factory=dict)  # the periods whose parts changed

    @property
    def height(self) -> int:
        return self.seal.height


# -- one period's network result ---------------------------------------------------------------------------


def network_result(genesis: Registry, period: int, version: int, parts: Mapping[str, AreaPart],
                   schedules: tuple[ScheduleLine, ...], issues: tuple[ScheduleIssue, ...]) -> NetworkResult:
    """The network's settlement of one period from the area results it uses (absent areas: not in `parts`)."""
    uses, absent, cells = [], [], []
    for a in genesis.grid_areas:
        part = parts.get(a)
        if part is None:
            uses.append(AreaUse(a, 0, ABSENT, 0))
            absent.append(a)
        else:
            uses.append(AreaUse(a, part.height, part.seal_hash, part.version))
            cells.extend(part.cells)
    cells.sort(key=lambda c: (c.area, c.group))
    flows_of = {a: {t[0]: (t[1], t[2]) for t in p.ties} for a, p in parts.items()}
    exin = dict.fromkeys(genesis.grid_areas, 0)
    exout = dict.fromkeys(genesis.grid_areas, 0)
    ties, outside_net = [], 0
    for malo in genesis.boundary:
        mp = genesis.meter_points[malo]
        sides = [s for s in dict.fromkeys((mp.grid_area, mp.area_out, mp.area_in)) if s]
        seen = [flows_of[s][malo] for s in sides if s in flows_of and malo in flows_of[s]]
        source = next((s for s in sides if s in flows_of and malo in flows_of[s]), "")
        fwd, back = seen[0] if seen else (0, 0)
        disputed = any(v != (fwd, back) for v in seen)
        book_boundary(exin, exout, mp, fwd, back)
        if mp.area_out and not mp.area_in:
            outside_net += fwd - back
        elif mp.area_in and not mp.area_out:
            outside_net += back - fwd
        ties.append(TieFlow(malo, mp.area_out, mp.area_in, source, fwd, back, disputed))
    areas, groups = area_and_group_totals(genesis, cells, exin, exout, schedules)
    net_export = sum(x.exout - x.exin for x in areas)
    checks = NetworkChecks(
        cell_inj=sum(c.inj for c in cells), cell_wd=sum(c.wd for c in cells),
        area_residual=sum(abs(x.inj + x.exin - x.wd - x.exout - x.loss) for x in areas),
        tie_net=net_export - outside_net,  # lines between two areas: out of one exactly as into the other
        schedule_net=sum(g.fpi - g.fpe for g in groups), imbalance_sum=sum(g.imb for g in groups),
        net_export=net_export, external_net=external_net(genesis, schedules))
    return NetworkResult(period, version, tuple(uses), tuple(absent), tuple(cells), tuple(ties), tuple(areas),
                         tuple(groups), tuple(schedules), tuple(issues), net_export, checks)


def check_network_result(genesis: Registry, r: NetworkResult,
                         certified: Mapping[bytes, Certified] | None = None) -> Rejection | None:
    """The cross-level invariants of one network result, from its own tables (and, given the certified
    checkpoints by seal hash, against them): every used area's cells equal its certified seal's cells and
    its tie flows the seal's leaves; every tie line between two areas nets out; areas close; group totals are
    the sums of their cells and losses plus matched schedules; the network reconciles. A balancing-group node
    runs it with the checkpoints of its own cells' areas; a node holding all of them has proved everything."""

    def bad(what: str) -> Rejection:
        return Rejection(Reason.INVARIANT_VIOLATED, f"network period {r.period} version {r.version}: {what}")

    if [u.area for u in r.areas_used] != list(genesis.grid_areas):
        return bad("areas_used is not exactly the genesis areas")
    if [u.area for u in r.areas_used if u.seal_hash == ABSENT] != list(r.absent):
        return bad("absent does not list exactly the areas without a seal")
    if [t.malo_id for t in r.ties] != list(genesis.boundary):
        return bad("ties is not exactly the genesis boundary meters")
    parts: dict[str, AreaPart] = {}
    if certified is not None:
        for u in r.areas_used:
            if u.seal_hash == ABSENT:
                continue
            cp = certified.get(u.seal_hash)
            if cp is None or cp.area != u.area or cp.height != u.height or r.period not in cp.results:
                return bad(f"area {u.area}: no certified seal {u.seal_hash.hex()[:16]} with this period")
            part = AreaPart.of(cp, r.period)
            if part.version != u.version:
                return bad(f"area {u.area}: version {u.version}, the certified seal has {part.version}")
            parts[u.area] = part
    else:  # without the checkpoints, trust the cells as listed and re-check the arithmetic
        cells_of: dict[str, list] = {}
        ties_of: dict[str, list] = {}
        for c in r.cells:
            cells_of.setdefault(c.area, []).append(c)
        for t in r.ties:
            ties_of.setdefault(t.source, []).append((t.malo_id, t.fwd, t.back))
        for u in r.areas_used:
            if u.seal_hash != ABSENT:
                parts[u.area] = AreaPart(u.height, u.seal_hash, u.version, tuple(cells_of.get(u.area, ())),
                                         tuple(ties_of.get(u.area, ())))
        if any(c.area not in parts for c in r.cells):
            return bad("cells of an absent area")
    expected = network_result(genesis, r.period, r.version, parts, tuple(r.schedules), tuple(r.schedule_issues))
    if certified is None:
        # Disputes can only be judged with both sides' checkpoints: take them as listed.
        expected = _with_ties(expected, r.ties)
    for name in ("cells", "ties", "areas", "groups", "net_export", "checks"):
        if getattr(expected, name) != getattr(r, name):
            return bad(f"{name} are not what the certified area results give")
    c = r.checks
    if c.area_residual != 0 or c.tie_net != 0 or c.schedule_net != -c.external_net or \
            c.imbalance_sum != c.net_export - c.external_net:
        return bad("the network does not reconcile")
    return None


def _with_ties(result: NetworkResult, ties) -> NetworkResult:
    return replace(result, ties=tuple(ties))


# -- the groups of a period -------------------------------------------------------------------------------


def market_version(genesis: Registry, changes: tuple, period: int) -> Registry:
    """The genesis with the market changes the network chain committed (`changes`: its base state's) in effect
    by `period`: the balancing groups, and their market-partner ids, the network settles that period with."""
    return registry_at(genesis, period, tuple(c for c in changes if isinstance(c, MarketChange)))


def unopened_group(registry: Registry, cp: Certified, period: int) -> str:
    """A balancing group the certified area result of `period` names that is not open in the network's
    registry version of that period ("" if none): an area chain committed a group the network chain did not."""
    return next((c.group for c in cp.results[period].cells if c.group not in registry.balancing_groups), "")


# -- the seal ----------------------------------------------------------------------------------------------


def build_network_seal(genesis: Registry, state: NetworkState, height: int, batches: Iterable[BatchLike],
                       checkpoints: Iterable[Certified], vote_evidence: Iterable[bytes] = (),
                       last_commit: bytes = b"") -> NetworkOutcome:
    """The NetworkSeal of `height` using the given verified checkpoints (any order; each must change the area
    result some period in the window uses, else NotEligible)."""
    net = view(genesis, NETWORK)
    base = build_seal(net, state.base, height, batches, vote_evidence, last_commit)
    lo = correctable_from(genesis, height)
    changed: dict[int, dict[str, AreaPart]] = {}
    used, heights = [], {}
    for cp in sorted({c.seal_hash: c for c in checkpoints}.values(), key=lambda c: (c.area, c.height)):
        if heights.setdefault((cp.area, cp.height), cp.seal_hash) != cp.seal_hash:
            raise NotEligible(cp.seal_hash, f"a second certified seal of area {cp.area} at height {cp.height}")
        new = False
        for p in sorted(cp.results):
            if not lo <= p <= height:
                continue
            current = changed.get(p, {}).get(cp.area) or state.parts.get(p, {}).get(cp.area)
            if current is None or cp.height > current.height:
                group = unopened_group(market_version(genesis, state.base.changes, p), cp, p)
                if group:
                    raise NotEligible(cp.seal_hash, f"checkpoint of {cp.area} height {cp.height} names {group}, "
                                                    f"no balancing group of the network in period {p}")
                changed.setdefault(p, dict(state.parts.get(p, {})))[cp.area] = AreaPart.of(cp, p)
                new = True
        if not new:
            raise NotEligible(cp.seal_hash, f"checkpoint of {cp.area} height {cp.height} changes nothing")
        used.append(cp.seal_hash)
    changed.setdefault(height, dict(state.parts.get(height, {})))
    results = []
    for p in sorted(changed):
        if p == height:
            base_result = base.seal.result(height)
            sched, issues, version = base_result.schedules, base_result.schedule_issues, 1
        else:
            before = state.results[p]
            sched, issues, version = before.schedules, before.schedule_issues, before.version + 1
        results.append(network_result(market_version(genesis, state.base.changes, p), p, version, changed[p],
                                      tuple(sched), tuple(issues)))
    for r in results:
        broken = check_network_result(market_version(genesis, state.base.changes, r.period), r)
        if broken is not None:
            raise AssertionError(str(broken))  # a bug, never a value to propose
    seal = NetworkSeal(state.seal_hash, base.seal, tuple(sorted(used)), tuple(results))
    data = seal.encode()
    return NetworkOutcome(seal, data, sha256(data), base, changed)


def rebuild_network_seal(seal_bytes: bytes, genesis: Registry, state: NetworkState,
                         batches: Mapping[bytes, BatchLike], certified: Mapping[bytes, Certified],
                         evidence_ok=None, last_commit_ok=None) -> NetworkOutcome | Rejection:
    """Check a proposed NetworkSeal and rebuild it from the same inputs: the outcome if identical."""
    try:
        seal = NetworkSeal.decode(seal_bytes)
    except CodecError as e:
        return Rejection(Reason.OVERSIZED if e.reason == "oversized" else Reason.MALFORMED, str(e))
    if seal.previous != state.seal_hash:
        return Rejection(Reason.WRONG_HEIGHT, "the network seal does not link to the last committed one")
    base = rebuild_seal(seal.base.encode(), view(genesis, NETWORK), state.base, batches, evidence_ok,
                        last_commit_ok)
    if isinstance(base, Rejection):
        return base
    if list(seal.checkpoints) != sorted(set(seal.checkpoints)):
        return Rejection(Reason.MALFORMED, "checkpoint hashes must be ascending and unique")
    missing = [h for h in seal.checkpoints if h not in certified]
    if missing:
        return Rejection(Reason.MISSING_CHECKPOINT, f"{len(missing)} checkpoint(s) missing, first {missing[0].hex()}")
    for r in seal.results:
        broken = check_network_result(market_version(genesis, state.base.changes, r.period), r)
        if broken is not None:
            return broken
    try:
        outcome = build_network_seal(genesis, state, seal.height, [batches[d] for d in seal.base.batches],
                                     [certified[h] for h in seal.checkpoints], seal.base.vote_evidence,
                                     seal.base.last_commit)
    except NotEligible as e:
        return Rejection(Reason.CHECKPOINT_NOT_ELIGIBLE, str(e))
    if outcome.seal_bytes != bytes(seal_bytes):
        return Rejection(Reason.SEAL_MISMATCH, "rebuilt from the same batches and checkpoints, the network seal "
                                               "differs")
    return outcome


def ignored_checkpoints(seal: NetworkSeal, held: Iterable[Certified]) -> list[str]:
    """The areas the seal settles as absent in its own period although this node holds a certified
    checkpoint with that period. Logged, never a reason to prevote nil: validity must not depend on what a
    validator happens to hold (docs/consensus.md), the area gets a new version at a later height."""
    own = seal.result(seal.height)
    absent = set(own.absent) if own is not None else set()
    return sorted({cp.area for cp in held if cp.area in absent and seal.height in cp.results})


# -- a node's network ledger -------------------------------------------------------------------------------


class NetworkLedger:
    """The network chain's cascade for a node: schedule batches through the base Ledger, verified checkpoints
    in a pool by area seal hash. Flow per height as with cascade.Ledger: admit / add_checkpoint, then propose or
    validate, then commit."""

    def __init__(self, genesis: Registry, state: NetworkState | None = None):
        self.genesis = genesis
        self.registry = view(genesis, NETWORK)
        self.state = state or NetworkState.genesis(genesis)
        self.base = Ledger(self.registry, self.state.base)
        self.checkpoints: dict[bytes, Certified] = {}
        self._outcomes: dict[bytes, NetworkOutcome] = {}

    @property
    def next_height(self) -> int:
        return self.state.next_height(self.genesis)

    # -- what a validator shell calls on any chain's ledger (cascade.Ledger's names) ---------------------

    @property
    def acceptor(self):
        return self.base.acceptor

    def admit(self, batch, now_period, *, map=map, quota_period=None):
        return self.base.admit(batch, now_period, map=map, quota_period=quota_period)

    def batch(self, digest: bytes):
        return self.base.batch(digest)

    def add_fetched(self, batch):
        return self.base.add_fetched(batch)

    def missing_batches(self, seal_bytes: bytes) -> list[bytes]:
        return self.missing(seal_bytes)[0]

    def missing_checkpoints(self, seal_bytes: bytes) -> list[bytes]:
        return self.missing(seal_bytes)[1]

    def add_checkpoint(self, data) -> Certified | Rejection:
        """Verify a checkpoint (from the genesis alone) and keep it if the window can still use it."""
        cp = verify_checkpoint(self.genesis, data)
        if isinstance(cp, Certified) and max(cp.results) >= correctable_from(self.genesis, self.next_height):
            self.checkpoints.setdefault(cp.seal_hash, cp)
        return cp

    def useful_checkpoints(self, height: int) -> list[Certified]:
        """The proposer's choice: every held checkpoint that changes an area result some period uses."""
        lo = correctable_from(self.genesis, height)
        best: dict[tuple[int, str], Certified] = {}
        for cp in self.checkpoints.values():
            window = [p for p in cp.results if lo <= p <= height]
            if any(unopened_group(market_version(self.genesis, self.state.base.changes, p), cp, p) for p in window):
                continue  # never eligible (build_network_seal): the area settled a group the network lacks
            for p in window:
                cur = self.state.parts.get(p, {}).get(cp.area)
                if cur is None or cp.height > cur.height:
                    b = best.get((p, cp.area))
                    if b is None or cp.height > b.height:
                        best[p, cp.area] = cp
        return sorted({cp.seal_hash: cp for cp in best.values()}.values(), key=lambda c: c.seal_hash)

    def propose(self, vote_evidence: Iterable[bytes] = (), last_commit: bytes = b"") -> NetworkOutcome:
        h = self.next_height
        batches: list[CheckedBatch] = self.base.acceptor.eligible(h)
        outcome = build_network_seal(self.genesis, self.state, h, batches, self.useful_checkpoints(h),
                                     vote_evidence, last_commit)
        self._outcomes[outcome.seal_hash] = outcome
        return outcome

    def missing(self, seal_bytes: bytes) -> tuple[list[bytes], list[bytes]]:
        """(batch digests, checkpoint seal hashes) a proposed seal needs that this node lacks."""
        try:
            seal = NetworkSeal.decode(seal_bytes)
        except CodecError:
            return [], []
        return ([d for d in seal.base.batches if d not in self.base.acceptor.batches],
                [h for h in seal.checkpoints if h not in self.checkpoints])

    def validate(self, seal_bytes: bytes, evidence_ok=None, last_commit_ok=None) -> Rejection | None:
        seal_hash = sha256(seal_bytes)
        if seal_hash in self._outcomes:
            return None
        outcome = rebuild_network_seal(seal_bytes, self.genesis, self.state, self.base.acceptor.batches,
                                       self.checkpoints, evidence_ok, last_commit_ok)
        if isinstance(outcome, Rejection):
            return outcome
        self._outcomes[seal_hash] = outcome
        return None

    def commit(self, seal_bytes: bytes) -> NetworkOutcome:
        outcome = self._outcomes.get(sha256(seal_bytes))
        if outcome is None:
            outcome = rebuild_network_seal(seal_bytes, self.genesis, self.state, self.base.acceptor.batches,
                                           self.checkpoints)
            if isinstance(outcome, Rejection):
                raise LedgerError(outcome)
        self.state.apply(self.genesis, outcome)
        self.base.acceptor.committed()
        lo = correctable_from(self.genesis, self.next_height)
        for h in [h for h, cp in self.checkpoints.items() if max(cp.results) < lo]:
            del self.checkpoints[h]
        self._outcomes.clear()
        return outcome
