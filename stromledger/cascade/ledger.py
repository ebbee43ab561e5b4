"""The stateful side of the cascade at one node: admitting batches, proposing, validating and committing
seals. Still pure: the clock arrives as `now_period`, bytes arrive as arguments, nothing is read or sent.

- `Acceptor`: checks every submitted batch (signatures may be spread over threads via `map`), answers with
  reasons per item, remembers batches until a committed seal has settled them.
- `Ledger`: registry + settled state + acceptor; `propose`, `validate`, `commit`, `rows`.
- `replay`: rebuild the settled state from committed seals and their batches.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Iterator, Mapping, Union

from stromledger.crypto import SigningKey, sha256
from stromledger.registry import Registry

from .changes import judge_change
from .checks import NO_SIG, CheckedBatch, check_batch, correctable_from
from .messages import MAX_SEAL_BATCHES, RECEIPT_DOMAIN, Batch, ItemRejection, PeriodSeal, Receipt
from .rejections import Reason, Rejection
from .rows import REG, REXP, RIMP, RVER, MeterRow, inclusion_proof
from .settle import Outcome, batch_eligible, build_seal, rebuild_seal
from .state import SettledState

READING, SCHEDULE, CHANGE = 1, 2, 3  # item kinds in a receipt (4: an approved change, checks.APPROVED_ITEM)
Incoming = Union[bytes, Batch, CheckedBatch]


@dataclass(frozen=True)
class SubmitterQuota:
    """How much one submitter may add to a node's pending batches in one period of the clock. Only batches
    that add something new count (duplicates are never stored); a batch over the quota is refused whole, and
    the submitter may send it again in the next period. `items=None`: 100,000 plus two per registered meter
    point (every meter point's reading and one correction per period)."""

    batches: int = 1_000
    items: int | None = None

    def item_limit(self, registry: Registry) -> int:
        return self.items if self.items is not None else 100_000 + 2 * len(registry.meter_points)


@dataclass
class Admission:
    """What a validator answers to a submitted batch. Provisional: the seal re-derives every verdict."""

    digest: bytes | None
    refused: Rejection | None = None  # the whole batch
    rejections: list[tuple[int, int, Rejection]] = field(default_factory=list)  # (item kind, i, why)
    accepted: int = 0
    duplicates: int = 0
    stored: bool = False

    def receipt(self, key: SigningKey, chain_id: str) -> Receipt:
        items = tuple(ItemRejection(kind, index, int(r.reason), r.message[:200])
                      for kind, index, r in self.rejections if not r.harmless)
        r = Receipt(self.digest or bytes(32), key.public, int(self.refused.reason) if self.refused else 0,
                    self.accepted, self.duplicates, items, NO_SIG)
        return replace(r, sig=key.sign(RECEIPT_DOMAIN, chain_id, r.body()))


class Acceptor:
    """Keeps a batch only if it carries an item (a reading or schedule a seal can still use, by value) that no
    held batch with a lower digest carries. The kept set is the same whatever order the batches arrive in
    (a lower-digest batch carrying everything of a held one evicts it), so the seal does not depend on
    arrival order, and one reading sent in many batches is held, and listed, once."""

    def __init__(self, registry: Registry, state: SettledState, quota: SubmitterQuota = SubmitterQuota()):
        self.registry = registry
        self.state = state
        self.quota = quota
        self.batches: dict[bytes, CheckedBatch] = {}
        self._readings: dict[int, dict[tuple[str, int], tuple[bool, int, int]]] = {}  # period -> (malo, ver)
        self._schedules: dict[int, dict[tuple[str, str, bytes], set[int]]] = {}  # (from, to, signer) -> Wh
        self._carrier: dict[int, dict[tuple, bytes]] = {}  # period -> item -> lowest digest of a batch holding it
        self._carries: dict[bytes, int] = {}  # digest -> number of items it is the lowest carrier of
        self._used: dict[bytes, list[int]] = {}  # submitter -> [batches, items] kept in period `_used_period`
        self._used_period: int | None = None
        self._changes: dict[object, tuple[bytes, bytes]] = {}  # conflict key -> (pending change digest, its batch)

    def check(self, batch: Union[Incoming, Batch], map: Callable = map) -> CheckedBatch | Rejection:
        """Check a batch against the committed history (again, if it was checked under another one)."""
        history = self.state.changes
        if isinstance(batch, CheckedBatch):
            if batch.history is history or batch.history == history:
                return batch
            batch = batch.batch
        return check_batch(self.registry, batch, map=map, history=history)

    def admit(self, batch: Incoming, now_period: int | None, *, map: Callable = map,
              quota_period: int | None = None) -> Admission:
        """Check and remember a batch. `now_period` is the period the clock is in (None: no clock checks, for
        batches fetched from peers to validate a seal); the submitter's quota is counted in `now_period`, or
        in `quota_period` without clock checks (batches other validators push), or not at all. Stored if it
        is the lowest-digest carrier of anything a seal can still use (settle it or report it as evidence),
        within its submitter's quota."""
        reg = self.registry
        checked = self.check(batch, map)
        if isinstance(checked, Rejection):
            digest = sha256(batch) if isinstance(batch, (bytes, bytearray)) else None
            return Admission(digest, checked)
        d = checked.digest
        if d in self.batches or self.state.batch_progress(d) is not None:
            return Admission(d, Rejection(Reason.DUPLICATE, "batch already received"))
        if now_period is not None:
            if checked.reading_periods and checked.reading_periods[-1] > now_period:
                return Admission(d, Rejection(Reason.PERIOD_IN_FUTURE,
                                              f"a reading for period {checked.reading_periods[-1]}, now {now_period}"))
            horizon = now_period + reg.params.schedule_horizon
            if checked.schedule_periods and checked.schedule_periods[-1] > horizon:
                return Admission(d, Rejection(Reason.PERIOD_IN_FUTURE, f"a schedule beyond period {horizon}"))
        next_height = self.state.next_height(reg)
        lo = correctable_from(reg, next_height)
        out = Admission(d)
        items: set[tuple[int, tuple]] = set()  # (period, item) of everything a seal can still use
        new_readings: dict[tuple[int, str, int], tuple[bool, int, int]] = {}  # (period, malo, version)
        # An item that repeats a pending one is still collected: whether it keeps this batch is decided by
        # digest below (the lowest-digest carrier holds it), never by which batch came first.
        for i, (r, verdict) in enumerate(zip(checked.batch.readings, checked.reading_verdicts)):
            why, usable = (verdict, False) if verdict else self._reading_verdict(r, lo, new_readings)
            if usable:
                items.add((r.period, (READING, r.malo_id, r.version, r.register, r.import_wh, r.export_wh)))
            if why is None:
                out.accepted += 1
            else:
                out.rejections.append((READING, i, why))
                out.duplicates += why.harmless
        new_schedules: set[tuple[int, tuple[str, str, bytes], int]] = set()
        for i, (s, verdict) in enumerate(zip(checked.batch.schedules, checked.schedule_verdicts)):
            why = verdict
            if why is None and s.period < next_height:
                why = Rejection(Reason.PERIOD_TOO_OLD, f"period {s.period} is already sealed")
            if why is None:
                items.add((s.period, (SCHEDULE, s.from_group, s.to_group, s.signer, s.wh)))
                why = self._schedule_verdict(s, new_schedules)
            if why is None:
                out.accepted += 1
            else:
                out.rejections.append((SCHEDULE, i, why))
                out.duplicates += why.harmless
        new_changes: dict[object, tuple[bytes, bytes]] = {}
        committed = frozenset(c.digest() for c in self.state.changes) if checked.carries_changes else frozenset()
        for kind, i, c, verdict in checked.registry_changes():
            taken = {m: cd for m, (cd, _) in {**self._changes, **new_changes}.items()}
            why = verdict or judge_change(reg, self.state.changes, c, next_height, taken, committed)
            if why is None:
                items.add((c.effective_period, (CHANGE, c.digest())))
                new_changes[c.conflict_key] = (c.digest(), d)
                out.accepted += 1
            else:
                out.rejections.append((kind, i, why))
                out.duplicates += why.harmless
        won = [(period, item) for period, item in items if d < self._carrier.get(period, {}).get(item, _NO_DIGEST)]
        if not won:
            return out
        quota_period = now_period if now_period is not None else quota_period
        if quota_period is not None:
            out.refused = self._over_quota(checked.batch.submitter, quota_period, len(won))
            if out.refused:
                return out
        for period, item in won:
            carriers = self._carrier.setdefault(period, {})
            held = carriers.get(item)
            carriers[item] = d
            if held in self._carries:  # (not after `forget`)
                self._carries[held] -= 1
                if not self._carries[held]:  # everything it holds, a lower-digest batch holds too
                    del self._carries[held]
                    self.batches.pop(held, None)
        self._carries[d] = len(won)
        self.batches[d] = checked
        for (period, malo, version), values in new_readings.items():
            self._readings.setdefault(period, {})[malo, version] = values
        for period, key, wh in new_schedules:
            self._schedules.setdefault(period, {}).setdefault(key, set()).add(wh)
        self._changes.update(new_changes)
        out.stored = True
        return out

    def _over_quota(self, submitter: bytes, now_period: int, items: int) -> Rejection | None:
        """Count a batch of `items` new items against its submitter's quota for this period, or say why not."""
        if self._used_period != now_period:
            self._used_period = now_period
            self._used.clear()
        used = self._used.setdefault(submitter, [0, 0])
        item_limit = self.quota.item_limit(self.registry)
        if used[0] + 1 > self.quota.batches:
            return Rejection(Reason.OVERSIZED, f"submitter quota: {self.quota.batches} batches this period")
        if used[1] + items > item_limit:
            return Rejection(Reason.OVERSIZED, f"submitter quota: {item_limit} new items this period "
                                               f"({used[1]} used, this batch adds {items})")
        used[0] += 1
        used[1] += items
        return None

    def _reading_verdict(self, r, lo: int, new: dict) -> tuple[Rejection | None, bool]:
        """The verdict on a statically valid reading, and whether a seal can still use it (settle it, count
        it as a duplicate of a pending one, or report it as a conflict)."""
        if r.period < lo:
            return Rejection(Reason.PERIOD_TOO_OLD, f"period {r.period} is before the correction window ({lo})"), False
        values = (r.register, r.import_wh, r.export_wh)
        settled = self.state.entry(r.period, r.malo_id)
        if settled is not None and settled[RVER]:
            if r.version < settled[RVER]:
                return Rejection(Reason.SUPERSEDED, f"version {settled[RVER]} is already settled"), False
            if r.version == settled[RVER]:
                if values == (settled[REG], settled[RIMP], settled[REXP]):
                    return Rejection(Reason.DUPLICATE, "already settled"), False
                return Rejection(Reason.CONFLICTING_DUPLICATE, "differs from the settled reading of this "
                                                               "version: kept as evidence against the meter"), True
        pending = self._readings.get(r.period, {}).get((r.malo_id, r.version))
        if pending is None:
            pending = new.get((r.period, r.malo_id, r.version))  # listed twice in this batch
        if pending is None:
            new[r.period, r.malo_id, r.version] = values
            return None, True
        if pending == values:
            return Rejection(Reason.DUPLICATE, "already received"), True
        return Rejection(Reason.CONFLICTING_DUPLICATE, "differs from a reading received for the same version: "
                                                       "kept as evidence against the meter"), True

    def _schedule_verdict(self, s, new: set) -> Rejection | None:
        """Duplicate of a pending schedule, or a warning that the other side signed another amount (the
        schedule is kept either way: the seal reports mismatches)."""
        pending = self._schedules.get(s.period, {})
        key = (s.from_group, s.to_group, s.signer)
        if s.wh in pending.get(key, ()) or (s.period, key, s.wh) in new:
            return Rejection(Reason.DUPLICATE, "schedule already received")
        new.add((s.period, key, s.wh))
        keys = self.registry.group_keys
        other = keys.get(s.to_group) if s.signer == keys.get(s.from_group) else keys.get(s.from_group)
        if other is None:
            return None  # an external party signs nothing: the network group's value stands alone
        theirs = pending.get((s.from_group, s.to_group, other), set())
        if other != s.signer and theirs and s.wh not in theirs:
            return Rejection(Reason.SCHEDULE_MISMATCH, f"the other group's operator signed {sorted(theirs)} Wh: "
                                                       "neither counts unless both sign the same")
        return None

    def eligible(self, height: int) -> list[CheckedBatch]:
        """The proposer's choice for `height`: every known batch with something left to settle, by digest
        (at most MAX_SEAL_BATCHES; the rest are still eligible at the next height, as corrections)."""
        lo = correctable_from(self.registry, height)
        chosen = [cb for d, cb in sorted(self.batches.items())
                  if batch_eligible(cb, self.state.settled_through(d), height, lo)]
        return chosen[:MAX_SEAL_BATCHES]

    def forget(self, digest: bytes) -> None:
        """Drop a batch a seal cannot carry. Its items stay claimed by it: a copy with a higher digest is not
        held either."""
        self.batches.pop(digest, None)
        self._carries.pop(digest, None)

    def committed(self) -> None:
        """Forget what the state now settles: fully settled batches and pending keys of sealed periods."""
        h = self.state.height
        lo = correctable_from(self.registry, h + 1)
        for d, cb in list(self.batches.items()):
            through = self.state.settled_through(d)
            unjudged = through < 0 and cb.carries_changes
            if (through >= cb.items_max_period and not unjudged) or cb.max_period < lo:
                del self.batches[d]
                self._carries.pop(d, None)
        for index in (self._readings, self._schedules, self._carrier):
            for period in [p for p in index if p <= h]:
                del index[period]
        # a pending change is no longer pending once a seal listed its batch (committed or refused there)
        for key, (_, d) in list(self._changes.items()):
            if d not in self.batches or self.state.batch_progress(d) is not None:
                del self._changes[key]

    def recheck(self, map: Callable = map) -> None:
        """After a seal committed registry changes: judge the held batches' readings again under the new
        history (a reading's verdict follows its period's registry version)."""
        for d, cb in list(self.batches.items()):
            if cb.batch.readings:
                checked = self.check(cb, map)
                if isinstance(checked, CheckedBatch):
                    self.batches[d] = checked


_NO_DIGEST = b"\xff" * 33  # above every digest: an item no held batch carries


class LedgerError(ValueError):
    def __init__(self, rejection: Rejection):
        super().__init__(str(rejection))
        self.rejection = rejection


class Ledger:
    """One node's cascade. Typical flow per height: admit batches as they come; after gate closure the
    proposer calls `propose()`, everyone else `validate(seal_bytes)`; after consensus decides, `commit`."""

    def __init__(self, registry: Registry, state: SettledState | None = None,
                 quota: SubmitterQuota = SubmitterQuota()):
        self.registry = registry
        self.state = state or SettledState.genesis(registry)
        if self.state.registry_hash != registry.hash:
            raise ValueError("the settled state belongs to another registry")
        self.acceptor = Acceptor(registry, self.state, quota)
        self._outcomes: dict[bytes, Outcome] = {}  # seal hash -> outcome, for the current height

    @property
    def next_height(self) -> int:
        return self.state.next_height(self.registry)

    def admit(self, batch: Incoming, now_period: int | None, *, map: Callable = map,
              quota_period: int | None = None) -> Admission:
        return self.acceptor.admit(batch, now_period, map=map, quota_period=quota_period)

    def batch(self, digest: bytes) -> CheckedBatch | None:
        return self.acceptor.batches.get(digest)

    def add_fetched(self, batch: Incoming) -> CheckedBatch | Rejection:
        """A batch fetched from a peer because a proposed seal lists it: kept if valid, whatever its items."""
        checked = self.acceptor.check(batch)
        if isinstance(checked, CheckedBatch):
            self.acceptor.batches.setdefault(checked.digest, checked)
        return checked

    def propose(self, vote_evidence: Iterable[bytes] = (), last_commit: bytes = b"") -> Outcome:
        """Build the seal of the next height; `last_commit`: the commit certificate of the height before.
        Never fails on what batches hold: a batch whose totals do not fit the seal's fields is dropped."""
        h = self.next_height
        vote_evidence = tuple(vote_evidence)
        chosen = self.acceptor.eligible(h)
        try:
            outcome = build_seal(self.registry, self.state, h, chosen, vote_evidence, last_commit)
        except OverflowError:
            outcome = self._propose_without_overflow(h, chosen, vote_evidence, last_commit)
        self._outcomes[outcome.seal_hash] = outcome
        return outcome

    def _propose_without_overflow(self, h: int, chosen: list[CheckedBatch], vote_evidence: tuple,
                                  last_commit: bytes) -> Outcome:
        """The genesis and schedule bounds keep every total encodable; should a registry built otherwise let
        totals overflow anyway, the batches that do it are found by halving and forgotten, not crashed on."""
        kept: list[CheckedBatch] = []
        todo = [chosen]
        while todo:
            part = todo.pop()
            try:
                build_seal(self.registry, self.state, h, kept + part, vote_evidence, last_commit)
                kept += part
            except OverflowError:
                if len(part) == 1:
                    self.acceptor.forget(part[0].digest)
                else:
                    todo += [part[len(part) // 2:], part[:len(part) // 2]]  # the first half is tried first
        return build_seal(self.registry, self.state, h, kept, vote_evidence, last_commit)

    def missing_batches(self, seal_bytes: bytes) -> list[bytes]:
        """The batches a proposed seal lists that this node must fetch before it can validate it."""
        try:
            seal = PeriodSeal.decode(seal_bytes)
        except ValueError:
            return []
        return [d for d in seal.batches if d not in self.acceptor.batches]

    def validate(self, seal_bytes: bytes, evidence_ok: Callable[[bytes], bool] | None = None,
                 last_commit_ok: Callable[[bytes], bool] | None = None) -> Rejection | None:
        """None if the proposed seal is what this node builds (see settle.rebuild_seal), else why not."""
        seal_hash = sha256(seal_bytes)
        if seal_hash in self._outcomes:
            return None
        outcome = rebuild_seal(seal_bytes, self.registry, self.state, self.acceptor.batches, evidence_ok,
                               last_commit_ok)
        if isinstance(outcome, Rejection):
            return outcome
        self._outcomes[seal_hash] = outcome
        return None

    def commit(self, seal_bytes: bytes) -> Outcome:
        """Apply a seal that consensus decided. Raises LedgerError if this node cannot rebuild it (e.g. it
        still misses a batch: fetch it with add_fetched and commit again)."""
        outcome = self._outcomes.get(sha256(seal_bytes))
        if outcome is None:
            outcome = rebuild_seal(seal_bytes, self.registry, self.state, self.acceptor.batches)
            if isinstance(outcome, Rejection):
                raise LedgerError(outcome)
        self.state.apply(self.registry, outcome)
        self.acceptor.committed()
        if outcome.registry_changes:
            self.acceptor.recheck()
        self._outcomes.clear()
        return outcome

    def rows(self, period: int) -> Iterator[MeterRow]:
        return self.state.rows(self.registry, period)

    def proof(self, period: int, malo_id: str) -> tuple[bytes, int, int, list[bytes]]:
        """(leaf bytes, index, tree size, audit path) of a meter point in the latest result of `period`."""
        return inclusion_proof(period, self.rows(period), malo_id)


def replay(registry: Registry, commits: Iterable[tuple[bytes, Mapping[bytes, Union[Batch, bytes]]]],
           state: SettledState | None = None) -> SettledState:
    """Recompute the settled state from committed seals (in height order) and the batches each lists."""
    state = state or SettledState.genesis(registry)
    for seal_bytes, batches in commits:
        checked = {}
        for digest, b in batches.items():
            cb = check_batch(registry, b, history=state.changes)
            if isinstance(cb, Rejection):
                raise LedgerError(cb)
            checked[digest] = cb
        outcome = rebuild_seal(seal_bytes, registry, state, checked)
        if isinstance(outcome, Rejection):
            raise LedgerError(outcome)
        state.apply(registry, outcome)
    return state
