"""Tendermint (Buchman, Kwon, Milosevic, arXiv 1807.04938, Algorithm 1) as a sans-I/O state machine.

One `Consensus` per validator: `handle(event) -> list[action]`. The comments `[L22]` etc. name the lines of
Algorithm 1 that a rule implements. Differences from the paper, all for a lossy, asynchronous world:

- valid(v) is asked of the application (ValidateValue -> ValueChecked) and cached per value hash; a rule
  that needs a verdict waits for it, and the propose timeout prevotes nil if it does not come in time.
- getValue() is RequestValue -> ValueReady; the proposer also runs the propose timeout.
- A value is known by its hash: the rules that need v [L36, L49] take it from any proposal of the height,
  including the second proposal of an equivocating proposer (at most two per proposer and round).
- Round skip [L55] moves to the highest round that f+1 validators have reached (the paper's rule when
  they agree, and it never goes beyond a round an honest validator is in).
- Own messages are re-broadcast on a resend timer; a node that decided a height answers a late message of
  that height with the commit; messages of the next few heights are buffered.
- Every signature passes the sign guard first. A restarted machine restores its round, step, own votes
  and lock from the guard's records (mandatory: a WAL does not restore the lock), and adopts its own
  proposal when the WAL replays it, so that it re-sends it.
- Messages for rounds ahead of the current one are held within a byte budget per validator, and a late
  precommit of the height just decided that conflicts with one held is turned into evidence.
- The validator set may change from height to height (committee changes, registry/committee.py):
  `validators` may be a function of the height. Every height is decided, and every certificate of it
  checked, by that height's set; a node whose key is not in a height's set follows that height without
  signing, and signs from the first height whose set holds its key. Messages of a future height are
  buffered from the members of the set it is expected to have and judged by its set when it starts.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable, Iterable, Optional, Sequence, Union

from stromledger.crypto import SigningKey

from .certificate import CertificateError, build_certificate, verify_certificate
from .config import ConsensusConfig
from .events import (Action, Broadcast, CommitReceived, Decide, Event, EvidenceFound, ProposalReceived,
                     Rejected, RequestValue, ScheduleTimeout, SendCommit, StartHeight, TimeoutFired, TimeoutKind,
                     ValidateValue, ValueChecked, ValueReady, VoteReceived)
from .evidence import DuplicateVoteEvidence, make_evidence
from .messages import (MAX_VALUE_BYTES, Commit, CommitCertificate, Precommit, Prevote, Proposal, Vote, author,
                       sign_proposal, sign_vote, value_hash, verify_signature)
from .signguard import PRECOMMIT, PREVOTE, PROPOSE, SignGuard, Step, guard_records, missing_guard_methods
from .validators import ValidatorSet
from .votes import VoteSet

_VOTE_STEP = {Prevote: PREVOTE, Precommit: PRECOMMIT}
VOTE_WEIGHT = 256  # bytes a held vote is counted as against a byte budget (its encoding is ~170 bytes)
Validators = Union[ValidatorSet, Sequence[bytes]]


def held_bytes(msg) -> int:
    """What holding `msg` costs, for the byte budgets of messages of future rounds and heights."""
    return len(msg.value) + VOTE_WEIGHT if isinstance(msg, Proposal) else VOTE_WEIGHT


class Consensus:
    """The consensus state machine of one validator (or, with key=None, of a node that only follows).

    `height` is the next height to decide: the genesis' first height, or the last decided one + 1.
    `recent_commits` are the last decided heights (from the store), used to answer peers that are behind.
    `validators`: one set for every height, or a function height -> that height's set (the shell's view of
    the committed committee changes; with changes committed two heights ahead, the set of the next height is
    known when a height is decided).
    """

    def __init__(self, *, chain_id: str, validators: Validators | Callable[[int], Validators],
                 key: Optional[SigningKey], guard: Optional[SignGuard], height: int,
                 config: ConsensusConfig = ConsensusConfig(), recent_commits: Iterable[Commit] = ()):
        self.chain_id = chain_id
        fixed = None if callable(validators) else ValidatorSet.of(validators)
        self._sets: Callable[[int], Validators] = validators if fixed is None else (lambda h: fixed)
        # With a set per height, the set of h + 2 follows from the commit of h, which the shell applies when it
        # carries out the Decide: so at most one height is decided per handle() call, and a commit received
        # ahead (verified then by the set expected for its height) is verified again by its height's own set
        # when it is applied.
        self._per_height = fixed is None
        self._decided_in_call = False
        self.config = config
        self._key = key  # signs at the heights whose set holds it
        self.validators: Optional[ValidatorSet] = None  # the current height's set (set by _enter_height)
        if type(height) is not int or height < 0:
            raise ValueError(f"height must be an int >= 0, got {height!r}")
        member = key is not None and key.public in ValidatorSet.of(self._sets(height))
        if member and guard is None:
            raise ValueError("a validator needs a sign guard")
        missing = missing_guard_methods(guard) if key is not None and guard is not None else []
        if missing:  # without records() a restart forgets the lock; without floor() a rollback double-signs
            raise ValueError(f"the sign guard {type(guard).__name__} lacks {', '.join(missing)}()")
        self.guard = guard
        self.height = height
        self.due = -1  # the highest height StartHeight has allowed
        self.drops: Counter[str] = Counter()  # why inputs were dropped or refused
        self.evidence: dict[bytes, DuplicateVoteEvidence] = {}
        self.commits: dict[int, Commit] = {}
        for c in recent_commits:
            self._keep_commit(c)
        self._future: dict[int, dict[object, bool]] = {}  # height -> buffered message -> timely (ordered)
        self._future_count: Counter[tuple[int, bytes]] = Counter()  # (height, validator key) -> buffered
        self._future_bytes: Counter[tuple[int, bytes]] = Counter()  # (height, validator key) -> bytes buffered
        self._last_precommits: dict[int, VoteSet] = {}  # the decided height's precommits, for late evidence
        self._last_set: Optional[ValidatorSet] = None  # the decided height's validator set
        self._future_commits: dict[int, Commit] = {}
        self._answers: Counter[tuple[bytes, int]] = Counter()
        self._out: list[Action] = []
        self._enter_height()

    # -- public ----------------------------------------------------------------------------------------------

    def handle(self, event: Event) -> list[Action]:
        """Apply one input; return the actions to carry out, in order."""
        self._decided_in_call = False
        if isinstance(event, (ProposalReceived, VoteReceived)):
            if isinstance(event, ProposalReceived):
                self._on_message(event.proposal, sender=event.sender, timely=event.timely)
            else:
                self._on_message(event.vote, sender=event.sender)
        elif isinstance(event, TimeoutFired):
            self._on_timeout(event)
        elif isinstance(event, ValueChecked):
            self._on_verdict(event)
        elif isinstance(event, ValueReady):
            self._on_value(event)
        elif isinstance(event, CommitReceived):
            self._on_commit(event)
        elif isinstance(event, StartHeight):
            self._on_start(event)
        else:
            self._reject("bad_event", f"not a consensus event: {type(event).__name__}")
        self._progress()
        out, self._out = self._out, []
        return out

    @property
    def started(self) -> bool:
        return self._started

    @property
    def locked_hash(self) -> Optional[bytes]:
        return self._locked_hash

    @property
    def locked_round(self) -> int:
        return self._locked_round

    @property
    def valid_hash(self) -> Optional[bytes]:
        return self._valid_hash

    @property
    def valid_round(self) -> int:
        return self._valid_round

    def proposer(self, round: int) -> bytes:
        return self.validators.proposer(self.height, round)

    # -- height and round ------------------------------------------------------------------------------------

    def set_at(self, height: int) -> ValidatorSet:
        """The validator set of `height` (for a height ahead: the one expected from what is committed)."""
        if height == self.height and self.validators is not None:
            return self.validators
        return ValidatorSet.of(self._sets(height))

    def _enter_height(self) -> None:
        """Fresh per-height state: this height's set (and whether this node signs in it), then what the sign
        guard says this validator already signed here."""
        self.validators = ValidatorSet.of(self._sets(self.height))
        self.me = None if self._key is None else self.validators.index(self._key.public)
        self.key = self._key if self.me is not None and self.guard is not None else None
        self.round = 0
        self.step = PROPOSE
        self._started = False
        self._locked_hash: Optional[bytes] = None
        self._locked_round = -1
        self._valid_hash: Optional[bytes] = None
        self._valid_round = -1
        self._proposals: dict[int, tuple[Proposal, bytes]] = {}  # round -> (proposal, value hash)
        self._second: dict[int, bytes] = {}  # round -> value hash of the proposer's conflicting proposal
        self._ahead: dict[int, dict[int, int]] = {}  # validator -> round -> bytes held for rounds ahead
        self._values: dict[bytes, bytes] = {}  # value hash -> value, from this height's proposals
        self._verdicts: dict[bytes, Optional[bool]] = {}  # None: asked, no answer yet
        self._incomplete: set[bytes] = set()  # valid values the application would not take as a new proposal
        self._untimely: set[int] = set()  # rounds whose proposal the driver judged untimely on receipt
        self._prevotes: dict[int, VoteSet] = {}
        self._precommits: dict[int, VoteSet] = {}
        self._max_round_of = [-1] * self.validators.n
        self._rounds_moved = False
        self._fired: set[tuple[int, int]] = set()  # (rule line, round) of once-per-round rules
        self._commit_candidates: list[tuple[int, bytes]] = []  # (round, hash) with +2/3 precommits
        self._own: dict[tuple[int, int], object] = {}  # (round, step) -> own signed message
        self._last_own: dict[int, Vote] = {}  # step -> own vote of the highest round
        self._requested: set[int] = set()  # rounds whose value was asked of the application
        self._resumed = False
        if self.key is not None:
            self._restore(guard_records(self.guard, self.height))

    def _restore(self, records) -> None:
        for rec in records:
            if rec.step == PROPOSE:  # the value is not in the record: only the round is known
                self._advance_to(rec.round, PROPOSE)
                continue
            kind = Prevote if rec.step == PREVOTE else Precommit
            vote = sign_vote(kind, self.key, self.chain_id, self.height, rec.round, rec.value_hash or None)
            self._adopt_own(vote)
            self._add_vote(vote, self.me)
            self._advance_to(rec.round, Step(rec.step))

    def _advance_to(self, round: int, step: Step) -> None:
        if (round, step) > (self.round, self.step):
            self.round, self.step = round, step
        self._resumed = True

    def _on_start(self, event: StartHeight) -> None:
        self.due = max(self.due, event.height)
        if event.height < self.height:
            self.drops["start_old_height"] += 1
        self._maybe_start()

    def _maybe_start(self) -> None:
        if self._started or self.height > self.due:
            return
        self._started = True
        self._schedule(0, TimeoutKind.RESEND, self.config.resend_ms)
        if self.key is None or not self._resumed:
            self._start_round(0)
        elif self.step == PROPOSE:
            self._start_round(self.round)

    def _start_round(self, round: int) -> None:  # [L11] StartRound
        self.round = round
        self.step = PROPOSE
        if self.key is not None and self.validators.proposer_index(self.height, round) == self.me:
            if self._valid_hash is not None and self._valid_hash in self._values:
                self._propose(self._values[self._valid_hash], self._valid_round)
            elif round not in self._requested:
                self._requested.add(round)
                self._out.append(RequestValue(self.height, round))
        self._schedule(round, TimeoutKind.PROPOSE, self.config.propose_timeout(round))

    def _schedule(self, round: int, kind: TimeoutKind, delay_ms: int) -> None:
        self._out.append(ScheduleTimeout(self.height, round, kind, delay_ms))

    # -- inputs ----------------------------------------------------------------------------------------------

    def _on_message(self, msg, *, sender: Optional[bytes] = None, verified: bool = False,
                    timely: bool = True) -> None:
        if not isinstance(msg, (Proposal, Prevote, Precommit)):
            self._reject("bad_message", f"not a consensus message: {type(msg).__name__}")
            return
        index = self.set_at(msg.height).index(author(msg))
        if index is None:
            self._reject("unknown_validator", f"{type(msg).__name__} signed by a key outside the validator set "
                                              f"of height {msg.height}")
            return
        if msg.height < self.height:
            self._answer_lagging(msg, sender or author(msg), verified)
        elif msg.height > self.height:
            self._buffer(msg, index, verified, timely)
        elif isinstance(msg, Proposal):
            self._on_proposal(msg, index, verified, timely)
        else:
            self._on_vote(msg, index, verified)

    def _on_proposal(self, p: Proposal, index: int, verified: bool, timely: bool = True) -> None:
        if index != self.validators.proposer_index(p.height, p.round):
            self._reject("wrong_proposer", f"validator {index} is not the proposer of round {p.round}")
            return
        if p.pol_round >= p.round:
            self._reject("bad_pol_round", f"pol_round {p.pol_round} is not below round {p.round}")
            return
        if p.round > self.round + self.config.max_round_ahead:
            self.drops["far_future_round"] += 1
            return
        held = self._proposals.get(p.round)
        if held is not None and held[0] == p:
            self.drops["duplicate"] += 1
            return
        if held is not None and p.round in self._second:  # a third proposal: nothing more is kept
            self.drops["conflicting_proposal"] += 1
            return
        if not self._within_round_budget(p, index):
            return
        if not verified and not verify_signature(p, self.chain_id):
            self._reject("bad_signature", f"proposal of round {p.round} from validator {index}")
            return
        self._hold_ahead(p, index)
        if index == self.me:
            self._adopt_own_proposal(p)
        if held is not None:
            # The proposer equivocates. The first proposal stands for L22/L28, but the second one's value
            # is kept for L36/L49: 2f+1 prevotes or precommits for it must still lock and decide.
            self.drops["conflicting_proposal"] += 1
            h = value_hash(p.value)
            self._second[p.round] = h
            self._learn_value(h, p)
            return
        self._note_round(index, p.round)
        if not timely:
            self._untimely.add(p.round)
        self._accept_proposal(p)

    def _adopt_own_proposal(self, p: Proposal) -> None:
        """Our own proposal, replayed from the WAL after a restart: re-send it if the guard says we signed
        it (a proposer restarted after prevoting would otherwise never send it again)."""
        h = value_hash(p.value)
        if any((r.round, r.step, r.value_hash) == (p.round, PROPOSE, h)
               for r in guard_records(self.guard, self.height)):
            self._own.setdefault((p.round, PROPOSE), p)
            self._verdicts[h] = True  # our own application built it

    def _within_round_budget(self, msg, index: int) -> bool:
        """Messages for rounds ahead are bounded in bytes per validator, not only in rounds."""
        if msg.round <= self.round:
            return True
        ahead = self._ahead.get(index, {})
        used = sum(b for r, b in ahead.items() if r > self.round)
        if used + held_bytes(msg) > self.config.max_ahead_bytes:
            self.drops["ahead_budget"] += 1
            return False
        return True

    def _hold_ahead(self, msg, index: int) -> None:
        if msg.round > self.round:
            ahead = self._ahead.setdefault(index, {})
            ahead[msg.round] = ahead.get(msg.round, 0) + held_bytes(msg)

    def _accept_proposal(self, p: Proposal) -> None:
        h = value_hash(p.value)
        self._proposals[p.round] = (p, h)
        self._learn_value(h, p)

    def _learn_value(self, h: bytes, p: Proposal) -> None:
        self._values.setdefault(h, p.value)
        if h not in self._verdicts:
            self._verdicts[h] = None
            self._out.append(ValidateValue(self.height, p.round, p.value))

    def _on_vote(self, v: Vote, index: int, verified: bool) -> None:
        if v.round > self.round + self.config.max_round_ahead:
            self.drops["far_future_round"] += 1
            return
        held = self._vote_sets(type(v)).get(v.round)
        if held is not None and held.holds(index, v):
            self.drops["duplicate"] += 1
            return
        if not self._within_round_budget(v, index):
            return
        if not verified and not verify_signature(v, self.chain_id):
            self._reject("bad_signature", f"{type(v).__name__} of round {v.round} from validator {index}")
            return
        self._hold_ahead(v, index)
        if index == self.me:  # our own vote, echoed back or replayed from a WAL after a restart
            self._adopt_own(v)
        if self._add_vote(v, index):
            self._note_round(index, v.round)

    def _vote_sets(self, kind: type) -> dict[int, VoteSet]:
        return self._prevotes if kind is Prevote else self._precommits

    def _add_vote(self, v: Vote, index: int) -> bool:
        sets = self._vote_sets(type(v))
        vs = sets.get(v.round)
        if vs is None:
            vs = sets[v.round] = VoteSet()
        counted, prior = vs.add(index, v, wanted=v.value_hash is None or v.value_hash in self._values)
        if prior is not None:
            self._record_evidence(make_evidence(prior, v))
        if not counted:
            self.drops["duplicate" if prior is None else "equivocation_not_counted"] += 1
            return False
        if isinstance(v, Precommit) and v.value_hash is not None \
                and vs.count(v.value_hash) == self.validators.quorum:
            self._commit_candidates.append((v.round, v.value_hash))
        return True

    def _adopt_own(self, v: Vote) -> None:
        step = _VOTE_STEP[type(v)]
        self._own.setdefault((v.round, step), v)
        last = self._last_own.get(step)
        if last is None or v.round > last.round:
            self._last_own[step] = v
        if step == PRECOMMIT and v.value_hash is not None and v.round > self._locked_round:
            self._locked_hash, self._locked_round = v.value_hash, v.round  # what we precommitted, we locked
            if self._valid_round < v.round:  # as in the paper, validRound >= lockedRound
                self._valid_hash, self._valid_round = v.value_hash, v.round

    def _record_evidence(self, ev: DuplicateVoteEvidence) -> None:
        key = ev.id()
        if key not in self.evidence:
            self.evidence[key] = ev
            self._out.append(EvidenceFound(ev))
        else:
            self.drops["known_evidence"] += 1

    def _note_round(self, index: int, round: int) -> None:
        if round > self._max_round_of[index]:
            self._max_round_of[index] = round
            self._rounds_moved = self._rounds_moved or round > self.round

    def _buffer(self, msg, index: int, verified: bool, timely: bool = True) -> None:
        if msg.height > self.height + self.config.future_heights:
            self.drops["far_future_height"] += 1
            return
        buffered = self._future.setdefault(msg.height, {})
        if msg in buffered:
            self.drops["duplicate"] += 1
            return
        key = (msg.height, author(msg))  # judged by its height's set when that height starts
        if self._future_count[key] >= self.config.max_buffered_per_validator \
                or self._future_bytes[key] + held_bytes(msg) > self.config.max_ahead_bytes:
            self.drops["buffer_full"] += 1
            return
        if not verified and not verify_signature(msg, self.chain_id):
            self._reject("bad_signature", f"{type(msg).__name__} for height {msg.height} from validator {index}")
            return
        buffered[msg] = timely
        self._future_count[key] += 1
        self._future_bytes[key] += held_bytes(msg)

    def _answer_lagging(self, msg, to: bytes, verified: bool) -> None:
        """A message of a height we decided: its sender is behind. Send it that commit and the next ones."""
        if isinstance(msg, Precommit) and msg.height == self.height - 1:
            verified = self._check_late_precommit(msg, verified)
        if msg.height not in self.commits or (self.key is not None and to == self.key.public):
            self.drops["old_height"] += 1
            return
        self._answers[(to, msg.height)] += 1
        if self._answers[(to, msg.height)] % self.config.answer_every:  # a peer's last votes often come late
            self.drops["old_height_ignored"] += 1
            return
        if not verified and not verify_signature(msg, self.chain_id):
            self._reject("bad_signature", f"{type(msg).__name__} for old height {msg.height}")
            return
        for h in range(msg.height, msg.height + self.config.future_heights + 1):
            if h in self.commits:
                self._out.append(SendCommit(to, self.commits[h]))

    def _check_late_precommit(self, v: Precommit, verified: bool) -> bool:
        """A precommit of the height just decided that conflicts with one we hold of that validator is
        evidence (as CometBFT checks the LastCommit). Returns whether the signature is now verified."""
        held = self._last_precommits.get(v.round)
        index = None if self._last_set is None else self._last_set.index(v.validator)
        if held is None or index is None or held.holds(index, v):
            return verified
        if not verified and not verify_signature(v, self.chain_id):
            return False
        _, prior = held.add(index, v)
        if prior is not None:
            self._record_evidence(make_evidence(prior, v))
        return True

    def _on_commit(self, event: CommitReceived) -> None:
        h = event.height
        if h < self.height:
            self.drops["old_commit"] += 1
            return
        if h > self.height + self.config.future_heights:
            self.drops["far_future_height"] += 1
            return
        if h in self._future_commits:
            self.drops["duplicate"] += 1
            return
        if not isinstance(event.value, bytes) or len(event.value) > MAX_VALUE_BYTES \
                or not isinstance(event.certificate, CommitCertificate):
            self._reject("bad_commit", "a commit is a value of at most MAX_VALUE_BYTES and a CommitCertificate")
            return
        try:
            verify_certificate(event.certificate, value_hash(event.value), self.set_at(h), self.chain_id, height=h)
        except CertificateError as e:
            self._reject(f"bad_certificate_{e.reason}", str(e))
            return
        self._future_commits[h] = Commit(event.value, event.certificate)  # applied by _progress, in order

    def _on_value(self, event: ValueReady) -> None:
        if not isinstance(event.value, bytes) or len(event.value) > MAX_VALUE_BYTES:
            self._reject("bad_value", "a proposed value must be bytes of at most MAX_VALUE_BYTES")
            return
        if (event.height, event.round) != (self.height, self.round) or not self._started \
                or self.step != PROPOSE or (event.round, PROPOSE) in self._own:
            self.drops["stale_value"] += 1
            return
        if self._valid_hash in self._values:  # learnt while the application worked: the paper proposes it
            self._propose(self._values[self._valid_hash], self._valid_round)
        else:
            self._propose(event.value, -1)

    def _on_verdict(self, event: ValueChecked) -> None:
        if event.height != self.height or self._verdicts.get(event.value_hash, False) is not None:
            self.drops["stale_verdict"] += 1
            return
        self._verdicts[event.value_hash] = bool(event.valid)
        if not event.complete:
            self._incomplete.add(event.value_hash)

    def _on_timeout(self, t: TimeoutFired) -> None:
        if t.height != self.height or not self._started:
            self.drops["stale_timeout"] += 1
            return
        if t.kind == TimeoutKind.RESEND:
            self._resend()
            self._schedule(0, TimeoutKind.RESEND, self.config.resend_ms)
        elif t.round != self.round:
            self.drops["stale_timeout"] += 1
        elif t.kind == TimeoutKind.PROPOSE and self.step == PROPOSE:  # [L57]
            self._vote(Prevote, None)
            self.step = PREVOTE
        elif t.kind == TimeoutKind.PREVOTE and self.step == PREVOTE:  # [L61]
            self._vote(Precommit, None)
            self.step = PRECOMMIT
        elif t.kind == TimeoutKind.PRECOMMIT:  # [L65]
            self._start_round(self.round + 1)

    # -- signing ---------------------------------------------------------------------------------------------

    def _propose(self, value: bytes, pol_round: int) -> None:
        h = value_hash(value)
        if not self.guard.check_and_record(self.height, self.round, PROPOSE, h):
            self.drops["sign_guard_refused"] += 1
            return
        p = sign_proposal(self.key, self.chain_id, self.height, self.round, pol_round, value)
        self._own[(self.round, PROPOSE)] = p
        self._verdicts[h] = True  # our own application built it
        self._out.append(Broadcast(p))
        self._broadcast_pol(p)
        self._note_round(self.me, p.round)
        self._accept_proposal(p)

    def _broadcast_pol(self, p: Proposal) -> None:
        """Relay the prevotes that justify a re-proposal, for peers that missed them."""
        pol = self._prevotes.get(p.pol_round) if p.pol_round >= 0 else None
        for v in pol.for_value(value_hash(p.value)) if pol else ():
            self._out.append(Broadcast(v))

    def _vote(self, kind: type, h: Optional[bytes]) -> Optional[bytes]:
        """Sign and broadcast a vote for `h` (None: nil) in the current round; return what was signed. A
        validator that signed this step before (it restarted) re-sends that vote instead."""
        if self.key is None:
            return None
        step = _VOTE_STEP[kind]
        own = self._own.get((self.round, step))
        if own is None:
            if not self.guard.check_and_record(self.height, self.round, step, h or b""):
                recorded = [r for r in guard_records(self.guard, self.height)
                            if (r.round, r.step) == (self.round, step)]
                if not recorded:
                    self.drops["sign_guard_refused"] += 1
                    return None
                h = recorded[0].value_hash or None
            own = sign_vote(kind, self.key, self.chain_id, self.height, self.round, h)
            self._adopt_own(own)
            self._on_vote(own, self.me, verified=True)
        self._out.append(Broadcast(own))
        return own.value_hash

    def _resend(self) -> None:
        """Re-broadcast our proposal of this round (with the prevotes that justify its pol_round) and our
        latest prevote and precommit: the network may have lost them."""
        mine = self._own.get((self.round, PROPOSE))
        if mine is not None:
            self._out.append(Broadcast(mine))
            self._broadcast_pol(mine)
        for step in (PREVOTE, PRECOMMIT):
            if step in self._last_own:
                self._out.append(Broadcast(self._last_own[step]))

    # -- the upon rules --------------------------------------------------------------------------------------

    def _progress(self) -> None:
        """Apply every rule whose condition holds, until none does."""
        while (self._apply_commit() or self._decide_on_precommits() or
               (self._started and (self._skip_rounds() or self._prevote_on_proposal()
                                   or self._schedule_prevote_timeout() or self._precommit_on_polka()
                                   or self._precommit_nil() or self._schedule_precommit_timeout()))):
            pass

    def _apply_commit(self) -> bool:  # catch-up: a verified commit for this height
        if self._per_height and self._decided_in_call:
            return False  # the next height's set may rest on the decision just made: after the shell applied it
        commit = self._future_commits.pop(self.height, None)
        if commit is None:
            return False
        if self._per_height:
            try:  # received ahead: verified by the set expected then, now by the height's own
                verify_certificate(commit.certificate, value_hash(commit.value), self.validators, self.chain_id,
                                   height=self.height)
            except CertificateError as e:
                self._reject(f"bad_certificate_{e.reason}", str(e))
                return False
        self._decide(commit)
        return True

    def _decide_on_precommits(self) -> bool:  # [L49] for any round
        if self._per_height and self._decided_in_call:
            return False
        for r, h in self._commit_candidates:
            if self._verdicts.get(h) is True:
                cert = build_certificate(self.height, r, h, self._precommits[r].for_value(h), self.validators)
                self._decide(Commit(self._values[h], cert))
                return True
        return False

    def _skip_rounds(self) -> bool:  # [L55] f+1 validators are in higher rounds
        if not self._rounds_moved:
            return False
        self._rounds_moved = False
        target = sorted(self._max_round_of, reverse=True)[self.validators.skip - 1]
        if target <= self.round:
            return False
        self._start_round(target)
        return True

    def _prevote_on_proposal(self) -> bool:  # [L22] and [L28]
        if self.step != PROPOSE or self.round not in self._proposals:
            return False
        p, h = self._proposals[self.round]
        if p.pol_round < 0:
            lock_ok = self._locked_round == -1 or self._locked_hash == h
            # A new value must also be complete and timely in the application's judgement (judged once per
            # value and once per proposal receipt). A proof-of-lock (L28) or our own lock overrides it.
            if self._locked_hash != h and (h in self._incomplete or p.round in self._untimely):
                lock_ok = False
        else:
            pol = self._prevotes.get(p.pol_round)
            if pol is None or pol.count(h) < self.validators.quorum:
                return False  # wait for the prevotes that justify it, or for the propose timeout
            lock_ok = self._locked_round <= p.pol_round or self._locked_hash == h
        verdict = self._verdicts.get(h)
        if lock_ok and verdict is None:
            return False  # the application has not answered yet
        self._vote(Prevote, h if lock_ok and verdict else None)
        self.step = PREVOTE
        return True

    def _schedule_prevote_timeout(self) -> bool:  # [L34]
        vs = self._prevotes.get(self.round)
        if self.step != PREVOTE or vs is None or vs.total < self.validators.quorum \
                or (34, self.round) in self._fired:
            return False
        self._fired.add((34, self.round))
        self._schedule(self.round, TimeoutKind.PREVOTE, self.config.prevote_timeout(self.round))
        return True

    def _precommit_on_polka(self) -> bool:  # [L36]
        vs = self._prevotes.get(self.round)
        if self.step == PROPOSE or vs is None or (36, self.round) in self._fired:
            return False
        h = vs.value_with(self.validators.quorum)
        if h is None or self._verdicts.get(h) is not True:
            return False
        self._fired.add((36, self.round))
        if self.step == PREVOTE:
            self._vote(Precommit, h)  # locks on h (see _adopt_own), unless the guard holds another vote
            self.step = PRECOMMIT
        self._valid_hash, self._valid_round = h, self.round
        return True

    def _precommit_nil(self) -> bool:  # [L44]
        vs = self._prevotes.get(self.round)
        if self.step != PREVOTE or vs is None or vs.count(None) < self.validators.quorum:
            return False
        self._vote(Precommit, None)
        self.step = PRECOMMIT
        return True

    def _schedule_precommit_timeout(self) -> bool:  # [L47]
        vs = self._precommits.get(self.round)
        if vs is None or vs.total < self.validators.quorum or (47, self.round) in self._fired:
            return False
        self._fired.add((47, self.round))
        self._schedule(self.round, TimeoutKind.PRECOMMIT, self.config.precommit_timeout(self.round))
        return True

    # -- deciding --------------------------------------------------------------------------------------------

    def _decide(self, commit: Commit) -> None:
        self._decided_in_call = True
        self._out.append(Decide(self.height, commit.value, commit.certificate))
        self._keep_commit(commit)
        self.height += 1
        for h in [h for h in self._future if h < self.height]:
            del self._future[h]
        self._future_count = Counter({k: n for k, n in self._future_count.items() if k[0] >= self.height})
        self._future_bytes = Counter({k: n for k, n in self._future_bytes.items() if k[0] >= self.height})
        self._last_precommits = self._precommits
        self._last_set = self.validators
        self._hold_certificate(commit.certificate)
        floor = self.height - self.config.commit_window
        self._answers = Counter({k: n for k, n in self._answers.items() if k[1] >= floor})
        self._enter_height()
        for msg, timely in self._future.pop(self.height, {}).items():
            self._on_message(msg, verified=True, timely=timely)
        self._maybe_start()

    def _hold_certificate(self, cert: CommitCertificate) -> None:
        """The decided certificate's precommits join those held for late evidence (its LastCommit)."""
        held = self._last_precommits.setdefault(cert.round, VoteSet())
        for s in cert.signatures:
            held.add(s.validator, Precommit(cert.height, cert.round, cert.value_hash,
                                            self.validators.keys[s.validator], s.sig))

    def _keep_commit(self, commit: Commit) -> None:
        self.commits[commit.certificate.height] = commit
        while len(self.commits) > self.config.commit_window:
            del self.commits[min(self.commits)]

    def _reject(self, reason: str, detail: str) -> None:
        self.drops[reason] += 1
        self._out.append(Rejected(reason, detail))
