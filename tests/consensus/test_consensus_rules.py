"""The upon-rules of Algorithm 1, one machine at a time: the test plays the other three validators."""

from consensus_harness import CHAIN, CONFIG, H, KEYS, PUBS, Node, Precommit, Prevote, own_votes, sent, timeouts

from stromledger.consensus import (Decide, Proposal, Rejected, RequestValue, StartHeight, TimeoutKind,
                                   ValidateValue, sign_proposal, value_hash, verify_certificate)
from stromledger.consensus.events import ProposalReceived, ValueChecked

V, W = b"value v", b"value w"


def started(me: int = 3, **kw) -> Node:
    node = Node(me, **kw)
    node.feed(StartHeight(H))
    return node


def prevoted(node: Node, round: int):
    votes = own_votes(node.log, Prevote, node.me)
    return [v.value_hash for v in votes if v.round == round]


def precommitted(node: Node, round: int):
    return [v.value_hash for v in own_votes(node.log, Precommit, node.me) if v.round == round]


def lock_on(node: Node, value: bytes, round: int) -> None:
    """Drive `node` to precommit (and lock) `value` in `round`."""
    node.proposal(round, value)
    node.verdict(value)
    node.votes(Prevote, round, value, node.others(2))
    assert precommitted(node, round) == [value_hash(value)]


def test_happy_path_prevote_precommit_decide():
    node = started()
    out = node.proposal(0, V)
    assert [a for a in out if isinstance(a, ValidateValue)] == [ValidateValue(H, 0, V)]
    assert prevoted(node, 0) == []  # waits for the application's verdict
    node.verdict(V)
    assert prevoted(node, 0) == [value_hash(V)]
    node.votes(Prevote, 0, V, node.others(2))
    assert precommitted(node, 0) == [value_hash(V)]
    assert node.m.locked_hash == value_hash(V) and node.m.locked_round == 0
    assert node.m.valid_hash == value_hash(V) and node.m.valid_round == 0
    out = node.votes(Precommit, 0, V, node.others(2))
    [decide] = [a for a in out if isinstance(a, Decide)]
    assert decide.height == H and decide.value == V
    verify_certificate(decide.certificate, value_hash(V), PUBS, CHAIN, height=H)
    assert [s.validator for s in decide.certificate.signatures] == [0, 1, 3]
    assert node.m.height == H + 1 and not node.m.started


def test_invalid_value_gets_nil_prevote():
    node = started()
    node.proposal(0, V)
    node.verdict(V, valid=False)
    assert prevoted(node, 0) == [None]


def test_late_verdict_gets_nil_prevote_at_propose_timeout():
    node = started()
    node.proposal(0, V)
    node.timeout(TimeoutKind.PROPOSE, 0)
    assert prevoted(node, 0) == [None]
    node.verdict(V)  # too late for this round's prevote
    assert prevoted(node, 0) == [None]


def test_invalid_value_is_never_decided_even_with_precommits():
    node = started()
    node.proposal(0, V)
    node.verdict(V, valid=False)
    out = node.votes(Precommit, 0, V, node.others())
    assert not [a for a in out if isinstance(a, Decide)]


def test_locked_node_prevotes_nil_for_another_value_without_pol():
    node = started()
    lock_on(node, V, 0)
    node.timeout(TimeoutKind.PRECOMMIT, 0)
    assert node.m.round == 1
    node.proposal(1, W)
    node.verdict(W)
    assert prevoted(node, 1) == [None]


def test_locked_node_prevotes_its_locked_value_again():
    node = started()
    lock_on(node, V, 0)
    node.timeout(TimeoutKind.PRECOMMIT, 0)
    node.proposal(1, V, pol_round=0)
    assert prevoted(node, 1) == [value_hash(V)]


def test_proof_of_lock_change_unlocks():
    node = started()
    lock_on(node, V, 0)
    node.timeout(TimeoutKind.PRECOMMIT, 0)
    node.timeout(TimeoutKind.PROPOSE, 1)
    node.votes(Prevote, 1, W, [0, 1, 2])  # a polka for w in round 1: a POL newer than our lock
    node.timeout(TimeoutKind.PREVOTE, 1)
    node.timeout(TimeoutKind.PRECOMMIT, 1)
    assert node.m.round == 2
    node.proposal(2, W, pol_round=1)
    node.verdict(W)
    assert prevoted(node, 2) == [value_hash(W)]


def test_pol_older_than_lock_does_not_unlock():
    node = started()
    node.timeout(TimeoutKind.PROPOSE, 0)
    node.votes(Prevote, 0, W, [0, 1, 2])  # polka for w in round 0 (we prevoted nil)
    node.timeout(TimeoutKind.PRECOMMIT, 0)
    lock_on(node, V, 1)
    node.timeout(TimeoutKind.PRECOMMIT, 1)
    node.proposal(2, W, pol_round=0)
    node.verdict(W)
    assert prevoted(node, 2) == [None]


