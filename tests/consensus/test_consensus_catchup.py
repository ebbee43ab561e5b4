"""Catch-up (a commit from a peer that is ahead) and restarts (sign guard, WAL replay)."""

import dataclasses

import pytest

from consensus_harness import CHAIN, H, KEYS, PUBS, Node, Precommit, Prevote, own_votes, sent

from stromledger.consensus import (Commit, CommitReceived, Decide, MemorySignGuard, ProposalReceived, Rejected,
                                   SendCommit, StartHeight, TimeoutKind, VoteReceived, build_certificate,
                                   sign_proposal, sign_vote, value_hash)
from stromledger.consensus.validators import ValidatorSet

V, W = b"value v", b"value w"


def commit_for(height: int, value: bytes, signers=(0, 1, 2), round: int = 0) -> Commit:
    votes = [sign_vote(Precommit, KEYS[i], CHAIN, height, round, value_hash(value)) for i in signers]
    return Commit(value, build_certificate(height, round, value_hash(value), votes, ValidatorSet(PUBS)))


def receive(node: Node, commit: Commit) -> list:
    return node.feed(CommitReceived(commit.certificate.height, commit.value, commit.certificate))


def decided(actions) -> list[tuple[int, bytes]]:
    return [(a.height, a.value) for a in actions if isinstance(a, Decide)]


def test_a_valid_commit_decides_the_current_height_even_before_it_started():
    node = Node(3)
    out = receive(node, commit_for(H, V))
    assert decided(out) == [(H, V)]
    assert node.m.height == H + 1


def test_commits_of_the_next_heights_are_held_and_applied_in_order():
    node = Node(3)
    node.feed(StartHeight(H + 5))
    assert decided(receive(node, commit_for(H + 2, b"two"))) == []
    assert decided(receive(node, commit_for(H + 1, b"one"))) == []
    assert decided(receive(node, commit_for(H, b"zero"))) == [(H, b"zero"), (H + 1, b"one"), (H + 2, b"two")]
    assert node.m.height == H + 3 and node.m.started  # H + 3 is due: it started at once


def test_bad_old_and_far_commits_are_refused_with_reasons():
    node = Node(3)
    out = receive(node, commit_for(H, V, signers=(0, 1)))
    assert [a.reason for a in out if isinstance(a, Rejected)] == ["bad_certificate_insufficient_power"]
    c = commit_for(H, V)
    out = node.feed(CommitReceived(H, W, c.certificate))  # the certificate is for another value
    assert [a.reason for a in out if isinstance(a, Rejected)] == ["bad_certificate_wrong_hash"]
    receive(node, commit_for(H + 9, V))
    assert node.m.drops["far_future_height"] == 1
    receive(node, c)
    receive(node, c)
    assert node.m.drops["old_commit"] == 1 and node.m.height == H + 1


def test_a_decided_node_answers_a_lagging_peer_with_commits():
    node = Node(3, height=H + 2, recent_commits=[commit_for(H, V), commit_for(H + 1, W)])
    late = VoteReceived(sign_vote(Prevote, KEYS[1], CHAIN, H, 4, None), sender=PUBS[1])
    answers = []
    for _ in range(6):
        answers += [a for a in node.feed(late) if isinstance(a, SendCommit)]
    # the 3rd and 6th message of that height draw the commits of H and the next heights it holds
    assert [(a.to, a.commit.certificate.height) for a in answers] == [(PUBS[1], H), (PUBS[1], H + 1)] * 2
    forged = VoteReceived(dataclasses.replace(late.vote, sig=bytes(64)), sender=PUBS[2])
    outs = [node.feed(forged) for _ in range(3)]
    assert not any(isinstance(a, SendCommit) for out in outs for a in out)
    assert node.m.drops["bad_signature"] == 1


