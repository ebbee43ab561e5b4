"""Duplicate-vote evidence: two valid votes by one validator for the same (height, round, type) and
different values. It carries both signatures and is verifiable by anyone holding the validator list.

Canonical form: vote A's value hash sorts before vote B's (nil, stored as absent, sorts first), so the same
pair of votes always gives the same bytes, whichever arrived first.
"""

from __future__ import annotations

from typing import Optional, Sequence

from stromledger.codec import Hash, Message, PubKey, Sig, U8, U32, U64, message
from stromledger.crypto import sha256

from .messages import Precommit, Prevote, Vote, verify_signature
from .validators import ValidatorSet

VOTE_KINDS: dict[int, type] = {1: Prevote, 2: Precommit}
KIND_OF: dict[type, int] = {Prevote: 1, Precommit: 2}


@message(35)
class DuplicateVoteEvidence(Message):
    kind: U8  # 1 prevote, 2 precommit
    height: U64
    round: U32
    validator: PubKey
    hash_a: Optional[Hash]
    sig_a: Sig
    hash_b: Optional[Hash]
    sig_b: Sig

    def votes(self) -> tuple[Vote, Vote]:
        cls = VOTE_KINDS[self.kind]
        return (cls(self.height, self.round, self.hash_a, self.validator, self.sig_a),
                cls(self.height, self.round, self.hash_b, self.validator, self.sig_b))

    def id(self) -> bytes:
        return sha256(self.encode())


class EvidenceError(ValueError):
    """Evidence that proves nothing. `reason`: bad_kind, not_conflicting, not_canonical, unknown_validator,
    bad_signature."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason


def _order(h: Optional[bytes]) -> bytes:
    return b"" if h is None else h


def make_evidence(first: Vote, second: Vote) -> DuplicateVoteEvidence:
    """Evidence from two conflicting votes (the caller has verified both signatures)."""
    if type(first) is not type(second) or (first.height, first.round, first.validator) != (
            second.height, second.round, second.validator) or first.value_hash == second.value_hash:
        raise EvidenceError("not_conflicting", "votes must share type, height, round and validator, and differ")
    a, b = sorted((first, second), key=lambda v: _order(v.value_hash))
    return DuplicateVoteEvidence(KIND_OF[type(first)], first.height, first.round, first.validator,
                                 a.value_hash, a.sig, b.value_hash, b.sig)


def verify_evidence(ev: DuplicateVoteEvidence, validators: ValidatorSet | Sequence[bytes], chain_id: str) -> None:
    """Raise EvidenceError unless `ev` proves that a validator of this chain voted twice."""
    if ev.kind not in VOTE_KINDS:
        raise EvidenceError("bad_kind", f"vote kind {ev.kind} is neither 1 (prevote) nor 2 (precommit)")
    if ev.hash_a == ev.hash_b:
        raise EvidenceError("not_conflicting", "both votes are for the same value")
    if _order(ev.hash_a) >= _order(ev.hash_b):
        raise EvidenceError("not_canonical", "vote A's value hash must sort before vote B's")
    if ev.validator not in ValidatorSet.of(validators):
        raise EvidenceError("unknown_validator", f"{ev.validator.hex()[:16]}... is not a validator")
    for name, vote in zip("AB", ev.votes()):
        if not verify_signature(vote, chain_id):
            raise EvidenceError("bad_signature", f"vote {name}'s signature does not verify")
