"""Approvals by more than 2/3 of a committee: canonical order, members only, quorum, signatures."""

import dataclasses

import pytest

from stromledger.codec import U64, Message, Seq, nested
from stromledger.crypto import SigningKey
from stromledger.registry.approvals import (Approval, approvals_problem, approve, combine,
                                            more_than_two_thirds)

DOMAIN = "stromledger/test-approval/1"
CHAIN = "test-chain"


@nested
class Decision(Message):
    value: U64
    approvals: Seq(Approval, 1024)


KEYS = [SigningKey.from_label(f"approver-{i}") for i in range(4)]
COMMITTEE = [k.public for k in KEYS]
OUTSIDER = SigningKey.from_label("outsider")


def approved_by(keys, value=7):
    d = Decision(value, ())
    return dataclasses.replace(d, approvals=combine(approve(k, DOMAIN, CHAIN, d) for k in keys))


def test_quorum_sizes():
    assert [more_than_two_thirds(n) for n in (1, 3, 4, 6, 7, 10)] == [1, 3, 3, 5, 5, 7]


def _reversed(d):
    return dataclasses.replace(d, approvals=tuple(reversed(d.approvals)))


def _doubled(d):
    return dataclasses.replace(d, approvals=tuple(sorted(d.approvals * 2, key=lambda a: a.signer)))


@pytest.mark.parametrize("decision, reason", [
    (approved_by(KEYS[:3]), None),
    (approved_by(KEYS), None),
    (approved_by(KEYS[:2]), "insufficient_approvals"),
    (approved_by(KEYS[:3] + [OUTSIDER]), "unknown_approver"),
    (dataclasses.replace(approved_by(KEYS[:3]), value=8), "bad_signature"),
    (_reversed(approved_by(KEYS[:3])), "unsorted_approvals"),
    (_doubled(approved_by(KEYS[:2])), "unsorted_approvals"),
])
def test_each_problem_has_its_reason(decision, reason):
    got = approvals_problem(decision, COMMITTEE, DOMAIN, CHAIN)
    assert (got and got[0]) == reason


def test_an_approval_signs_the_domain_and_chain():
    d = approved_by(KEYS[:3])
    assert approvals_problem(d, COMMITTEE, DOMAIN, "other-chain")[0] == "bad_signature"
    assert approvals_problem(d, COMMITTEE, "stromledger/other/1", CHAIN)[0] == "bad_signature"


def test_combine_is_canonical():
    d = Decision(7, ())
    a = [approve(k, DOMAIN, CHAIN, d) for k in KEYS]
    assert combine(a) == combine(reversed(a + a[:1]))
