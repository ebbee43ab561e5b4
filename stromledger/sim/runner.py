"""The discrete-event simulator: n validators running the real consensus machine, real Ed25519 signatures,
a simulated network and a virtual clock (integer milliseconds), all driven by one seeded random stream.

No threads, no trio, no wall clock: a run is a pure function of its `SimConfig`, and `trace_hash` (a
sha256 over every event in processing order) proves it: the same seed gives the same hash.

Each validator is a `SimNode`; a byzantine validator is two nodes (twins) that share its key but not a sign
guard, and whose applications build different values, so they propose and vote different things.
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import random
from collections import Counter
from typing import Optional

from stromledger.consensus import (Broadcast, Commit, CommitReceived, Consensus, Decide, EvidenceFound,
                                   MemorySignGuard, Precommit, Prevote, Proposal, ProposalReceived, Rejected,
                                   RequestValue, ScheduleTimeout, SendCommit, StartHeight, TimeoutFired,
                                   ValidateValue, ValueChecked, ValueReady, VoteReceived, value_hash)
from stromledger.consensus.app import Application
from stromledger.consensus.evidence import DuplicateVoteEvidence
from stromledger.crypto import SigningKey

from .adversary import ADVERSARIES, Adversary, LockBreaker
from .apps import RejectingApp, SimpleApp
from .scenario import Crash, FaultPlan, SimConfig, draw_plan, height_budget

# queue entry kinds, in tie-break order at equal times
_CRASH, _RESTART, _START, _DELIVER, _APP, _TIMER, _SYNC = range(7)
SYNC_MS = 1_000  # how often a node asks a peer for the commits it lacks (the shell's catch-up over sync)
_KIND_OF_MSG = {Proposal: 0, Prevote: 1, Precommit: 2}


@dataclasses.dataclass
class Decision:
    node: int
    validator: int
    height: int
    value_hash: bytes
    value: bytes
    round: int
    time: int
    commit: Commit


@dataclasses.dataclass
class SimNode:
    """One running instance. Its guard, decided commits, evidence and WAL model its disk: they survive a
    crash; the machine, timers and pending application answers do not."""

    id: int
    validator: int
    key: SigningKey
    honest: bool
    twin: str  # "" for honest nodes, "A" or "B" for a byzantine validator's twins
    app: Application
    guard: MemorySignGuard = dataclasses.field(default_factory=MemorySignGuard)
    commits: dict[int, Commit] = dataclasses.field(default_factory=dict)
    evidence: dict[bytes, DuplicateVoteEvidence] = dataclasses.field(default_factory=dict)
    wal: list = dataclasses.field(default_factory=list)
    machine: Optional[Consensus] = None
    incarnation: int = 0
    crash_token: int = -1
    round_at_heal: int = 0
    machine_cls: type = Consensus  # a byzantine strategy may run another machine


@dataclasses.dataclass
class SimResult:
    config: SimConfig
    plan: FaultPlan
    validator_keys: list[bytes]
    trace_hash: str
    end_time: int
    decisions: list[Decision]
    honest_signed: dict[tuple[int, int, int, int], set[bytes]]  # (validator, h, r, kind) -> signed digests
    conflicts_seen: list[tuple[int, bytes, int, int, int]]  # (node, validator key, h, r, kind)
    nodes: list[SimNode]
    messages: int
    dropped: int
    machine_drops: Counter
    events: int
    rotated_keys: list[bytes] = dataclasses.field(default_factory=list)  # the set from the committee change on

    def honest_nodes(self) -> list[SimNode]:
        return [n for n in self.nodes if n.honest]

    def keys_at(self, height: int) -> list[bytes]:
        """The validator set of `height`: the genesis set, or the rotated one from `config.rotate_at` on."""
        cfg = self.config
        return self.rotated_keys if cfg.rotate_at and height >= cfg.first_height + cfg.rotate_at \
            else self.validator_keys


class Simulation:
    def __init__(self, config: SimConfig):
        self.config = config
        self.plan = draw_plan(config)
        self.rng = random.Random(config.seed)
        n = config.validators
        spare = 1 if config.rotate_at else 0  # the validator a committee change seats in validator 0's place
        self.keys = [SigningKey.from_label(f"sim-validator-{i}") for i in range(n + spare)]
        self.validator_keys = [k.public for k in self.keys[:n]]
        self.rotated_keys = [*self.validator_keys[1:], self.keys[n].public] if spare else []
        self.last_height = config.first_height + config.heights - 1
        self.nodes: list[SimNode] = []
        twinned = config.strategy == "equivocate"
        for v in range(n):
            byzantine = v in self.plan.byzantine
            twins = ("A", "B") if byzantine and twinned else ("X",) if byzantine else ("",)
            for twin in twins:
                app_cls = RejectingApp if config.reject_every else SimpleApp
                kwargs = {"every": config.reject_every} if config.reject_every else {}
                app = app_cls(config.seed, v, config.value_bytes, salt=twin, **kwargs)
                node = SimNode(len(self.nodes), v, self.keys[v], twin == "", twin, app)
                if not twinned and byzantine:
                    node.machine_cls = LockBreaker
                self.nodes.append(node)
        if spare:  # honest: it follows until the change seats it, then proposes and votes
            app_cls = RejectingApp if config.reject_every else SimpleApp
            kwargs = {"every": config.reject_every} if config.reject_every else {}
            self.nodes.append(SimNode(len(self.nodes), n, self.keys[n], True, "",
                                      app_cls(config.seed, n, config.value_bytes, salt="", **kwargs)))
        self.adversary: Optional[Adversary] = None
        if config.strategy in ADVERSARIES:
            self.adversary = ADVERSARIES[config.strategy](
                config.seed, [v for v in range(n) if v not in self.plan.byzantine],
                {self.keys[v].public: self.keys[v] for v in self.plan.byzantine}, config.chain_id, self._faulty)
        self.by_key: dict[bytes, list[SimNode]] = {}
        for node in self.nodes:
            self.by_key.setdefault(node.key.public, []).append(node)
        self.links = [[self._linked(a, b) for b in self.nodes] for a in self.nodes]
        self.queue: list = []
        self.crashes: list[Crash] = []  # the plan's, then any the adversary adds
        self.seq = 0
        self.now = 0
        self.trace = hashlib.sha256()
        self.decisions: list[Decision] = []
        self.honest_signed: dict[tuple[int, int, int, int], set[bytes]] = {}
        self.first_seen: dict[tuple, bytes] = {}
        self.conflicts_seen: list[tuple[int, bytes, int, int, int]] = []
        self.digests: dict[object, bytes] = {}
        self.messages = self.dropped = self.events = 0
        self.machine_drops: Counter = Counter()
        self.undecided = {(node.id, h) for node in self.nodes if node.honest
                          for h in range(config.first_height, self.last_height + 1)}

    # -- topology and faults ---------------------------------------------------------------------------------

    def _linked(self, a: SimNode, b: SimNode) -> bool:
        if a is b or a.validator == b.validator:
            return False  # twins never talk to each other
        if self.config.strategy != "equivocate":
            return True  # the adversary routes each message itself
        if a.honest and b.honest or self.plan.byzantine_mode == "both":
            return True
        if not a.honest and not b.honest:
            return a.twin == b.twin
        byz, honest = (a, b) if b.honest else (b, a)
        return (honest.validator in self.plan.half_a) == (byz.twin == "A")

    def _partitioned(self, a: SimNode, b: SimNode) -> bool:
        for p in self.plan.partitions:
            if p.start <= self.now < p.end and (a.validator in p.side) != (b.validator in p.side):
                return True
        return False

    def _delay(self) -> int:
        lo, hi = self.config.delay_ms
        d = self.rng.randint(lo, hi)
        if self.rng.randrange(1000) < self.config.slow_permille:
            d += self.rng.randint(0, self.config.slow_ms)
        return d

    def _faulty(self) -> bool:
        return self.now < self.plan.heal_at

    # -- the event queue -------------------------------------------------------------------------------------

    def _push(self, at: int, kind: int, node: int, payload) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (at, kind, self.seq, node, payload))

    def run(self) -> SimResult:
        cfg = self.config
        for node in self.nodes:
            for h in range(cfg.first_height, self.last_height + 1):
                skew = self.rng.randint(0, 20)
                self._push(self._due_time(h) + skew, _START, node.id, StartHeight(h))
        for c in self.plan.crashes:
            self._schedule_crash(c)
        for node in self.nodes:
            self._boot(node, replay=False)
            if cfg.rotate_at:  # a node outside the set sends nothing a peer could answer: it syncs
                self._push(SYNC_MS, _SYNC, node.id, None)
        deadline = None
        while self.queue and self.undecided:
            at, kind, _, node_id, payload = heapq.heappop(self.queue)
            if deadline is None and at >= self.plan.heal_at:
                deadline = self._heal()
            if deadline is not None and at > deadline:
                break
            self.now = at
            self.events += 1
            self._process(kind, self.nodes[node_id], payload)
        if deadline is None:
            self._heal()
        return SimResult(cfg, self.plan, self.validator_keys, self.trace.hexdigest(), self.now, self.decisions,
                         self.honest_signed, self.conflicts_seen, self.nodes, self.messages, self.dropped,
                         self.machine_drops, self.events, self.rotated_keys)

    def _keys_at(self, height: int) -> list[bytes]:
        cfg = self.config
        return self.rotated_keys if height >= cfg.first_height + cfg.rotate_at else self.validator_keys

    def _schedule_crash(self, c: Crash) -> None:
        self.crashes.append(c)
        for node in self.nodes:
            if node.validator == c.validator:
                self._push(c.at, _CRASH, node.id, len(self.crashes) - 1)
                self._push(c.restart_at, _RESTART, node.id, len(self.crashes) - 1)

    def _due_time(self, height: int) -> int:
        return (height - self.config.first_height) * self.config.height_interval_ms

    def _heal(self) -> int:
        """Note each node's round as the faults end; return when the run gives up (the liveness bound)."""
        for node in self.nodes:
            node.round_at_heal = node.machine.round if node.machine is not None else 0
        r = max((n.round_at_heal for n in self.nodes if n.honest), default=0)
        start = max(self.plan.heal_at, self._due_time(self.last_height))
        return start + self.config.heights * height_budget(self.config, r)

    def _process(self, kind: int, node: SimNode, payload) -> None:
        if kind == _DELIVER:
            event, digest = payload
            self._trace(b"D", node.id, digest)
            if node.machine is None:
                return
            if isinstance(event, VoteReceived) and node.honest:
                self._note_vote_seen(node, event.vote)
            if not isinstance(event, CommitReceived) and event_height(event) >= node.machine.height:
                node.wal.append(event)
            if isinstance(event, ProposalReceived) and node.honest and self._judged_untimely(node, digest):
                event = dataclasses.replace(event, timely=False)
            self._feed(node, event)
        elif kind in (_TIMER, _APP):
            incarnation, event = payload
            if node.machine is None or incarnation != node.incarnation:
                return
            self._trace(b"T" if kind == _TIMER else b"A", node.id, describe(event))
            self._feed(node, event)
        elif kind == _START:
            self._trace(b"S", node.id, b"%d" % payload.height)
            if node.machine is not None:
                self._feed(node, payload)
        elif kind == _CRASH:
            self._trace(b"C", node.id, b"%d" % payload)
            if node.machine is not None:
                node.machine = None
                node.incarnation += 1
                node.crash_token = payload
        elif kind == _SYNC:
            self._push(self.now + SYNC_MS, _SYNC, node.id, None)
            if node.machine is not None:
                self._sync(node)
        elif kind == _RESTART:
            self._trace(b"R", node.id, b"%d" % payload)
            if node.machine is None and node.crash_token == payload:
                self._boot(node, replay=self.crashes[payload].replay_wal)

    def _trace(self, tag: bytes, node: int, data: bytes) -> None:
        self.trace.update(b"%s%d:%d:" % (tag, self.now, node))
        self.trace.update(data)

    def _sync(self, node: SimNode) -> None:
        """As the shell's catch-up loop: ask one reachable peer for the commits from this node's height on
        (a follower, which signs nothing, is never answered as a lagging voter is)."""
        h = node.machine.height
        peers = [p for p in self.nodes if p is not node and p.honest and h in p.commits
                 and self.links[node.id][p.id] and not (self._faulty() and self._partitioned(node, p))]
        if not peers:
            return
        peer = peers[self.rng.randrange(len(peers))]
        for height in range(h, h + self.config.consensus.future_heights + 1):
            commit = peer.commits.get(height)
            if commit is None:
                break
            self.messages += 1
            digest = hashlib.sha256(commit.encode()).digest()
            event = CommitReceived(height, commit.value, commit.certificate)
            self._push(self.now + self._delay(), _DELIVER, node.id, (event, digest))

    # -- nodes -----------------------------------------------------------------------------------------------

    def _boot(self, node: SimNode, replay: bool) -> None:
        """Start (or restart) a node from its disk: decided commits, sign guard, and maybe its WAL."""
        cfg = self.config
        height = max(node.commits) + 1 if node.commits else cfg.first_height
        recent = [node.commits[h] for h in sorted(node.commits)[-cfg.consensus.commit_window:]]
        sets = self._keys_at if cfg.rotate_at else self.validator_keys
        node.machine = node.machine_cls(chain_id=cfg.chain_id, validators=sets, key=node.key,
                                 guard=node.guard, height=height, config=cfg.consensus, recent_commits=recent)
        node.wal = [e for e in node.wal if event_height(e) >= height] if replay else []
        for event in list(node.wal):
            self._feed(node, event)
        due = max((h for h in range(cfg.first_height, self.last_height + 1) if self._due_time(h) <= self.now),
                  default=None)
        if due is not None:
            self._feed(node, StartHeight(due))

    def _feed(self, node: SimNode, event) -> None:
        for action in node.machine.handle(event):
            self._carry_out(node, action)

    def _carry_out(self, node: SimNode, action) -> None:
        if isinstance(action, Broadcast):
            if isinstance(action.message, Proposal) and action.message.height >= node.machine.height:
                node.wal.append(ProposalReceived(action.message))  # as a validator logs its own proposals
            self._send(node, action.message, [n for n in self.nodes if self.links[node.id][n.id]])
        elif isinstance(action, SendCommit):
            targets = [n for n in self.by_key.get(action.to, ()) if self.links[node.id][n.id]]
            c = action.commit
            if self.adversary is not None and not self.adversary.commit_allowed(node.validator, node.honest,
                                                                                c.certificate.height):
                targets = []
            self._send(node, c, targets, CommitReceived(c.certificate.height, c.value, c.certificate))
        elif isinstance(action, ScheduleTimeout):
            self._push(self.now + action.delay_ms, _TIMER, node.id,
                       (node.incarnation, TimeoutFired(action.height, action.round, action.kind)))
        elif isinstance(action, RequestValue):
            value = node.app.build_value(action.height, action.round)
            self._push(self.now + self._app_delay(), _APP, node.id,
                       (node.incarnation, ValueReady(action.height, action.round, value)))
        elif isinstance(action, ValidateValue):
            verdict = ValueChecked(action.height, value_hash(action.value),
                                   node.app.validate(action.height, action.value),
                                   not (self.config.picky_permille and
                                        node.app.judged_incomplete(action.value, self.config.picky_permille)))
            self._push(self.now + self._app_delay(), _APP, node.id, (node.incarnation, verdict))
        elif isinstance(action, Decide):
            self._on_decide(node, action)
        elif isinstance(action, EvidenceFound):
            node.evidence[action.evidence.id()] = action.evidence
        elif isinstance(action, Rejected):
            self.machine_drops[action.reason] += 1

    def _app_delay(self) -> int:
        lo, hi = self.config.app_ms
        if self._faulty() and self.rng.randrange(1000) < self.plan.app_slow_permille:
            return self.config.consensus.propose_ms + self.rng.randint(0, self.config.consensus.propose_ms)
        return self.rng.randint(lo, hi)

    def _on_decide(self, node: SimNode, d: Decide) -> None:
        h = value_hash(d.value)
        commit = Commit(d.value, d.certificate)
        node.commits[d.height] = commit
        node.wal = [e for e in node.wal if event_height(e) > d.height]
        node.guard.prune_below(d.height)
        self.decisions.append(Decision(node.id, node.validator, d.height, h, d.value, d.certificate.round,
                                       self.now, commit))
        self.undecided.discard((node.id, d.height))
        if self.adversary is not None:
            for crash in self.adversary.on_decide(node.validator, d.height, d.certificate.round, self.now):
                self._schedule_crash(crash)
        self._trace(b"X", node.id, b"%d:" % d.height + h)

    def _send(self, node: SimNode, msg, targets: list[SimNode], event=None) -> None:
        if self.adversary is not None and event is None:
            routed: dict[object, list[SimNode]] = {}
            for target in targets:
                for out in self.adversary.route(node.validator, node.honest, msg, target.validator):
                    routed.setdefault(out, []).append(target)
            for out, to in routed.items():
                self._deliver(node, out, to)
            return
        self._deliver(node, msg, targets, event)

    def _deliver(self, node: SimNode, msg, targets: list[SimNode], event=None) -> None:
        digest = self.digests.get(msg)
        if digest is None:
            digest = self.digests[msg] = hashlib.sha256(msg.encode()).digest()
        if event is None:
            event = ProposalReceived(msg, node.key.public) if isinstance(msg, Proposal) else \
                VoteReceived(msg, node.key.public)
            if node.honest and msg_author(msg) == node.key.public:
                key = (node.validator, msg.height, msg.round, _KIND_OF_MSG[type(msg)])
                self.honest_signed.setdefault(key, set()).add(digest)
        faulty = self._faulty()
        for target in targets:
            if faulty and (self._partitioned(node, target) or self.rng.randrange(1000) < self.plan.loss_permille):
                self.dropped += 1
                continue
            copies = 2 if faulty and self.rng.randrange(1000) < self.plan.dup_permille else 1
            for _ in range(copies):
                self.messages += 1
                self._push(self.now + self._delay(), _DELIVER, target.id, (event, digest))

    def _judged_untimely(self, node: SimNode, digest: bytes) -> bool:
        """The clock-dependent judgement at receipt, drawn per (node, proposal) without touching the run's
        random stream (so a run with picky_permille 0 is the run it always was)."""
        picky = self.config.picky_permille
        return bool(picky) and random.Random(f"{self.config.seed}/untimely/{node.validator}/{digest.hex()}") \
            .randrange(1000) < picky

    def _note_vote_seen(self, node: SimNode, vote) -> None:
        """Record a conflicting pair of votes that this honest node's machine had in hand at one height."""
        if vote.height != node.machine.height:
            return
        kind = _KIND_OF_MSG[type(vote)]
        key = (node.id, node.incarnation, vote.validator, vote.height, vote.round, kind)
        first = self.first_seen.setdefault(key, vote.value_hash or b"")
        if first != (vote.value_hash or b""):
            self.conflicts_seen.append((node.id, vote.validator, vote.height, vote.round, kind))


def describe(event) -> bytes:
    """A timer's or an application answer's bytes for the trace."""
    if isinstance(event, TimeoutFired):
        return b"%d:%d:%d" % (event.height, event.round, event.kind)
    if isinstance(event, ValueReady):
        return b"%d:%d:" % (event.height, event.round) + value_hash(event.value)
    return b"%d:%d:" % (event.height, event.valid) + event.value_hash


def msg_author(msg) -> bytes:
    return msg.proposer if isinstance(msg, Proposal) else msg.validator


def event_height(event) -> int:
    if isinstance(event, ProposalReceived):
        return event.proposal.height
    if isinstance(event, VoteReceived):
        return event.vote.height
    return event.height


def simulate(config: SimConfig) -> SimResult:
    """Run one simulation (the checker is separate: `stromledger.sim.checker.check(result)`)."""
    return Simulation(config).run()
