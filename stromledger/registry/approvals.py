"""Approvals: master-data changes that more than 2/3 of a committee must sign.

Some registry changes are not one party's to make: a committee change (who validates a chain), a balancing
group opened or closed, a market-partner id. Such a change carries `approvals`, its last field: one
`Approval` (a committee member's key and its signature) per approving member, sorted by key, no key twice,
so the same set of approvals has one encoding. Every approval signs the same bytes, the message's body
without the approvals (`approved_body`), under the message's own domain and the genesis chain id.

`approvals_problem` judges a change's approvals against the committee that must approve it (the committee in
office when the change is committed, never the one the change installs) and returns the first problem as
(reason, one line), or None:

- `unsorted_approvals`: not strictly ascending by key (a key twice is a duplicate, refused the same way);
- `unknown_approver`: a key that is not a member of the committee;
- `bad_signature`: a signature that does not verify;
- `insufficient_approvals`: at most 2/3 of the committee approved.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Optional, Sequence

import msgpack

from stromledger.codec import Message, PubKey, Sig, nested
from stromledger.crypto import SigningKey, verify

MAX_APPROVALS = 1024  # the consensus's largest committee (consensus.messages.MAX_VALIDATORS)


@nested
class Approval(Message):
    signer: PubKey
    sig: Sig


def more_than_two_thirds(n: int) -> int:
    """The smallest count above 2/3 of n: the quorum of a committee of n (2f + 1 when n = 3f + 1)."""
    return 2 * n // 3 + 1


def approved_body(msg: Message) -> bytes:
    """What every approval of `msg` signs: its canonical encoding without the trailing `approvals` field."""
    names = [name for name, _ in msg._wire_fields]
    if not names or names[-1] != "approvals":
        raise TypeError(f"{type(msg).__name__} has no trailing approvals field")
    return msgpack.packb([msg.TAG, *msg.to_wire()[:-1]], use_bin_type=True)


def approve(key: SigningKey, domain: str, chain_id: str, msg: Message) -> Approval:
    """This key's approval of `msg` (whatever approvals `msg` already carries are not signed)."""
    return Approval(key.public, key.sign(domain, chain_id, approved_body(msg)))


def combine(approvals: Iterable[Approval]) -> tuple[Approval, ...]:
    """Approvals in their canonical order: sorted by key, the first of each key kept."""
    by_key: dict[bytes, Approval] = {}
    for a in approvals:
        by_key.setdefault(bytes(a.signer), a)
    return tuple(by_key[k] for k in sorted(by_key))


def add_approvals(msg: Message, approvals: Iterable[Approval]) -> Message:
    """`msg` carrying `approvals` besides those it has, in canonical order."""
    return dataclasses.replace(msg, approvals=combine((*msg.approvals, *approvals)))


def approvals_problem(msg: Message, committee: Sequence[bytes], domain: str,
                      chain_id: str) -> Optional[tuple[str, str]]:
    """(reason, one line) for the first thing wrong with `msg.approvals` judged by `committee` (its members'
    public keys), or None when more than 2/3 of the committee approved it. Cheap checks before signatures."""
    approvals = msg.approvals
    members = set(map(bytes, committee))
    previous = b""
    for a in approvals:
        key = bytes(a.signer)
        if key <= previous:
            return "unsorted_approvals", "approvals must be sorted by key, each key once"
        previous = key
        if key not in members:
            return "unknown_approver", f"approver {key.hex()[:16]}... is not a member of the approving committee"
    needed = more_than_two_thirds(len(members))
    if len(approvals) < needed:
        return "insufficient_approvals", (f"{len(approvals)} of {len(members)} committee members approved, "
                                          f"{needed} needed (more than 2/3)")
    body = approved_body(msg)
    for a in approvals:
        if not verify(bytes(a.signer), bytes(a.sig), domain, chain_id, body):
            return "bad_signature", f"the approval of {bytes(a.signer).hex()[:16]}... does not verify"
    return None
