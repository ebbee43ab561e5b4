"""Seal validation (every refusal), persistence of the settled state, replay, rows and Merkle proofs."""

from __future__ import annotations

import dataclasses

import pytest

from stromledger import merkle
from stromledger.cascade import (
    Ledger, LedgerError, PeriodSeal, Reason, SettledReading, SettledState, StateError, entry_rows, leaf_bytes,
    merkle_root, recompute_result, replay, validate_seal,
)
from stromledger.cascade.settle import rebuild_seal

from .tiny import G, G1, G2, HOUSE1, HOUSE2, PV, REG, WIND, result


def two_nodes(registry):
    return Ledger(registry), Ledger(registry)


def proposal(net, proposer, *batches):
    for b in batches:
        proposer.admit(b, None)
    return proposer.propose()


def reseal(seal: PeriodSeal, **changes) -> bytes:
    return dataclasses.replace(seal, **changes).encode()


def test_a_second_node_rebuilds_the_identical_seal(registry, net):
    a, b = two_nodes(registry)
    batches = [net.batch([net.reading(HOUSE1, G, 5)]), net.batch([], net.schedule(G1, G2, G, 3))]
    out = proposal(net, a, *batches)
    assert b.missing_batches(out.seal_bytes) == sorted(x.digest() for x in batches)
    assert b.validate(out.seal_bytes).reason == Reason.MISSING_BATCH
    for x in batches:
        b.add_fetched(x.encode())
    assert b.missing_batches(out.seal_bytes) == []
    assert b.validate(out.seal_bytes) is None
    a.commit(out.seal_bytes)
    b.commit(out.seal_bytes)
    assert a.state.encode() == b.state.encode()


@pytest.mark.parametrize("tamper, expected", [
    (lambda s: b"\x92\x0a\x01", Reason.MALFORMED),
    (lambda s: reseal(s, chain_id="other"), Reason.WRONG_CHAIN),
    (lambda s: reseal(s, registry_hash=b"\x07" * 32), Reason.WRONG_CHAIN),
    (lambda s: reseal(s, height=s.height + 1), Reason.WRONG_HEIGHT),
    (lambda s: reseal(s, previous=b"\x01" * 32), Reason.WRONG_HEIGHT),
    (lambda s: reseal(s, batches=tuple(reversed(s.batches))), Reason.MALFORMED),
    (lambda s: reseal(s, batches=s.batches + (b"\xff" * 32,)), Reason.MISSING_BATCH),
    (lambda s: reseal(s, results=(dataclasses.replace(s.results[0], net_export=s.results[0].net_export + 1),)),
     Reason.INVARIANT_VIOLATED),
    (lambda s: reseal(s, results=(dataclasses.replace(s.results[0], cells=(dataclasses.replace(
        s.results[0].cells[0], wd=s.results[0].cells[0].wd + 1),) + s.results[0].cells[1:]),)),
     Reason.INVARIANT_VIOLATED),
    (lambda s: reseal(s, results=(dataclasses.replace(s.results[0], merkle_root=b"\x00" * 32),)),
     Reason.SEAL_MISMATCH),
    (lambda s: reseal(s, rejected=()), Reason.SEAL_MISMATCH),
    (lambda s: reseal(s, evidence=()), Reason.SEAL_MISMATCH),
    (lambda s: reseal(s, vote_evidence=(b"b", b"a")), Reason.MALFORMED),
    (lambda s: reseal(s, last_commit=b"cert"), Reason.BAD_LAST_COMMIT),  # none exists before genesis
])
def test_refused_seals(registry, net, tamper, expected):
    a, b = two_nodes(registry)
    x, y = net.reading(HOUSE1, G, 5), net.reading(HOUSE1, G, 6)  # a conflict, so the seal has evidence
    batches = [net.batch([x, net.reading(PV, G, 0, 100)]), net.batch([y, net.reading(REG, G, 1000)])]
    out = proposal(net, a, *batches)
    for batch in batches:
        b.add_fetched(batch)
    assert out.seal.rejected and out.seal.evidence
    assert b.validate(out.seal_bytes) is None
    rejection = b.validate(tamper(out.seal))
    assert rejection is not None and rejection.reason == expected, rejection


