"""A validator set per height (committee changes): every height is decided and certified by its own set; a
validator added by a change signs from its effective height on, a removed one no longer counts."""

from __future__ import annotations

import pytest

from stromledger.consensus import (Broadcast, CertificateError, CommitReceived, Consensus, Decide,
                                   MemorySignGuard, Precommit, Prevote, ProposalReceived, Rejected, RequestValue,
                                   StartHeight,
                                   ValidateValue, ValidatorSet, ValueChecked, ValueReady, VoteReceived,
                                   build_certificate, sign_proposal, sign_vote, value_hash,
                                   verify_certificate)
from stromledger.crypto import SigningKey

from consensus_harness import CHAIN, CONFIG, H

KEYS = [SigningKey.from_label(f"validator-{i}") for i in range(5)]
PUBS = [k.public for k in KEYS]
EFFECTIVE = H + 2  # the first height of the new committee
OLD, NEW = ValidatorSet(PUBS[:4]), ValidatorSet(PUBS[1:])  # validator-0 replaced by validator-4


def set_of(height: int) -> ValidatorSet:
    return OLD if height < EFFECTIVE else NEW


def run(heights: int) -> tuple[list[Consensus], list[Decide], dict[int, set[bytes]]]:
    """Five machines, one network delivering every message to every machine at once; the application
    proposes and accepts `b"value <height>"`. Returns the machines, the decisions of the first machine and
    the keys that signed a vote per height."""
    machines = [Consensus(chain_id=CHAIN, validators=set_of, key=k, guard=MemorySignGuard(), height=H,
                          config=CONFIG) for k in KEYS]
    decided: list[Decide] = []
    signers: dict[int, set[bytes]] = {}
    queue = [(i, StartHeight(H)) for i in range(len(machines))]
    while queue and len(decided) < heights:
        i, event = queue.pop(0)
        for action in machines[i].handle(event):
            if isinstance(action, RequestValue):
                queue.append((i, ValueReady(action.height, action.round, b"value %d" % action.height)))
            elif isinstance(action, ValidateValue):
                queue.append((i, ValueChecked(action.height, value_hash(action.value), True)))
            elif isinstance(action, Broadcast):
                msg = action.message
                vote = not hasattr(msg, "value")
                if vote:
                    signers.setdefault(msg.height, set()).add(bytes(msg.validator))
                for j in range(len(machines)):
                    if j != i:
                        queue.append((j, VoteReceived(msg) if vote else ProposalReceived(msg)))
            elif isinstance(action, Decide):
                if i == 0:
                    decided.append(action)
                queue.append((i, StartHeight(action.height + 1)))
    return machines, decided, signers


def test_each_height_is_decided_by_its_own_set_and_the_changed_members_follow_or_join():
    machines, decided, signers = run(heights=4)
    assert [d.height for d in decided] == [H, H + 1, H + 2, H + 3]
    for d in decided:
        vset = set_of(d.height)
        verify_certificate(d.certificate, value_hash(d.value), vset, CHAIN, d.height)
        assert d.value == b"value %d" % d.height
    # the removed validator signs up to the last height of its committee, the added one from the effective one
    assert PUBS[0] in signers[H + 1] and PUBS[0] not in signers[EFFECTIVE] and PUBS[0] not in signers[H + 3]
    assert PUBS[4] not in signers[H + 1] and PUBS[4] in signers[EFFECTIVE]
    # every machine, member or not at a height, decided the same values
    assert all(len(m.commits) >= 3 and all(c.value == b"value %d" % h for h, c in m.commits.items())
               for m in machines)


def test_a_removed_validator_no_longer_counts_toward_a_certificate():
    h, value = EFFECTIVE, value_hash(b"value")
    precommits = [sign_vote(Precommit, KEYS[i], CHAIN, h, 0, value) for i in (0, 1, 2)]
    # with the old set, validators 0, 1, 2 are a quorum of 4
    verify_certificate(build_certificate(h, 0, value, precommits, OLD), value, OLD, CHAIN, h)
    # at the effective height validator-0 is out: its precommit is not counted, two of four are too few
    cert = build_certificate(h, 0, value, precommits, NEW)
    with pytest.raises(CertificateError) as e:
        verify_certificate(cert, value, NEW, CHAIN, h)
    assert e.value.reason == "insufficient_power"
    # a certificate made with the old set's indices does not verify as the new set's either
    with pytest.raises(CertificateError):
        verify_certificate(build_certificate(h, 0, value, precommits, OLD), value, NEW, CHAIN, h)
    # and a machine at that height refuses the removed validator's votes and such a commit
    m = Consensus(chain_id=CHAIN, validators=set_of, key=KEYS[1], guard=MemorySignGuard(), height=h, config=CONFIG)
    out = m.handle(VoteReceived(precommits[0]))
    assert [a.reason for a in out if isinstance(a, Rejected)] == ["unknown_validator"]
    out = m.handle(CommitReceived(h, b"value", build_certificate(h, 0, value, precommits, OLD)))
    assert any(isinstance(a, Rejected) and a.reason.startswith("bad_certificate") for a in out)


