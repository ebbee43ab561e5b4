"""Vote sets: the votes of one type received for one (height, round), with tallies per value.

As in the paper's rules, a value's tally counts every validator that voted for it, so an equivocating
validator counts for each value it voted for (its first vote alone counts towards the any-value totals).
That is safe (two quorums still share an honest validator, who votes once) and needed for liveness: an
honest node must be able to verify a proof-of-lock that contains an equivocator's vote, even if it saw that
validator's other vote first. To bound memory, an equivocator's votes beyond its second distinct value are
kept only for `wanted` values (those of this height's proposals).
"""

from __future__ import annotations

from typing import Iterator, Optional

from .messages import Vote

MAX_VALUES_PER_VALIDATOR = 2


class VoteSet:
    __slots__ = ("_first", "_by_value", "_values_of")

    def __init__(self) -> None:
        self._first: dict[int, Vote] = {}
        self._by_value: dict[Optional[bytes], dict[int, Vote]] = {}
        self._values_of: dict[int, int] = {}

    def add(self, index: int, vote: Vote, wanted: bool = False) -> tuple[bool, Optional[Vote]]:
        """(counted, conflicting): whether the vote now counts for its value, and the validator's first
        vote if this one is for a different value (an equivocation)."""
        votes = self._by_value.get(vote.value_hash)
        if votes is not None and index in votes:
            return False, None
        first = self._first.get(index)
        if first is None:
            self._first[index] = vote
        elif self._values_of[index] >= MAX_VALUES_PER_VALIDATOR and not wanted:
            return False, first
        self._by_value.setdefault(vote.value_hash, {})[index] = vote
        self._values_of[index] = self._values_of.get(index, 0) + 1
        return True, first

    def holds(self, index: int, vote: Vote) -> bool:
        """Whether exactly this vote is already here."""
        votes = self._by_value.get(vote.value_hash)
        return votes is not None and votes.get(index) == vote

    def count(self, value_hash: Optional[bytes]) -> int:
        votes = self._by_value.get(value_hash)
        return 0 if votes is None else len(votes)

    @property
    def total(self) -> int:
        """How many validators voted here, whatever for."""
        return len(self._first)

    def value_with(self, quorum: int) -> Optional[bytes]:
        """The non-nil value with at least `quorum` votes, if any (at most one has, with a true quorum)."""
        for h, votes in self._by_value.items():
            if h is not None and len(votes) >= quorum:
                return h
        return None

    def for_value(self, value_hash: Optional[bytes]) -> Iterator[Vote]:
        return iter(self._by_value.get(value_hash, {}).values())
