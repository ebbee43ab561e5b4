"""The balancing-group node: a balance responsible party's full node.

It follows the committed seals from the validators (`/stromledger/sync/1`, from the genesis height or the
last height it verified), and for each one:
1. checks the commit certificate against the genesis validators (a seal without a valid certificate is
   refused and asked for elsewhere);
2. fetches the batches the seal lists (`BatchRequest`, each checked against its digest);
3. rebuilds the seal with the cascade from those batches on its own settled state and compares the bytes;
   the certificate of the previous height that the seal carries (`last_commit`) must prove the seal this
   node followed there (the validators checked it too, but this node trusts no quorum to have done so);
   A certified seal that it cannot rebuild identically is a DISCREPANCY: logged at ERROR with where it
   differs (for its own groups: which totals), counted in status.json; the node then goes on from its own
   recomputation (linked to the certified chain), so one bad seal does not stop it;
4. logs its groups' results (INJ, WD, FPI, FPE, IMB, generation mix, unmatched schedules) and keeps the
   commit and its settled state in the store, so that a restart continues where it stopped.

It also submits its schedules: in the devnet (`schedules = "simulated"`), the deterministic trades between the
supplier groups (nodes/feed.py `devnet_trades`), each side signing only its own signature, a few periods
ahead; every 7th period one of them is deliberately one-sided, so the seal's unmatched-schedule report shows.

    [balancing_group]
    groups = ["11XBRP-A-------X"]   # default: the groups whose operator key is this node's key
    schedules = "none"               # or "simulated" (devnet trades)
    seed = 1
    schedule_lead = 2                # submit schedules this many periods ahead
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import trio

from stromledger.cascade import (
    PeriodResult, PeriodSeal, Rejection, SettledState, StateError, build_seal, check_batch, make_batch,
    rebuild_seal, sign_schedule,
)
from stromledger.cascade.checks import CheckedBatch, correctable_from
from stromledger.cascade.messages import MISMATCHED
from stromledger.cascade.rejections import Reason
from stromledger.cascade.settle import NotEligible, Outcome, batch_eligible, describe_difference
from stromledger.cascade.ledger import LedgerError
from stromledger.chains import Certified, NetworkLedger, NetworkSeal, NetworkState, verify_checkpoint
from stromledger.codec import CodecError, decode
from stromledger.consensus import CertificateError, Commit, certificate_holds, verify_certificate
from stromledger.crypto import sha256
from stromledger.net import SYNC, NetError, Network
from stromledger.registry import NETWORK, registry_at, view
from stromledger.registry.changes import is_approved

from .feed import SimulatedFeed, devnet_trades, own_schedules
from .light import LightError, verify_commit
from .health import gate_closed_period, health_fields
from .meter_point import REQUEST_TIMEOUT, Outbox, batch_refused, log_receipt, reason_label
from .protocol import MAX_SYNC, BatchReply, BatchRequest, ErrorReply, SyncReply, SyncRequest
from .runtime import NodeContext, RoleNode, run_role

SYNC_LIMIT = 16
FETCH_CHUNK = 4  # batches per request: a reply must fit in one frame (4 MiB)
KEEP_DISCREPANCIES = 20
GROUP_FIELDS = ("inj", "wd", "loss", "fpi", "fpe", "imb")


class FetchFailed(Exception):
    pass


@dataclass
class Discrepancy:
    height: int
    reason: str
    detail: str
    groups: dict[str, str]  # own group -> what differs

    def to_json(self) -> dict[str, Any]:
        return {"height": self.height, "reason": self.reason, "detail": self.detail, "groups": self.groups}


def group_differences(ours: PeriodSeal, theirs: PeriodSeal, groups: list[str]) -> dict[str, str]:
    """For each of `groups`, where the certified seal's totals differ from the recomputed ones."""
    out: dict[str, list[str]] = {}
    mine = {r.period: r for r in ours.results}
    for r in theirs.results:
        o = mine.get(r.period)
        theirs_g = {g.group: g for g in r.groups}
        ours_g = {g.group: g for g in o.groups} if o else {}
        for group in groups:
            a, b = ours_g.get(group), theirs_g.get(group)
            if a == b:
                continue
            if a is None or b is None:
                out.setdefault(group, []).append(f"period {r.period}: missing in the "
                                                 f"{'recomputation' if a is None else 'seal'}")
                continue
            diffs = [f"{f.upper()} sealed {getattr(b, f)} vs recomputed {getattr(a, f)}"
                     for f in GROUP_FIELDS if getattr(a, f) != getattr(b, f)]
            out.setdefault(group, []).append(f"period {r.period}: " + ", ".join(diffs))
    return {g: "; ".join(v) for g, v in out.items()}


