"""The checker can fail: each property, broken on purpose in a real run's record, is reported by kind."""

import dataclasses

import pytest

from stromledger.consensus import Commit
from stromledger.sim import SimConfig, check, simulate
from stromledger.sim.apps import SimValue


@pytest.fixture(scope="module")
def clean():
    result = simulate(SimConfig(seed=5, validators=4, byzantine=1, byzantine_mode="both", heights=4))
    assert check(result) == []
    assert result.honest_signed and result.conflicts_seen  # there was something to check
    return result


def fresh():
    return simulate(SimConfig(seed=5, validators=4, byzantine=1, byzantine_mode="both", heights=4))


def kinds(result) -> set[str]:
    return {v.kind for v in check(result)}


def honest_decisions(result):
    return [d for d in result.decisions if result.nodes[d.node].honest]


def test_agreement_violation_is_found(clean):
    result = fresh()
    d = honest_decisions(result)[-1]
    other = honest_decisions(result)[0]
    result.decisions[result.decisions.index(d)] = dataclasses.replace(d, value_hash=other.value_hash)
    assert "agreement" in kinds(result)


def test_validity_violation_is_found(clean):
    result = fresh()
    d = honest_decisions(result)[0]
    bad = SimValue(d.height, 0, 0, 1, b"rejected").encode()
    result.decisions[result.decisions.index(d)] = dataclasses.replace(d, value=bad)
    [v] = [v for v in check(result) if v.kind == "validity"]
    assert "rejects" in v.detail and v.height == d.height


def test_broken_certificate_is_a_validity_violation():
    result = fresh()
    d = honest_decisions(result)[0]
    cert = d.commit.certificate
    broken = dataclasses.replace(cert, signatures=cert.signatures[:1])
    result.decisions[result.decisions.index(d)] = dataclasses.replace(d, commit=Commit(d.value, broken))
    assert any("insufficient_power" in v.detail for v in check(result) if v.kind == "validity")


def test_liveness_violation_is_found():
    result = fresh()
    last = result.config.first_height + result.config.heights - 1
    node = result.honest_nodes()[0].id
    result.decisions = [d for d in result.decisions if not (d.node == node and d.height == last)]
    [v] = [v for v in check(result) if v.kind == "liveness"]
    assert v.height == last and "never" in v.detail


def test_honest_double_sign_is_found():
    result = fresh()
    key = next(k for k in result.honest_signed if k[3] == 2)
    result.honest_signed[key] = result.honest_signed[key] | {b"another precommit digest"}
    [v] = [v for v in check(result) if v.kind == "double_sign"]
    assert "precommit" in v.detail


def test_missing_and_invalid_evidence_are_found():
    result = fresh()
    assert result.conflicts_seen, "the equivocator was seen by honest nodes"
    node = result.nodes[result.conflicts_seen[0][0]]
    held = dict(node.evidence)
    node.evidence.clear()
    assert "evidence" in kinds(result)
    ev = next(iter(held.values()))
    node.evidence = {**held, b"x": dataclasses.replace(ev, sig_a=bytes(64))}
    assert any("invalid evidence" in v.detail for v in check(result))
