"""Is a proposed seal complete: does it settle everything this node held in time? (issue 18, D3)

A seal is *valid* if it is what the rules build from the batches it lists (settle.rebuild_seal): a function
of the value and the committed chain. Completeness is a second, holding-dependent judgement a validator makes
before it prevotes a *new* proposal: the seal must list every batch this node admitted before the cutoff
(gate closure minus a margin the node chooses), unless the rules allow leaving it out:

- it has nothing to settle at this height (`batch_eligible` is false);
- the seal is full (MAX_SEAL_BATCHES) and the batch sorts after the last one listed: a proposer takes the
  lowest digests first, the rest are corrections at a later height;
- everything it could settle, a listed batch carries (the acceptor keeps one carrier per item: another
  validator may have kept a lower-digest batch holding the same readings), or the committed state
  already settles at that meter version or above.

Pure: the node passes in what it held in time (it knows when it admitted each batch), nothing is read here.
docs/consensus.md ("Complete and timely proposals") explains why this cannot stall a height.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from stromledger.registry import Registry

from .checks import CheckedBatch, correctable_from
from .messages import MAX_SEAL_BATCHES, PeriodSeal
from .rows import RVER
from .settle import batch_eligible
from .state import SettledState


@dataclass(frozen=True, slots=True)
class Omission:
    """A batch this node held in time that the seal leaves out, and the first thing in it the seal lacks."""

    digest: bytes
    what: str

    def __str__(self) -> str:
        return f"batch {self.digest.hex()[:12]} omitted: {self.what}"


def omissions(registry: Registry, state: SettledState, seal: PeriodSeal, listed: Mapping[bytes, CheckedBatch],
              held: Iterable[CheckedBatch]) -> list[Omission]:
    """The batches of `held` (what this node admitted before the cutoff) that `seal` leaves out without a
    reason the rules allow. `listed`: the checked batches the seal lists (this node has them once it could
    validate the seal); `state`: the committed state the seal builds on."""
    h = seal.height
    lo = correctable_from(registry, h)
    in_seal = set(seal.batches)
    full = len(seal.batches) >= MAX_SEAL_BATCHES
    last_listed = max(seal.batches, default=b"")
    readings: dict[tuple[int, str], int] = {}  # (period, malo) -> highest meter version a listed batch carries
    schedules: set[tuple] = set()  # (from, to, signer) of this height's schedules a listed batch carries
    for digest in seal.batches:
        cb = listed.get(digest)
        if cb is None:
            continue
        for r, why in zip(cb.batch.readings, cb.reading_verdicts):
            if why is None:
                key = (r.period, r.malo_id)
                readings[key] = max(readings.get(key, 0), r.version)
        for s, why in zip(cb.batch.schedules, cb.schedule_verdicts):
            if why is None and s.period == h:
                schedules.add((s.from_group, s.to_group, s.signer))
    out = []
    for cb in held:
        if cb.digest in in_seal or (full and cb.digest > last_listed):
            continue
        through = state.batches.get(cb.digest, (-1, 0))[0]
        if not batch_eligible(cb, through, h, lo):
            continue
        what = _first_uncovered(state, cb, max(lo, through + 1), h, readings, schedules, through < h)
        if what is not None:
            out.append(Omission(cb.digest, what))
    return out


def _first_uncovered(state: SettledState, cb: CheckedBatch, first: int, h: int, readings: dict, schedules: set,
                     schedules_due: bool) -> str | None:
    for r, why in zip(cb.batch.readings, cb.reading_verdicts):
        if why is not None or not first <= r.period <= h:
            continue
        settled = state.entries.get(r.period, {}).get(r.malo_id)
        if settled is not None and settled[RVER] >= r.version:
            continue
        if readings.get((r.period, r.malo_id), 0) >= r.version:
            continue
        return f"the reading of MaLo {r.malo_id} for period {r.period} (meter version {r.version})"
    if schedules_due:
        for s, why in zip(cb.batch.schedules, cb.schedule_verdicts):
            if why is None and s.period == h and (s.from_group, s.to_group, s.signer) not in schedules:
                return f"the schedule {s.from_group} -> {s.to_group} for period {s.period}"
    return None


__all__ = ["Omission", "omissions"]
