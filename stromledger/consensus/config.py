"""Consensus parameters: timeouts in integer milliseconds, growing linearly with the round, and the bounds
that keep a hostile peer from making the machine hold unbounded state."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ConsensusConfig:
    # Timeout of a step in round r = base + delta * r. The propose timeout must cover building or fetching,
    # and validating, the value: a value not validated before it fires gets a nil prevote.
    propose_ms: int = 3000
    propose_delta_ms: int = 500
    prevote_ms: int = 1000
    prevote_delta_ms: int = 500
    precommit_ms: int = 1000
    precommit_delta_ms: int = 500
    resend_ms: int = 2000  # re-broadcast own latest messages of the current height this often
    future_heights: int = 2  # messages and commits up to this many heights ahead are buffered
    max_buffered_per_validator: int = 16  # per future height
    max_round_ahead: int = 1000  # votes for rounds further ahead than this are dropped
    # Bytes of messages held per validator for rounds ahead of the current one, and per future height: a
    # byzantine proposer cannot make a node hold a proposal for each of max_round_ahead rounds.
    max_ahead_bytes: int = 8 * 1024 * 1024
    commit_window: int = 8  # recent decided heights kept to answer peers that are behind
    # A peer still sending messages of a height we decided is behind: answer its 3rd, 6th, ... message of
    # that height with the commit (its first two may just be its last votes, arriving after our decision).
    answer_every: int = 3

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if type(v) is not int or v < 0:
                raise ValueError(f"{f.name} must be an int >= 0, got {v!r}")
        if self.resend_ms == 0 or self.answer_every == 0:
            raise ValueError("resend_ms and answer_every must be > 0")

    def propose_timeout(self, round: int) -> int:
        return self.propose_ms + self.propose_delta_ms * round

    def prevote_timeout(self, round: int) -> int:
        return self.prevote_ms + self.prevote_delta_ms * round

    def precommit_timeout(self, round: int) -> int:
        return self.precommit_ms + self.precommit_delta_ms * round