def test_proposal_with_pol_waits_for_the_prevotes():
    node = started()
    node.timeout(TimeoutKind.PROPOSE, 0)
    node.votes(Prevote, 0, None, [0, 1])
    node.timeout(TimeoutKind.PRECOMMIT, 0)
    node.proposal(1, W, pol_round=0)
    node.verdict(W)
    node.votes(Prevote, 0, W, [2])  # one prevote for w in round 0: no proof of lock
    assert prevoted(node, 1) == []  # it waits for one
    node.timeout(TimeoutKind.PROPOSE, 1)
    assert prevoted(node, 1) == [None]


def test_nil_polka_precommits_nil():
    node = started()
    node.timeout(TimeoutKind.PROPOSE, 0)
    node.votes(Prevote, 0, None, node.others(2))
    assert precommitted(node, 0) == [None]
    assert node.m.locked_round == -1


def test_mixed_prevotes_schedule_prevote_timeout_then_nil_precommit():
    node = started()
    node.proposal(0, V)
    node.verdict(V)
    out = node.votes(Prevote, 0, None, [0])
    out += node.votes(Prevote, 0, W, [1])
    [t] = [t for t in timeouts(out) if t.kind == TimeoutKind.PREVOTE]
    assert (t.round, t.delay_ms) == (0, 1000)
    assert precommitted(node, 0) == []
    node.timeout(TimeoutKind.PREVOTE, 0)
    assert precommitted(node, 0) == [None]


def test_precommit_quorum_schedules_timeout_and_next_round_starts():
    node = started()
    node.timeout(TimeoutKind.PROPOSE, 0)
    out = node.votes(Precommit, 0, None, [0, 1, 2])
    assert [t.delay_ms for t in timeouts(out) if t.kind == TimeoutKind.PRECOMMIT] == [1000]
    out = node.timeout(TimeoutKind.PRECOMMIT, 0)
    assert node.m.round == 1
    assert [t.delay_ms for t in timeouts(out) if t.kind == TimeoutKind.PROPOSE] == [3500]


def test_timeouts_grow_per_round():
    node = started()
    delays = []
    for r in range(3):
        node.timeout(TimeoutKind.PROPOSE, r)
        out = node.votes(Precommit, r, None, [0, 1, 2])
        delays.append([t.delay_ms for t in timeouts(out) if t.kind == TimeoutKind.PRECOMMIT])
        node.timeout(TimeoutKind.PRECOMMIT, r)
    assert delays == [[1000], [1300], [1600]]
    assert node.m.round == 3


def test_round_skip_on_f_plus_one_higher_round_messages():
    node = started()
    node.votes(Prevote, 5, None, [0])
    assert node.m.round == 0  # f = 1 message of a higher round is not enough
    out = node.votes(Precommit, 3, None, [1])
    assert node.m.round == 3  # two validators (f + 1) are at round >= 3
    assert [(t.round, t.kind) for t in timeouts(out)] == [(3, TimeoutKind.PROPOSE)]


def test_proposer_asks_the_application_then_proposes_and_prevotes():
    node = Node(0)  # proposer of round 0
    out = node.feed(StartHeight(H))
    assert RequestValue(H, 0) in out
    out = node.value_ready(0, V)
    [p] = sent(out, Proposal)
    assert (p.height, p.round, p.pol_round, p.value) == (H, 0, -1, V)
    assert prevoted(node, 0) == [value_hash(V)]  # its own value needs no verdict
    assert node.value_ready(0, W) == []  # a second answer is stale
    assert node.m.drops["stale_value"] == 1


def test_proposer_reproposes_its_valid_value_with_pol_round():
    node = Node(1)  # proposer of round 1
    node.feed(StartHeight(H))
    lock_on(node, V, 0)
    out = node.timeout(TimeoutKind.PRECOMMIT, 0)
    [p] = sent(out, Proposal)
    assert (p.round, p.pol_round, p.value) == (1, 0, V)
    assert not [a for a in out if isinstance(a, RequestValue)]
    relayed = [m for m in sent(out, Prevote) if m.round == 0]
    assert len(relayed) == 3  # the proof of lock goes along with it


def test_hostile_messages_are_rejected_with_reasons():
    node = started()
    stranger = KEYS[0].__class__.from_label("not-a-validator")
    bad = [
        ProposalReceived(sign_proposal(KEYS[2], CHAIN, H, 0, -1, V)),  # not the proposer of round 0
        ProposalReceived(sign_proposal(stranger, CHAIN, H, 0, -1, V)),
        ProposalReceived(sign_proposal(KEYS[0], "other-chain", H, 0, -1, V)),
        ProposalReceived(sign_proposal(KEYS[1], CHAIN, H, 1, 1, V)),  # pol_round not below round
    ]
    reasons = []
    for event in bad:
        reasons += [a.reason for a in node.feed(event) if isinstance(a, Rejected)]
    assert reasons == ["wrong_proposer", "unknown_validator", "bad_signature", "bad_pol_round"]
    assert prevoted(node, 0) == []
    node.proposal(0, V)  # and the machine carries on
    node.verdict(V)
    assert prevoted(node, 0) == [value_hash(V)]


