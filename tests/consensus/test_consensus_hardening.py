"""Issue 17's defects of the machine, each with a scenario that failed before the fix: the value of an
equivocating proposer's second proposal, evidence from a late conflicting precommit, a restarted proposer
that re-sends its proposal, and byte budgets for messages of rounds and heights ahead."""

from consensus_harness import CHAIN, H, KEYS, Node, Precommit, Prevote, proposer_of, sent
from test_consensus_rules import started

from stromledger.consensus import (Decide, EvidenceFound, ProposalReceived, StartHeight, TimeoutKind,
                                   VoteReceived, sign_proposal, sign_vote, value_hash)
from stromledger.consensus.messages import Proposal

V, W = b"value v", b"value w"


def test_2f1_precommits_for_an_equivocators_second_proposal_decide():
    """Paper line 49: a proposal <h, r, v> and 2f+1 precommits for v decide v, whichever of an
    equivocating proposer's two proposals carried it."""
    node = started()
    node.proposal(0, V)
    node.proposal(0, W)  # the same proposer, the same round, another value
    node.verdict(V)
    out = node.verdict(W)
    out += node.votes(Precommit, 0, W, node.others())
    [decide] = [a for a in out if isinstance(a, Decide)]
    assert decide.value == W
    node2 = started()
    node2.proposal(0, V)
    node2.proposal(0, W)
    node2.proposal(0, b"a third value")  # beyond two per proposer and round nothing is kept
    assert value_hash(b"a third value") not in node2.m._values


def test_a_late_conflicting_precommit_of_the_decided_height_is_evidence():
    node = started()
    node.proposal(0, V)
    node.verdict(V)
    node.votes(Prevote, 0, V, node.others())
    node.votes(Precommit, 0, V, node.others())
    assert node.m.height == H + 1
    out = node.feed(VoteReceived(sign_vote(Precommit, KEYS[1], CHAIN, H, 0, value_hash(W))))
    [found] = [a.evidence for a in out if isinstance(a, EvidenceFound)]
    assert (found.height, found.round, found.validator) == (H, 0, KEYS[1].public)
    again = node.feed(VoteReceived(sign_vote(Precommit, KEYS[1], CHAIN, H, 0, value_hash(W))))
    assert not [a for a in again if isinstance(a, EvidenceFound)]


def test_a_late_precommit_conflicting_with_a_caught_up_certificate_is_evidence():
    """A node that decided by a commit from a peer checks late precommits against that certificate."""
    from test_consensus_catchup import commit_for

    from stromledger.consensus import CommitReceived
    node = started()
    commit = commit_for(H, V, signers=(0, 1, 2))
    node.feed(CommitReceived(H, commit.value, commit.certificate))
    assert node.m.height == H + 1
    out = node.feed(VoteReceived(sign_vote(Precommit, KEYS[2], CHAIN, H, 0, value_hash(W))))
    assert [a.evidence.validator for a in out if isinstance(a, EvidenceFound)] == [KEYS[2].public]


def test_a_proposer_restarted_after_prevoting_resends_its_proposal():
    me = proposer_of(H, 0)
    before = started(me)
    before.value_ready(0, V)
    [mine] = sent(before.log, Proposal)
    assert [v.value_hash for v in sent(before.log, Prevote)] == [value_hash(V)]
    after = Node(me, guard=before.guard)  # crash and restart: the guard says it proposed and prevoted
    after.feed(ProposalReceived(mine))  # its own proposal, replayed from the WAL
    after.feed(StartHeight(H))
    resent = after.timeout(TimeoutKind.RESEND, 0)
    assert sent(resent, Proposal) == [mine]
    stranger = Node(me, guard=before.guard)  # a proposal the guard did not record is not adopted
    forged = sign_proposal(KEYS[me], CHAIN, H, 0, -1, W)
    stranger.feed(ProposalReceived(forged))
    stranger.feed(StartHeight(H))
    assert sent(stranger.timeout(TimeoutKind.RESEND, 0), Proposal) == []


def test_proposals_for_rounds_ahead_are_bounded_in_bytes():
    """A byzantine proposer sends a large proposal for every round it leads: the node holds at most
    max_ahead_bytes (8 MiB) of them, whatever max_round_ahead (1000 rounds) allows."""
    node = started()
    budget = 8 * 1024 * 1024  # the default max_ahead_bytes
    byz = 1
    big = bytes(1024 * 1024)
    rounds = [r for r in range(1, 120) if proposer_of(H, r) == byz]
    for r in rounds:
        node.feed(ProposalReceived(sign_proposal(KEYS[byz], CHAIN, H, r, -1, big + bytes([r]))))
    held = sum(len(p.value) for p, _ in node.m._proposals.values())
    assert held <= budget and node.m.drops["ahead_budget"] == len(rounds) - 7
    for i in range(40):  # and messages of the next height, in bytes too
        node.feed(ProposalReceived(sign_proposal(KEYS[proposer_of(H + 1, i)], CHAIN, H + 1, i, -1,
                                                 big + bytes([i]))))
    assert sum(len(m.value) for m in node.m._future[H + 1] if isinstance(m, Proposal)) <= 4 * budget
