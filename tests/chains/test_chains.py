"""The chain hierarchy, pure: scopes and views, checkpoints (forged, foreign, replayed), network seals with
absent and late areas, and the cross-level invariants."""

from __future__ import annotations

from dataclasses import replace

import pytest

from stromledger.cascade import Reason, make_batch
from stromledger.chains.checkpoint import Certified, verify_checkpoint
from stromledger.consensus.certificate import build_certificate
from stromledger.consensus.messages import Precommit, sign_vote
from stromledger.consensus.validators import ValidatorSet
from stromledger.crypto import sha256
from stromledger.chains.messages import ABSENT, Checkpoint, NetworkSeal
from stromledger.chains.network import NetworkLedger, NetworkState, check_network_result, ignored_checkpoints
from stromledger.registry import (
    NETWORK, chain_id, check_genesis, committee, scopes, scopes_of, view, write_genesis,
)
from tests.cascade.tiny import A1, A2, G, G1, G2, HOUSE1, HOUSE2, PV, REG, SWITCH, TIE, UP, WIND, key

from .hierarchy import Area, certify, make_genesis


@pytest.fixture
def genesis():
    return make_genesis()


def readings(area: Area, period: int, scale: int = 1) -> None:
    n = area.net
    if area.area == A1:
        area.submit([n.reading(HOUSE1, period, 1000 * scale), n.reading(PV, period, 0, 3000),
                     n.reading(TIE, period, 500, 0), n.reading(UP, period, 2000, 0), n.reading(REG, period, 100)])
    else:
        area.submit([n.reading(HOUSE2, period, 700 * scale), n.reading(WIND, period, 0, 900),
                     n.reading(TIE, period, 500, 0), n.reading(SWITCH, period, 50)])


def both_areas_in(genesis):
    """Both areas seal period G; the network holds both checkpoints and proposes its first seal."""
    a1, a2 = Area(genesis, A1), Area(genesis, A2)
    readings(a1, G)
    readings(a2, G)
    net = NetworkLedger(genesis)
    for area in (a1, a2):
        assert isinstance(net.add_checkpoint(area.seal()[0]), Certified)
    return a1, a2, net, net.propose()


def test_scopes_views_and_committees(genesis):
    assert scopes(genesis) == (A1, A2, NETWORK)
    assert chain_id(genesis, A1) == "test-chain/area/" + A1 and chain_id(genesis, NETWORK) == "test-chain/network"
    assert [v.name for v in committee(genesis, A2)] == ["validator-3", "validator-4", "validator-5", "validator-6"]
    assert scopes_of(genesis, "validator-1") == (A1,)
    assert scopes_of(genesis, "validator-3") == (A1, A2, NETWORK)
    a1, a2, net = view(genesis, A1), view(genesis, A2), view(genesis, NETWORK)
    # each area view holds its own meter points and the tie lines touching it; the network none
    assert set(a1.meter_points) == {HOUSE1, PV, REG, TIE, UP}
    assert set(a2.meter_points) == {HOUSE2, WIND, SWITCH, TIE}
    assert a2.meter_points[TIE].area_out == "" and a2.meter_points[TIE].area_in == A2
    assert not net.meter_points and net.settles_schedules and not a1.settles_schedules
    assert len({genesis.hash, a1.hash, a2.hash, net.hash}) == 4
    assert a1.root_chain_id == genesis.chain_id


def test_genesis_committees_round_trip_and_defects(genesis, tmp_path):
    path = write_genesis(genesis, tmp_path)
    back, defects = check_genesis(path)
    assert back is not None and back.hash == genesis.hash, defects
    text = path.read_text().replace('"validator-6"]', '"validator-9"]', 1)
    path.write_text(text)
    back, defects = check_genesis(path)
    assert back is None
    assert any(d.where == f"[[grid_areas]] {A2}" and d.field == "committee" and "validator-9" in d.message
               for d in defects), [str(d) for d in defects]
    path.write_text(text.replace('"validator-3", "validator-4", "validator-5", "validator-9"', '"validator-3"'))
    back, defects = check_genesis(path)
    assert back is not None
    assert any(d.severity == "warning" and "1 validator(s)" in d.message for d in defects)


