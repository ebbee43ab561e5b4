"""Committee changes: approved by more than 2/3 of the committee in office, committed by the chain's own seal at
least two heights ahead, applied to the chain's validator set from their effective height on; every bad one
refused with its reason, nothing already admitted lost."""

from __future__ import annotations

from dataclasses import replace

from stromledger.cascade import Ledger, Reason, SettledState, make_batch, replay
from stromledger.cascade.checks import APPROVED_ITEM
from stromledger.registry import CommitteeChange, committee_change, registry_at, view
from stromledger.registry.approvals import Approval, combine
from stromledger.registry.changes import trust_problem
from stromledger.registry.committee import approve_committee_change, committee_at, with_approvals

from .tiny import A1, A2, G, key, make_registry

ALL = ["validator-1", "validator-2", "validator-3", "validator-4"]
WITHOUT_4 = ALL[:3]


def area_chain():
    reg = view(make_registry(), A1)  # the committee of A1: every validator of the tiny genesis
    return reg, Ledger(reg)


def approved(reg, members, period, by, scope=A1) -> CommitteeChange:
    c = committee_change(scope, period, members)
    return with_approvals(c, [approve_committee_change(key(n), reg.chain_id, c) for n in by])


def batch(reg, *changes, signer="validator-1"):
    return make_batch(key(signer), reg.chain_id, approved=changes)


def reasons(admission):
    return [r.reason for kind, _, r in admission.rejections if kind == APPROVED_ITEM]


def settle(ledger: Ledger):
    outcome = ledger.propose()
    ledger.commit(outcome.seal_bytes)
    return outcome


def names(reg, height, changes):
    return [v.name for v in registry_at(reg, height, changes).validators]


def test_a_committee_change_takes_effect_exactly_at_its_effective_height():
    reg, ledger = area_chain()
    c = approved(reg, WITHOUT_4, G + 2, by=ALL[:3])  # 3 of 4: more than 2/3
    a = ledger.admit(batch(reg, c), G + 1)
    assert a.stored and a.accepted == 1 and not a.rejections
    first = settle(ledger)  # height G commits it
    assert first.registry_changes == (c,) and ledger.state.changes == (c,)
    assert names(reg, G + 1, ledger.state.changes) == ALL  # the height after the commit: still the old set
    assert names(reg, G + 2, ledger.state.changes) == WITHOUT_4
    assert committee_at(reg, G + 2, ledger.state.changes) == tuple(key(n).public for n in WITHOUT_4)
    settle(ledger)
    third = settle(ledger)  # G + 2 settles under the version that names the new committee
    assert third.seal.result(G + 2).registry_version == registry_at(reg, G + 2, (c,)).version != reg.hash
    assert first.seal.result(G).registry_version == reg.hash
    # a restarted node, and a replay from the seals, know the committee change
    again = SettledState.decode(ledger.state.encode())
    assert again.changes == (c,) and SettledState.changes_in(ledger.state.encode()) == (c,)


def test_bad_committee_changes_each_get_their_reason_and_the_good_one_is_kept():
    reg, ledger = area_chain()
    two = approved(reg, WITHOUT_4, G + 4, by=ALL[:2])
    forged = replace(two, approvals=combine((*two.approvals, Approval(key("validator-3").public, bytes(64)))))
    bad = [
        two,  # 2 of 4: not more than 2/3
        approved(reg, ALL[1:], G + 4, by=["validator-1", "validator-2", "intruder"]),  # not a member
        forged,  # a forged approval
        approved(reg, WITHOUT_4, G + 1, by=ALL),  # inside the gate: the seal of G takes G + 2 on
        approved(reg, WITHOUT_4, G + 4, by=ALL, scope=A2),  # another chain's committee
        approved(reg, ["validator-1", "validator-9"], G + 4, by=ALL),  # no such validator
        approved(reg, ALL, G + 4, by=ALL),  # the committee already
    ]
    a = ledger.admit(make_batch(key("validator-2"), reg.chain_id, approved=[*bad, b"\x93\x07\x01\x02"]), G + 1)
    assert reasons(a) == [
        Reason.INSUFFICIENT_APPROVALS, Reason.UNKNOWN_APPROVER, Reason.BAD_SIGNATURE, Reason.CHANGE_TOO_LATE,
        Reason.WRONG_CHAIN, Reason.MALFORMED, Reason.MALFORMED, Reason.MALFORMED]
    assert all(r.message and "\n" not in r.message for _, _, r in a.rejections)
    receipt = a.receipt(key("validator-1"), reg.chain_id)
    assert [i.kind for i in receipt.rejected] == [APPROVED_ITEM] * 8
    ok = approved(reg, WITHOUT_4, G + 3, by=ALL)
    assert ledger.admit(batch(reg, ok), G + 1).accepted == 1
    second = ledger.admit(batch(reg, approved(reg, ALL[:2], G + 5, by=ALL)), G + 1)
    assert reasons(second) == [Reason.CONFLICTING_CHANGE]  # one pending committee change per chain
    committed = settle(ledger)
    assert committed.registry_changes == (ok,)  # nothing already admitted is lost
    replayed = ledger.admit(batch(reg, ok, signer="validator-3"), G + 2)  # the same change in another batch
    assert reasons(replayed) == [Reason.DUPLICATE]
    # committed but not yet in effect: still pending, so another change of the committee waits for it
    later = ledger.admit(batch(reg, approved(reg, ALL[:2], G + 5, by=ALL)), G + 2)
    assert reasons(later) == [Reason.CONFLICTING_CHANGE]


def test_the_next_change_is_approved_by_the_new_committee_and_a_removed_member_no_longer_counts():
    reg, ledger = area_chain()
    first = approved(reg, WITHOUT_4, G + 2, by=ALL[:3])
    ledger.admit(batch(reg, first), G + 1)
    settle(ledger)  # G commits it
    settle(ledger)  # G + 1: the next seal, of G + 2, is the new committee's
    # validator-4 is out from G + 2: its approval of a change that applies after that no longer counts
    back = committee_change(A1, G + 5, ALL)
    with_removed = with_approvals(back, [approve_committee_change(key(n), reg.chain_id, back)
                                         for n in ("validator-1", "validator-4")])
    a = ledger.admit(batch(reg, with_removed), G + 2)
    assert reasons(a) == [Reason.UNKNOWN_APPROVER]
    by_new = approved(reg, ALL, G + 5, by=WITHOUT_4)  # 3 of the 3 in office
    assert ledger.admit(batch(reg, by_new), G + 2).accepted == 1
    settle(ledger)  # G + 2 commits it
    history = ledger.state.changes
    assert history == (first, by_new)
    assert [names(reg, h, history) for h in (G + 1, G + 2, G + 4, G + 5)] == [ALL, WITHOUT_4, WITHOUT_4, ALL]
    # the chain of trust from the genesis committee holds, and breaks when a link is not the committee's
    assert trust_problem(reg, history) is None
    assert "insufficient_approvals" in trust_problem(reg, (replace(first, approvals=first.approvals[:2]), by_new))


def test_another_node_rebuilds_the_seal_that_commits_a_committee_change():
    reg, ledger = area_chain()
    c = approved(reg, WITHOUT_4, G + 2, by=ALL[:3])
    b = batch(reg, c)
    ledger.admit(b, G + 1)
    outcome = ledger.propose()
    other = Ledger(reg)
    other.add_fetched(b)
    assert other.validate(outcome.seal_bytes) is None
    ledger.commit(outcome.seal_bytes)
    state = replay(reg, [(outcome.seal_bytes, {b.digest(): b})])
    assert state.changes == (c,) and state.encode() == ledger.state.encode()
