"""Building and validating the PeriodSeal: the cascade from meter point periods up to the network.

`build_seal(registry, state, height, batches)` is a pure function of the registry, the settled state
(committed history), the height and the batches the proposer chose (plus two opaque inputs from consensus:
vote evidence and the commit certificate of the previous height); it never changes `state`. The result
(`Outcome`) holds the seal and the settled entries it changes; `state.apply(registry, outcome)` applies it
once consensus commits the seal. `validate_seal` rebuilds from the same inputs and compares the bytes.

Per meter point and period (docs/cascade.md has the full rules):
- a valid reading makes the entry MEASURED; a later one (late reading, higher meter version, or a register
  neighbour that changes the derived energy) makes a new settlement version, CORRECTED;
- no reading at gate closure: SUBSTITUTED with the previous period's settled energies, or MISSING (0 Wh)
  when there is none or the meter sends registers (the next register reading carries the energy);
- the same (malo, period, version) with other values is never applied: it becomes evidence.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Union

from stromledger.codec import CodecError
from stromledger.registry import Registry, registry_at

from .changes import judge_change
from .checks import CheckedBatch, check_batch, correctable_from
from .messages import (
    CORRECTED, MAX_SEAL_BATCHES, MAX_SEAL_EVIDENCE, MEASURED, MISMATCHED, MISSING, ONE_SIDED, SUBSTITUTED, Batch, PeriodResult, PeriodSeal, Reading,
    ReadingConflict, ReasonCount, Schedule, ScheduleIssue, ScheduleLine,
)
from .rejections import Reason, Rejection
from .rows import EXP, IMP, MISSING_V1, QUAL, REG, REXP, RIMP, RSIG, RVER, VER, check_invariants, entry_rows, summarize
from .state import SettledState
from .substitution import comparable_period, substitute

BatchLike = Union[CheckedBatch, Batch]


class InvariantError(AssertionError):
    """A seal whose invariants fail was about to be built: a bug, never a value to propose."""


class NotEligible(ValueError):
    def __init__(self, digest: bytes, why: str):
        super().__init__(f"batch {digest.hex()[:16]}: {why}")
        self.digest = digest


@dataclass(frozen=True, slots=True)
class Outcome:
    """A built (or rebuilt) seal and what it changes in the settled state."""

    seal: PeriodSeal
    seal_bytes: bytes
    seal_hash: bytes
    changes: dict[int, dict[str, tuple]]  # period -> malo_id -> new entry (all meter points for `height`)
    versions: dict[int, Mapping[str, tuple]]  # period -> every meter point's entry in its new version
    progress: dict[bytes, tuple[int, int]]  # batch digest -> (height, last period in the batch)
    conflicts: dict[int, frozenset[tuple]]  # period -> conflicting readings reported as evidence
    registry_changes: tuple = ()  # the registry changes this seal commits (any kind)

    @property
    def height(self) -> int:
        return self.seal.height


def batch_eligible(cb: CheckedBatch, settled_through: int, height: int, lo: int) -> bool:
    """Has this batch anything to settle at `height`: a valid reading for a period in [lo, height] or a valid
    schedule for `height`, that no earlier seal listing the batch has settled?"""
    first = max(lo, settled_through + 1)
    if any(first <= p <= height for p in cb.reading_periods):
        return True
    if settled_through < 0 and cb.carries_changes:  # its changes are judged by the first seal listing it
        return True
    return settled_through < height and height in cb.schedule_periods


def _as_checked(registry: Registry, b: BatchLike, history: tuple) -> CheckedBatch:
    if isinstance(b, CheckedBatch) and (b.history is history or b.history == history):
        return b
    checked = check_batch(registry, b.batch if isinstance(b, CheckedBatch) else b, history=history)
    if isinstance(checked, Rejection):
        raise NotEligible(b.digest(), f"invalid batch: {checked}")
    return checked


def build_seal(registry: Registry, state: SettledState, height: int, batches: Iterable[BatchLike],
               vote_evidence: Iterable[bytes] = (), last_commit: bytes = b"") -> Outcome:
    """Build the seal of `height` from the chosen batches (any order; they are settled in digest order).
    `last_commit` (the canonical commit certificate of height - 1, b"" at the genesis height) is carried
    as given. Raises NotEligible if a batch has nothing to settle at this height, ValueError on a wrong
    height or a last commit at the genesis height."""
    if height != state.next_height(registry):
        raise ValueError(f"the next seal is for height {state.next_height(registry)}, not {height}")
    if height == registry.genesis_period and last_commit:
        raise ValueError("the seal of the genesis height has no previous commit")
    if state.registry_hash != registry.hash:
        raise ValueError("the settled state belongs to another registry")
    checked = sorted((_as_checked(registry, b, state.changes) for b in batches), key=lambda c: c.digest)
    if len(checked) > MAX_SEAL_BATCHES:
        raise ValueError(f"{len(checked)} batches, a seal lists at most {MAX_SEAL_BATCHES}")
    for a, b in zip(checked, checked[1:]):
        if a.digest == b.digest:
            raise NotEligible(a.digest, "listed twice")
    return _Builder(registry, state, height).build(checked, tuple(sorted(set(vote_evidence))), bytes(last_commit))


class _Builder:
    def __init__(self, registry: Registry, state: SettledState, height: int):
        self.reg = registry
        self.state = state
        self.h = height
        self.lo = correctable_from(registry, height)
        self.overlay: dict[int, dict[str, tuple]] = {height: {}}  # provisional entries: VER 0, QUAL as basis
        self.reg_dirty: dict[str, set[int]] = {}  # register entries whose derived energy must be recomputed
        self.rejected: Counter = Counter()
        self.evidence: list[ReadingConflict] = []
        self.new_conflicts: dict[int, set[tuple]] = {}
        self.from_side: dict[tuple[str, str], set[int]] = {}
        self.to_side: dict[tuple[str, str], set[int]] = {}
        self.taken: dict[object, bytes] = {}  # conflict key -> digest of the registry change this seal commits
        self.new_changes: list = []
        self._committed = frozenset(c.digest() for c in state.changes)
        self._versions: dict[int, Registry] = {}

    def at(self, period: int) -> Registry:
        """The registry version of a period (changes this seal commits take effect after it)."""
        got = self._versions.get(period)
        if got is None:
            got = self._versions[period] = registry_at(self.reg, period, self.state.changes)
        return got

    # -- the whole seal ----------------------------------------------------------------------------------

    def build(self, batches: list[CheckedBatch], vote_evidence: tuple[bytes, ...], last_commit: bytes) -> Outcome:
        h, lo = self.h, self.lo
        progress = {}
        for cb in batches:
            through = self.state.settled_through(cb.digest)
            if not batch_eligible(cb, through, h, lo):
                raise NotEligible(cb.digest, f"nothing to settle at height {h}")
            self._readings(cb, through)
            self._schedules(cb, through)
            self._registry_changes(cb, through)
            progress[cb.digest] = (h, cb.max_period)
        for malo, periods in self.reg_dirty.items():
            for t in sorted(periods):
                self._derive_register_energy(malo, t)
        changes = {h: self._close_new_period()}
        versions: dict[int, Mapping[str, tuple]] = {h: changes[h]}
        results = []
        for period in sorted(p for p in self.overlay if p != h):
            changed = self._close_corrected_period(period)
            if changed:
                changes[period] = changed
                base = self.state.result(period)
                versions[period] = merged = {**self.state.period_entries(period), **changed}
                results.append(self._result(period, base.version + 1, merged, base.schedules, base.schedule_issues))
        matched, issues = self._match_schedules()
        results.append(self._result(h, 1, changes[h], matched, issues))
        self.evidence.sort(key=lambda c: (c.conflicting.malo_id, c.conflicting.period, c.conflicting.version,
                                          c.conflicting.encode()))
        evidence = self.evidence[:MAX_SEAL_EVIDENCE]  # the rest is reported when sent again
        conflicts: dict[int, set[tuple]] = {}
        for c in evidence:
            r = c.conflicting
            conflicts.setdefault(r.period, set()).add((r.malo_id, r.version, r.register, r.import_wh, r.export_wh))
        seal = PeriodSeal(
            chain_id=self.reg.chain_id,
            registry_hash=self.reg.hash,
            height=h,
            previous=self.state.seal_hash,
            batches=tuple(cb.digest for cb in batches),
            results=tuple(results),
            evidence=tuple(evidence),
            rejected=tuple(ReasonCount(int(reason), n) for reason, n in sorted(self.rejected.items())),
            vote_evidence=vote_evidence,
            last_commit=last_commit,
        )
        data = seal.encode()
        return Outcome(seal, data, seal.hash(), changes, versions, progress,
                       {p: frozenset(k) for p, k in conflicts.items()}, tuple(self.new_changes))

    def _result(self, period: int, version: int, entries: Mapping[str, tuple],
                schedules: tuple[ScheduleLine, ...], issues: tuple[ScheduleIssue, ...]) -> PeriodResult:
        reg = self.at(period)
        result = summarize(reg, period, version, entry_rows(reg, period, entries), schedules, issues)
        broken = check_invariants(reg, result)
        if broken is not None:
            raise InvariantError(str(broken))
        return result

    # -- entries, through this seal's overlay ------------------------------------------------------------

    def _entry(self, period: int, malo: str) -> tuple | None:
        """The entry as this seal sees it so far; None if the period is not kept (pruned or before genesis)."""
        o = self.overlay.get(period)
        if o is not None:
            e = o.get(malo)
            if e is not None:
                return e
        if period >= self.h:
            return None
        return self.state.entry(period, malo)

    def _set(self, period: int, malo: str, entry: tuple) -> None:
        o = self.overlay.get(period)
        if o is None:
            self.overlay[period] = o = {}
        o[malo] = entry

    # -- readings ----------------------------------------------------------------------------------------

    def _readings(self, cb: CheckedBatch, through: int) -> None:
        h, lo, rejected = self.h, self.lo, self.rejected
        now = self.overlay[h]
        for r, verdict in zip(cb.batch.readings, cb.reading_verdicts):
            p = r.period
            if p <= through or p > h:
                continue  # settled when the batch was listed before, or not yet due
            if verdict is not None:
                rejected[verdict.reason] += 1
            elif p < lo:
                rejected[Reason.PERIOD_TOO_OLD] += 1
            elif p == h and not r.register and r.malo_id not in now:
                # the hot path: a first interval reading for the new period
                now[r.malo_id] = (0, MEASURED, r.import_wh, r.export_wh, r.version, False, r.import_wh,
                                  r.export_wh, r.sig)
            else:
                self._reading(r)

    def _reading(self, r: Reading) -> None:
        malo, p = r.malo_id, r.period
        cur = self._entry(p, malo)
        if cur is not None and cur[RVER]:
            if r.version == cur[RVER]:
                if (r.register, r.import_wh, r.export_wh) == (cur[REG], cur[RIMP], cur[REXP]):
                    self.rejected[Reason.DUPLICATE] += 1
                else:
                    self._conflict(cur, r)
                return
            if r.version < cur[RVER]:
                self.rejected[Reason.SUPERSEDED] += 1
                return
            if r.register != cur[REG]:
                self.rejected[Reason.MALFORMED] += 1  # a correction keeps the original's kind (register or not)
                return
        if r.register:
            refused = self._register_refusal(r)
            if refused is not None:
                self.rejected[refused] += 1
                return
            self._set(p, malo, (0, MEASURED, 0, 0, r.version, True, r.import_wh, r.export_wh, r.sig))
            self.reg_dirty.setdefault(malo, set()).add(p)
        else:
            self._set(p, malo, (0, MEASURED, r.import_wh, r.export_wh, r.version, False, r.import_wh,
                                r.export_wh, r.sig))
        if p < self.h:  # the next register reading's energy depends on what lies before it
            nxt = self._next_register(malo, p)
            if nxt is not None:
                self.reg_dirty.setdefault(malo, set()).add(nxt[0])

    def _conflict(self, kept: tuple, r: Reading) -> None:
        self.rejected[Reason.CONFLICTING_DUPLICATE] += 1
        key = (r.malo_id, r.version, r.register, r.import_wh, r.export_wh)
        seen = self.new_conflicts.setdefault(r.period, set())
        if key in seen or key in self.state.conflicts.get(r.period, ()):
            return
        seen.add(key)
        meter_key = self.at(r.period).meter_points[r.malo_id].meter_key
        settled = Reading(r.malo_id, r.period, kept[RVER], kept[REG], kept[RIMP], kept[REXP], meter_key, kept[RSIG])
        self.evidence.append(ReadingConflict(settled, r))

    # -- registers ---------------------------------------------------------------------------------------

    def _prev_register(self, malo: str, period: int) -> tuple[int, int, int] | None:
        """The register reading this period's energy is measured from: the latest earlier register reading,
        unless an interval reading of the meter lies in between (that breaks the chain)."""
        t = period - 1
        while True:
            e = self._entry(t, malo)
            if e is None:  # left the window (or before genesis): the folded-in baseline
                b = self.state.baseline.get(malo)
                return b if b is not None and b[0] < period else None
            if e[RVER]:
                return (t, e[RIMP], e[REXP]) if e[REG] else None
            t -= 1

    def _next_register(self, malo: str, period: int) -> tuple[int, int, int] | None:
        for t in range(period + 1, self.h + 1):
            e = self._entry(t, malo)
            if e is not None and e[RVER]:
                return (t, e[RIMP], e[REXP]) if e[REG] else None
        return None

    def _register_refusal(self, r: Reading) -> Reason | None:
        """A register never goes down, and never rises faster than max power allows."""
        malo, p = r.malo_id, r.period
        prev = self._prev_register(malo, p)
        nxt = self._next_register(malo, p) if p < self.h else None
        if prev is not None and (r.import_wh < prev[1] or r.export_wh < prev[2]):
            return Reason.REGISTER_WENT_DOWN
        if nxt is not None and prev is not None and prev[0] + 1 < self.lo:
            # between two register readings whose gap reaches periods that left the window: re-spreading it
            # would have to change final periods
            return Reason.PERIOD_TOO_OLD
        if nxt is not None and (r.import_wh > nxt[1] or r.export_wh > nxt[2]):
            return Reason.REGISTER_WENT_DOWN
        if prev is not None:
            limit = self.at(p).max_wh(malo, p - prev[0])
            if r.import_wh - prev[1] > limit or r.export_wh - prev[2] > limit:
                return Reason.ABOVE_MAX_POWER
        if nxt is not None:
            limit = self.at(p).max_wh(malo, nxt[0] - p)
            if nxt[1] - r.import_wh > limit or nxt[2] - r.export_wh > limit:
                return Reason.ABOVE_MAX_POWER
        return None

    def _derive_register_energy(self, malo: str, period: int) -> None:
        """The energy since the previous register reading, spread evenly over the gap's periods that are still
        in the window (the reading's own period and the periods without a reading before it): the gap periods
        become SUBSTITUTED (0 Wh missing before), never all of it in one quarter hour. Integer shares; the
        remainder goes to the earliest periods, so the shares sum to the register difference exactly."""
        e = self._entry(period, malo)
        prev = self._prev_register(malo, period)
        if prev is None:  # the first register reading is the baseline: the energy is not known
            self._set(period, malo, (0, MISSING, 0, 0, *e[RVER:]))
            self._forget_spread(malo, period)
            return
        first = max(prev[0] + 1, self.lo)
        n = period - first + 1
        (qi, ri), (qe, re_) = divmod(e[RIMP] - prev[1], n), divmod(e[REXP] - prev[2], n)
        for i, t in enumerate(range(first, period)):
            self._set(t, malo, (0, SUBSTITUTED, qi + (i < ri), qe + (i < re_), 0, True, 0, 0, b""))
        last = n - 1
        self._set(period, malo, (0, MEASURED, qi + (last < ri), qe + (last < re_), *e[RVER:]))

    def _forget_spread(self, malo: str, period: int) -> None:
        """A register chain broke before `period`: the gap before it has no spread energy any more."""
        t = period - 1
        while t >= self.lo:
            e = self._entry(t, malo)
            if e is None or e[RVER]:
                return
            if e[QUAL] != MISSING:
                self._set(t, malo, (0, MISSING, 0, 0, 0, True, 0, 0, b""))
            t -= 1

    # -- schedules ---------------------------------------------------------------------------------------

    def _schedules(self, cb: CheckedBatch, through: int) -> None:
        h = self.h
        keys = self.reg.group_keys
        for s, verdict in zip(cb.batch.schedules, cb.schedule_verdicts):
            if s.period <= through or s.period > h:
                continue
            if verdict is not None:
                self.rejected[verdict.reason] += 1
            elif s.period < h:
                self.rejected[Reason.PERIOD_TOO_OLD] += 1  # a schedule counts only in its own period's seal
            else:
                self._schedule(s, keys)

    def _schedule(self, s: Schedule, keys: dict[str, bytes]) -> None:
        pair = (s.from_group, s.to_group)
        new = False
        # an external party has no key: only the network group's side of such a schedule gets values
        for side, key in ((self.from_side, keys.get(s.from_group)), (self.to_side, keys.get(s.to_group))):
            if s.signer == key:
                values = side.setdefault(pair, set())
                new |= s.wh not in values
                values.add(s.wh)
        if not new:
            self.rejected[Reason.DUPLICATE] += 1

    def _match_schedules(self) -> tuple[tuple[ScheduleLine, ...], tuple[ScheduleIssue, ...]]:
        matched, issues = [], []
        external = self.reg.external_parties
        for pair in sorted(self.from_side.keys() | self.to_side.keys()):
            a = self.from_side.get(pair, set())
            b = self.to_side.get(pair, set())
            if pair[0] in external or pair[1] in external:
                # signed by the network group alone: one value counts, two or more are MISMATCHED
                signed = a | b
                if len(signed) == 1:
                    matched.append(ScheduleLine(pair[0], pair[1], next(iter(signed))))
                else:
                    issues.append(ScheduleIssue(pair[0], pair[1], MISMATCHED, tuple(sorted(a))[:8],
                                                tuple(sorted(b))[:8]))
            elif len(a) == 1 and a == b:
                matched.append(ScheduleLine(pair[0], pair[1], next(iter(a))))
            else:
                status = MISMATCHED if a and b else ONE_SIDED
                issues.append(ScheduleIssue(pair[0], pair[1], status, tuple(sorted(a))[:8], tuple(sorted(b))[:8]))
        return tuple(matched), tuple(issues)

    # -- registry changes --------------------------------------------------------------------------------

    def _registry_changes(self, cb: CheckedBatch, through: int) -> None:
        if through >= 0:
            return  # judged by the first seal that listed the batch
        for _, _, c, verdict in cb.registry_changes():
            why = verdict or judge_change(self.reg, self.state.changes, c, self.h, self.taken, self._committed)
            if why is not None:
                self.rejected[why.reason] += 1
                continue
            self.taken[c.conflict_key] = c.digest()
            self.new_changes.append(c)

    # -- closing periods ---------------------------------------------------------------------------------

    def _close_new_period(self) -> dict[str, tuple]:
        """Every meter point of the new period: its reading (version 1), else its substitute."""
        now = self.overlay[self.h]
        before_state = self.state.last or {}  # the state's last period is h - 1
        before_overlay = self.overlay.get(self.h - 1, {})
        day_before = comparable_period(self.reg, self.h)
        day_overlay = self.overlay.get(day_before, {})
        day_state: Mapping[str, tuple] | None = None  # read from the history once, when first needed
        reg = self.at(self.h)
        out: dict[str, tuple] = {}
        for malo in reg.malo_order:
            e = now.get(malo)
            if e is not None:
                out[malo] = (1, *e[QUAL:])
                continue
            prev = before_overlay.get(malo) or before_state.get(malo)
            if prev is None or prev[REG] or prev[QUAL] == MISSING:
                out[malo] = MISSING_V1
            else:
                same = day_overlay.get(malo)
                if same is None and day_before is not None and self.state.kept(day_before):
                    if day_state is None:
                        day_state = self.state.period_entries(day_before)
                    same = day_state.get(malo)
                comparable = None if same is None or same[REG] or same[QUAL] == MISSING else (same[IMP], same[EXP])
                imp, exp = substitute(reg, malo, self.h, (prev[IMP], prev[EXP]), comparable)
                out[malo] = (1, SUBSTITUTED, imp, exp, 0, False, 0, 0, b"")
        return out

    def _close_corrected_period(self, period: int) -> dict[str, tuple]:
        """The entries of an earlier period that this seal changed, each with its next settlement version."""
        base = self.state.period_entries(period)
        changed = {}
        for malo, e in self.overlay[period].items():
            old = base[malo]
            if e[IMP:] == old[IMP:] and (e[QUAL] == MISSING) == (old[QUAL] == MISSING):
                continue  # e.g. a register neighbour re-derived to the same energy
            quality = {MEASURED: CORRECTED, SUBSTITUTED: SUBSTITUTED}.get(e[QUAL], MISSING)
            changed[malo] = (old[VER] + 1, quality, *e[IMP:])
        return changed


# -- validation --------------------------------------------------------------------------------------------


def rebuild_seal(seal_bytes: bytes, registry: Registry, state: SettledState,
                 batches: Mapping[bytes, BatchLike], evidence_ok: Callable[[bytes], bool] | None = None,
                 last_commit_ok: Callable[[bytes], bool] | None = None) -> Outcome | Rejection:
    """Decode a proposed seal, check it, rebuild it from the same inputs; the outcome if identical.
    `evidence_ok` and `last_commit_ok` judge the opaque consensus inputs (None: no check, for seals that
    are already committed). With `last_commit_ok`, a seal after the genesis height must carry a last
    commit, and that commit must satisfy it."""
    try:
        seal = PeriodSeal.decode(seal_bytes)
    except CodecError as e:
        return Rejection(Reason.OVERSIZED if e.reason == "oversized" else Reason.MALFORMED, str(e))
    if seal.chain_id != registry.chain_id or seal.registry_hash != registry.hash:
        return Rejection(Reason.WRONG_CHAIN, f"seal for chain {seal.chain_id!r} / another registry")
    expected = state.next_height(registry)
    if seal.height != expected:
        return Rejection(Reason.WRONG_HEIGHT, f"seal for height {seal.height}, the next is {expected}")
    if seal.previous != state.seal_hash:
        return Rejection(Reason.WRONG_HEIGHT, "the seal does not link to the last committed seal")
    if list(seal.batches) != sorted(set(seal.batches)):
        return Rejection(Reason.MALFORMED, "batch digests must be ascending and unique")
    if list(seal.vote_evidence) != sorted(set(seal.vote_evidence)):
        return Rejection(Reason.MALFORMED, "vote evidence must be ascending and unique")
    missing = [d for d in seal.batches if d not in batches]
    if missing:
        return Rejection(Reason.MISSING_BATCH, f"{len(missing)} batch(es) missing, first {missing[0].hex()}")
    if evidence_ok is not None:
        for blob in seal.vote_evidence:
            if not evidence_ok(blob):
                return Rejection(Reason.BAD_EVIDENCE, "consensus evidence does not verify")
    if seal.height == registry.genesis_period:
        if seal.last_commit:
            return Rejection(Reason.BAD_LAST_COMMIT, "the seal of the genesis height carries a last commit")
    elif last_commit_ok is not None:
        if not seal.last_commit:
            return Rejection(Reason.BAD_LAST_COMMIT, f"no commit certificate of height {seal.height - 1}")
        if not last_commit_ok(seal.last_commit):
            return Rejection(Reason.BAD_LAST_COMMIT,
                             f"the commit certificate of height {seal.height - 1} does not verify")
    for result in seal.results:
        broken = check_invariants(registry_at(registry, result.period, state.changes), result)
        if broken is not None:
            return broken
    try:
        outcome = build_seal(registry, state, seal.height, [batches[d] for d in seal.batches], seal.vote_evidence,
                             seal.last_commit)
    except NotEligible as e:
        return Rejection(Reason.BATCH_NOT_ELIGIBLE, str(e))
    except OverflowError:
        return Rejection(Reason.INVARIANT_VIOLATED, "a total of the listed batches does not fit its field")
    if outcome.seal_bytes != bytes(seal_bytes):
        return Rejection(Reason.SEAL_MISMATCH, describe_difference(outcome.seal, seal))
    return outcome


def validate_seal(seal_bytes: bytes, registry: Registry, state: SettledState, batches: Mapping[bytes, BatchLike],
                  evidence_ok: Callable[[bytes], bool] | None = None,
                  last_commit_ok: Callable[[bytes], bool] | None = None) -> Rejection | None:
    """None if the seal is exactly what this node builds from the same inputs, else why not."""
    outcome = rebuild_seal(seal_bytes, registry, state, batches, evidence_ok, last_commit_ok)
    return outcome if isinstance(outcome, Rejection) else None


def describe_difference(ours: PeriodSeal, theirs: PeriodSeal) -> str:
    """Where a proposed seal first differs from the rebuilt one (for logs)."""
    for field in ("batches", "evidence", "rejected", "vote_evidence", "last_commit"):
        if getattr(ours, field) != getattr(theirs, field):
            return f"{field} differ"
    mine = {r.period: r for r in ours.results}
    other = {r.period: r for r in theirs.results}
    if mine.keys() != other.keys():
        return f"corrected periods differ: rebuilt {sorted(mine)}, proposed {sorted(other)}"
    for period in sorted(mine):
        a, b = mine[period], other[period]
        for name in PeriodResult.__dataclass_fields__:
            if getattr(a, name) != getattr(b, name):
                return f"period {period}: {name} differs"
    return "the encodings differ"

