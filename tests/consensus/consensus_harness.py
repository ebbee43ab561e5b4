"""A single consensus machine under test, with the other validators played by the test (they sign votes
and proposals with their own keys)."""

from __future__ import annotations

from stromledger.consensus import (Broadcast, Consensus, ConsensusConfig, MemorySignGuard, Precommit, Prevote,
                                   ProposalReceived, ScheduleTimeout, TimeoutFired, TimeoutKind, ValueChecked,
                                   ValueReady, VoteReceived, sign_proposal, sign_vote, value_hash)
from stromledger.crypto import SigningKey

CHAIN = "test-chain"
H = 1_994_728  # a period index as height
KEYS = [SigningKey.from_label(f"validator-{i}") for i in range(4)]
PUBS = [k.public for k in KEYS]
CONFIG = ConsensusConfig(propose_ms=3000, propose_delta_ms=500, prevote_ms=1000, prevote_delta_ms=400,
                         precommit_ms=1000, precommit_delta_ms=300, resend_ms=2000)


def proposer_of(height: int, round: int) -> int:
    return (height + round) % len(KEYS)


def not_proposer(height: int, round: int) -> int:
    """A validator index that does not propose in this round."""
    return (proposer_of(height, round) + 1) % len(KEYS)


class Node:
    """One machine (validator `me`) and the actions it returned."""

    def __init__(self, me: int, height: int = H, guard=None, config: ConsensusConfig = CONFIG, **kw):
        self.me = me
        self.guard = guard if guard is not None else MemorySignGuard()
        self.m = Consensus(chain_id=CHAIN, validators=PUBS, key=KEYS[me], guard=self.guard, height=height,
                           config=config, **kw)
        self.log: list = []

    def feed(self, event) -> list:
        out = self.m.handle(event)
        self.log.extend(out)
        return out

    def proposal(self, round: int, value: bytes, pol_round: int = -1, height: int = H, by: int | None = None):
        by = proposer_of(height, round) if by is None else by
        return self.feed(ProposalReceived(sign_proposal(KEYS[by], CHAIN, height, round, pol_round, value)))

    def votes(self, kind, round: int, value: bytes | None, voters, height: int = H) -> list:
        out = []
        h = None if value is None else value_hash(value)
        for i in voters:
            out += self.feed(VoteReceived(sign_vote(kind, KEYS[i], CHAIN, height, round, h)))
        return out

    def verdict(self, value: bytes, valid: bool = True, height: int = H) -> list:
        return self.feed(ValueChecked(height, value_hash(value), valid))

    def timeout(self, kind: TimeoutKind, round: int, height: int = H) -> list:
        return self.feed(TimeoutFired(height, round, kind))

    def value_ready(self, round: int, value: bytes, height: int = H) -> list:
        return self.feed(ValueReady(height, round, value))

    def others(self, count: int | None = None) -> list[int]:
        rest = [i for i in range(len(KEYS)) if i != self.me]
        return rest if count is None else rest[:count]


def sent(actions, kind=None) -> list:
    """The messages broadcast in `actions` (of one type if given)."""
    return [a.message for a in actions if isinstance(a, Broadcast) and (kind is None or isinstance(a.message, kind))]


def own_votes(actions, kind, me: int) -> list:
    return [m for m in sent(actions, kind) if m.validator == PUBS[me]]


def timeouts(actions) -> list[ScheduleTimeout]:
    return [a for a in actions if isinstance(a, ScheduleTimeout)]


__all__ = ["CHAIN", "CONFIG", "H", "KEYS", "Node", "PUBS", "Precommit", "Prevote", "not_proposer", "own_votes",
           "proposer_of", "sent", "timeouts"]
