"""`stromledger devnet --churn`: registry changes while the devnet settles, and the check that each took
effect exactly at its effective period.

The plan (deterministic from the genesis): in every area a supplier switch of one meter point to another
supplier group; in the first area also a new meter point, a retired one and a meter key rotation; and in the
area of the devnet's extra validator (on no committee of the genesis: it follows its area's chain) a committee
change that replaces the committee's last member by it, approved by the whole committee. All take
effect from period genesis + EFFECTIVE_AFTER, so the seal of the genesis height or the next commits them
(docs/registry.md: a change applies two periods after its seal at the earliest). The devnet signs them with
the devnet keys of the areas' grid operators (their validators) and the meter operator, and submits them
right after the nodes start, as a meter operator's client would (`stromledger registry change`).

The check reads the first validator's area exports: a switched meter point is in its old group before the
effective period and in the new one from it; the new meter point has rows from it on; the retired one has
rows only before it; the rotated meter point's readings under the old key are refused from it (the devnet's
light nodes still sign with the genesis key), so its rows from then on are no longer measured. The committee
change is read from the area's commit certificates (the validators' stores and the exports): every height
before the effective one signed by the old committee only, every one from it on by the new one only, and the
added validator among the signers from it on.

With --periods 6 or more (MARKET_PERIODS) a balancing group is also opened from the same period (approved by
the whole network committee, sent to the network committee's validators, which pass it to every chain) and
a meter point of the first area switched into it one period later, signed once the area chain has committed
the opening; the check reads the network exports (the group is settled exactly from its period on) and the
area exports (the meter point moves into it exactly at its period).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import threading
import time
from pathlib import Path
from typing import Callable

from stromledger.cascade import make_batch
from stromledger.cascade.changes import CHANGE_LEAD
from stromledger.cascade.checks import APPROVED_ITEM
from stromledger.ids import make_malo_id, make_market_partner_id
from stromledger.registry import (
    METER_KEY_ROTATED, METER_POINT_ADDED, METER_POINT_RETIRED, NETWORK, SUPPLIER_SWITCH, CommitteeChange, Registry,
    RegistryChange, chain_id, committee, committee_change, registry_at, sign_change, view,
)
from stromledger.registry.committee import approve_committee_change, with_approvals
from stromledger.registry.market import GROUP_OPENED, MarketChange, approve_change, market_change

from .datagen.devnet_genesis import devnet_key, meter_label
from .datagen.synthetic import eic_for

EFFECTIVE_AFTER = 3  # periods after the genesis period
MIN_PERIODS = EFFECTIVE_AFTER + 2  # the last height's export waits for the next commit
MARKET_PERIODS = MIN_PERIODS + 1  # the switch into the opened group applies one period later


def rotated_key_label(malo_id: str) -> str:
    return meter_label(malo_id) + "/rotated-1"


def _operator_label(registry: Registry, name: str) -> str:
    key = registry.meter_operators[name].public_key
    for i in range(len(registry.meter_operators)):
        if devnet_key(f"meter-operator-{i + 1}").public == key:
            return f"meter-operator-{i + 1}"
    raise ValueError(f"meter operator {name} has no devnet key")


def plan_committee_change(registry: Registry, effective: int) -> list[CommitteeChange]:
    """The extra validator (on no committee of the genesis) replaces the last member of its area's committee,
    approved by every member (devnet keys)."""
    seated = {v.name for s in (*registry.grid_areas, NETWORK) for v in committee(registry, s)}
    follower = next((v for v in registry.validators if v.name not in seated), None)
    if follower is None or follower.grid_area not in registry.grid_areas:
        return []
    area = follower.grid_area
    members = [v.name for v in committee(registry, area)]
    c = committee_change(area, effective, [*members[:-1], follower.name])
    cid = chain_id(registry, area)
    return [with_approvals(c, [approve_committee_change(devnet_key(n), cid, c) for n in members])]


def plan_market_churn(registry: Registry, effective: int) -> list:
    """A balancing group opened from `effective` on (approved by the whole network committee) and, one period
    later, a meter point of the first area switched into it: its grid operator signs the switch once the area
    chain has committed the opening (ChurnSubmitter)."""
    area = next(iter(registry.grid_areas))
    mine = [m for m in registry.malo_order if registry.meter_points[m].grid_area == area
            and registry.meter_points[m].kind != "boundary"]
    if len(mine) < 4:
        return []
    group = eic_for("DEVNEWBG", 1)
    opening = market_change(GROUP_OPENED, effective, group, name="Devnet new group",
                            operator_key=devnet_key("new-brp").public,
                            market_partner_id=make_market_partner_id("990000000001"))
    opening = opening.with_approvals(approve_change(devnet_key(v.name), registry.root_chain_id, opening)
                                     for v in committee(registry, NETWORK))
    grid = devnet_key(next(v.name for v in registry.validators if v.grid_area == area))
    return [opening, sign_change(grid, registry.root_chain_id, SUPPLIER_SWITCH, mine[3], effective + 1,
                                 balancing_group=group)]


def opened_by(changes: list, c) -> MarketChange | None:
    """The opening in `changes` of the group a switch `c` goes into (it waits for that opening's commit)."""
    group = getattr(c, "balancing_group", "")
    return next((o for o in changes if isinstance(o, MarketChange) and o.kind == GROUP_OPENED
                 and o.party == group), None) if group else None


def plan_churn(registry: Registry, periods: int = MIN_PERIODS) -> list:
    """The devnet's registry changes, by area (every change signed; see the module doc); with `periods` of
    MARKET_PERIODS or more also a group opened and a meter point switched into it."""
    chain = registry.root_chain_id
    effective = registry.genesis_period + EFFECTIVE_AFTER
    loss_groups = {a.loss_group for a in registry.grid_areas.values()}
    suppliers = [g for g in registry.balancing_groups if g not in loss_groups]
    changes = []
    for n, area in enumerate(registry.grid_areas):
        grid = devnet_key(next(v.name for v in registry.validators if v.grid_area == area))
        mine = [m for m in registry.malo_order if registry.meter_points[m].grid_area == area
                and registry.meter_points[m].kind != "boundary"]
        if not mine:
            continue
        switched = mine[0]
        old = registry.group_of(switched, effective)
        new = next((g for g in suppliers if g != old), None)
        if new is not None:
            changes.append(sign_change(grid, chain, SUPPLIER_SWITCH, switched, effective, balancing_group=new))
        if n or len(mine) < 3:
            continue
        retired, rotated = mine[1], mine[2]
        changes.append(sign_change(grid, chain, METER_POINT_RETIRED, retired, effective))
        mp = registry.meter_points[rotated]
        changes.append(sign_change(devnet_key(_operator_label(registry, mp.meter_operator)), chain, METER_KEY_ROTATED,
                                   rotated, effective, meter_key=devnet_key(rotated_key_label(rotated)).public))
        added = next(m for m in (make_malo_id(f"{4_190_000_000 + i:010d}") for i in range(1000))
                     if m not in registry.meter_points)
        changes.append(sign_change(grid, chain, METER_POINT_ADDED, added, effective, grid_area=area,
                                   balancing_group=suppliers[0], meter_key=devnet_key(meter_label(added)).public,
                                   meter_operator=mp.meter_operator, point_kind="consumer", source="grid",
                                   max_power_w=30_000))
    market = plan_market_churn(registry, effective) if periods >= MARKET_PERIODS else []
    return changes + plan_committee_change(registry, effective) + market


def area_of(registry: Registry, c) -> str:
    if isinstance(c, CommitteeChange):
        return c.scope
    if isinstance(c, MarketChange):
        return NETWORK  # sent to the network committee; a validator passes it to every chain it serves
    return c.grid_area if c.kind == METER_POINT_ADDED else registry.meter_points[c.malo_id].grid_area


# -- submitting ----------------------------------------------------------------------------------------------


class ChurnSubmitter:
    """Submits the plan from a background thread (its own trio loop and libp2p host, with a meter operator's
    devnet key as the batch's submitter) until every area's batch has a receipt or `deadline` passes."""

    def __init__(self, registry: Registry, changes: list[RegistryChange], peers: dict[bytes, str],
                 deadline: float, ready: Callable[[], bool] = lambda: True, submitter: str = "meter-operator-1",
                 committed: Callable[[str], int] | None = None):
        self.registry, self.changes, self.peers, self.deadline = registry, changes, peers, deadline
        self.ready = ready  # the validators are up (their status files are written)
        self.committed = committed  # the last height every validator committed on a chain
        self.key = devnet_key(submitter)
        self.lines: list[str] = []
        self.problems: list[str] = []
        self._thread = threading.Thread(target=self._run, name="churn", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float = 30.0) -> None:
        self._thread.join(timeout)
        if self._thread.is_alive():
            self.problems.append("churn: the registry changes were still being submitted at the end")

    def _run(self) -> None:
        import trio

        try:
            trio.run(self._submit)
        except Exception as e:  # reported, never a crash of the devnet run
            self.problems.append(f"churn: submitting failed: {type(e).__name__}: {e}")

    async def _submit(self) -> None:
        import trio

        from stromledger.net.p2p import P2PNetwork

        reg = self.registry
        while not self.ready() and time.time() < self.deadline:
            await trio.sleep(0.2)
        logging.getLogger("stromledger.net").setLevel(logging.WARNING)  # the devnet console shows the nodes'
        net = P2PNetwork(self.key.seed, listen="/ip4/127.0.0.1/tcp/0", admit=reg.submitter_keys.__contains__)
        for key, address in self.peers.items():
            net.add_peer(key, address)
        now = [c for c in self.changes if opened_by(self.changes, c) is None]
        later = [c for c in self.changes if opened_by(self.changes, c) is not None]
        async with net:
            for area, changes in sorted(self._by_area(now).items()):
                await self._send(net, area, changes, self.deadline)
            for area, changes in sorted(self._by_area(later).items()):
                # a switch into a group the plan opens, once the area chain committed the opening
                # (at the latest by the height CHANGE_LEAD before it applies; it was sent before the seal of
                # the genesis height, which usually commits it): sent once that height committed and again
                # after the next, before the seal that must commit the switch; taken twice, it is a duplicate.
                opening = max((opened_by(self.changes, c) for c in changes), key=lambda o: o.effective_period)
                deadline = (min(c.effective_period for c in changes) - CHANGE_LEAD + 1) * reg.period_seconds
                # The second batch comes from another submitter: a batch is known by its digest.
                other = devnet_key("meter-operator-2")
                attempts = [(opening.effective_period - CHANGE_LEAD - 1, self.key)]
                if other.public in reg.submitter_keys and other.public != self.key.public:
                    attempts.append((opening.effective_period - CHANGE_LEAD, other))
                for height, key in attempts:
                    while (self.committed is None or self.committed(area) < height) and time.time() < deadline:
                        await trio.sleep(0.2)
                    if time.time() < deadline:
                        await self._send(net, area, changes, deadline, key)

    def _by_area(self, changes: list) -> dict[str, list]:
        by_area: dict[str, list] = {}
        for c in changes:
            by_area.setdefault(area_of(self.registry, c), []).append(c)
        return by_area

    async def _send(self, net, area: str, changes: list, deadline: float, key=None) -> None:
        """One batch of an area's (or the network's) changes to a member of its committee, until a receipt."""
        import trio

        from .meter_point import SubmitFailed, batch_refused, reason_label, submit_batch

        reg = self.registry
        signed = [c for c in changes if isinstance(c, RegistryChange)]
        approved = [c for c in changes if not isinstance(c, RegistryChange)]
        data = make_batch(key or self.key, reg.chain_id, changes=signed, approved=approved).encode()
        members = [v.public_key for v in committee(reg, area)]
        while True:
            try:
                validator, receipt = await submit_batch(net, members, data, reg.chain_id, timeout=5)
            except SubmitFailed as e:
                if time.time() > deadline:
                    self.problems.append(f"churn: no validator took the changes of {area}: {e}")
                    return
                await trio.sleep(0.5)
                continue
            if batch_refused(receipt):
                self.problems.append(f"churn: the changes of {area} were refused: "
                                     f"{reason_label(receipt.batch_reason)}")
            for item in receipt.rejected:
                refused = (approved if item.kind == APPROVED_ITEM else signed)[item.index]
                self.problems.append(f"churn: {refused.describe()} refused: "
                                     f"{reason_label(item.reason)}: {item.message}")
            self.lines.append(f"churn: {len(changes)} registry change(s) of {area} submitted, "
                              f"{receipt.accepted} accepted")
            return


# -- checking ------------------------------------------------------------------------------------------------


def _area_exports(homes: list[Path], area: str) -> dict[int, dict[str, dict]]:
    """period -> MaLo-ID -> its row in the area's latest export of that period (from the first home that has
    the area's exports)."""
    for home in homes:
        base = home / "data" / "chains" / area / "exports"
        manifests = sorted(base.glob("*/v*/manifest.json"))
        if not manifests:
            continue
        out: dict[int, tuple[int, dict[str, dict]]] = {}
        for manifest in manifests:
            doc = json.loads(manifest.read_text())
            period, version = doc["period"]["index"], doc["version"]
            rows = csv.DictReader(io.StringIO((manifest.parent / "meter-points.csv").read_text()))
            if period not in out or out[period][0] < version:
                out[period] = (version, {r["malo_id"]: r for r in rows})
        return {p: rows for p, (_, rows) in out.items()}
    return {}


def _network_groups(homes: list[Path]) -> dict[int, set[str]]:
    """period -> the balancing groups of the network's latest export of that period (first home with any)."""
    for home in homes:
        manifests = sorted((home / "data" / "exports").glob("*/v*/manifest.json"))
        if not manifests:
            continue
        out: dict[int, tuple[int, set[str]]] = {}
        for manifest in manifests:
            doc = json.loads(manifest.read_text())
            period, version = doc["period"]["index"], doc["version"]
            rows = csv.DictReader(io.StringIO((manifest.parent / "balancing-groups.csv").read_text()))
            if period not in out or out[period][0] < version:
                out[period] = (version, {r["balancing_group"] for r in rows})
        return {p: groups for p, (_, groups) in out.items()}
    return {}


def _check_opening(registry: Registry, c: MarketChange, homes: list[Path]) -> tuple[str, str]:
    """(line, problem): the network settles the opened group exactly from its effective period on."""
    groups = _network_groups(homes)
    before = sorted(p for p in groups if p < c.effective_period)
    after = sorted(p for p in groups if p >= c.effective_period)
    if not before or not after:
        return "", (f"churn: {c.describe()}: no network exports on both sides of period {c.effective_period} "
                    f"(exported periods {sorted(groups)})")
    bad = [p for p in before if c.party in groups[p]] + [p for p in after if c.party not in groups[p]]
    if bad:
        return "", f"churn: {c.describe()}: not in effect exactly from period {c.effective_period} (wrong in {bad})"
    return (f"churn: {c.describe()}: no such group in the network exports of {before[0]}..{before[-1]}, settled "
            f"in {after[0]}..{after[-1]}"), ""


def check_churn(registry: Registry, changes: list[RegistryChange], homes: list[Path]) -> tuple[list[str], list[str]]:
    """(lines, problems): did each change take effect exactly at its effective period in the exports?"""
    lines, problems = [], []
    exports = {area: _area_exports(homes, area) for area in registry.grid_areas}
    for c in changes:
        if isinstance(c, (CommitteeChange, MarketChange)):
            check = _check_committee_change if isinstance(c, CommitteeChange) else _check_opening
            line, problem = check(registry, c, homes)
            lines += [line] if line else []
            problems += [problem] if problem else []
            continue
        rows = exports.get(area_of(registry, c), {})
        before = sorted(p for p in rows if p < c.effective_period)
        after = sorted(p for p in rows if p >= c.effective_period)
        what = c.describe()
        if not before or not after:
            problems.append(f"churn: {what}: no area exports on both sides of period {c.effective_period} "
                            f"(exported periods {sorted(rows)})")
            continue
        row = {p: rows[p].get(c.malo_id) for p in rows}
        if c.kind == SUPPLIER_SWITCH:
            old = registry.group_of(c.malo_id, c.effective_period - 1)
            bad = [p for p in before if (row[p] or {}).get("balancing_group") != old] + \
                  [p for p in after if (row[p] or {}).get("balancing_group") != c.balancing_group]
            seen = f"in {old} in periods {before[0]}..{before[-1]}, in {c.balancing_group} in {after[0]}..{after[-1]}"
        elif c.kind == METER_POINT_ADDED:
            bad = [p for p in before if row[p]] + [p for p in after if not row[p]]
            seen = f"absent before period {c.effective_period}, a row from it on ({after[0]}..{after[-1]})"
        elif c.kind == METER_POINT_RETIRED:
            bad = [p for p in before if not row[p]] + [p for p in after if row[p]]
            seen = f"rows in {before[0]}..{before[-1]}, none from period {c.effective_period} on"
        else:  # rotation: the light node still signs with the genesis key, which no longer counts
            bad = [p for p in before if not row[p]] + \
                  [p for p in after if not row[p] or row[p].get("quality") in ("measured", "corrected")]
            seen = (f"settled in {before[0]}..{before[-1]}; from period {c.effective_period} on its old key's "
                    "readings are refused (rotated_key) and it is no longer measured")
        if bad:
            problems.append(f"churn: {what}: not in effect exactly from period {c.effective_period} "
                            f"(wrong in periods {sorted(bad)})")
        else:
            lines.append(f"churn: {what}: {seen}")
    return lines, problems


def _signers(registry: Registry, c: CommitteeChange, homes: list[Path]) -> dict[int, set[str]]:
    """height -> names of the validators whose precommit is in a commit certificate of that height of the
    change's chain: every certificate the homes' stores hold (each validator's own) and their exports carry."""
    from stromledger.consensus import CommitCertificate
    from stromledger.store import Store

    from .chains import chain_store_path

    area = view(registry, c.scope)
    out: dict[int, set[str]] = {}

    def note(height: int, cert: CommitCertificate) -> None:
        members = registry_at(area, height, (c,)).validators
        out.setdefault(height, set()).update(members[s.validator].name for s in cert.signatures
                                             if s.validator < len(members))
    for home in homes:
        path = chain_store_path(home / "data", c.scope)
        if path.exists():
            with Store(path) as store:
                for commit in store.commits_from(registry.genesis_period, 1_000):
                    note(commit.height, CommitCertificate.decode(bytes(commit.certificate)))
        for manifest in sorted((home / "data" / "chains" / c.scope / "exports").glob("*/v1/manifest.json")):
            encoded = json.loads(manifest.read_text())["certificate"]["encoded"]
            cert = CommitCertificate.decode(bytes.fromhex(encoded))
            note(cert.height, cert)
    return out


def _check_committee_change(registry: Registry, c: CommitteeChange, homes: list[Path]) -> tuple[str, str]:
    """(line, problem): the change's chain was certified by the old committee before its effective height and
    by the new one from it on, with the added validator signing."""
    old = {v.name for v in committee(registry, c.scope)}
    new = set(c.members)
    signers = _signers(registry, c, homes)
    before = sorted(h for h in signers if h < c.effective_period)
    after = sorted(h for h in signers if h >= c.effective_period)
    what = c.describe()
    if not before or not after:
        return "", (f"churn: {what}: no certificates on both sides of height {c.effective_period} "
                    f"(heights {sorted(signers)})")
    wrong = [h for h in before if not signers[h] <= old] + [h for h in after if not signers[h] <= new]
    added, removed = sorted(new - old), sorted(old - new)
    if wrong:
        return "", f"churn: {what}: certificates signed by the wrong committee at heights {wrong}"
    if not all(any(n in signers[h] for h in after) for n in added):
        return "", f"churn: {what}: {', '.join(added)} signed no certificate from height {c.effective_period} on"
    return (f"churn: {what}: heights {before[0]}..{before[-1]} certified by the old committee"
            f"{' (with ' + ', '.join(removed) + ')' if removed else ''}, {after[0]}..{after[-1]} by the new one "
            f"({', '.join(added)} signing, {', '.join(removed) or 'no one'} no longer counted)"), ""