def result_summary(result: PeriodResult, group: str) -> Optional[dict[str, Any]]:
    g = next((x for x in result.groups if x.group == group), None)
    if g is None:
        return None
    mix = next((m for m in getattr(result, "mix", ()) if m.group == group), None)  # a network result has none
    return {
        "period": result.period, "version": result.version, "inj": g.inj, "wd": g.wd, "loss": g.loss,
        "fpi": g.fpi, "fpe": g.fpe, "imb": g.imb,
        "mix": {s.source: s.wh for s in mix.sources} if mix else {},
    }


class BalancingGroupNode(RoleNode):
    """The group node's logic, clock injected. `step()` does what is due; `sync_once`, `schedule_due` and
    `flush` can be driven one by one (tests)."""

    def __init__(self, ctx: NodeContext, store, net: Network, *, clock: Callable[[], float] = time.time):
        super().__init__(ctx, store, net, clock)
        cfg = ctx.config.balancing_group
        key = ctx.key.public
        groups = cfg.get("groups") or [g for g, bg in self.reg.balancing_groups.items() if bg.operator_key == key]
        unknown = [g for g in groups if g not in self.reg.balancing_groups]
        if unknown:
            raise ValueError(f"[balancing_group] groups {unknown} are not in the genesis")
        self.groups: list[str] = sorted(groups)
        self.signs_for = [g for g in self.groups if self.reg.balancing_groups[g].operator_key == key]
        self.schedule_mode = str(cfg.get("schedules", "none"))  # devnet homes say "simulated"
        if self.schedule_mode not in ("simulated", "none"):
            raise ValueError(f"[balancing_group] schedules must be \"simulated\" or \"none\", "
                             f"not {self.schedule_mode!r}")
        self.seed = int(cfg.get("seed", 1))
        # the devnet's groups schedule their forecast of what the simulated meters of their portfolio do
        self.feed = SimulatedFeed.from_config(self.reg, cfg) \
            if self.schedule_mode == "simulated" else None
        self.lead = max(0, int(cfg.get("schedule_lead", 2)))
        self.timeout = float(cfg.get("timeout_ms", REQUEST_TIMEOUT * 1000)) / 1000
        # Which chain it follows: "network", the network chain of a genesis with area chains (what validator
        # processes run), or "genesis", one chain settling the whole genesis (in-process stand-ins in tests).
        self.chain = str(cfg.get("chain", "network"))
        if self.chain not in ("network", "genesis"):
            raise ValueError(f"[balancing_group] chain must be \"network\" or \"genesis\", not {self.chain!r}")
        self.net_reg = view(self.reg, NETWORK) if self.chain == "network" else None
        self.network: Optional[NetworkLedger] = None
        self.poll = max(0.2, min(5.0, self.reg.period_seconds / 10))
        self.validators = [p.key for p in ctx.config.peers if p.key != key] or list(self.reg.validator_keys())
        self.outbox = Outbox(store, net, self.validators, self.reg.chain_id, self.log,
                             period_seconds=self.reg.period_seconds, clock=clock, timeout=self.timeout,
                             correction_window=self.reg.correction_window, name=ctx.peer_name)
        self.state = self._load_state()
        v = store.get_meta("bg.next_schedule")
        self.next_schedule = int(v.decode()) if v else self.reg.genesis_period
        saved = store.get_meta("bg.counters")
        c = json.loads(saved) if saved else {}
        self.verified = {"heights": 0, "last_height": self.state.height, "discrepancies": 0, **c.get("verified", {})}
        self.schedules = {"submitted": 0, "rejected": 0, "rejected_by_reason": {}, **c.get("schedules", {})}
        self.results: dict[str, Any] = c.get("results", {})
        self.discrepancies: list[dict[str, Any]] = c.get("recent_discrepancies", [])
        self.halted: Optional[str] = None
        self.next_sync = 0.0
        self._turn = 0

    # -- state ---------------------------------------------------------------------------------------------

    def _load_state(self) -> SettledState:
        snap = self.store.latest_state()
        if self.net_reg is not None:
            try:
                self.network = NetworkLedger(self.reg, NetworkState.decode(snap[1]) if snap else None)
            except StateError as e:
                raise ValueError(f"the stored network state is unreadable ({e}): move data/ledger.sqlite3 away to "
                                 "verify again from genesis") from None
            return self.network.state
        if snap is None:
            return SettledState.genesis(self.reg)
        try:
            state = SettledState.decode(snap[1])
        except StateError as e:
            raise ValueError(f"the stored settled state is unreadable ({e}): move data/ledger.sqlite3 away to "
                             "verify again from genesis") from None
        if state.registry_hash != self.reg.hash:
            raise ValueError("the stored settled state belongs to another genesis")
        return state

    @property
    def next_height(self) -> int:
        return self.state.next_height(self.reg)

    def _save_counters(self) -> None:
        doc = {"verified": self.verified, "schedules": self.schedules, "results": self.results,
               "recent_discrepancies": self.discrepancies}
        with self.store.transaction():
            self.store.set_meta("bg.counters", json.dumps(doc, sort_keys=True).encode())
            self.store.set_meta("bg.next_schedule", str(self.next_schedule).encode())

    # -- following the seals -----------------------------------------------------------------------------------

    def _rotation(self) -> list[bytes]:
        """The validators to ask, starting with the one after the last that failed us."""
        n = len(self.validators)
        return [self.validators[(self._turn + i) % n] for i in range(n)]

    async def _ask(self, payload: bytes) -> tuple[bytes, Any]:
        problems = []
        for peer in self._rotation():
            try:
                reply = decode(await self.net.request(peer, SYNC, payload, timeout=self.timeout))
            except (NetError, CodecError) as e:
                problems.append(f"{self.ctx.peer_name(peer)}: {e}")
                self._turn += 1
                continue
            if isinstance(reply, ErrorReply):
                problems.append(f"{self.ctx.peer_name(peer)}: {reply.reason}: {reply.message}")
                self._turn += 1
                continue
            return peer, reply
        raise FetchFailed("; ".join(problems) or "no validator to ask")

    async def sync_once(self) -> int:
        """Ask a validator for the commits after our height and verify them in order; how many were applied."""
        if self.halted:
            return 0
        peer, reply = await self._ask(SyncRequest(self.next_height, SYNC_LIMIT).encode())
        if not isinstance(reply, SyncReply):
            self._turn += 1
            raise FetchFailed(f"{self.ctx.peer_name(peer)} answered a sync request with {type(reply).__name__}")
        applied = 0
        for data in reply.commits[:MAX_SYNC]:
            try:
                commit = Commit.decode(data)
            except CodecError as e:
                self.ctx.reject("malformed_commit", str(e), peer)
                self._turn += 1
                break
            if commit.certificate.height < self.next_height:
                continue
            if commit.certificate.height > self.next_height:
                break  # a gap in this validator's history
            if not await self.process_commit(commit, peer):
                self._turn += 1  # ask another validator next time
                return applied
            applied += 1
        if not applied and reply.last_height >= self.next_height:
            self._turn += 1  # it has later heights but not ours: another validator may have it
        return applied

    async def process_commit(self, commit: Commit, peer: Optional[bytes] = None) -> bool:
        """Verify one commit at the next height and apply it (or our recomputation after a discrepancy).
        False if it proves nothing (bad certificate) or its batches cannot be fetched yet."""
        if self.network is not None:
            return await self._process_network_commit(commit, peer)
        h = self.next_height
        try:
            seal = verify_commit(self.reg, commit.value, commit.certificate, h,
                                 tuple(c.encode() for c in self._changes() if is_approved(c)))
        except LightError as e:
            self.log.error("REFUSED the commit for height %d from %s: %s", h,
                           self.ctx.peer_name(peer) if peer else "?", e)
            self.ctx.reject(f"commit_{e.reason}", f"height {h}: {e}", peer)
            return False
        try:
            fetched = await self.fetch_batches(seal.batches)
        except FetchFailed as e:
            self.log.warning("height %d: cannot get its batches yet: %s", h, e)
            return False
        checked: dict[bytes, CheckedBatch] = {}
        invalid: list[str] = []
        for digest, data in fetched.items():
            cb = await trio.to_thread.run_sync(check_batch, self.reg, data)
            if isinstance(cb, Rejection):
                invalid.append(f"batch {digest.hex()[:12]}: {cb}")
            else:
                checked[digest] = cb
        outcome = await trio.to_thread.run_sync(rebuild_seal, commit.value, self.reg, self.state, checked, None,
                                                self._last_commit_ok)
        if isinstance(outcome, Rejection) and outcome.reason == Reason.MISSING_BATCH and not invalid:
            self.log.warning("height %d: %s", h, outcome)
            return False
        verified = not isinstance(outcome, Rejection)
        if not verified:
            reason = "invalid_batch" if invalid else outcome.reason.label
            detail = "; ".join(invalid) if invalid else outcome.message
            outcome = self._discrepancy(h, seal, commit, reason, detail, checked)
            if outcome is None:
                return False
        else:
            self.state.apply(self.reg, outcome)
        self._persist(h, commit, fetched)
        self.verified["heights"] += 1
        self.verified["last_height"] = h
        self._report(outcome.seal, verified=verified)
        self._save_counters()
        return True

    async def _process_network_commit(self, commit: Commit, peer: Optional[bytes]) -> bool:
        """A NetworkSeal: its certificate by the network committee, then its schedule batches and the area
        checkpoints it uses (each verified with the genesis alone: certificate of the area committee,
        invariants, tie-line proofs), then the rebuild from them, which runs every cross-level check. A
        certified seal that does not rebuild stops the node (DISCREPANCY): it has no area data to recompute
        the network result from."""
        h, reg = self.next_height, self.net_reg
        try:
            verify_certificate(commit.certificate, sha256(commit.value), self._committee(h), reg.chain_id, h)
            seal = NetworkSeal.decode(commit.value)
        except (CertificateError, CodecError) as e:
            self.log.error("REFUSED the network commit for height %d from %s: %s", h, (peer or b"?").hex()[:12], e)
            self.ctx.reject("commit_" + getattr(e, "reason", "malformed"), f"height {h}: {e}", peer)
            return False
        try:
            fetched = await self.fetch_batches(seal.batches)
            checkpoints = await self.fetch_checkpoints(seal.checkpoints)
        except FetchFailed as e:
            self.log.warning("height %d: cannot get its batches and checkpoints yet: %s", h, e)
            return False
        for data in fetched.values():
            await trio.to_thread.run_sync(self.network.add_fetched, data)
        for data in checkpoints.values():
            await trio.to_thread.run_sync(self.network.add_checkpoint, data)
        why = await trio.to_thread.run_sync(self.network.validate, commit.value, None, self._last_commit_ok)
        try:
            if why is not None:
                raise LedgerError(why)
            outcome = await trio.to_thread.run_sync(self.network.commit, commit.value)
        except LedgerError as e:
            self.halted = f"height {h}: the certified network seal does not rebuild: {e}"
            self.verified["discrepancies"] += 1
            self.log.critical("DISCREPANCY at height %d (period %s): %s. Stopped following.", h,
                              self.reg.period(h).iso(), e)
            self.ctx.reject("seal_discrepancy", f"height {h}: {e}")
            return False
        self.state = self.network.state
        self._persist(h, commit, {**fetched, **{sha256(d): d for d in checkpoints.values()}})
        self.verified["heights"] += 1
        self.verified["last_height"] = h
        self._report(outcome.seal, verified=True)
        self._save_counters()
        return True

    async def fetch_checkpoints(self, seal_hashes) -> dict[bytes, bytes]:
        """The area checkpoints a network seal names, by area seal hash, from the validators (each verified)."""
        want = [h for h in seal_hashes if h not in self.network.checkpoints]
        out: dict[bytes, bytes] = {}
        while want:
            peer, reply = await self._ask(BatchRequest(tuple(want[:FETCH_CHUNK])).encode())
            if not isinstance(reply, BatchReply):
                self._turn += 1
                raise FetchFailed(f"{peer.hex()[:12]} answered a checkpoint request with {type(reply).__name__}")
            got = 0
            for data in reply.batches:
                cp = await trio.to_thread.run_sync(verify_checkpoint, self.reg, data)
                if isinstance(cp, Certified) and cp.seal_hash in want:
                    out[cp.seal_hash] = bytes(data)
                    got += 1
                else:
                    self.ctx.reject("unrequested_checkpoint", str(cp) if isinstance(cp, Rejection) else
                                    "a validator sent a checkpoint that was not asked for", peer)
            if not got:
                self._turn += 1
                raise FetchFailed(f"{peer.hex()[:12]} has none of {len(want[:FETCH_CHUNK])} checkpoints")
            want = [h for h in want if h not in out]
        return out

    def _changes(self) -> tuple:
        """The registry changes this node's followed chain committed (as it rebuilt them)."""
        return self.network.state.base.changes if self.network is not None else self.state.changes

    def _committee(self, height: int) -> tuple[bytes, ...]:
        """The committee that certifies `height` of the followed chain: the genesis', or the one the committee
        changes it committed installed (the seals this node rebuilt: nothing to trust beyond them)."""
        return registry_at(self.net_reg or self.reg, height, self._changes()).validator_keys()

    def _last_commit_ok(self, data: bytes) -> bool:
        """A seal's certificate of the previous height proves the (certified) seal this node followed there."""
        state, reg = self.state, self.net_reg or self.reg
        return state.height is not None and certificate_holds(data, state.seal_hash, self._committee(state.height),
                                                              reg.chain_id, state.height)

    def _discrepancy(self, h: int, seal: PeriodSeal, commit: Commit, reason: str, detail: str,
                     checked: dict[bytes, CheckedBatch]) -> Optional[Outcome]:
        """A certified seal this node cannot rebuild: report it loudly, then continue from its own
        recomputation from the same batches (linked to the certified seal, so the next one can follow)."""
        lo = correctable_from(self.reg, h)
        usable = [cb for d, cb in sorted(checked.items())
                  if batch_eligible(cb, self.state.settled_through(d), h, lo)]
        try:
            ours = build_seal(self.reg, self.state, h, usable, seal.vote_evidence, seal.last_commit)
        except (NotEligible, ValueError, AssertionError) as e:
            self.halted = f"height {h}: cannot recompute the seal: {e}"
            self.log.critical("height %d: the certified seal differs (%s: %s) and this node cannot recompute it: "
                              "%s. Stopped following.", h, reason, detail, e)
            return None
        groups = group_differences(ours.seal, seal, self.groups)
        where = describe_difference(ours.seal, seal)
        self.log.error("DISCREPANCY at height %d (period %s): the validators certified seal %s, but rebuilding it "
                       "from its batches gives %s: %s: %s (%s)", h, self.reg.period(h).iso(),
                       sha256(commit.value).hex()[:16], ours.seal_hash.hex()[:16], reason, detail, where)
        for g, what in groups.items():
            self.log.error("DISCREPANCY at height %d for balancing group %s: %s", h, g, what)
        self.verified["discrepancies"] += 1
        self.discrepancies = (self.discrepancies + [Discrepancy(h, reason, f"{detail} ({where})", groups).to_json()]
                              )[-KEEP_DISCREPANCIES:]
        self.ctx.reject("seal_discrepancy", f"height {h}: {reason}")
        self.state.apply(self.reg, ours)
        self.state.seal_hash = sha256(commit.value)  # the chain goes on from the certified seal
        return ours

    def _persist(self, h: int, commit: Commit, fetched: dict[bytes, bytes]) -> None:
        cert = commit.certificate
        now = int(self.clock())
        with self.store.transaction():
            self.store.put_commit(h, cert.round, commit.value, sha256(commit.value), cert.encode(), now)
            for digest, data in fetched.items():
                self.store.put_batch(digest, data, now, [])
            self.store.put_state(h, self.state.encode())

    async def fetch_batches(self, digests) -> dict[bytes, bytes]:
        """The listed batches: from the store if kept, else from the validators (each checked by digest)."""
        out: dict[bytes, bytes] = {}
        want = []
        for d in digests:
            data = self.store.get_batch(d)
            if data is not None:
                out[d] = data
            else:
                want.append(d)
        chunk = FETCH_CHUNK
        while want:
            ask = want[:chunk]
            try:
                peer, reply = await self._ask(BatchRequest(tuple(ask)).encode())
            except FetchFailed as e:
                if chunk > 1 and "too_large" in str(e):
                    chunk = 1
                    continue
                raise
            if not isinstance(reply, BatchReply):
                self._turn += 1
                raise FetchFailed(f"{self.ctx.peer_name(peer)} answered a batch request with {type(reply).__name__}")
            got = 0
            for data in reply.batches:
                d = sha256(data)
                if d in ask and d not in out:
                    out[d] = bytes(data)
                    got += 1
                else:
                    self.ctx.reject("unrequested_batch", "a validator sent a batch that was not asked for", peer)
            if not got:
                self._turn += 1
                raise FetchFailed(f"{self.ctx.peer_name(peer)} has none of {len(ask)} listed batches")
            want = [d for d in want if d not in out]
        return out

    # -- reporting -------------------------------------------------------------------------------------------

    def _report(self, seal: PeriodSeal, verified: bool) -> None:
        mark = "verified" if verified else "RECOMPUTED (discrepancy)"
        for r in seal.results:
            iso = self.reg.period(r.period).iso()
            for group in self.groups:
                s = result_summary(r, group)
                if s is None:
                    continue
                mix = ", ".join(f"{k} {v}" for k, v in s["mix"].items()) or "none"
                self.log.info("group %s period %s v%d (%s): INJ %d Wh, WD %d Wh, FPI %d Wh, FPE %d Wh, IMB %+d Wh; "
                              "mix: %s", group, iso, r.version, mark, s["inj"], s["wd"], s["fpi"], s["fpe"],
                              s["imb"], mix)
                if r.period == seal.height or group not in self.results:
                    self.results[group] = {**s, "height": seal.height, "verified": verified}
            for issue in r.schedule_issues:
                if issue.from_group in self.groups or issue.to_group in self.groups:
                    self.log.warning("schedule %s -> %s in period %s did not count: %s (from side signed %s Wh, "
                                     "to side %s Wh)", issue.from_group, issue.to_group, iso,
                                     "mismatched" if issue.status == MISMATCHED else "one-sided",
                                     list(issue.from_wh), list(issue.to_wh))

    # -- schedules ---------------------------------------------------------------------------------------------

    def schedule_due(self) -> list[int]:
        """Queue this operator's schedules for every period up to `schedule_lead` ahead not yet scheduled."""
        if self.schedule_mode != "simulated" or not self.signs_for:
            return []
        now_period = int(self.clock() // self.reg.period_seconds)
        first = max(self.next_schedule, now_period, self.reg.genesis_period)
        last = now_period + self.lead
        done = []
        for p in range(first, last + 1):
            mine = own_schedules(devnet_trades(self.reg, p, self.seed, self.feed), self.signs_for)
            if mine:
                sched = [sign_schedule(self.ctx.key, self.reg.chain_id, f, t, period, wh) for f, t, period, wh in mine]
                self.outbox.add(make_batch(self.ctx.key, self.reg.chain_id, (), sched))
                done.append(p)
        if last + 1 > self.next_schedule:
            self.next_schedule = last + 1
            self._save_counters()
        return done

    async def flush(self, force: bool = False) -> None:
        deliveries = await self.outbox.flush(force)
        for d in deliveries:
            log_receipt(self.log, d, "schedule", name=self.ctx.peer_name)
            r = d.receipt
            if batch_refused(r):
                self.schedules["rejected"] += len(d.batch.schedules)
                key = f"batch_{reason_label(r.batch_reason)}"
                self.schedules["rejected_by_reason"][key] = self.schedules["rejected_by_reason"].get(key, 0) + 1
                continue
            self.schedules["submitted"] += len(d.batch.schedules)
            for item in r.rejected:
                key = reason_label(item.reason)
                self.schedules["rejected"] += 1
                self.schedules["rejected_by_reason"][key] = self.schedules["rejected_by_reason"].get(key, 0) + 1
        if deliveries:
            self._save_counters()

    # -- running -----------------------------------------------------------------------------------------------

    async def step(self) -> None:
        self.schedule_due()
        await self.flush()
        if self.clock() >= self.next_sync:
            try:
                while await self.sync_once():
                    pass
                self.next_sync = self.clock() + self.poll
            except FetchFailed as e:
                self.log.warning("sync: %s", e)
                self.next_sync = self.clock() + max(self.poll, 2.0)

    def status(self) -> dict[str, Any]:
        return {
            "listen": getattr(self.net, "listen_addr", None),
            "groups": self.groups,
            "next_height": self.next_height,
            "verified": dict(self.verified),
            "schedules": {**self.schedules, "rejected_by_reason": dict(sorted(
                self.schedules["rejected_by_reason"].items()))},
            "results": self.results,
            "discrepancies": self.discrepancies[-5:],
            "pending": len(self.outbox),
            "halted_reason": self.halted,
            **health_fields(self.net.connected_peers(), self.reg, self.ctx.key.public,
                            behind_periods=gate_closed_period(self.reg, self.clock()) - self.next_height + 1,
                            halted=self.halted is not None),
        }

    async def run(self) -> None:
        self.log.info("balancing-group node up: groups %s, following from height %d, validators %s",
                      ", ".join(self.groups) or "none", self.next_height,
                      ", ".join(self.ctx.peer_name(v) for v in self.validators))
        tick = max(0.05, min(1.0, self.reg.period_seconds / 20))
        while True:
            await self.step()
            self.ctx.write_status(self.status())
            await trio.sleep(tick)


async def run(ctx: NodeContext) -> int:
    return await run_role(ctx, BalancingGroupNode)


__all__ = ["BalancingGroupNode", "Discrepancy", "FetchFailed", "group_differences", "result_summary", "run"]