def run_height_until_locked(node: Node) -> list:
    """Feed the events that make validator 3 lock on V in round 1; return them (a WAL)."""
    wal = [
        ProposalReceived(sign_proposal(KEYS[0], CHAIN, H, 0, -1, W)),
        VoteReceived(sign_vote(Prevote, KEYS[0], CHAIN, H, 0, None)),
        VoteReceived(sign_vote(Prevote, KEYS[1], CHAIN, H, 0, None)),
        ProposalReceived(sign_proposal(KEYS[1], CHAIN, H, 1, -1, V)),
        VoteReceived(sign_vote(Prevote, KEYS[1], CHAIN, H, 1, value_hash(V))),
        VoteReceived(sign_vote(Prevote, KEYS[2], CHAIN, H, 1, value_hash(V))),
    ]
    node.feed(StartHeight(H))
    for event in wal[:3]:
        node.feed(event)
    node.timeout(TimeoutKind.PRECOMMIT, 0)
    for event in wal[3:4]:
        node.feed(event)
    node.verdict(V)
    for event in wal[4:]:
        node.feed(event)
    assert node.m.locked_hash == value_hash(V) and node.m.locked_round == 1
    return wal


def signed_by(actions, me: int) -> dict:
    out = {}
    for m in sent(actions):
        if getattr(m, "validator", None) == PUBS[me]:
            out.setdefault((type(m).__name__, m.round), set()).add(m.value_hash)
    return out


def test_restart_restores_round_step_and_lock_from_the_sign_guard():
    before = Node(3)
    run_height_until_locked(before)
    after = Node(3, guard=before.guard)  # same disk, fresh memory
    assert (after.m.round, after.m.locked_round, after.m.locked_hash) == (1, 1, value_hash(V))
    out = after.feed(StartHeight(H))
    assert [t.kind for t in out if hasattr(t, "kind")] == [TimeoutKind.RESEND]  # no new round 1 start
    after.timeout(TimeoutKind.PRECOMMIT, 1)
    after.proposal(2, W)
    after.verdict(W)
    assert [v.value_hash for v in own_votes(after.log, Prevote, 3) if v.round == 2] == [None]  # still locked
    resent = after.timeout(TimeoutKind.RESEND, 0)
    assert own_votes(resent, Precommit, 3)[0].value_hash == value_hash(V)


def test_replaying_a_wal_after_a_restart_is_safe_and_idempotent():
    before = Node(3)
    wal = run_height_until_locked(before)
    signed_before = signed_by(before.log, 3)
    for _ in range(2):  # restart twice, replaying the same WAL each time, and the WAL twice over
        after = Node(3, guard=before.guard)
        log = after.feed(StartHeight(H))
        for event in wal + wal:
            log += after.feed(event)
        log += after.verdict(V)
        mine = signed_by(log, 3)
        assert all(len(v) == 1 for v in mine.values())
        for key, values in mine.items():
            assert values == signed_before[key]  # only what was signed before: no conflicting signature
        assert after.m.locked_hash == value_hash(V)
        assert after.m.drops["sign_guard_refused"] == 0
        assert not [a for a in log if isinstance(a, Decide)]


def test_a_guard_that_cannot_give_its_records_back_is_refused():
    """A replayed WAL does not restore the lock (it holds received messages, replays before the height
    starts, and a round skip bypasses it): only the guard's records do, so they are mandatory."""
    class BlindGuard(MemorySignGuard):  # a guard that cannot list its records (like an older store)
        records = None

    with pytest.raises(ValueError, match=r"BlindGuard lacks records\(\)"):
        Node(3, guard=BlindGuard())


def test_a_restored_vote_is_resent_and_not_replaced():
    guard = MemorySignGuard()
    guard.check_and_record(H, 0, 1, value_hash(W))  # before a crash: prevoted w in round 0
    node = Node(3, guard=guard)
    node.feed(StartHeight(H))
    assert (node.m.round, int(node.m.step)) == (0, 1)  # resumes in the prevote step
    node.timeout(TimeoutKind.PREVOTE, 0)
    assert [v.value_hash for v in own_votes(node.log, Precommit, 3)] == [None]
    out = node.timeout(TimeoutKind.RESEND, 0)
    assert [v.value_hash for v in own_votes(out, Prevote, 3)] == [value_hash(W)]


def test_a_refused_signature_sends_what_the_guard_holds_instead():
    node = Node(3)
    node.feed(StartHeight(H))
    node.guard.check_and_record(H, 0, 1, value_hash(W))  # signed elsewhere after this machine started
    out = node.timeout(TimeoutKind.PROPOSE, 0)  # wants to prevote nil
    assert [v.value_hash for v in own_votes(out, Prevote, 3)] == [value_hash(W)]
