"""Duplicate-vote evidence: detected by the machine, canonical, verifiable on its own."""

import dataclasses

import pytest
from consensus_harness import CHAIN, H, KEYS, PUBS, Node, Precommit, Prevote, own_votes

from stromledger.consensus import (DuplicateVoteEvidence, EvidenceError, EvidenceFound, StartHeight, TimeoutKind,
                                   VoteReceived, make_evidence, sign_vote, value_hash, verify_evidence)

A, B = value_hash(b"a"), value_hash(b"b")


def test_evidence_is_canonical_whatever_the_order():
    x = sign_vote(Prevote, KEYS[2], CHAIN, H, 1, A)
    y = sign_vote(Prevote, KEYS[2], CHAIN, H, 1, None)
    ev = make_evidence(x, y)
    assert ev == make_evidence(y, x)
    assert (ev.hash_a, ev.hash_b) == (None, A)  # nil sorts first
    assert DuplicateVoteEvidence.decode(ev.encode()) == ev
    verify_evidence(ev, PUBS, CHAIN)
    assert set(ev.votes()) == {x, y}


def test_only_conflicting_votes_make_evidence():
    x = sign_vote(Precommit, KEYS[2], CHAIN, H, 1, A)
    for other in (x, sign_vote(Precommit, KEYS[1], CHAIN, H, 1, B), sign_vote(Precommit, KEYS[2], CHAIN, H, 2, B),
                  sign_vote(Prevote, KEYS[2], CHAIN, H, 1, B)):
        with pytest.raises(EvidenceError) as e:
            make_evidence(x, other)
        assert e.value.reason == "not_conflicting"


@pytest.mark.parametrize("change, reason", [
    ({"kind": 7}, "bad_kind"),
    ({"hash_b": None, "hash_a": None}, "not_conflicting"),
    ("swap", "not_canonical"),
    ({"sig_b": bytes(64)}, "bad_signature"),
    ("stranger", "unknown_validator"),
])
def test_verification_failures(change, reason):
    ev = make_evidence(sign_vote(Precommit, KEYS[1], CHAIN, H, 0, A), sign_vote(Precommit, KEYS[1], CHAIN, H, 0, B))
    if change == "swap":
        ev = dataclasses.replace(ev, hash_a=ev.hash_b, sig_a=ev.sig_b, hash_b=ev.hash_a, sig_b=ev.sig_a)
    elif change == "stranger":
        ev = dataclasses.replace(ev, validator=KEYS[0].from_label("stranger").public)
    else:
        ev = dataclasses.replace(ev, **change)
    with pytest.raises(EvidenceError) as e:
        verify_evidence(ev, PUBS, CHAIN)
    assert e.value.reason == reason


def test_evidence_of_another_chain_does_not_verify():
    ev = make_evidence(sign_vote(Prevote, KEYS[1], "x", H, 0, A), sign_vote(Prevote, KEYS[1], "x", H, 0, B))
    with pytest.raises(EvidenceError) as e:
        verify_evidence(ev, PUBS, CHAIN)
    assert e.value.reason == "bad_signature"


def test_machine_emits_evidence_once_and_keeps_it():
    node = Node(3)
    node.feed(StartHeight(H))
    first = node.feed(VoteReceived(sign_vote(Prevote, KEYS[1], CHAIN, H, 0, A)))
    assert not [a for a in first if isinstance(a, EvidenceFound)]
    out = node.feed(VoteReceived(sign_vote(Prevote, KEYS[1], CHAIN, H, 0, B)))
    [found] = [a.evidence for a in out if isinstance(a, EvidenceFound)]
    verify_evidence(found, PUBS, CHAIN)
    assert (found.kind, found.height, found.round, found.validator) == (1, H, 0, PUBS[1])
    again = node.feed(VoteReceived(sign_vote(Prevote, KEYS[1], CHAIN, H, 0, B)))
    assert not [a for a in again if isinstance(a, EvidenceFound)]
    assert list(node.m.evidence.values()) == [found]


def test_an_equivocators_vote_still_counts_for_a_proof_of_lock():
    """Validator 1 prevoted w to us first and v to others; its v prevote, relayed with a re-proposal of v,
    must complete the proof of lock for v (else an honest node locked on v could never convince us)."""
    v, w = b"v", b"w"
    node = Node(3)
    node.feed(StartHeight(H))
    node.votes(Prevote, 0, w, [1])
    node.votes(Prevote, 0, v, [0, 2])
    node.timeout(TimeoutKind.PROPOSE, 0)
    node.votes(Precommit, 0, None, [0, 1, 2])
    node.timeout(TimeoutKind.PRECOMMIT, 0)
    node.proposal(1, v, pol_round=0)
    node.verdict(v)
    out = node.votes(Prevote, 0, v, [1])  # the relayed vote: an equivocation, and the third for v
    assert any(isinstance(a, EvidenceFound) for a in out)
    assert [p.value_hash for p in own_votes(node.log, Prevote, 3) if p.round == 1] == [value_hash(v)]