def test_batches_readings_and_schedules_do_not_replay_across_chains(genesis):
    a1, a2 = Area(genesis, A1), Area(genesis, A2)
    n = a1.net
    batch = make_batch(key("meter-operator"), a1.registry.chain_id, [n.reading(HOUSE1, G, 10)])
    assert a2.ledger.admit(batch, None).refused.reason == Reason.WRONG_CHAIN
    # A1's meter point in a batch for A2's chain: not a meter point of that chain
    foreign = make_batch(key("meter-operator"), a2.registry.chain_id, [n.reading(HOUSE1, G, 10)])
    admission = a2.ledger.admit(foreign, None)
    assert [why.reason for _, _, why in admission.rejections] == [Reason.UNKNOWN_METER_POINT]
    # schedules belong to the network chain
    sched = make_batch(key(G1), a1.registry.chain_id, (), n.schedule(G1, G2, G, 100, side="from"))
    admission = a1.ledger.admit(sched, None)
    assert [why.reason for _, _, why in admission.rejections] == [Reason.WRONG_CHAIN]


def test_checkpoint_verifies_with_the_genesis_alone(genesis):
    a1 = Area(genesis, A1)
    readings(a1, G)
    data, seal = a1.seal()
    cp = verify_checkpoint(genesis, data)
    assert isinstance(cp, Certified) and cp.area == A1 and cp.height == G
    assert cp.ties[G] == {TIE: (500, 0), UP: (2000, 0)}


def test_a_checkpoint_carries_the_registry_changes_its_results_settled_under(genesis):
    from stromledger.registry import SUPPLIER_SWITCH, sign_change

    a1 = Area(genesis, A1)
    switch = sign_change(key("validator-1"), genesis.chain_id, SUPPLIER_SWITCH, HOUSE1, G + 2, balancing_group=G2)
    assert a1.ledger.admit(make_batch(key("validator-1"), a1.registry.chain_id, changes=[switch]), None).accepted == 1
    for period in (G, G + 1, G + 2):
        readings(a1, period)
        data, _ = a1.seal()
    cp = verify_checkpoint(genesis, data)
    assert isinstance(cp, Certified) and Checkpoint.decode(data).changes == (switch,)
    cell = {(c.area, c.group): c.meter_points for c in cp.results[G + 2].cells}
    assert cell[A1, G2] == 2  # PV and the switched HOUSE1
    stripped = Checkpoint.decode(data)
    stripped = Checkpoint(stripped.area, stripped.seal, stripped.certificate, stripped.ties, (), ())
    assert verify_checkpoint(genesis, stripped).reason == Reason.WRONG_CHAIN  # another registry version


def test_forged_and_foreign_checkpoints_are_refused(genesis):
    a1, a2 = Area(genesis, A1), Area(genesis, A2)
    readings(a1, G)
    readings(a2, G)
    data, seal = a1.seal()
    cp = Checkpoint.decode(data)
    sigs = bytearray(cp.certificate)
    sigs[-1] ^= 1  # one precommit signature forged
    forged = Checkpoint(cp.area, cp.seal, bytes(sigs), cp.ties, cp.changes, cp.approved)
    assert verify_checkpoint(genesis, forged).reason == Reason.BAD_CERTIFICATE
    # signed by validators of the genesis, but not by this area's committee (validator-5, -6 sit in A2's only)
    outsiders = certify(genesis, A1, seal, G, signers=["validator-1", "validator-5", "validator-6"])
    assert verify_checkpoint(genesis, Checkpoint(A1, cp.seal, outsiders, cp.ties, cp.changes,
                                                 cp.approved)).reason == Reason.BAD_CERTIFICATE
    # a committee the genesis does not have
    assert verify_checkpoint(genesis, Checkpoint("10YDE-NOSUCH--K", cp.seal, cp.certificate, cp.ties, cp.changes,
                                                 cp.approved)).reason \
        == Reason.UNKNOWN_SCOPE
    # A1's certified seal presented as A2's: another chain
    assert verify_checkpoint(genesis, Checkpoint(A2, cp.seal, cp.certificate, cp.ties, cp.changes,
                                                 cp.approved)).reason == Reason.WRONG_CHAIN
    # A2's seal with a certificate its committee signed on A1's chain id: votes do not replay across chains
    data2, seal2 = a2.seal()
    cp2 = Checkpoint.decode(data2)
    members = [v.public_key for v in committee(genesis, A2)]
    votes = [sign_vote(Precommit, key(f"validator-{i}"), chain_id(genesis, A1), G, 0, sha256(seal2))
             for i in (3, 4, 5, 6)]
    replayed = build_certificate(G, 0, sha256(seal2), votes, ValidatorSet.of(members)).encode()
    assert verify_checkpoint(genesis, Checkpoint(A2, cp2.seal, replayed, cp2.ties, cp2.changes,
                                                 cp2.approved)).reason == Reason.BAD_CERTIFICATE
    # a tie-line leaf that does not match the certified root
    t = cp.ties[0]
    bad_tie = type(t)(t.period, t.leaf[:-1] + bytes([t.leaf[-1] ^ 1]), t.index, t.size, t.path)
    tampered = Checkpoint(A1, cp.seal, cp.certificate, (bad_tie, *cp.ties[1:]), cp.changes, cp.approved)
    assert verify_checkpoint(genesis, tampered).reason == Reason.MALFORMED


