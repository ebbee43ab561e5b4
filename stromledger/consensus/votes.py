"""Vote sets: the votes of one type received for one (height, round), one per validator, with tallies."""

from __future__ import annotations

from collections import Counter
from typing import Iterator, Optional

from .messages import Vote


class VoteSet:
    """The first vote of each validator counts; a later, different one is an equivocation (returned to the
    caller as the conflicting pair) and is not counted."""

    __slots__ = ("_by_validator", "_tally")

    def __init__(self) -> None:
        self._by_validator: dict[int, Vote] = {}
        self._tally: Counter[Optional[bytes]] = Counter()

    def add(self, index: int, vote: Vote) -> tuple[str, Optional[Vote]]:
        """("added", None), ("duplicate", None) or ("conflict", the vote held before)."""
        held = self._by_validator.get(index)
        if held is None:
            self._by_validator[index] = vote
            self._tally[vote.value_hash] += 1
            return "added", None
        if held.value_hash == vote.value_hash:
            return "duplicate", None
        return "conflict", held

    def get(self, index: int) -> Optional[Vote]:
        return self._by_validator.get(index)

    def count(self, value_hash: Optional[bytes]) -> int:
        return self._tally[value_hash]

    @property
    def total(self) -> int:
        return len(self._by_validator)

    def leaders(self) -> list[tuple[Optional[bytes], int]]:
        """(value hash or None, count), most votes first (ties in arrival order)."""
        return self._tally.most_common()

    def for_value(self, value_hash: Optional[bytes]) -> Iterator[Vote]:
        return (v for v in self._by_validator.values() if v.value_hash == value_hash)
