"""The validator role: a grid operator's node.

It admits signed batches (signatures checked in worker threads: PyNaCl releases the GIL), answers each
with a signed receipt, pushes admitted batches to the other validators, runs Tendermint on each period's
PeriodSeal from gate closure on, and on commit stores the seal, its certificate, the period rows and the
settled state, then writes the billing export of the height before. It serves sync (committed seals and
batches) and light (inclusion proofs) requests to the other roles.

The seal of height h carries the commit certificate of h - 1 (`last_commit`): the proposer puts in the one
it stored, the others accept it if it proves their own commit of h - 1. Once h commits, that certificate is
the one every validator exports for h - 1, so their exports are byte-identical; hence an export appears one
period after its period commits.

The consensus machine and the cascade are pure; this module is the shell that feeds them time and
messages. One consensus loop processes events in order; the ledger (the cascade's state) is guarded by a
lock and its heavy calls run in threads so the network keeps flowing.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import time
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Optional

import trio

from stromledger import merkle
from stromledger.cascade import (
    Ledger, LedgerError, PeriodSeal, Rejection, SettledState, StateError, check_batch, leaf_bytes,
)
from stromledger.chains import (
    ABSENT, Certified, Checkpoint, NetworkLedger, NetworkSeal, NetworkState, canonical_checkpoints, make_checkpoint,
)
from stromledger.cascade.checks import CheckedBatch, correctable_from
from stromledger.cascade.completeness import omissions
from stromledger.codec import CodecError, decode
from stromledger.consensus import events as ev
from stromledger.consensus.certificate import certificate_holds
from stromledger.consensus.config import ConsensusConfig
from stromledger.consensus.evidence import DuplicateVoteEvidence, EvidenceError, verify_evidence
from stromledger.consensus.machine import Consensus
from stromledger.consensus.messages import Commit, CommitCertificate, Proposal
from stromledger.crypto import sha256
from stromledger.export import (
    decode_period_rows, encode_period_rows, export_committed, exported, remove_stale_temporaries,
)
from stromledger.export.build import ExportError
from stromledger.export.network import export_network_committed
from stromledger.net import BATCH, CONSENSUS, LIGHT, SUBMIT, SYNC, Network, NetError
from stromledger.periods import gate_margin_ms
from stromledger.registry import NETWORK, Registry, registry_at
from stromledger.registry.changes import genesis_pool, is_approved
from stromledger.store import Store

from .disk import disk_problem
from .export_drain import drain_in_thread
from .consensus_guard import ReplyLimiter, StartRefused, WalBudget, admit_consensus, check_sign_guard
from .health import health_fields
from .history import StoreHistory, retention_problem
from .proof_trees import ProofTrees
from .protocol import (
    MAX_FETCH, MAX_INVENTORY, MAX_SYNC, BatchReply, BatchRequest, ErrorReply, InventoryReply, InventoryRequest,
    LeafProof, LightReply, LightRequest, SyncReply, SyncRequest, chain_protocol,
)
from .runtime import NodeContext, RoleNode, write_status_every

EVENT_QUEUE = 4096
FETCH_TIMEOUT = 5.0
STATUS_EVERY = 1.0
MESH_EVERY = 5.0  # seconds between attempts to reach validators that are not connected
NO_DIGEST = bytes(32)


@dataclass
class CommitInfo:
    height: int
    round: int
    seal: PeriodSeal
    seal_hash: bytes
    ms_after_gate: Optional[int]  # None: decided while catching up, not at its gate closure


class Validator(RoleNode):
    def __init__(self, ctx: NodeContext, store: Store, net: Network, *,
                 clock: Callable[[], float] = time.time, workers: Optional[int] = None,
                 config: Optional[ConsensusConfig] = None, write_exports: bool = True,
                 registry: Optional[Registry] = None, checkpoint_sink: Optional[Callable] = None):
        super().__init__(ctx, store, net, clock)
        # One chain of this validator process: `registry` is its view (registry/scopes.py; default: the whole
        # genesis as one chain). Its chain id, committee, protocol ids and store are its own.
        self.reg = registry or ctx.registry
        self.chain_id = self.reg.chain_id
        self.scope = self.reg.scope
        self.is_network = self.scope == NETWORK
        self.proto = {p: chain_protocol(p, self.scope) for p in (CONSENSUS, BATCH, SUBMIT, SYNC, LIGHT)}
        # the network chain's height h starts one grace period after the areas' gate closure: its deadline
        self._gate_after_end = self.reg.params.grace_seconds * (2 if self.is_network else 1)
        self.checkpoint_sink = checkpoint_sink  # async callable(bytes): where an area commit's checkpoint goes
        self._checkpoint: Optional[bytes] = None  # of the last commit, for the sink
        self.writes_status = True  # a process composing several chains writes one status for all of them
        self._network_export_waiting: set[int] = set()
        # the network chain's exports go to data/exports/ (its store is the home's), an area chain's under
        # data/chains/<EIC>/ (several chains share one data dir)
        self.export_root = ctx.config.data_dir / "chains" / self.scope if self.scope and not self.is_network \
            else ctx.config.data_dir
        # every validator of the genesis may sit on this chain's committee at some height (committee changes)
        self.genesis_validators = frozenset(genesis_pool(self.reg).validator_keys())
        self.config = config or ConsensusConfig(**ctx.config.consensus)
        self.write_exports = write_exports
        # [ingest] workers (default: one per core): the threads `check_batch` spreads a batch's signatures over
        self._workers = max(1, workers or ctx.config.ingest_workers)
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=self._workers,
                                                           thread_name_prefix="verify")
        self._lock = trio.Lock()  # guards the ledger
        self._export_lock = trio.Lock()
        self._exported_below = self.reg.genesis_period  # heights below: every export checked to be on disk
        self.start_exports_done = trio.Event()  # set once the exports a crash lost are written again
        self._wal_height, self._wal_seen = -1, set()
        self.settlement_waiting: Optional[int] = None  # a committed height this node cannot apply yet
        self._waiting_since: Optional[tuple[int, float]] = None  # (that height, since when), for `halted`
        self.settlement_blocked = trio.Event()  # set when that first happens (tests wait on it)
        self.exports = 0
        self.persist_seconds = 0.0  # how long the last commit took to persist (logged at DEBUG)
        self._send, self._recv = trio.open_memory_channel[Any](EVENT_QUEUE)
        self._started_height = -1
        self._trees = ProofTrees(self._build_tree)
        self.last_commit: Optional[CommitInfo] = None
        self.commits = 0
        self.committed = trio.Condition()  # notified after every commit (tests and the devnet wait on it)
        self.batches_received = 0
        self._nursery: Optional[trio.Nursery] = None
        self.history: Optional[StoreHistory] = None  # an area chain's settled history (nodes/history.py)
        self.retain_periods = self._retention()
        self._pruned_before = 0
        self._stopping = False  # serve() ended: network handlers of the other chains may still call in
        # Complete and timely proposals (docs/consensus.md): when each batch was admitted here (this node's
        # clock), the margin before gate closure that "in time" means, and each peer's first consensus
        # message of the latest height relative to this node's gate closure (the clock report in status).
        self._admitted_at: dict[bytes, float] = {}
        self.gate_margin = gate_margin_ms(self.reg.params.grace_seconds) / 1000
        self._peer_offsets: dict[bytes, tuple[int, int]] = {}  # peer -> (height, ms after our gate closure)
        self._judged: dict[tuple[int, int], bool] = {}  # (height, round) -> timely, judged at first receipt
        self.inventory_synced = trio.Event()  # set once every peer was asked what it holds (at start)
        self.ledger = self._restore_ledger()
        check_sign_guard(self.store.sign_guard, self.store, ctx.key.public, self.committee_at,
                         self.ledger.next_height, ctx.resume_signing_after_restore, self.log)
        self.machine = self._make_machine()
        self.wal_budget = WalBudget()
        self._replies = ReplyLimiter(self.config.resend_ms / 1000)

    # -- start-up --------------------------------------------------------------------------------------------

    def _restore_ledger(self) -> Ledger:
        """The settled state after the last commit: the stored snapshot, replaying any later commit."""
        started = time.monotonic()
        snap = self.store.latest_state()
        if self.is_network:
            genesis = self.ctx.registry
            ledger = NetworkLedger(genesis, self._restore_network_state(snap))
        else:
            ledger = Ledger(self.reg, self._restore_state(snap))
        state = ledger.state
        if self.is_network:  # the checkpoints seals may name, before any replay
            lo = correctable_from(self.reg, ledger.next_height)
            for digest in self.store.batches_for_periods(range(lo, lo + 4 * self.reg.correction_window + 64),
                                                         unsettled_only=True):
                data = self.store.get_batch(digest)
                if data is not None and is_checkpoint(data):
                    ledger.add_checkpoint(data)
        last = self.store.last_height()
        if last is not None and (state.height is None or state.height < last):
            # Killed between storing a commit and persisting what it settles: complete each such commit now
            # with the very step a live commit ends with (_persist_commit: period results, settled marks,
            # snapshot in one transaction), so the node ends as if it had never stopped. Exports follow at
            # start (_export_missing).
            first = ledger.next_height
            for commit in self.store.commits_from(first, last - first + 1):
                seal = (NetworkSeal if self.is_network else PeriodSeal).decode(commit.value)
                for digest in seal.batches:
                    data = self.store.get_batch(digest)
                    if data is not None:
                        self._add_fetched(ledger, data)
                outcome = ledger.commit(commit.value)
                rows, snapshot, done = self._snapshot(ledger, outcome)
                self._persist_commit(commit.height, rows, snapshot, outcome.seal.vote_evidence, done)
                if self.scope and not self.is_network and self.checkpoint_sink is not None:
                    # its checkpoint may never have left: sent again at start (receivers keep one per seal)
                    self._checkpoint = make_checkpoint(self.scope, commit.value, commit.certificate, ledger.proof,
                                                       self.reg, ledger.state.changes).encode()
                self.log.info("completed committed height %d after a restart: %d period results, %d batches "
                              "settled", commit.height, len(outcome.seal.results), len(done))
        # Batches admitted earlier that later seals may still settle.
        lo = correctable_from(self.reg, ledger.next_height)
        now_period = self._now_period()
        horizon = max(now_period, ledger.next_height) + self.reg.params.schedule_horizon
        pending = self.store.batches_for_periods(range(lo, horizon + 1), unsettled_only=True)
        for digest in pending:
            data = self.store.get_batch(digest)
            if data is not None:
                self._add_fetched(ledger, data) if is_checkpoint(data) else ledger.admit(data, None)
                self._admitted_at[digest] = self.store.batch_received_at(digest) or self.clock()
        if pending:
            self.log.info("re-admitted %d stored batches still to settle", len(pending))
        if state.height is not None:
            window = (state.base if self.is_network else state).start
            self.log.info("settled state restored at height %d in %.3f s (window from period %d)", state.height,
                          time.monotonic() - started, window)
        return ledger

    def _restore_network_state(self, snap: Optional[tuple[int, bytes]]) -> Optional[NetworkState]:
        try:
            return NetworkState.decode(snap[1]) if snap else None
        except StateError as e:
            self.log.warning("the stored network state is not readable here (%s): replaying the stored commits "
                             "from genesis", e)
            return None

    def _restore_state(self, snap: Optional[tuple[int, bytes]]) -> SettledState:
        """An area chain's settled state over its store's history (nodes/history.py). A snapshot this version
        cannot read (an older format) is rebuilt by replaying the stored commits from genesis."""
        self.history = StoreHistory(self.store, self.reg)
        if snap is not None:
            try:
                return SettledState.decode(snap[1], self.history, self.reg)
            except StateError as e:
                self.log.warning("the stored settled state is not readable here (%s): replaying the stored commits "
                                 "from genesis", e)
                self.history = StoreHistory(self.store, self.reg)
        return SettledState.genesis(self.reg, self.history)

    def _retention(self) -> int:
        """[history] retain_periods (0: keep everything), refused when it would cut into the window."""
        retain = self.ctx.config.history.get("retain_periods", 0)
        problem = retention_problem(retain, self.reg.correction_window)
        if problem:
            raise StartRefused(problem)
        return retain

    def _apply_retention(self, h: int) -> None:
        """Delete what the operator chose not to keep (`retain_periods`), and say so in the log."""
        before = h - self.retain_periods
        if not self.retain_periods or before <= self._pruned_before:
            return
        deleted = self.store.prune_history(before)
        self._pruned_before = before
        if any(deleted.values()):
            self.log.info("retention (retain_periods = %d): deleted before period %s: %s", self.retain_periods,
                          self.reg.period(before).iso(), ", ".join(f"{n} {t}" for t, n in deleted.items() if n))

    @staticmethod
    def _add_fetched(ledger, data: bytes):
        """A stored or fetched blob: a batch, or (network chain) an area checkpoint."""
        return ledger.add_checkpoint(data) if is_checkpoint(data) else ledger.add_fetched(data)

    def _make_machine(self) -> Consensus:
        h = self.ledger.next_height
        recent = []
        for c in self.store.commits_from(max(self.reg.genesis_period, h - self.config.commit_window), 64):
            recent.append(Commit(c.value, CommitCertificate.decode(c.certificate)))
        machine = Consensus(chain_id=self.chain_id, validators=self.committee_at, key=self.ctx.key,
                            guard=self.store.sign_guard, height=h, config=self.config, recent_commits=recent)
        return machine

    # -- the committee: per height, following the committed committee changes ------------------------------

    def committee_at(self, height: int) -> tuple[bytes, ...]:
        """The public keys of the committee deciding `height` (registry/committee.py): the genesis view's, or
        the one the committed changes installed by then. Changes are committed two heights ahead, so the
        committee of the next height is known when a height commits."""
        return registry_at(self.reg, height, self.ledger.acceptor.state.changes).validator_keys()

    def committee_changes(self, height: int) -> tuple[bytes, ...]:
        """The approved changes in effect by `height` (canonical bytes), for clients that hold only the
        genesis and follow the committee through them (LightReply)."""
        return tuple(c.encode() for c in self.ledger.acceptor.state.changes
                     if is_approved(c) and c.effective_period <= height)

    @property
    def validator_keys(self) -> list[bytes]:
        """Whom this chain's consensus messages, batches and requests go to: the committees of the heights
        around the current one (the one before, for late votes; the next two, so that a validator a committed
        change adds follows the chain live before its first height)."""
        h = self.machine.height if hasattr(self, "machine") else self.ledger.next_height
        keys: dict[bytes, None] = {}
        for height in range(max(self.reg.genesis_period, h - 1), h + 3):
            keys.update(dict.fromkeys(self.committee_at(height)))
        return list(keys)

    # -- running ---------------------------------------------------------------------------------------------

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        is_validator = self.genesis_validators.__contains__  # the machine judges by each height's committee
        # a validator of the genesis outside this chain's committee may follow it (sync) and submit to it
        is_registered = lambda k: k in self.reg.submitter_keys or k in self.genesis_validators  # noqa: E731
        p = self.proto
        self.net.set_handler(p[CONSENSUS], self._on_consensus, allowed=is_validator)
        self.net.set_handler(p[BATCH], self._on_batch, allowed=is_validator)
        self.net.set_handler(p[SUBMIT], self._on_submit, allowed=is_registered)
        self.net.set_handler(p[SYNC], self._on_sync, allowed=is_registered)
        if not self.is_network:
            self.net.set_handler(p[LIGHT], self._on_light, allowed=is_registered)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._consensus_loop)
                nursery.start_soon(self._replay_wal)
                nursery.start_soon(self._clock_loop)
                nursery.start_soon(self._catch_up_loop)
                nursery.start_soon(self._mesh_loop)
                nursery.start_soon(self._start_exports)
                if self._checkpoint is not None:  # of a commit completed at start (_restore_ledger)
                    nursery.start_soon(self.checkpoint_sink, self._checkpoint)
                nursery.start_soon(self._sync_inventory)
                if self.ctx.config.status_path and self.writes_status:
                    nursery.start_soon(self._status_loop)
                self.log.info("validator %s up: next height %d (period %s), %d validators, quorum %d",
                              self.ctx.config.name, self.machine.height, self.reg.period(self.machine.height).iso(),
                              len(self.validator_keys), self.machine.validators.quorum)
                task_status.started(self)
        finally:
            self._stopping = True
            self._pool.shutdown(wait=False, cancel_futures=True)

    async def run(self) -> None:
        await self.serve()

    async def _replay_wal(self) -> None:
        """Feed the consensus messages received before a restart back in: votes seen are not lost, and the
        sign guard keeps the machine from signing anything that conflicts with what it signed before."""
        h = self.machine.height
        entries = self.store.wal_read(h)
        if entries:
            self.log.info("replaying %d consensus messages of height %d from the write-ahead log", len(entries), h)
        for _, data in entries:
            self._wal_seen.add(sha256(data))
            try:
                msg = decode(data)
            except CodecError:
                continue
            event = ev.event_for(msg)
            if event is not None:
                await self._send.send(event)

    async def _consensus_loop(self) -> None:
        async for event in self._recv:
            for action in self.machine.handle(event):
                await self._execute(action)

    async def _execute(self, action: Any) -> None:
        if isinstance(action, ev.Broadcast):
            payload = action.message.encode()
            if isinstance(action.message, Proposal) and action.message.proposer == self.ctx.key.public:
                self._log_to_wal(action.message, payload)  # a restarted proposer re-sends it from there
            await self.net.broadcast(self.validator_keys, self.proto[CONSENSUS], payload)
        elif isinstance(action, ev.ScheduleTimeout):
            self._nursery.start_soon(self._timer, action)
        elif isinstance(action, ev.RequestValue):
            self._nursery.start_soon(self._build_value, action.height, action.round)
        elif isinstance(action, ev.ValidateValue):
            self._nursery.start_soon(self._validate_value, action.height, action.round, action.value)
        elif isinstance(action, ev.Decide):
            await self._on_decide(action)
        elif isinstance(action, ev.SendCommit):
            if self._replies.allow(action.to, action.commit.certificate.height, self.clock()):
                self._nursery.start_soon(self._send_quietly, action.to, self.proto[CONSENSUS],
                                         action.commit.encode())
            else:
                self.machine.drops["commit_reply_limited"] += 1
        elif isinstance(action, ev.EvidenceFound):
            self._on_evidence(action.evidence)
        elif isinstance(action, ev.Rejected):
            self.ctx.reject(f"consensus_{action.reason}", action.detail)

    async def _send_quietly(self, peer: bytes, protocol: str, payload: bytes) -> None:
        try:
            await self.net.send(peer, protocol, payload)
        except NetError as e:
            self.log.debug("send to %s failed: %s", self.ctx.peer_name(peer), e)

    async def _timer(self, t: ev.ScheduleTimeout) -> None:
        await trio.sleep(t.delay_ms / 1000)
        await self._send.send(ev.TimeoutFired(t.height, t.round, t.kind))

    # -- the clock: a height starts at its gate closure -------------------------------------------------------

    def _now_period(self) -> int:
        return int(self.clock()) // self.reg.period_seconds

    def _due_height(self) -> int:
        """The newest period whose gate has closed (period end + grace <= now)."""
        return (int(self.clock()) - self._gate_after_end) // self.reg.period_seconds - 1

    def gate_closure(self, height: int) -> int:
        return self.reg.period(height).end + self._gate_after_end

    async def _clock_loop(self) -> None:
        while True:
            due = self._due_height()
            if due >= self.reg.genesis_period and due > self._started_height:
                self._started_height = due
                await self._send.send(ev.StartHeight(due))
            next_gate = self.gate_closure(max(due + 1, self.reg.genesis_period))
            await trio.sleep(max(0.01, next_gate - self.clock()))

    # -- the application: build and validate seals ------------------------------------------------------------

    def _pending_vote_evidence(self) -> list[bytes]:
        return [e.data for e in self.store.pending_evidence(64) if e.kind == "duplicate_vote"]

    def _evidence_ok(self, data: bytes) -> bool:
        try:
            evidence = DuplicateVoteEvidence.decode(data)
            verify_evidence(evidence, self.committee_at(evidence.height), self.chain_id)
            return True
        except (CodecError, EvidenceError):
            return False

    def _last_commit_ok(self, data: bytes) -> bool:
        """A proposed seal's last commit: canonical bytes of a certificate by more than 2/3 of the validators
        for the seal this node committed last. Called by ledger.validate, under the lock."""
        state = self.ledger.state
        return state.height is not None and certificate_holds(data, state.seal_hash, self.committee_at(state.height),
                                                              self.chain_id, state.height)

    def _own_last_commit(self, height: int) -> Optional[bytes]:
        """The certificate this node stored for height - 1 (b"" at the genesis height, None if missing)."""
        if height == self.reg.genesis_period:
            return b""
        previous = self.store.get_commit(height - 1)
        return None if previous is None else bytes(previous.certificate)

    async def _build_value(self, height: int, round: int) -> None:
        # A restarted proposer first holds what its peers hold (bounded: it must still propose in its round).
        with trio.move_on_after(min(2.0, self.config.propose_ms / 2000)):
            await self.inventory_synced.wait()
        async with self._lock:
            if self.ledger.next_height != height:
                self.log.warning("asked to propose height %d but the ledger is at %d", height,
                                 self.ledger.next_height)
                return
            last_commit = self._own_last_commit(height)
            if last_commit is None:
                self.log.error("cannot propose height %d: no stored commit of height %d", height, height - 1)
                return
            outcome = await trio.to_thread.run_sync(self.ledger.propose, self._pending_vote_evidence(),
                                                    last_commit)
        seal = outcome.seal
        self.log.info("proposing height %d round %d: seal %s, %d batches, %d period results",
                      height, round, outcome.seal_hash.hex()[:16], len(seal.batches), len(seal.results))
        await self._send.send(ev.ValueReady(height, round, outcome.seal_bytes))

    async def _validate_value(self, height: int, round: int, value: bytes) -> None:
        value_hash = sha256(value)
        valid, omitted = False, []
        try:
            if self.ledger.next_height != height:
                raise _Invalid(f"the ledger is at height {self.ledger.next_height}")
            await self._fetch_missing(value, self.machine.proposer(round))
            async with self._lock:
                rejection = await trio.to_thread.run_sync(self.ledger.validate, value, self._evidence_ok,
                                                          self._last_commit_ok)
                if rejection is None and not self.is_network:
                    omitted = await trio.to_thread.run_sync(self._omissions, value)
            if rejection is not None:
                raise _Invalid(str(rejection))
            valid = True
        except _Invalid as e:
            self.log.warning("height %d round %d: proposed seal %s is not valid here: %s", height, round,
                             value_hash.hex()[:16], e)
        complete = not (valid and omitted)
        if not complete:
            self.ctx.reject("proposal_incomplete", f"height {height} round {round}: seal {value_hash.hex()[:16]} "
                            f"leaves out {len(omitted)} batches admitted here in time ({omitted[0]}): prevote nil "
                            f"unless a quorum takes it")
        await self._send.send(ev.ValueChecked(height, value_hash, valid, complete))

    def _omissions(self, value: bytes) -> list:
        """What a valid proposed seal leaves out of the batches this node admitted before the cutoff (gate
        closure minus the margin), under the lock, in a worker thread."""
        seal = PeriodSeal.decode(value)
        cutoff = self.gate_closure(seal.height) - self.gate_margin
        held = [cb for d, cb in self.ledger.acceptor.batches.items()
                if self._admitted_at.get(d, float("inf")) <= cutoff]
        listed = {d: cb for d in seal.batches if (cb := self.ledger.batch(d)) is not None}
        return omissions(self.reg, self.ledger.state, seal, listed, held)

    async def _fetch_missing(self, seal_bytes: bytes, first: Optional[bytes] = None) -> None:
        """Fetch the batches a seal lists that this node lacks: from `first` (the proposer), then the others.
        A reply holds what fits in one frame, so a peer that made progress is asked again."""
        missing = set(self.ledger.missing_batches(seal_bytes))
        if self.is_network:
            missing |= set(self.ledger.missing_checkpoints(seal_bytes))
        peers = [first] if first and first != self.ctx.key.public else []
        peers += [k for k in self.validator_keys if k not in peers and k != self.ctx.key.public]
        for peer in peers:
            while missing:
                got = await self._fetch_from(peer, sorted(missing)[:MAX_FETCH], missing)
                if not got:
                    break
        if missing:
            raise _Invalid(f"{len(missing)} listed batches could not be fetched")

    async def _fetch_from(self, peer: bytes, want: list[bytes], missing: set[bytes], admit: bool = False) -> int:
        """Fetch `want` from `peer`: each batch checked, then added for validation, or (`admit`) admitted as if
        the peer had pushed it. Returns how many arrived; each is removed from `missing`."""
        try:
            raw = await self.net.request(peer, self.proto[BATCH], BatchRequest(tuple(want)).encode(),
                                         timeout=FETCH_TIMEOUT)
            reply = decode(raw)
        except (NetError, CodecError) as e:
            self.log.info("fetching %d batches from %s failed: %s", len(want), self.ctx.peer_name(peer), e)
            return 0
        if not isinstance(reply, BatchReply):
            return 0
        got = 0
        for data in reply.batches:
            if self.is_network and is_checkpoint(data):
                got += await self._fetched_checkpoint(peer, data, missing)
                continue
            digest = sha256(data)
            if digest not in missing:
                self.ctx.reject("unrequested_batch", "a peer sent a batch that was not asked for", peer)
                continue
            if admit:
                missing.discard(digest)
                got += await self._admit_pushed(peer, data)
                continue
            checked = await trio.to_thread.run_sync(self._check, data)
            if isinstance(checked, Rejection):
                self.ctx.reject("invalid_fetched_batch", str(checked), peer)
                continue
            async with self._lock:
                self.ledger.add_fetched(checked)
            self._store_batch(checked, data)
            missing.discard(digest)
            got += 1
        return got

    async def _fetched_checkpoint(self, peer: bytes, data: bytes, missing: set[bytes]) -> int:
        async with self._lock:
            cp = await trio.to_thread.run_sync(self.ledger.add_checkpoint, data)
        if not isinstance(cp, Certified) or cp.seal_hash not in missing:
            self.ctx.reject("unrequested_checkpoint", str(cp) if isinstance(cp, Rejection) else "not asked for", peer)
            return 0
        self._store_checkpoint(cp)
        missing.discard(cp.seal_hash)
        return 1

    # -- checkpoints: area seals into the network chain ----------------------------------------------------

    def _store_checkpoint(self, cp: Certified) -> None:
        """Kept in the batch table (content-addressed like a batch) with its periods, so a restart re-admits
        it before replaying commits; peers fetch it by its area seal's hash from the ledger's pool."""
        digest = sha256(cp.data)
        if not self.store.has_batch(digest):
            self.store.put_batch(digest, cp.data, int(self.clock()), sorted(cp.results))

    async def add_checkpoint(self, data: bytes, peer: Optional[bytes] = None) -> Optional[Certified]:
        """A checkpoint for the network chain (pushed by an area committee member, or from this process's own
        area chain): verified with the genesis alone, kept and stored if the window can still use it."""
        async with self._lock:
            cp = await trio.to_thread.run_sync(self.ledger.add_checkpoint, data)
        if isinstance(cp, Rejection):
            self.ctx.reject(f"checkpoint_{cp.reason.name.lower()}", cp.message, peer)
            return None
        if cp.seal_hash in self.ledger.checkpoints:
            with self._disk_stops_the_node():
                await trio.to_thread.run_sync(self._store_checkpoint, cp)
        return cp

    async def _on_checkpoint(self, peer: bytes, payload: bytes) -> None:
        await self.add_checkpoint(payload, peer)

    def _checkpoint_of(self, h: int, value: bytes, certificate: bytes) -> bytes:
        """The checkpoint of this area chain's committed height (under the lock, right after the commit)."""
        return make_checkpoint(self.scope, value, certificate, self.ledger.proof, self.reg,
                               self.ledger.state.changes).encode()

    # -- commit -------------------------------------------------------------------------------------------

    async def _on_decide(self, d: ev.Decide) -> None:
        h, cert = d.height, d.certificate
        seal_hash = sha256(d.value)
        outcome = await self._commit(h, cert.round, d.value, cert.encode())
        seal = outcome.seal
        # Latency after gate closure only for a height this node started at its gate closure; a height decided
        # while catching up (replayed from peers' commits) says nothing about settlement speed.
        ms_after = int(self.clock() * 1000) - self.gate_closure(h) * 1000 if h == self._started_height else None
        self.last_commit = CommitInfo(h, cert.round, seal, seal_hash, ms_after)
        self.commits += 1
        if ms_after is not None and self.gate_closure(h) >= self.ctx.started_at:
            # Live heights only: one decided while catching up (ms_after None), or whose gate closed before
            # this process started, would measure the outage, not consensus.
            self.ctx.metrics.commit_latency.observe(max(0, ms_after) / 1000)
        self._log_commit(self.last_commit)
        if self._checkpoint is not None and self.checkpoint_sink is not None:
            self._nursery.start_soon(self.checkpoint_sink, self._checkpoint)
        if self.write_exports and h > self.reg.genesis_period:
            # The seal of h carries the canonical certificate of h - 1: h - 1 is now final for export.
            # In the background: a large export must not hold up the next height's consensus.
            self._nursery.start_soon(self._export_missing)
        async with self.committed:
            self.committed.notify_all()

    async def _commit(self, h: int, round: int, value: bytes, certificate: bytes):
        """Store a decided seal, apply it and persist what it settles. The commit is durable first: a process
        killed after that completes the rest at its next start (_restore_ledger), with the same steps."""
        await trio.to_thread.run_sync(self.store.put_commit, h, round, value, sha256(value), certificate,
                                      int(self.clock()))
        outcome, rows, state, done = await self._apply_commit(h, value, certificate)
        await trio.to_thread.run_sync(self._persist_commit, h, rows, state, outcome.seal.vote_evidence, done)
        return outcome

    async def _apply_commit(self, h: int, value: bytes, certificate: bytes = b""):
        """Apply a decided seal to the ledger. If this node cannot rebuild it yet (a listed batch could not be
        fetched), settlement waits: it retries with backoff, and the next height is not applied before this
        one. The network handlers keep serving meanwhile."""
        delay = 0.5
        while True:
            try:
                await self._fetch_missing(value)
                async with self._lock:
                    outcome = await trio.to_thread.run_sync(self.ledger.commit, value)
                    self._admitted_at = {d: t for d, t in self._admitted_at.items() if self.ledger.batch(d)}
                    # Seconds at a million meter points: off the event loop, which keeps serving peers.
                    rows, state, done = await trio.to_thread.run_sync(self._snapshot, self.ledger, outcome)
                    self._checkpoint = None
                    if self.scope and not self.is_network and certificate:
                        self._checkpoint = await trio.to_thread.run_sync(self._checkpoint_of, h, value, certificate)
                self.settlement_waiting = None
                return outcome, rows, state, done
            except (_Invalid, LedgerError) as e:
                self.log.error("height %d is committed but this node cannot apply it yet (%s); retrying in %.1f s",
                               h, e, delay)
                self.settlement_waiting = h
                self.settlement_blocked.set()
            await trio.sleep(delay)
            delay = min(delay * 2, 10.0)

    def _snapshot(self, ledger, outcome) -> tuple[dict, bytes, list[bytes]]:
        """What a commit persists: the rows of every period result, the settled state, and the batches the
        ledger dropped because nothing is left in them to settle (an area chain's rows: its settled history
        writes them, nodes/history.py). Runs in a worker thread, under the lock (or at start-up, before the
        ledger is shared)."""
        rows = {} if self.is_network or self.history is not None else \
            {r.period: (r.version, list(ledger.rows(r.period))) for r in outcome.seal.results}
        done = [d for d in outcome.seal.batches if ledger.batch(d) is None]
        return rows, ledger.state.encode(), done

    # -- exports: derived work, (re)done until it exists ---------------------------------------------------

    async def _start_exports(self) -> None:
        """At start: remove the hidden temporary directories a killed export left, then write every export
        a crash lost (at commit, or during the export)."""
        if self.write_exports:
            removed = await trio.to_thread.run_sync(remove_stale_temporaries, self.export_root)
            for path in removed:
                self.log.info("removed %s, left by an export that was killed mid-write", path)
            await self._export_missing()
        self.start_exports_done.set()

    def _unexported_heights(self) -> tuple[list[int], int]:
        """The committed heights from `_exported_below` on whose certificate this node has (the next height
        is committed) and some of whose exports are not on disk; and the height the scan stopped at."""
        last = self.store.last_height()
        decode_seal = NetworkSeal.decode if self.is_network else PeriodSeal.decode
        out, h = [], self._exported_below
        while last is not None and h < last:
            page = self.store.commits_from(h, min(64, last - h))
            if not page:
                break
            for c in page:
                if not all(exported(self.export_root, self.reg, r.period, r.version)
                           for r in decode_seal(c.value).results):
                    out.append(c.height)
            h = page[-1].height + 1
        return out, h

    async def _export_missing(self) -> None:
        """Write every missing export of a height final for export, in height order, one run at a time (at
        start and after every commit). A height that fails is tried again after the next commit."""
        async with self._export_lock:
            heights, scanned = await trio.to_thread.run_sync(self._unexported_heights)
            if heights and self.commits == 0:
                self.log.info("writing the missing exports of height(s) %s", ", ".join(map(str, heights)))
            if self.is_network:  # waits for its area seals' canonical certificates: _export_network retries
                self._network_export_waiting.update(heights)
                self._exported_below = scanned
                await self._export_guarded(None, self._export_network)
                return
            for h in heights:
                if not await self._export_guarded(h, trio.to_thread.run_sync, export_committed, self.store,
                                                  self.reg, h, self.export_root, drain_in_thread,
                                                  self.ledger.acceptor.state.changes):
                    scanned = min(scanned, h)
            self._exported_below = scanned

    async def _export_guarded(self, height: Optional[int], export, *args) -> bool:
        """Run one export call; an export problem is logged and never stops settlement, a disk that cannot
        be written stops the node (nodes/disk.py)."""
        try:
            paths = await export(*args)
        except Exception as e:
            if disk_problem(e) is not None:
                raise
            self.log.error("export of height %s failed: %s", height, e)
            return False
        self.exports += len(paths)
        if height is not None:
            self.log.info("exported height %d: %s", height, ", ".join(str(p) for p in paths))
        return True

    async def _export_network(self) -> list:
        """The network exports of the heights waiting for their area seals' canonical certificates (they come
        with the areas' next checkpoints)."""
        paths = []
        for h in sorted(self._network_export_waiting):
            pool = await trio.to_thread.run_sync(self._checkpoint_pool, h)
            if await self._fetch_skipped_checkpoints(pool):
                pool = await trio.to_thread.run_sync(self._checkpoint_pool, h)
            checkpoints = canonical_checkpoints(pool)
            try:
                done = await trio.to_thread.run_sync(export_network_committed, self.store, self.ctx.registry, h,
                                                     self.export_root, checkpoints,
                                                     self.ledger.acceptor.state.changes)
                self.log.info("exported height %d: %s", h, ", ".join(str(p) for p in done))
                paths += done
                self._network_export_waiting.discard(h)
            except ExportError as e:
                if len(self._network_export_waiting) > 2 * self.reg.correction_window + 8:
                    self._network_export_waiting.discard(h)  # its checkpoints have left the window: give up
                    self.log.error("network export of height %d given up: %s", h, e)
                else:
                    self.log.info("network export of height %d waits: %s", h, e)
        return paths

    def _checkpoint_pool(self, height: int) -> list:
        """The ledger's checkpoints plus the stored ones of the area seals the network seal at `height` used and
        of the area heights after them (which carry their canonical certificates): a restarted node's ledger
        no longer holds the checkpoints it settled before, and its exports still need them."""
        pool = {cp.seal_hash: cp for cp in self.ledger.checkpoints.values()}
        commit = self.store.get_commit(height)
        if commit is None:
            return list(pool.values())
        used = {p for r in NetworkSeal.decode(commit.value).results for u in r.areas_used if u.seal_hash != ABSENT
                for p in (u.height, u.height + 1, u.height + 2)}
        for digest in self.store.batches_for_periods(sorted(used)):
            data = self.store.get_batch(digest)
            if data is not None and is_checkpoint(data):
                cp = Checkpoint.decode(data)
                pool.setdefault(sha256(cp.seal), _StoredCheckpoint(cp.area, sha256(cp.seal), data))
        return list(pool.values())

    async def _fetch_skipped_checkpoints(self, pool: list) -> int:
        """Fetch from the other validators each area checkpoint missing between two of `pool` (the checkpoint
        of area height h + 1 carries the canonical certificate an export of a seal using height h needs; one
        pushed while this node was down is never pushed again). Its hash is the `previous` of the one after."""
        held = {}
        for cp in pool:
            seal = PeriodSeal.decode(Checkpoint.decode(cp.data).seal)
            held[cp.area, seal.height] = bytes(seal.previous)
        missing = {previous for (area, h), previous in held.items()
                   if (area, h - 1) not in held and (area, h - 2) in held}
        wanted = len(missing)
        for peer in (k for k in self.validator_keys if k != self.ctx.key.public):
            if missing:
                await self._fetch_from(peer, sorted(missing), missing)
        if wanted:
            self.log.info("fetched %d of %d area checkpoints this node missed", wanted - len(missing), wanted)
        return wanted - len(missing)

    def _persist_commit(self, h: int, rows: dict, state: bytes, vote_evidence: tuple[bytes, ...],
                        settled: list[bytes]) -> None:
        started = time.monotonic()
        settled = [d for d in settled if self.store.has_batch(d) and self.store.batch_settled_height(d) is None]
        written = []
        with self.store.transaction():
            if settled:
                self.store.mark_settled(settled, h)
            for period, (version, period_rows) in rows.items():
                self.store.put_period_result(period, version, h, encode_period_rows(period, version, period_rows))
            if self.history is not None:  # the new versions' rows, their leaf index, settled batches
                written = self.history.persist()
            self.store.put_state(h, state)
            if vote_evidence:
                self.store.mark_evidence_included([sha256(e) for e in vote_evidence], h)
        if self.history is not None:
            self.history.saved(written)
        self.store.wal_truncate_below(h + 1)
        self.persist_seconds = time.monotonic() - started
        self.log.debug("height %d persisted in %.3f s", h, self.persist_seconds)
        self._apply_retention(h)

    def _log_commit(self, c: CommitInfo) -> None:
        seal = c.seal
        own = seal.result(c.height)
        when = "caught up from the other validators" if c.ms_after_gate is None else \
            f"{c.ms_after_gate} ms after gate closure"
        self.log.info("%s: committed period %s (height %d) in round %d, %s: seal %s", self.scope or "chain",
                      self.reg.period(c.height).iso(), c.height, c.round, when, c.seal_hash.hex()[:16])
        if self.is_network:
            for r in seal.results:
                self.log.info("  network period %s version %d: %d areas in, absent %s, net export %d Wh",
                              self.reg.period(r.period).iso(), r.version, len(r.areas_used) - len(r.absent),
                              list(r.absent) or "none", r.net_export)
            return
        if own is not None:
            self.log.info("  %d meter points (%d measured, %d substituted), net export %d Wh, root %s",
                          own.meter_points, own.measured, own.substituted, own.net_export, own.merkle_root.hex()[:16])
            for g in own.groups:
                self.log.info("  balancing group %s: inj %d Wh, wd %d Wh, fpi %d, fpe %d, imbalance %+d Wh",
                              g.group, g.inj, g.wd, g.fpi, g.fpe, g.imb)
        for r in seal.results:
            if r.period != c.height:
                self.log.info("  correction: period %s now at version %d", self.reg.period(r.period).iso(), r.version)

    def _on_evidence(self, evidence: DuplicateVoteEvidence) -> None:
        new = self.store.put_evidence("duplicate_vote", evidence.height, evidence.encode(), int(self.clock()))
        if new:
            self.log.error("EVIDENCE: validator %s signed two different %s votes at height %d round %d",
                           self.ctx.peer_name(evidence.validator),
                           "prevote" if evidence.kind == 1 else "precommit", evidence.height, evidence.round)

    # -- catch-up from far behind -----------------------------------------------------------------------------

    async def _catch_up_loop(self) -> None:
        """A node more than a height behind asks peers for committed seals and feeds them to consensus,
        which checks each certificate before deciding."""
        turn = 0
        while True:
            await trio.sleep(max(1.0, self.reg.period_seconds / 2))
            peers = [k for k in self.validator_keys if k != self.ctx.key.public]  # the committee follows changes
            if not peers or self._due_height() <= self.machine.height:
                continue
            peer = peers[turn % len(peers)]
            turn += 1
            try:
                raw = await self.net.request(peer, self.proto[SYNC], SyncRequest(self.machine.height, 16).encode(),
                                             timeout=FETCH_TIMEOUT)
                reply = decode(raw)
            except (NetError, CodecError):
                continue
            if not isinstance(reply, SyncReply):
                continue
            for data in reply.commits:
                try:
                    commit = Commit.decode(data)
                except CodecError:
                    self.ctx.reject("malformed_commit", "in a sync reply", peer)
                    break
                await self._send.send(ev.CommitReceived(commit.certificate.height, commit.value, commit.certificate))

    # -- handlers for the network -----------------------------------------------------------------------------

    async def _on_consensus(self, peer: bytes, payload: bytes) -> None:
        # Decoded and checked (size, author, proposer, signature) in a worker thread, before the WAL.
        msg, reason, detail = await trio.to_thread.run_sync(admit_consensus, payload, self.machine.set_at,
                                                            self.chain_id)
        if msg is None:
            self.ctx.reject(f"consensus_{reason}", detail, peer)
            return None
        if not isinstance(msg, Commit):
            with self._disk_stops_the_node():
                self._log_to_wal(msg, payload)
            self._note_clock(peer, msg.height)
        if isinstance(msg, Proposal) and msg.pol_round < 0 and not self._timely(msg, peer):
            await self._send.send(ev.ProposalReceived(msg, peer, timely=False))
            return None
        await self._send.send(ev.event_for(msg, peer))
        return None

    def _timely(self, p: Proposal, peer: bytes) -> bool:
        """A new proposal received before this node's gate closure of its height, less the tolerance, was
        built too early (its proposer's clock runs ahead): it gets a nil prevote (docs/consensus.md). Judged
        at its first receipt; the proposer's resent copies get the same answer."""
        key = (p.height, p.round)
        if key in self._judged:
            return self._judged[key]
        if len(self._judged) > 1024:  # heights left behind
            self._judged = {k: v for k, v in self._judged.items() if k[0] >= self.machine.height}
        early = self.gate_closure(p.height) - self.gate_margin - self.clock()
        self._judged[key] = early <= 0
        if early <= 0:
            return True
        self.ctx.reject("proposal_early", f"height {p.height} round {p.round}: proposal came {early * 1000:.0f} ms "
                        f"before this node's gate closure less the {self.gate_margin * 1000:.0f} ms tolerance "
                        f"(is the proposer's clock ahead?): prevote nil", peer)
        return False

    def _note_clock(self, peer: bytes, height: int) -> None:
        """The first consensus message of each height from each peer, in ms after this node's gate closure of
        that height. An honest peer starts a height at its own gate closure, so a negative value means its
        clock is ahead of this node's by at least that much; a positive one adds its work and the network."""
        seen = self._peer_offsets.get(peer)
        if seen is None or height > seen[0]:
            self._peer_offsets[peer] = (height, int((self.clock() - self.gate_closure(height)) * 1000))

    def _log_to_wal(self, msg, payload: bytes) -> None:
        """Keep a message of the current height in the WAL: each distinct one once, within the budget."""
        height = msg.height
        if height != self.machine.height:
            return
        if height != self._wal_height:
            self._wal_height, self._wal_seen = height, set()
        digest = sha256(payload)
        if digest in self._wal_seen:  # peers resend: log each distinct message once
            return
        if not self.wal_budget.admit(height, msg.proposer if isinstance(msg, Proposal) else msg.validator,
                                     len(payload)):
            self.machine.drops["wal_budget"] += 1  # still processed, only not kept for a restart
            return
        self._wal_seen.add(digest)
        self.store.wal_append(height, "msg", payload)

    def _check(self, data: bytes) -> CheckedBatch | Rejection:
        # readings are judged by their period's registry version: under the committed changes (the acceptor
        # judges again should a seal commit more changes meanwhile)
        return check_batch(self.reg, data, map=self._pool.map, parts=self._workers,
                           history=self.ledger.acceptor.state.changes)

    def _store_batch(self, checked: CheckedBatch, data: bytes) -> None:
        changes = [c.effective_period for _, _, c, v in checked.registry_changes() if c is not None]
        periods = sorted(set(checked.reading_periods) | set(checked.schedule_periods) | set(changes))
        self.store.put_batch(checked.digest, data, int(self.clock()), periods)

    async def _on_submit(self, peer: bytes, payload: bytes, checked: Optional[CheckedBatch] = None) -> bytes:
        """A submitted batch; `checked`: its verdicts when this process already checked every item (the
        genesis-level router, nodes/chains.py), so no signature is verified twice."""
        if checked is None:
            checked = await trio.to_thread.run_sync(self._check, payload)
        async with self._lock:
            admission = self.ledger.admit(checked if isinstance(checked, CheckedBatch) else payload,
                                          self._now_period())
        if admission.stored:
            self._admitted_at.setdefault(admission.digest, self.clock())
            # Durable before the receipt leaves: a receipt is a promise not to lose the batch.
            await self._store_or_stop(checked, payload)
            self.batches_received += 1
            self._nursery.start_soon(self.net.broadcast, self.validator_keys, self.proto[BATCH], payload)
        if admission.refused is not None:
            self.ctx.reject(f"batch_{admission.refused.reason.name.lower()}", admission.refused.message, peer)
        for _, index, why in admission.rejections:
            if not why.harmless:
                self.ctx.rejections[f"item_{why.reason.name.lower()}"] += 1
        self.log.info("batch %s from %s: %d accepted, %d duplicates, %d rejected%s",
                      (admission.digest or b"").hex()[:12], self.ctx.peer_name(peer), admission.accepted,
                      admission.duplicates, len(admission.rejections) - admission.duplicates,
                      f", refused: {admission.refused}" if admission.refused else "")
        return admission.receipt(self.ctx.key, self.chain_id).encode()

    async def _on_batch(self, peer: bytes, payload: bytes) -> Optional[bytes]:
        # The tag is the second byte (after the array header): a request is small, a batch is decoded once,
        # by check_batch, which refuses malformed bytes with their reason.
        for request, answer in ((BatchRequest, self._batch_reply), (InventoryRequest, self._inventory_reply)):
            if payload[1:2] == bytes([request.TAG]):
                try:
                    return answer(request.decode(payload))
                except CodecError as e:
                    self.ctx.reject(f"batch_request_{e.reason}", str(e), peer)
                    return ErrorReply("malformed", str(e)[:500]).encode()
        await self._admit_pushed(peer, payload)
        return None

    async def _admit_pushed(self, peer: bytes, payload: bytes) -> bool:
        """A batch another validator admitted (pushed, or fetched from its inventory at start): check it
        ourselves, keep it if it can be settled. True if it was kept."""
        try:
            checked = await trio.to_thread.run_sync(self._check, payload)
        except RuntimeError:
            if self._stopping:  # the worker pool is shut down: this chain stops, the pusher is owed no answer
                return False
            raise
        if isinstance(checked, Rejection):
            self.ctx.reject(f"pushed_{checked.reason.name.lower()}", checked.message, peer)
            return False
        async with self._lock:  # a byzantine validator's pushes count against the batch's submitter's quota
            admission = self.ledger.admit(checked, None, quota_period=self._now_period())
        if admission.stored:
            self._admitted_at.setdefault(checked.digest, self.clock())
            await self._store_or_stop(checked, payload)
            self.batches_received += 1
        return admission.stored

    def _inventory_window(self) -> tuple[int, int]:
        """The periods whose unsettled batches a seal may still need: the correction window to the horizon."""
        lo = correctable_from(self.reg, self.ledger.next_height)
        return lo, max(self._now_period(), self.ledger.next_height) + self.reg.params.schedule_horizon

    def _inventory_reply(self, req: InventoryRequest) -> bytes:
        lo, hi = self._inventory_window()
        first, last = max(lo, req.first_period), min(hi, req.last_period)
        digests = [] if first > last else \
            [d for d in self.store.batches_for_periods(range(first, last + 1), unsettled_only=True) if d > req.after]
        return InventoryReply(tuple(digests[:MAX_INVENTORY])).encode()

    async def _sync_inventory(self) -> None:
        """At start, ask every peer which unsettled batches it holds and fetch those this node lacks, so that
        a validator restarted just before gate closure proposes with what the others hold."""
        fetched = 0
        if not self.is_network:
            for peer in (k for k in self.validator_keys if k != self.ctx.key.public):
                fetched += await self._fetch_inventory(peer)
        if fetched:
            self.log.info("fetched %d batches the other validators admitted while this node was away", fetched)
        self.inventory_synced.set()

    async def _fetch_inventory(self, peer: bytes) -> int:
        lo, hi = self._inventory_window()
        after, fetched = NO_DIGEST, 0
        while True:
            try:
                raw = await self.net.request(peer, self.proto[BATCH], InventoryRequest(lo, hi, after).encode(),
                                             timeout=FETCH_TIMEOUT)
                reply = decode(raw)
            except (NetError, CodecError) as e:
                self.log.info("asking %s for its batches failed: %s", self.ctx.peer_name(peer), e)
                return fetched
            if not isinstance(reply, InventoryReply):
                return fetched
            missing = [d for d in reply.digests if self.ledger.batch(d) is None and not self.store.has_batch(d)]
            for i in range(0, len(missing), MAX_FETCH):
                fetched += await self._fetch_from(peer, missing[i:i + MAX_FETCH], set(missing), admit=True)
            if len(reply.digests) < MAX_INVENTORY:
                return fetched
            after = reply.digests[-1]

    async def _store_or_stop(self, checked: CheckedBatch, data: bytes) -> None:
        """Store an admitted batch from a network handler."""
        with self._disk_stops_the_node():
            await trio.to_thread.run_sync(self._store_batch, checked, data)

    @contextlib.contextmanager
    def _disk_stops_the_node(self):
        """A disk that cannot be written stops the node, also from a network handler (whose own errors are
        only logged): nothing could be kept from then on."""
        try:
            yield
        except Exception as e:
            if disk_problem(e) is not None and self._nursery is not None:
                self._nursery.start_soon(_raise, e)
            raise

    def _room(self) -> int:
        """Bytes a reply may fill: the frame limit, less room for the message's own framing."""
        return getattr(self.net, "max_payload", 4 * 1024 * 1024) - 4096

    def _batch_reply(self, req: BatchRequest) -> bytes:
        found, size = [], 0
        for digest in req.digests:
            data = self.store.get_batch(digest)
            if data is None:
                cb = self.ledger.batch(digest)
                data = cb.batch.encode() if cb else None
            if data is None and self.is_network and digest in self.ledger.checkpoints:
                data = self.ledger.checkpoints[digest].data
            if data is None:
                continue
            if found and size + len(data) + 8 > self._room():
                break  # the asker asks again for the rest
            found.append(data)
            size += len(data) + 8
        return BatchReply(tuple(found)).encode()

    async def _on_sync(self, peer: bytes, payload: bytes) -> bytes:
        try:
            msg = decode(payload)
        except CodecError as e:
            return ErrorReply("malformed", str(e)[:500]).encode()
        if isinstance(msg, BatchRequest):
            return self._batch_reply(msg)
        if not isinstance(msg, SyncRequest):
            return ErrorReply("unexpected", type(msg).__name__).encode()
        out, size = [], 0
        for c in self.store.commits_from(msg.from_height, min(max(msg.limit, 1), MAX_SYNC)):
            data = Commit(c.value, CommitCertificate.decode(c.certificate)).encode()
            if out and size + len(data) + 8 > self._room():
                break  # the follower asks again from the next height
            out.append(data)
            size += len(data) + 8
        return SyncReply(tuple(out), self.store.last_height() or 0).encode()

    async def _on_light(self, peer: bytes, payload: bytes) -> bytes:
        try:
            req = LightRequest.decode(payload)
        except CodecError as e:
            return ErrorReply("malformed", str(e)[:500]).encode()
        return (await self.light_reply(req.period, req.malo_ids)).encode()

    async def light_reply(self, period: int, malo_ids) -> LightReply | ErrorReply:
        """The seal that settled `period` at its latest version, its certificate and the inclusion proofs of
        `malo_ids` (as many as fit in one frame): what light clients verify, over libp2p or HTTP."""
        version = self.store.latest_version(period)
        if version is None:
            return ErrorReply("not_committed", f"period {period} is not settled yet")
        height, seal, leaves, index, tree = await self._trees.get(period, version)
        commit = self.store.get_commit(height)
        proofs, size = [], len(commit.value) + len(commit.certificate)
        for malo in malo_ids:
            i = index.get(malo)
            if i is None:
                continue  # not a meter point of this period: the asker sees it has no proof
            proof = LeafProof(malo, i, leaves[i], tuple(tree.proof(i)))
            size += len(proof.leaf) + 34 * len(proof.path) + 32
            if size > self._room():
                break  # the rest in another request
            proofs.append(proof)
        return LightReply(height, version, commit.value, CommitCertificate.decode(commit.certificate),
                          tree.size, tuple(proofs), self.committee_changes(height))

    def _build_tree(self, period: int, version: int) -> tuple[int, bytes, list[bytes], dict[str, int], merkle.Tree]:
        """Runs in a worker thread (see ProofTrees)."""
        result = self.store.get_period_result(period, version)
        # the rows follow the period's registry version (its meter points; docs/registry.md)
        _, _, rows = decode_period_rows(self.ledger.acceptor.state.registry_at(self.reg, period), result.data)
        leaves = [leaf_bytes(period, r) for r in rows]
        index = {r.malo_id: i for i, r in enumerate(rows)}
        return result.height, b"", leaves, index, merkle.Tree(leaves)

    # -- status ------------------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        c = self.last_commit
        last = None
        if c is not None:
            own = c.seal.result(c.height)
            last = {
                "height": c.height,
                "period": self.reg.period(c.height).iso(),
                "seal_hash": c.seal_hash.hex(),
                "round": c.round,
                "ms_after_gate_closure": c.ms_after_gate,
                "meter_points": getattr(own, "meter_points", 0),
                "net_export_wh": own.net_export if own else 0,
                "groups": {g.group: {"inj": g.inj, "wd": g.wd, "fpi": g.fpi, "fpe": g.fpe, "imb": g.imb}
                           for g in (own.groups if own else ())},
            }
        stats = self.net.stats
        connected = self.net.connected_peers()
        return {
            "listen": getattr(self.net, "listen_addr", None),
            "chain_id": self.chain_id,
            "height": self.machine.height,
            "period": self.reg.period(self.machine.height).iso(),
            "round": self.machine.round,
            "step": int(self.machine.step),
            "last_commit": last,
            "commits": self.commits,
            "last_height": self.store.last_height(),
            "peer_keys": sorted(k.hex() for k in connected),
            "evidence": len(self.store.list_evidence(1000)),
            "batches": {"received": self.batches_received, "pending": len(self.ledger.acceptor.batches)},
            "exports": self.exports,
            "consensus_drops": dict(self.machine.drops),
            "clock": self.clock_report(),
            "net": {k: stats[k] for k in sorted(stats)},
            **self.health(connected),
        }

    def clock_report(self) -> dict[str, Any]:
        """What this node can tell about clock skew (docs/operations.md, "Clocks"): the tolerance, and per
        peer when its first consensus message of its latest height arrived relative to this node's gate
        closure (negative: the peer's clock is ahead of ours by at least that much)."""
        return {"tolerance_ms": int(self.gate_margin * 1000),
                "early_proposals": self.ctx.rejections["proposal_early"],
                "incomplete_proposals": self.ctx.rejections["proposal_incomplete"],
                "peers_ms_after_gate": {self.ctx.peer_name(k): ms for k, (_, ms) in sorted(self._peer_offsets.items())}}

    def health(self, connected: set[bytes]) -> dict[str, Any]:
        """The health fields of status.json (nodes/health.py). Halted: a committed height it could not apply
        for more than a period."""
        waiting = self.settlement_waiting
        if waiting is None or (self._waiting_since or (None,))[0] != waiting:
            self._waiting_since = None if waiting is None else (waiting, self.clock())
        halted = waiting is not None and self.clock() - self._waiting_since[1] > self.reg.period_seconds
        due = self._due_height()
        behind = due - self.machine.height + 1 if due >= self.reg.genesis_period else 0
        return health_fields(connected, self.reg, self.ctx.key.public, behind_periods=behind, halted=halted,
                             settlement_waiting=waiting)

    async def _mesh_loop(self) -> None:
        """Keep connected to the other validators, also before the genesis time (so the mesh can be checked
        before launch, and `quorum` in status.json means something): ask each one not connected for the
        commits from the current height on, a cheap request that opens the connection."""
        while True:
            others = [k for k in self.validator_keys if k != self.ctx.key.public]
            missing = [k for k in others if k not in self.net.connected_peers()]
            for peer in missing:
                try:
                    await self.net.request(peer, self.proto[SYNC], SyncRequest(self.machine.height, 1).encode(),
                                           timeout=FETCH_TIMEOUT)
                except NetError:
                    pass
            await trio.sleep(MESH_EVERY)

    async def _status_loop(self) -> None:
        await write_status_every(self.ctx, self.status, STATUS_EVERY)


class _Invalid(Exception):
    pass


class _StoredCheckpoint(NamedTuple):
    """What canonical_checkpoints reads of a checkpoint kept in the store."""

    area: str
    seal_hash: bytes
    data: bytes


async def _raise(error: BaseException) -> None:
    raise error


def is_checkpoint(data: bytes) -> bool:
    """An area checkpoint rather than a batch (the tag is the byte after the array header)."""
    return data[1:2] == bytes([Checkpoint.TAG])