def test_network_seal_from_checkpoints_and_cross_level_invariants(genesis):
    a1, a2, net, outcome = both_areas_in(genesis)
    r = outcome.seal.result(G)
    assert r.absent == () and all(u.seal_hash != ABSENT for u in r.areas_used)
    # every cell is the certified area seal's cell; group totals are the sums of the area cells
    area_cells = [c for a in (a1, a2) for c in a.ledger.state.results[G].cells]
    assert list(r.cells) == sorted(area_cells, key=lambda c: (c.area, c.group))
    for g in r.groups:
        assert g.inj == sum(c.inj for c in area_cells if c.group == g.group)
        assert g.wd - g.loss == sum(c.wd for c in area_cells if c.group == g.group)
    assert r.checks.imbalance_sum == r.net_export == -2000  # 2000 Wh came in over the upstream line
    assert check_network_result(genesis, r, net.checkpoints) is None
    # a tampered cell breaks the cross-level check
    cell = replace(r.cells[0], inj=r.cells[0].inj + 1)
    assert check_network_result(genesis, replace(r, cells=(cell, *r.cells[1:])), net.checkpoints).reason \
        == Reason.INVARIANT_VIOLATED
    # another node validates it from the same checkpoints
    other = NetworkLedger(genesis)
    assert other.validate(outcome.seal_bytes).reason == Reason.MISSING_CHECKPOINT
    for cp in net.checkpoints.values():
        other.add_checkpoint(cp.data)
    assert other.validate(outcome.seal_bytes) is None


def test_late_area_is_absent_then_a_new_version(genesis):
    a1, a2 = Area(genesis, A1), Area(genesis, A2)
    readings(a1, G)
    readings(a2, G)
    net = NetworkLedger(genesis)
    net.add_checkpoint(a1.seal()[0])
    first = net.propose()  # A2's checkpoint has not arrived by the deadline
    r = first.seal.result(G)
    assert r.absent == (A2,) and r.version == 1
    tie = {t.malo_id: t for t in r.ties}[TIE]
    assert (tie.source, tie.fwd) == (A1, 500)  # the tie line from the neighbour's certified side
    a2_total = {a.area: a for a in r.areas}[A2]
    assert (a2_total.inj, a2_total.wd, a2_total.exin, a2_total.loss) == (0, 0, 500, 500)
    late = a2.seal()[0]
    # a validator that already holds A2's checkpoint still accepts the seal (validity must not depend on what
    # a node holds); it notes the absence, and A2 gets a new version at the next height
    holder = NetworkLedger(genesis)
    holder.add_checkpoint(net.checkpoints[first.seal.checkpoints[0]].data)
    holder.add_checkpoint(late)
    assert holder.validate(first.seal_bytes) is None
    assert ignored_checkpoints(first.seal, holder.checkpoints.values()) == [A2]
    net.commit(first.seal_bytes)
    readings(a1, G + 1)
    net.add_checkpoint(a1.seal()[0])
    net.add_checkpoint(late)
    second = net.propose(last_commit=certify(genesis, NETWORK, first.seal_bytes, G))
    versions = [(x.period, x.version, x.absent) for x in second.seal.results]
    assert versions == [(G, 2, ()), (G + 1, 1, (A2,))]
    assert second.seal.result(G).net_export == -2000
    net.commit(second.seal_bytes)
    state = NetworkState.decode(net.state.encode())
    assert state.encode() == net.state.encode() and state.results[G].version == 2
    # a stale checkpoint changes nothing: it is not eligible
    assert net.useful_checkpoints(net.next_height) == []
    assert isinstance(NetworkSeal.decode(second.seal_bytes), NetworkSeal)


def test_network_export_verifies_with_the_genesis_alone_and_catches_tampering(genesis):
    from stromledger.consensus.messages import CommitCertificate
    from stromledger.export import verify_export
    from stromledger.export.network import checkpoint_file, network_export_files

    _, _, net, outcome = both_areas_in(genesis)
    cert = CommitCertificate.decode(certify(genesis, NETWORK, outcome.seal_bytes, G))
    pool = {h: cp.data for h, cp in net.checkpoints.items()}
    files = network_export_files(genesis, outcome.seal_bytes, cert, G, pool)
    assert verify_export(files, genesis).ok, str(verify_export(files, genesis))
    assert b'"scope": "network"' in files["manifest.json"]
    tampered = dict(files)
    tampered["balancing-groups.csv"] = files["balancing-groups.csv"].replace(b",1,", b",2,", 1)
    assert [p.reason for p in verify_export(tampered, genesis).problems] == ["file_mismatch"]
    gone = {k: v for k, v in files.items() if k != checkpoint_file(A2)}
    assert verify_export(gone, genesis).problems[0].reason.startswith("checkpoint_")
    swapped = dict(files)
    swapped[checkpoint_file(A2)] = files[checkpoint_file(A1)]
    assert not verify_export(swapped, genesis).ok


