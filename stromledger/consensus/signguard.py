"""The sign guard: a validator never signs two different messages for one (height, round, step).

Consensus asks the guard before it signs anything. `check_and_record` answers True only when signing is
safe, and then the record is durable before it returns (the same value again is allowed, so a restarted
node can re-send what it signed before); a different value at a recorded (height, round, step) is refused.

Implementations: `MemorySignGuard` here (pure, for tests and the simulator, whose "disk" is the object
surviving a simulated crash), `stromledger.store.file_signguard.FileSignGuard` (an fsync'ed record file) and
`stromledger.store.SqliteSignGuard` (the node database). A nil vote's value hash is b"".

`records(height)` is mandatory: it is what restores a restarted machine's lock (the value hash of its
highest-round non-nil precommit) and round. A replayed WAL does not: it holds received messages, is replayed
before the height starts, and a round skip bypasses re-deriving the lock from own votes.

Every guard has a floor: `prune_below(h)` forgets the records of heights below h and from then on the guard
refuses any new record below h, and below the height of the last record it ever made (a validator's heights
only go up; signing lower again means its state was rolled back). A held record may still be re-sent.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple, Optional, Protocol, runtime_checkable


class Step(IntEnum):
    """A round's steps; these numbers are what every guard stores."""

    PROPOSE = 0
    PREVOTE = 1
    PRECOMMIT = 2


PROPOSE, PREVOTE, PRECOMMIT = Step.PROPOSE, Step.PREVOTE, Step.PRECOMMIT


class SignRecord(NamedTuple):
    height: int
    round: int
    step: int
    value_hash: bytes  # b"" for nil


@runtime_checkable
class SignGuard(Protocol):
    def check_and_record(self, height: int, round: int, step: int, value_hash: bytes) -> bool: ...

    def last(self) -> Optional[tuple[int, int, int]]: ...

    def records(self, height: int) -> list[SignRecord]: ...

    def floor(self) -> int: ...


def guard_records(guard: SignGuard, height: int) -> list[SignRecord]:
    """The guard's records for `height` in (round, step) order."""
    return sorted(guard.records(height))


def missing_guard_methods(guard: object) -> list[str]:
    """The methods of the SignGuard interface that `guard` lacks (a guard must have all of them)."""
    names = ("check_and_record", "last", "records", "floor")
    return [name for name in names if not callable(getattr(guard, name, None))]


def guard_floor(pruned_below: int, last: Optional[tuple[int, int, int]]) -> int:
    """The lowest height a guard may still sign at: not below a prune, nor below its last record."""
    return max(pruned_below, last[0] if last is not None else 0)


def check_record_args(height: int, round: int, step: int, value_hash: bytes) -> None:
    if type(height) is not int or height < 0 or type(round) is not int or round < 0:
        raise ValueError(f"height and round must be ints >= 0, got {height!r}, {round!r}")
    if step not in (PROPOSE, PREVOTE, PRECOMMIT):
        raise ValueError(f"step must be 0, 1 or 2, got {step!r}")
    if not isinstance(value_hash, bytes) or len(value_hash) not in (0, 32):
        raise ValueError("value_hash must be b'' (nil) or 32 bytes")


class MemorySignGuard:
    """In-memory guard. Keep the object to model a node's disk across a simulated crash."""

    def __init__(self) -> None:
        self._by_height: dict[int, dict[tuple[int, int], bytes]] = {}
        self._last: Optional[tuple[int, int, int]] = None
        self._pruned_below = 0

    def check_and_record(self, height: int, round: int, step: int, value_hash: bytes) -> bool:
        check_record_args(height, round, step, value_hash)
        known = self._by_height.get(height, {}).get((round, step))
        if known is not None:
            return known == value_hash  # the same again is a re-send
        if height < self.floor():
            return False
        records = self._by_height.setdefault(height, {})
        records[(round, step)] = value_hash
        key = (height, round, int(step))
        if self._last is None or key > self._last:
            self._last = key
        return True

    def last(self) -> Optional[tuple[int, int, int]]:
        return self._last

    def records(self, height: int) -> list[SignRecord]:
        return [SignRecord(height, r, s, v) for (r, s), v in self._by_height.get(height, {}).items()]

    def floor(self) -> int:
        return guard_floor(self._pruned_below, self._last)

    def prune_below(self, height: int) -> int:
        self._pruned_below = max(self._pruned_below, height)
        old = [h for h in self._by_height if h < height]
        return sum(len(self._by_height.pop(h)) for h in old)
