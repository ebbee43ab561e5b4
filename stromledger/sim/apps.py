"""Applications for the simulator: deterministic values that every honest validator judges alike.

A value is the canonical encoding of a `SimValue`: the height, the round and validator that built it, a
seeded filler (so values differ between proposers and rounds, which exercises locking), and a flag that
`RejectingApp` sets on the values it wants refused.
"""

from __future__ import annotations

import random

from stromledger.codec import Blob, CodecError, Message, U8, U16, U32, U64, message
from stromledger.consensus.messages import MAX_VALUE_BYTES


@message(49)
class SimValue(Message):
    height: U64
    round: U32
    builder: U16  # validator index
    bad: U8  # 1: every honest validator rejects this value
    filler: Blob(MAX_VALUE_BYTES)


class SimpleApp:
    """Builds `size`-byte values seeded by (seed, salt, height, round, builder); accepts any well-formed
    value of the right height that is not flagged bad. Twins of an equivocator use different salts."""

    def __init__(self, seed: int, builder: int, size: int = 256, salt: str = ""):
        self.seed, self.builder, self.size, self.salt = seed, builder, size, salt

    def _filler(self, height: int, round: int) -> bytes:
        return random.Random(f"{self.seed}/{self.salt}/{height}/{round}/{self.builder}").randbytes(self.size)

    def is_bad(self, height: int, round: int) -> bool:
        return False

    def build_value(self, height: int, round: int) -> bytes:
        bad = 1 if self.is_bad(height, round) else 0
        return SimValue(height, round, self.builder, bad, self._filler(height, round)).encode()

    def judged_incomplete(self, value: bytes, picky_permille: int) -> bool:
        """A holding-dependent judgement, drawn per (this validator, value): would it refuse the value as a
        new proposal? Independent of validity; the simulator's stand-in for "lists what I hold"."""
        if not picky_permille:
            return False
        return random.Random(f"{self.seed}/{self.salt}/incomplete/{self.builder}/{value.hex()}").randrange(1000) \
            < picky_permille

    def validate(self, height: int, value: bytes) -> bool:
        try:
            v = SimValue.decode(value)
        except CodecError:
            return False
        return v.height == height and v.bad == 0


class RejectingApp(SimpleApp):
    """Like SimpleApp, but the round-0 value of about one height in `every` is built flagged bad: its
    proposer believes in it, every other validator refuses it, and it must never be decided."""

    def __init__(self, seed: int, builder: int, size: int = 256, salt: str = "", every: int = 3):
        super().__init__(seed, builder, size, salt)
        self.every = every

    def is_bad(self, height: int, round: int) -> bool:
        return round == 0 and (height + self.seed) % self.every == 0

