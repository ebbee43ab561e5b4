"""Typed rejections: every refused input gets a reason code (stable, on the wire as a u8) and a message."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Reason(enum.IntEnum):
    MALFORMED = 1  # bytes that do not decode, or fields that make no sense (version 0, Wh 0, from == to)
    OVERSIZED = 2  # over a size bound
    WRONG_CHAIN = 3  # a batch or seal for another chain (or another registry)
    BAD_SIGNATURE = 4
    WRONG_SIGNER = 5  # signed by a key that may not sign this (not the meter's key, not a group operator)
    UNKNOWN_METER_POINT = 6
    UNKNOWN_BALANCING_GROUP = 7
    PERIOD_TOO_OLD = 8  # before genesis, outside the correction window, or a schedule after its seal
    PERIOD_IN_FUTURE = 9
    ABOVE_MAX_POWER = 10  # more energy than max power x period length allows
    DUPLICATE = 11  # the same again: harmless, nothing changes
    CONFLICTING_DUPLICATE = 12  # different values for the same (malo, period, version): kept as evidence
    SUPERSEDED = 13  # a lower version than the one already settled
    REGISTER_WENT_DOWN = 14  # a cumulative register below an earlier (or above a later) reading
    SCHEDULE_MISMATCH = 15  # the other side signed another amount (a warning: the seal reports it)
    WRONG_HEIGHT = 16  # a seal for a height that is not the next one, or not linked to the last seal
    MISSING_BATCH = 17  # a seal lists a batch this node does not have (fetch it, then validate again)
    BATCH_NOT_ELIGIBLE = 18  # a seal lists a batch with nothing to settle at its height
    INVARIANT_VIOLATED = 19
    SEAL_MISMATCH = 20  # rebuilt from the same inputs, the seal came out different
    BAD_EVIDENCE = 21  # consensus evidence in a seal that does not check out
    BAD_LAST_COMMIT = 22  # a seal's commit certificate of the previous height that does not check out
    UNKNOWN_SCOPE = 23  # a checkpoint for an area the genesis does not have
    BAD_CERTIFICATE = 24  # a checkpoint whose certificate is not its area committee's for that seal
    MISSING_CHECKPOINT = 25  # a network seal uses an area seal this node has no checkpoint of (fetch it)
    CHECKPOINT_NOT_ELIGIBLE = 26  # a network seal lists a checkpoint that changes nothing, or two of one height
    RETIRED_METER_POINT = 27  # a reading (or change) for a meter point retired by then
    ROTATED_KEY = 28  # a reading signed with a meter key rotated out by then
    CHANGE_TOO_LATE = 29  # a registry change effective in the past or inside the current gate
    CONFLICTING_CHANGE = 30  # another change of the meter point for the same period (or still pending)
    INSUFFICIENT_APPROVALS = 31  # an approved change that at most 2/3 of its approving committee approved
    UNKNOWN_APPROVER = 32  # an approval by a key outside the approving committee
    GROUP_IN_USE = 40  # a balancing group closed while meter points (or an area's loss) are still in it

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: Reason
    message: str

    def __str__(self) -> str:
        return f"{self.reason.label}: {self.message}"

    @property
    def harmless(self) -> bool:
        """A duplicate or superseded item: the sender did nothing wrong worth flagging."""
        return self.reason in (Reason.DUPLICATE, Reason.SUPERSEDED)