def test_a_checkpoint_after_a_committee_change_is_certified_by_the_new_committee(genesis):
    from stromledger.chains.checkpoint import make_checkpoint
    from stromledger.registry import committee_change
    from stromledger.registry.committee import approve_committee_change, with_approvals

    a2 = Area(genesis, A2)
    old = [v.name for v in committee(genesis, A2)]  # validator-3 .. validator-6
    new = [*old[:-1], "validator-1"]
    change = committee_change(A2, G + 2, new)
    change = with_approvals(change, [approve_committee_change(key(n), a2.registry.chain_id, change) for n in old[:3]])
    assert a2.ledger.admit(make_batch(key("validator-3"), a2.registry.chain_id, approved=[change]), None).stored
    for _ in range(2):  # G commits the change, G + 1 is still the old committee's
        cp, _ = a2.seal()
        assert isinstance(verify_checkpoint(genesis, cp), Certified)
    outcome = a2.ledger.propose((), a2.last_cert)
    value_hash = sha256(outcome.seal_bytes)

    def cert(names, members):
        votes = [sign_vote(Precommit, key(n), a2.registry.chain_id, G + 2, 0, value_hash) for n in names]
        return build_certificate(G + 2, 0, value_hash, votes, ValidatorSet.of([key(n).public for n in members]))

    a2.ledger.commit(outcome.seal_bytes)
    history = a2.ledger.state.changes

    def checkpoint(certificate, changes=history):
        return make_checkpoint(A2, outcome.seal_bytes, certificate.encode(), a2.ledger.proof, a2.registry, changes)

    good = checkpoint(cert(new[1:], new))  # validator-4, -5 and the added validator-1
    assert good.approved == (change.encode(),)
    assert isinstance(verify_checkpoint(genesis, good), Certified)
    # without the change it carries, the certificate is not the genesis committee's
    assert verify_checkpoint(genesis, checkpoint(cert(new[1:], new), ())).reason == Reason.BAD_CERTIFICATE
    # the removed validator-6 no longer counts: the old committee's certificate of this height fails
    assert verify_checkpoint(genesis, checkpoint(cert(old[1:], old))).reason == Reason.BAD_CERTIFICATE
    # a change its committee did not approve (2 of 4) breaks the chain of trust
    forged = replace(change, approvals=change.approvals[:2])
    bad = checkpoint(cert(new[1:], new), (forged,))
    refused = verify_checkpoint(genesis, bad)
    assert refused.reason == Reason.BAD_CERTIFICATE and "insufficient_approvals" in refused.message


def test_a_network_export_carries_the_network_committee_changes_its_certificate_rests_on(genesis):
    from stromledger.export import verify_export
    from stromledger.export.network import network_export_files
    from stromledger.registry import committee_change
    from stromledger.registry.committee import approve_committee_change, with_approvals

    _, _, net, outcome = both_areas_in(genesis)
    old = [v.name for v in committee(genesis, NETWORK)]
    outsider = next(v.name for v in genesis.validators if v.name not in old)
    new = [*old[:-1], outsider]
    cid = chain_id(genesis, NETWORK)
    change = committee_change(NETWORK, G, new)
    change = with_approvals(change, [approve_committee_change(key(n), cid, change) for n in old])
    value_hash = sha256(outcome.seal_bytes)
    votes = [sign_vote(Precommit, key(n), cid, G, 0, value_hash) for n in new]
    cert = build_certificate(G, 0, value_hash, votes, ValidatorSet.of([key(n).public for n in new]))
    pool = {h: cp.data for h, cp in net.checkpoints.items()}
    files = network_export_files(genesis, outcome.seal_bytes, cert, G, pool, (change,))
    report = verify_export(files, genesis)
    assert report.ok, str(report)
    assert b'"name": "%s"' % outsider.encode() in files["manifest.json"]
    stripped = {k: v for k, v in files.items() if k != "registry-changes.jsonl"}
    assert verify_export(stripped, genesis).problems[0].reason.startswith("certificate_")
    unapproved = network_export_files(genesis, outcome.seal_bytes, cert, G, pool,
                                      (replace(change, approvals=change.approvals[:1]),))
    assert [p.reason for p in verify_export(unapproved, genesis).problems] == ["bad_registry_change"]