def test_a_listed_batch_with_nothing_to_settle_is_refused(registry, net):
    a, b = two_nodes(registry)
    later = net.batch([net.reading(HOUSE1, G + 3, 5)])
    out = proposal(net, a, net.batch([net.reading(HOUSE1, G, 5)]))
    for d in out.seal.batches:
        b.add_fetched(a.batch(d).batch)
    b.add_fetched(later)
    forged = reseal(out.seal, batches=tuple(sorted(out.seal.batches + (later.digest(),))))
    assert b.validate(forged).reason == Reason.BATCH_NOT_ELIGIBLE


def test_vote_evidence_passes_through_and_is_checked(registry, net):
    a, b = two_nodes(registry)
    out = a.propose(vote_evidence=[b"evidence-2", b"evidence-1", b"evidence-2"])
    assert out.seal.vote_evidence == (b"evidence-1", b"evidence-2")
    assert b.validate(out.seal_bytes, evidence_ok=lambda blob: True) is None
    c = Ledger(registry)
    assert c.validate(out.seal_bytes, evidence_ok=lambda blob: blob != b"evidence-2").reason == Reason.BAD_EVIDENCE


def test_last_commit_passes_through_and_is_checked(registry, net):
    a, b = two_nodes(registry)
    with pytest.raises(ValueError, match="genesis"):
        a.propose(last_commit=b"cert-of-nothing")
    genesis = a.propose()
    assert genesis.seal.last_commit == b""
    b.validate(genesis.seal_bytes, last_commit_ok=lambda cert: False)  # not asked at the genesis height
    a.commit(genesis.seal_bytes)
    b.commit(genesis.seal_bytes)
    out = a.propose(last_commit=b"cert-of-G")
    assert out.seal.last_commit == b"cert-of-G"
    assert out.seal_hash != a.propose(last_commit=b"other-cert-of-G").seal_hash  # the seal hash covers it
    asked = []
    assert b.validate(out.seal_bytes, last_commit_ok=lambda cert: asked.append(cert) or True) is None
    assert asked == [b"cert-of-G"]
    c = Ledger(registry)
    c.commit(genesis.seal_bytes)
    wrong = c.validate(out.seal_bytes, last_commit_ok=lambda cert: cert == b"the-real-cert")
    assert wrong.reason == Reason.BAD_LAST_COMMIT and f"height {G}" in wrong.message
    empty = c.validate(reseal(out.seal, last_commit=b""), last_commit_ok=lambda cert: True)
    assert empty.reason == Reason.BAD_LAST_COMMIT
    # Whatever certificate the check accepts is rebuilt as carried (each makes another seal).
    assert c.validate(reseal(out.seal, last_commit=b"G-fo-trec"), last_commit_ok=lambda cert: True) is None
    # Without a check (committed seals: commit, replay) the last commit is taken as it is, even empty.
    c.commit(reseal(out.seal, last_commit=b""))
    assert c.state.height == G + 1


def test_commit_of_a_seal_this_node_cannot_rebuild_raises(registry, net):
    a, b = two_nodes(registry)
    out = proposal(net, a, net.batch([net.reading(HOUSE1, G, 5)]))
    with pytest.raises(LedgerError) as err:
        b.commit(out.seal_bytes)
    assert err.value.rejection.reason == Reason.MISSING_BATCH
    assert b.state.height is None


def run_periods(net, ledger, n=6):
    """Six periods with readings, a late correction, schedules, registers and conflicts; returns the commits."""
    commits = []
    for i in range(n):
        p = G + i
        items = [net.reading(HOUSE1, p, 100 + i), net.reading(WIND, p, 0, 1000 * i),
                 net.reading(REG, p, 10_000 + 500 * i, register=True)]
        if i >= 2:
            items.append(net.reading(PV, p - 2, 1, 50 + i))  # late: corrections of earlier periods
        if i == 3:
            items.append(net.reading(HOUSE1, p - 1, 1))  # conflicts with the settled reading
        batches = [net.batch(items), net.batch([], net.schedule(G1, G2, p, 10 + i))]
        out = net.settle(ledger, *batches)
        commits.append((out.seal_bytes, {bb.digest(): bb.encode() for bb in batches}))
    return commits