def test_an_added_validator_follows_without_signing_until_its_effective_height():
    m = Consensus(chain_id=CHAIN, validators=set_of, key=KEYS[4], guard=MemorySignGuard(), height=H, config=CONFIG)
    assert m.key is None and m.me is None  # not in the set of H: it follows
    for h in (H, H + 1):
        value = b"value %d" % h
        cert = build_certificate(h, 0, value_hash(value),
                                 [sign_vote(Precommit, KEYS[i], CHAIN, h, 0, value_hash(value)) for i in (0, 1, 2)],
                                 OLD)
        out = m.handle(CommitReceived(h, value, cert))
        assert [a.height for a in out if isinstance(a, Decide)] == [h]
        assert not [a for a in out if isinstance(a, Broadcast)]
    assert m.height == EFFECTIVE and m.me == NEW.index(PUBS[4]) and m.key is KEYS[4]
    assert m.validators is NEW and m.proposer(0) == NEW.proposer(EFFECTIVE, 0)
    m.handle(StartHeight(EFFECTIVE))
    value = b"value %d" % EFFECTIVE
    proposer = KEYS[PUBS.index(NEW.proposer(EFFECTIVE, 0))]
    assert proposer is not KEYS[4]
    m.handle(ProposalReceived(sign_proposal(proposer, CHAIN, EFFECTIVE, 0, -1, value)))
    out = m.handle(ValueChecked(EFFECTIVE, value_hash(value), True))
    votes = [a.message for a in out if isinstance(a, Broadcast) and isinstance(a.message, Prevote)]
    assert [(v.validator, v.value_hash) for v in votes] == [(PUBS[4], value_hash(value))]  # it signs now


def test_a_validator_without_a_sign_guard_is_refused_only_where_it_signs():
    with pytest.raises(ValueError):
        Consensus(chain_id=CHAIN, validators=set_of, key=KEYS[0], guard=None, height=H, config=CONFIG)
    follower = Consensus(chain_id=CHAIN, validators=set_of, key=KEYS[0], guard=None, height=EFFECTIVE, config=CONFIG)
    assert follower.key is None


def test_a_commit_received_ahead_is_verified_again_by_its_heights_own_set():
    """While catching up, the set of a height ahead rests on commits not applied yet: a commit verified by the
    set expected on receipt is applied only if its height's own set certifies it, one height per input."""
    committed: list[int] = []  # the heights the shell applied: a change committed at H takes effect at H + 2

    def shell_sets(height: int) -> ValidatorSet:
        return NEW if height >= EFFECTIVE and H in committed else OLD

    m = Consensus(chain_id=CHAIN, validators=shell_sets, key=None, guard=None, height=H, config=CONFIG)

    def commit(h, members, signers):
        value = b"value %d" % h
        votes = [sign_vote(Precommit, KEYS[i], CHAIN, h, 0, value_hash(value)) for i in signers]
        return CommitReceived(h, value, build_certificate(h, 0, value_hash(value), votes, members))

    # the removed validator-0 and two others certify EFFECTIVE under the old set: it verifies as expected now
    assert not [a for a in m.handle(commit(EFFECTIVE, OLD, (0, 1, 2))) if isinstance(a, Rejected)]
    assert not [a for a in m.handle(commit(H + 1, OLD, (0, 1, 2))) if isinstance(a, Rejected)]
    out = m.handle(commit(H, OLD, (0, 1, 2)))
    assert [a.height for a in out if isinstance(a, Decide)] == [H]  # one height per input
    committed.append(H)  # the shell applies it: the change takes effect at EFFECTIVE
    out = m.handle(StartHeight(H + 1))
    assert [a.height for a in out if isinstance(a, Decide)] == [H + 1]
    committed.append(H + 1)
    out = m.handle(StartHeight(H + 2))
    # EFFECTIVE's own set is the new one: the old committee's certificate no longer counts
    assert not [a for a in out if isinstance(a, Decide)]
    assert [a.reason for a in out if isinstance(a, Rejected)] == ["bad_certificate_bad_signature"]
    out = m.handle(commit(EFFECTIVE, NEW, (1, 2, 4)))  # validator-1, -2 and the added validator-4
    assert [a.height for a in out if isinstance(a, Decide)] == [EFFECTIVE]
