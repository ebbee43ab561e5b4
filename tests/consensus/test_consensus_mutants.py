"""Mutation testing of the consensus machine: every named mutant (tests/consensus/mutants.py) must be
killed, within a bounded number of runs, by the simulator or by a scripted scenario, and the real machine
must pass every one of those killers. The parametrised ids list the mutants and their killers in the test
output, e.g. `test_mutant_is_killed[ignore_lock-by-sim:selective-precommit:n4f1]`."""

from __future__ import annotations

import dataclasses
from typing import Callable

import pytest
import test_consensus_rules as rules
from consensus_harness import H, Node, Prevote
from mutants import MUTANTS

from stromledger.consensus import EvidenceFound, MemorySignGuard, VoteReceived, sign_vote, value_hash
from stromledger.consensus.signguard import PREVOTE
from stromledger.sim import SimConfig, run_checked

SIM_SEEDS = 10  # the bound: a mutant must fall within this many seeded runs of a simulator killer

SIM_KILLERS = {
    "sim:selective-precommit:n4f1": SimConfig(seed=0, validators=4, byzantine=1, strategy="selective-precommit"),
    "sim:hidden-lock:n4f1": SimConfig(seed=0, validators=4, byzantine=1, strategy="hidden-lock"),
    "sim:round-push:n4f1": SimConfig(seed=0, validators=4, byzantine=1, strategy="round-push"),
    "sim:twins-all-faults:n4f1": SimConfig(seed=0, validators=4, byzantine=1, faults="all"),
    # honest validators refuse 30% of new proposals as incomplete and, independently, 30% as untimely
    "sim:picky-twins-split:n4f1": SimConfig(seed=0, validators=4, byzantine=1, byzantine_mode="split",
                                            faults="all", picky_permille=300),
}


def sim_violations(config: SimConfig) -> list:
    """The violations of the first failing seed within the bound, or []."""
    for seed in range(SIM_SEEDS):
        violations = run_checked(dataclasses.replace(config, seed=seed)).violations
        if violations:
            return violations
    return []


def scenario_fails(test: Callable[[], None]) -> bool:
    try:
        test()
    except AssertionError:
        return True
    return False


def conflicting_prevotes_give_evidence() -> None:
    node = Node(3)
    out = []
    for h in (value_hash(b"x"), value_hash(b"y")):
        out += node.feed(VoteReceived(sign_vote(Prevote, rules.KEYS[1], rules.CHAIN, H, 0, h)))
    assert [a for a in out if isinstance(a, EvidenceFound)]


def guard_refuses_a_second_value() -> None:
    guard = MemorySignGuard()
    assert guard.check_and_record(H, 0, PREVOTE, bytes(32))
    assert not guard.check_and_record(H, 0, PREVOTE, b"\x01" * 32)


def restart_keeps_the_lock() -> None:
    before = rules.started()
    rules.lock_on(before, rules.V, 0)
    after = Node(3, guard=before.guard)  # crash and restart: only the guard survives
    after.feed(rules.StartHeight(H))
    after.timeout(rules.TimeoutKind.PRECOMMIT, 0)
    after.proposal(1, rules.W)
    after.verdict(rules.W)
    assert rules.prevoted(after, 1) == [None]


def two_f_precommits_do_not_decide() -> None:
    node = rules.started()
    node.proposal(0, rules.V)
    node.verdict(rules.V)
    out = node.votes(rules.Precommit, 0, rules.V, [0, 1])
    assert not [a for a in out if isinstance(a, rules.Decide)]


SCENARIOS = {
    "scenario:locked-node-prevotes-nil": rules.test_locked_node_prevotes_nil_for_another_value_without_pol,
    "scenario:newer-pol-unlocks": rules.test_proof_of_lock_change_unlocks,
    "scenario:restart-keeps-the-lock": restart_keeps_the_lock,
    "scenario:f-messages-do-not-skip": rules.test_round_skip_on_f_plus_one_higher_round_messages,
    "scenario:2f-precommits-do-not-decide": two_f_precommits_do_not_decide,
    "scenario:conflicting-votes-give-evidence": conflicting_prevotes_give_evidence,
    "scenario:guard-refuses-a-second-value": guard_refuses_a_second_value,
    "scenario:incomplete-value-with-pol-is-decided":
        rules.test_incomplete_value_gets_nil_as_a_new_proposal_but_counts_with_a_proof_of_lock,
}

# Which killers each mutant must fall to. The lock mutants fall to the simulator's adversary too.
KILLS = [
    ("ignore_lock", "sim:selective-precommit:n4f1"),
    ("ignore_lock", "scenario:locked-node-prevotes-nil"),
    ("ignore_locked_round_le_vr", "sim:hidden-lock:n4f1"),
    ("ignore_locked_round_le_vr", "scenario:newer-pol-unlocks"),
    ("forget_lock_on_restart", "sim:selective-precommit:n4f1"),
    ("forget_lock_on_restart", "scenario:restart-keeps-the-lock"),
    ("skip_on_f", "sim:round-push:n4f1"),
    ("skip_on_f", "scenario:f-messages-do-not-skip"),
    ("quorum_off_by_one", "sim:selective-precommit:n4f1"),
    ("quorum_off_by_one", "scenario:2f-precommits-do-not-decide"),
    ("decide_on_f_plus_1", "sim:twins-all-faults:n4f1"),
    ("decide_on_f_plus_1", "scenario:2f-precommits-do-not-decide"),
    ("no_evidence", "sim:twins-all-faults:n4f1"),
    ("no_evidence", "scenario:conflicting-votes-give-evidence"),
    ("guard_records_nothing", "sim:twins-all-faults:n4f1"),
    ("guard_records_nothing", "scenario:guard-refuses-a-second-value"),
    ("judgement_as_validity", "sim:picky-twins-split:n4f1"),
    ("judgement_as_validity", "scenario:incomplete-value-with-pol-is-decided"),
]


def killed(killer: str) -> bool:
    if killer in SIM_KILLERS:
        return bool(sim_violations(SIM_KILLERS[killer]))
    return scenario_fails(SCENARIOS[killer])


def test_every_mutant_has_a_killer():
    assert {m for m, _ in KILLS} == set(MUTANTS)


@pytest.mark.parametrize("killer", [*SIM_KILLERS, *SCENARIOS])
def test_the_real_machine_survives_every_killer(killer):
    assert not killed(killer)


@pytest.mark.parametrize("mutant, killer", KILLS, ids=[f"{m}-by-{k}" for m, k in KILLS])
def test_mutant_is_killed(mutant, killer, monkeypatch):
    MUTANTS[mutant](monkeypatch)
    assert killed(killer), f"mutant {mutant} survived {killer}"
