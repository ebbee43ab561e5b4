"""The validator set: equal-weight Ed25519 keys in genesis order, quorums and the round-robin proposer."""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

from .messages import MAX_VALIDATORS


class ValidatorSet:
    """n validators of weight 1 each. A quorum is more than 2/3 of them (2f+1 when n = 3f+1); `skip` is
    more than 1/3 (f+1), the smallest group that surely holds an honest validator."""

    __slots__ = ("keys", "_index", "n", "quorum", "skip", "max_faulty")

    def __init__(self, keys: Iterable[bytes]):
        self.keys: tuple[bytes, ...] = tuple(bytes(k) for k in keys)
        if not self.keys:
            raise ValueError("a validator set needs at least one key")
        if len(self.keys) > MAX_VALIDATORS:
            raise ValueError(f"at most {MAX_VALIDATORS} validators, got {len(self.keys)}")
        for k in self.keys:
            if len(k) != 32:
                raise ValueError(f"a validator key is 32 bytes, got {len(k)}")
        self._index = {k: i for i, k in enumerate(self.keys)}
        if len(self._index) != len(self.keys):
            raise ValueError("duplicate validator key")
        self.n = len(self.keys)
        self.quorum = 2 * self.n // 3 + 1
        self.skip = self.n // 3 + 1
        self.max_faulty = (self.n - 1) // 3

    @classmethod
    def of(cls, validators: ValidatorSet | Sequence[bytes]) -> ValidatorSet:
        return validators if isinstance(validators, ValidatorSet) else cls(validators)

    def index(self, key: bytes) -> Optional[int]:
        return self._index.get(key)

    def proposer_index(self, height: int, round: int) -> int:
        return (height + round) % self.n

    def proposer(self, height: int, round: int) -> bytes:
        return self.keys[self.proposer_index(height, round)]

    def __len__(self) -> int:
        return self.n

    def __contains__(self, key: object) -> bool:
        return key in self._index
