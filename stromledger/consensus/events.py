"""What goes into the consensus machine (events) and what comes out (actions).

The machine does no I/O: the driver turns network messages, timers and application answers into events,
and carries out the actions it gets back, in order.
"""

from __future__ import annotations

import dataclasses
from enum import IntEnum
from typing import Optional, Union

from stromledger.codec import Message

from .evidence import DuplicateVoteEvidence
from .messages import Commit, CommitCertificate, Precommit, Prevote, Proposal, Vote


class TimeoutKind(IntEnum):
    PROPOSE = 0
    PREVOTE = 1
    PRECOMMIT = 2
    RESEND = 3  # re-broadcast this height's latest own messages (the network may have lost them)


_frozen = dataclasses.dataclass(frozen=True, slots=True)

# -- events (inputs) ---------------------------------------------------------------------------------------


@_frozen
class StartHeight:
    """Height `height` may begin (its period's inputs are ready). Heights up to it are due; the machine
    starts its current height as soon as that is due, and each next one as soon as it decides."""

    height: int


@_frozen
class ProposalReceived:
    proposal: Proposal
    sender: Optional[bytes] = None  # the validator key of the peer it came from, if the driver knows it
    # The driver's judgement at receipt: False if it came too early by this node's clock. An untimely
    # proposal without a proof-of-lock (pol_round -1) gets a nil prevote (L22); it is still kept for L28-L49.
    timely: bool = True


@_frozen
class VoteReceived:
    vote: Vote
    sender: Optional[bytes] = None


@_frozen
class CommitReceived:
    """A decided value and its certificate, from a peer that is ahead (catch-up)."""

    height: int
    value: bytes
    certificate: CommitCertificate


@_frozen
class TimeoutFired:
    height: int
    round: int
    kind: TimeoutKind


@_frozen
class ValueReady:
    """The application's answer to RequestValue."""

    height: int
    round: int
    value: bytes


@_frozen
class ValueChecked:
    """The application's answer to ValidateValue. `valid`: the value follows the rules (a function of the value
    and the committed chain). `complete`: the application would also take it as a new proposal (it lists
    what this node holds, docs/consensus.md "Complete and timely proposals"); a valid but incomplete value gets
    a nil prevote when proposed without a proof-of-lock, and counts like any valid value everywhere else."""

    height: int
    value_hash: bytes
    valid: bool
    complete: bool = True


Event = Union[StartHeight, ProposalReceived, VoteReceived, CommitReceived, TimeoutFired, ValueReady, ValueChecked]

# -- actions (outputs) -------------------------------------------------------------------------------------


@_frozen
class Broadcast:
    message: Message  # a signed Proposal, Prevote or Precommit: send to every validator


@_frozen
class SendCommit:
    """Send `commit` to the validator with key `to`, which is behind at `commit.certificate.height` (the
    peer a stale message came from, or else that message's author)."""

    to: bytes
    commit: Commit


@_frozen
class ScheduleTimeout:
    """Feed back TimeoutFired(height, round, kind) after `delay_ms` milliseconds."""

    height: int
    round: int
    kind: TimeoutKind
    delay_ms: int


@_frozen
class RequestValue:
    """This node proposes: ask the application for a value, to be answered with ValueReady."""

    height: int
    round: int


@_frozen
class ValidateValue:
    """Ask the application whether `value` is valid at `height`, to be answered with ValueChecked."""

    height: int
    round: int
    value: bytes


@_frozen
class Decide:
    height: int
    value: bytes
    certificate: CommitCertificate


@_frozen
class EvidenceFound:
    evidence: DuplicateVoteEvidence


@_frozen
class Rejected:
    """An input that was invalid (not merely late or repeated): `reason` is a short code."""

    reason: str
    detail: str


Action = Union[Broadcast, SendCommit, ScheduleTimeout, RequestValue, ValidateValue, Decide, EvidenceFound, Rejected]


def event_for(msg: Message, sender: Optional[bytes] = None) -> Optional[Event]:
    """The event for a decoded consensus message from the network, or None if it is not one."""
    if isinstance(msg, Proposal):
        return ProposalReceived(msg, sender)
    if isinstance(msg, (Prevote, Precommit)):
        return VoteReceived(msg, sender)
    if isinstance(msg, Commit):
        return CommitReceived(msg.certificate.height, msg.value, msg.certificate)
    return None
