"""Consensus wire messages (codec tags 30-39) and their signatures.

A proposal carries the whole value (a PeriodSeal, a few KB to a few MB); votes carry only its hash, or nil
(None). Every signature covers `msg.body()` wrapped with a per-kind domain tag and the chain id, so a
prevote never verifies as a precommit, nor a message of one chain on another.
"""

from __future__ import annotations

from typing import Annotated, Optional, Union

from stromledger.codec import Blob, Hash, Message, PubKey, Range, Seq, Sig, U16, U32, U64, message, nested
from stromledger.crypto import SigningKey, sha256, verify

MAX_VALUE_BYTES = 16 * 1024 * 1024  # the codec's largest byte string
MAX_VALIDATORS = 1024

PROPOSAL_DOMAIN = "stromledger/consensus/proposal/1"
PREVOTE_DOMAIN = "stromledger/consensus/prevote/1"
PRECOMMIT_DOMAIN = "stromledger/consensus/precommit/1"

PolRound = Annotated[int, Range(-1, 2**32 - 1)]


@message(30)
class Proposal(Message):
    height: U64
    round: U32
    pol_round: PolRound  # the round of the +2/3 prevotes that justify re-proposing a locked value, -1 if none
    value: Blob(MAX_VALUE_BYTES)
    proposer: PubKey
    sig: Sig


@message(31)
class Prevote(Message):
    height: U64
    round: U32
    value_hash: Optional[Hash]  # None is a nil vote
    validator: PubKey
    sig: Sig


@message(32)
class Precommit(Message):
    height: U64
    round: U32
    value_hash: Optional[Hash]
    validator: PubKey
    sig: Sig


Vote = Union[Prevote, Precommit]
SignedMessage = Union[Proposal, Prevote, Precommit]


@nested
class CommitSig(Message):
    validator: U16  # index into the genesis validator list
    sig: Sig  # that validator's Precommit signature for (height, round, value_hash)


@message(33)
class CommitCertificate(Message):
    """More than 2/3 of the validators' precommits for one value hash, signers sorted by index."""

    height: U64
    round: U32
    value_hash: Hash
    signatures: Seq(CommitSig, MAX_VALIDATORS)


@message(34)
class Commit(Message):
    """A decided value with its certificate: what a node sends a peer that is behind."""

    value: Blob(MAX_VALUE_BYTES)
    certificate: CommitCertificate


DOMAINS: dict[type, str] = {Proposal: PROPOSAL_DOMAIN, Prevote: PREVOTE_DOMAIN, Precommit: PRECOMMIT_DOMAIN}


def value_hash(value: bytes) -> bytes:
    return sha256(value)


def author(msg: SignedMessage) -> bytes:
    return msg.proposer if isinstance(msg, Proposal) else msg.validator


def sign_proposal(key: SigningKey, chain_id: str, height: int, round: int, pol_round: int,
                  value: bytes) -> Proposal:
    unsigned = Proposal(height, round, pol_round, value, key.public, bytes(64))
    return Proposal(height, round, pol_round, value, key.public, key.sign(PROPOSAL_DOMAIN, chain_id, unsigned.body()))


def sign_vote(kind: type, key: SigningKey, chain_id: str, height: int, round: int,
              value_hash: Optional[bytes]) -> Vote:
    unsigned = kind(height, round, value_hash, key.public, bytes(64))
    return kind(height, round, value_hash, key.public, key.sign(DOMAINS[kind], chain_id, unsigned.body()))


def verify_signature(msg: SignedMessage, chain_id: str) -> bool:
    """True when the message's signature is its author's over its body, for this chain."""
    return verify(author(msg), msg.sig, DOMAINS[type(msg)], chain_id, msg.body())
