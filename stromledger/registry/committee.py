"""Committee changes: who validates a chain, changed on the running chain.

A `CommitteeChange` names the members of one chain's committee (a scope: an area EIC or "network") from its
`effective_period` on: validator names of the genesis' validator list, in proposer order. It is approved by
more than 2/3 of the committee it replaces (registry/approvals.py), each approval signed under
COMMITTEE_DOMAIN and the scope's own chain id, and committed by the scope's own chain at a height at least
two below the effective one (cascade/changes.py, CHANGE_LEAD), so the validator set of every height is known
before the height begins, as in Tendermint. A chain's height h settles period h, so the committee of height h
is `registry_at(view, h, changes).validators`.

Who approved what can be checked by anyone holding the genesis: starting from the genesis committee, each
change in history order is approved by the committee in effect just before it (registry/changes.py
`trust_problem`), so a node that only has the genesis follows the committee of any height through the
committed changes.
"""

from __future__ import annotations

from typing import ClassVar, Iterable

from stromledger.codec import U64, Message, Seq, Str, message
from stromledger.crypto import SigningKey, sha256

from .approvals import MAX_APPROVALS, Approval, approve, combine
from .changes import Draft, change_type, registry_at
from .model import Registry

COMMITTEE_DOMAIN = "stromledger/committee-change/1"
MAX_MEMBERS = 1024  # the consensus's largest committee (consensus.messages.MAX_VALIDATORS)
SMALL_COMMITTEE = 4  # below this, one fault stops the chain (as `genesis check` warns)


@change_type
@message(7)
class CommitteeChange(Message):
    """The committee of `scope` from `effective_period` on, approved by more than 2/3 of the one before."""

    DOMAIN: ClassVar[str] = COMMITTEE_DOMAIN

    scope: Str(16)  # an area EIC or "network"
    effective_period: U64  # = the first height the new committee decides
    members: Seq(Str(64), MAX_MEMBERS)  # validator names, in proposer order
    approvals: Seq(Approval, MAX_APPROVALS)

    def digest(self) -> bytes:
        return sha256(self.encode())

    @property
    def conflict_key(self) -> tuple[str, str]:
        return ("committee", self.scope)  # one pending committee change per chain

    def describe(self) -> str:
        return f"committee of {self.scope} = {', '.join(self.members)} from height {self.effective_period}"

    def json_fields(self) -> dict:
        return {"kind": "committee", "scope": self.scope, "effective_period": self.effective_period,
                "members": list(self.members), "approvals": [bytes(a.signer).hex() for a in self.approvals]}

    def apply(self, d: Draft) -> None:
        if d.base.scope != self.scope:
            return  # the cascade commits a committee change on its own chain only
        by_name = {v.name: v for v in d.pool.validators}
        d.validators = tuple(by_name[n] for n in self.members if n in by_name)


def committee_change(scope: str, effective_period: int, members: Iterable[str],
                     approvals: Iterable[Approval] = ()) -> CommitteeChange:
    return CommitteeChange(scope, effective_period, tuple(members), combine(approvals))


def approve_committee_change(key: SigningKey, chain_id: str, change: CommitteeChange) -> Approval:
    """This member's approval of `change` (`chain_id`: the chain id of the change's scope)."""
    return approve(key, COMMITTEE_DOMAIN, chain_id, change)


def with_approvals(change: CommitteeChange, approvals: Iterable[Approval]) -> CommitteeChange:
    return CommitteeChange(change.scope, change.effective_period, change.members,
                           combine((*change.approvals, *approvals)))


def committee_at(view: Registry, height: int, changes: tuple) -> tuple[bytes, ...]:
    """The public keys of the committee deciding `height` of the chain `view` is the view of."""
    return registry_at(view, height, changes).validator_keys()