def test_future_heights_are_buffered_and_replayed_far_and_old_are_dropped():
    node = started()
    node.proposal(0, W, height=H + 1, by=(H + 1) % 4)
    node.votes(Prevote, 0, W, [0], height=H + 3)
    assert node.m.drops["far_future_height"] == 1
    node.proposal(0, V)
    node.verdict(V)
    node.votes(Prevote, 0, V, [0, 1])
    out = node.votes(Precommit, 0, V, [0, 1])
    assert [a.height for a in out if isinstance(a, Decide)] == [H]
    assert ValidateValue(H + 1, 0, W) in out  # the buffered proposal of the next height was replayed
    node.votes(Prevote, 0, V, [2], height=H - 5)
    assert node.m.drops["old_height"] == 1


def test_resend_timer_rebroadcasts_latest_own_messages():
    node = started()
    node.proposal(0, V)
    node.verdict(V)
    out = node.timeout(TimeoutKind.RESEND, 0)
    assert own_votes(out, Prevote, 3) == own_votes(node.log, Prevote, 3)[:1]
    assert [(t.kind, t.delay_ms) for t in timeouts(out)] == [(TimeoutKind.RESEND, 2000)]


def test_start_height_waits_for_the_due_height():
    node = Node(3)
    assert node.feed(StartHeight(H - 1)) == []
    assert not node.m.started
    out = node.feed(StartHeight(H + 5))  # later heights due: this one is too
    assert node.m.started and [t.kind for t in timeouts(out)] == [TimeoutKind.RESEND, TimeoutKind.PROPOSE]


def test_a_follower_without_a_key_decides_and_never_signs():
    from stromledger.consensus import Consensus
    follower = Consensus(chain_id=CHAIN, validators=PUBS, key=None, guard=None, height=H)
    node = Node(3)
    node.m = follower
    node.feed(StartHeight(H))
    node.proposal(0, V)
    node.verdict(V)
    node.timeout(TimeoutKind.PROPOSE, 0)
    out = node.votes(Precommit, 0, V, [0, 1, 2])
    assert [a.value for a in out if isinstance(a, Decide)] == [V]
    assert sent(node.log, Prevote) == [] and sent(node.log, Precommit) == []


def test_rounds_far_ahead_are_dropped():
    node = started()
    node.votes(Prevote, CONFIG.max_round_ahead + 1, None, [0, 1])
    assert node.m.drops["far_future_round"] == 2 and node.m.round == 0


def test_incomplete_value_gets_nil_as_a_new_proposal_but_counts_with_a_proof_of_lock():
    """Issue 18 D3: a valid value the application would not take as a new proposal (it omits a batch this
    node holds) gets a nil prevote under L22; once 2f+1 prevoted it, L28, L36 and L49 treat it as valid,
    so the judgement can never keep a height from deciding a value that a quorum took."""
    node = started()
    node.proposal(0, V)
    node.feed(ValueChecked(H, value_hash(V), True, complete=False))
    assert prevoted(node, 0) == [None]
    node.votes(Prevote, 0, V, node.others())  # the others took it: a polka for v
    assert node.m.valid_hash == value_hash(V)  # L36 with a valid verdict
    node.timeout(TimeoutKind.PRECOMMIT, 0)
    node.proposal(1, V, pol_round=0)
    assert prevoted(node, 1) == [value_hash(V)]
    out = node.votes(Precommit, 1, V, node.others())
    assert [a.value for a in out if isinstance(a, Decide)] == [V]


def test_untimely_proposal_gets_nil_and_the_next_round_judges_afresh():
    """Issue 18 D4: a proposal the driver judged untimely on receipt (too early by this node's clock) gets a
    nil prevote, also when it came before the height started; the same value proposed in time in the
    next round is prevoted: the judgement belongs to the receipt, not to the value."""
    node = Node(3)
    node.feed(ProposalReceived(sign_proposal(KEYS[H % 4], CHAIN, H, 0, -1, V), timely=False))
    node.verdict(V)
    assert prevoted(node, 0) == []  # the height has not started: nothing signed yet
    node.feed(StartHeight(H))
    assert prevoted(node, 0) == [None]
    node.timeout(TimeoutKind.PREVOTE, 0)
    node.timeout(TimeoutKind.PRECOMMIT, 0)
    node.proposal(1, V)
    assert prevoted(node, 1) == [value_hash(V)]