def test_state_round_trips_through_canonical_bytes(registry, net, ledger):
    run_periods(net, ledger)
    data = ledger.state.encode()
    restored = SettledState.decode(data)
    assert restored.encode() == data and restored == ledger.state
    assert restored.height == G + 5 and restored.baseline  # registers left the window into the baseline
    with pytest.raises(StateError):
        SettledState.decode(data + b"\x00")
    with pytest.raises(StateError):
        SettledState.decode(b"\x93\x01\x02\x03")


def test_replay_recomputes_the_state_from_seals_and_batches(registry, net, ledger):
    commits = run_periods(net, ledger)
    assert replay(registry, commits) == ledger.state
    # continue from a restored state: the next seal is the same either way
    twin = Ledger(registry, SettledState.decode(ledger.state.encode()))
    batch = net.batch([net.reading(HOUSE2, G + 6, 77)])
    for node in (ledger, twin):
        node.admit(batch, None)
    assert ledger.propose().seal_bytes == twin.propose().seal_bytes


def test_replay_refuses_a_forged_history(registry, net, ledger):
    commits = run_periods(net, ledger, 2)
    seal = PeriodSeal.decode(commits[1][0])
    last = dataclasses.replace(seal.results[-1], merkle_root=bytes(32))
    forged = reseal(seal, results=seal.results[:-1] + (last,))
    with pytest.raises(LedgerError) as err:
        replay(registry, [commits[0], (forged, commits[1][1])])
    assert err.value.rejection.reason == Reason.SEAL_MISMATCH


def test_rows_recompute_the_committed_result(registry, net, ledger):
    run_periods(net, ledger)
    period = G + 3
    committed = ledger.state.results[period]
    assert committed.version > 1  # corrected twice by late readings
    rows = list(ledger.rows(period))
    assert [r.malo_id for r in rows] == sorted(registry.meter_points)
    assert recompute_result(registry, rows, committed) == committed
    assert merkle_root(period, rows) == committed.merkle_root
    assert all(leaf_bytes(period, r) == SettledReading(period, *r[:12]).encode() for r in rows)
    for i, row in enumerate(rows):
        changed = row._replace(import_wh=row.import_wh + 1)
        tampered = rows[:i] + [changed] + rows[i + 1:]
        assert recompute_result(registry, tampered, committed) != committed


def test_rows_that_cannot_be_a_settlement_raise(registry, net, ledger):
    run_periods(net, ledger, 1)
    committed = ledger.state.results[G]
    rows = list(ledger.rows(G))
    with pytest.raises(ValueError, match="quality"):
        recompute_result(registry, [rows[0]._replace(quality=9)] + rows[1:], committed)
    fake = rows[0]._replace(kind="boundary")
    assert registry.meter_points[fake.malo_id].kind != "boundary"
    with pytest.raises(ValueError, match="boundary"):
        recompute_result(registry, [fake] + rows[1:], committed)


def test_inclusion_proofs(registry, net, ledger):
    run_periods(net, ledger, 3)
    root = ledger.state.results[G + 2].merkle_root
    for m in (HOUSE1, PV, REG):
        leaf, index, size, proof = ledger.proof(G + 2, m)
        assert merkle.verify_inclusion(root, leaf, index, size, proof)
        decoded = SettledReading.decode(leaf)
        assert decoded.malo_id == m and decoded.period == G + 2
        assert not merkle.verify_inclusion(root, leaf[:-1] + b"\x01", index, size, proof)
    with pytest.raises(KeyError):
        ledger.proof(G + 2, "12345678903")


def test_validate_seal_function_matches_the_ledger(registry, net):
    a = Ledger(registry)
    batch = net.batch([net.reading(HOUSE1, G, 5)])
    out = proposal(net, a, batch)
    state = SettledState.genesis(registry)
    assert validate_seal(out.seal_bytes, registry, state, {batch.digest(): batch}) is None
    rebuilt = rebuild_seal(out.seal_bytes, registry, state, {batch.digest(): batch})
    assert rebuilt.seal_bytes == out.seal_bytes and rebuilt.changes == out.changes
    rows = list(entry_rows(registry, G, out.changes[G]))
    assert recompute_result(registry, rows, result(out, G)) == result(out, G)
