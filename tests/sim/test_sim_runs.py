"""Seeded simulator runs: every property holds within the fault bound, and the checker finds agreement
violations beyond it. A few hundred seeds in all, across fault kinds."""

import pytest

from stromledger.consensus import Application
from stromledger.sim import SimConfig, run_checked, run_seeds
from stromledger.sim.apps import RejectingApp, SimpleApp, SimValue

SWEEPS = [
    # (faults, validators, byzantine, seeds, extra config)
    ("none", 4, 0, 30, {}),
    ("none", 4, 1, 30, {}),
    ("drop", 4, 0, 50, {}),
    ("drop", 7, 0, 10, {}),
    ("partition", 4, 0, 50, {}),
    ("partition", 7, 2, 10, {}),
    ("crash", 4, 0, 50, {}),
    ("crash", 7, 0, 10, {}),
    ("all", 4, 1, 60, {}),
    ("all", 7, 2, 15, {}),
    ("drop", 4, 1, 30, {"reject_every": 2}),  # some proposers propose values the others reject
    ("all", 5, 1, 30, {"height_interval_ms": 0}),  # heights back to back
    ("none", 4, 1, 30, {"strategy": "selective-precommit"}),  # decided here, locked there
    ("crash", 7, 2, 5, {"strategy": "selective-precommit"}),
    ("none", 4, 1, 20, {"strategy": "round-push"}),
    ("none", 4, 1, 20, {"strategy": "hidden-lock"}),  # locked here, proof-of-lock there
    ("all", 4, 1, 20, {"rotate_at": 3}),  # a committee change: validator 0 replaced by a follower
    ("all", 7, 2, 5, {"rotate_at": 2}),
]


@pytest.mark.parametrize("faults, n, byzantine, seeds, extra", SWEEPS,
                         ids=[f"{s[0]}-n{s[1]}-f{s[2]}" + "".join(f"-{k}={v}" for k, v in s[4].items()) for s in SWEEPS])
def test_properties_hold_within_the_fault_bound(faults, n, byzantine, seeds, extra):
    base = SimConfig(seed=0, validators=n, byzantine=byzantine, faults=faults, **extra)
    summary = run_seeds(base, range(1000, 1000 + seeds))
    assert summary.failing_seeds == [], summary.examples
    assert summary.heights_decided == summary.heights_expected
    if faults != "none" and not extra.get("strategy"):
        assert summary.dropped > 0 or faults == "crash"  # the faults really happened


def test_rejected_values_cost_a_round_but_are_never_decided():
    summary = run_seeds(SimConfig(seed=0, validators=4, reject_every=1), range(20))
    assert summary.failing_seeds == []
    assert summary.rounds_max >= 1  # round 0's value was bad at every height


def test_equivocators_are_caught_by_evidence():
    summary = run_seeds(SimConfig(seed=0, validators=4, byzantine=1, byzantine_mode="both"), range(20))
    assert summary.failing_seeds == []
    assert summary.evidence > 0


def test_crashed_validators_restart_and_catch_up():
    outcome = run_checked(SimConfig(seed=3, validators=4, faults="crash"))
    assert outcome.violations == []
    crashed = {c.validator for c in outcome.result.plan.crashes}
    assert crashed and all(n.incarnation > 0 for n in outcome.result.nodes if n.validator in crashed)
    assert all(len(n.commits) == 6 for n in outcome.result.nodes)


def test_beyond_the_bound_the_checker_finds_agreement_violations():
    """n = 4 with 2 equivocators: each twin pair tells one half of the honest nodes a different story, and
    the honest halves decide different values. The checker must say so."""
    base = SimConfig(seed=0, validators=4, byzantine=2, byzantine_mode="split")
    summary = run_seeds(base, range(10))
    assert summary.violations["agreement"] > 0
    assert len(summary.failing_seeds) >= 5


def test_selective_precommit_decides_here_and_locks_there_and_breaks_beyond_the_bound():
    """Within the bound the adversary makes one honest validator decide while the others stay locked (the
    heights take more than one round); with F = 2 of 4 the non-victims are too few and agreement breaks."""
    within = run_seeds(SimConfig(seed=0, validators=4, byzantine=1, strategy="selective-precommit"), range(10))
    assert within.failing_seeds == [] and within.heights_decided == within.heights_expected
    beyond = run_seeds(SimConfig(seed=0, validators=4, byzantine=2, strategy="selective-precommit"), range(10))
    assert len(beyond.failing_seeds) >= 5 and beyond.violations["agreement"] > 0
    assert within.rounds_max >= 1  # some non-victims really were held back past round 0


def test_hidden_lock_is_undone_by_the_newer_proof_of_lock_and_beyond_the_bound_stalls():
    """The victim is locked on a value the others never saw a polka for; with the byzantine validators
    silent, the height decides only because the victim unlocks on the others' newer proof-of-lock."""
    within = run_seeds(SimConfig(seed=0, validators=4, byzantine=1, strategy="hidden-lock"), range(5))
    assert within.failing_seeds == [] and within.rounds_max >= 2
    beyond = run_seeds(SimConfig(seed=0, validators=4, byzantine=2, strategy="hidden-lock"), range(5))
    assert beyond.violations["liveness"] > 0


def test_round_push_moves_honest_validators_only_beyond_the_bound():
    within = run_seeds(SimConfig(seed=0, validators=4, byzantine=1, strategy="round-push"), range(5))
    assert within.failing_seeds == [] and within.rounds_max == 0
    beyond = run_seeds(SimConfig(seed=0, validators=4, byzantine=2, strategy="round-push"), range(10))
    assert beyond.violations["liveness"] > 0


def test_sim_apps_implement_the_application_interface():
    good, picky = SimpleApp(seed=1, builder=2), RejectingApp(seed=1, builder=2, every=1)
    assert isinstance(good, Application) and isinstance(picky, Application)
    value = good.build_value(10, 3)
    assert value == good.build_value(10, 3) != SimpleApp(seed=1, builder=2, salt="A").build_value(10, 3)
    assert SimValue.decode(value).height == 10
    assert good.validate(10, value) and not good.validate(11, value) and not good.validate(10, b"junk")
    bad = picky.build_value(10, 0)
    assert not good.validate(10, bad) and picky.validate(10, picky.build_value(10, 1))


def test_a_committee_change_in_the_simulator_seats_the_follower_and_unseats_validator_0():
    from stromledger.sim import simulate

    cfg = SimConfig(seed=11, validators=4, faults="drop", rotate_at=3)
    result = simulate(cfg)
    first_new = cfg.first_height + cfg.rotate_at
    spare = result.rotated_keys[-1]
    signed_by_spare = signed_by_removed = 0
    for d in result.decisions:
        keys = result.keys_at(d.height)
        signers = {keys[s.validator] for s in d.commit.certificate.signatures}
        if d.height >= first_new:
            signed_by_spare += spare in signers
            assert result.validator_keys[0] not in keys
        else:
            signed_by_removed += result.validator_keys[0] in signers
            assert spare not in keys
    assert signed_by_spare and signed_by_removed
    spare_node = next(n for n in result.nodes if n.key.public == spare)
    assert sorted(spare_node.commits) == list(range(cfg.first_height, cfg.first_height + cfg.heights))
