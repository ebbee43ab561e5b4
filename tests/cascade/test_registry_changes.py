"""Registry changes: signed, checked by the cascade, committed by a seal, applied from their effective period
and never before; every bad change refused with its reason, nothing already admitted lost."""

from __future__ import annotations

from dataclasses import replace

from stromledger.cascade import Ledger, Reason, SettledState, build_seal, make_batch, replay
from stromledger.cascade.changes import CHANGE_LEAD
from stromledger.cascade.ledger import CHANGE, READING
from stromledger.registry import (
    METER_KEY_ROTATED, METER_POINT_ADDED, METER_POINT_RETIRED, SUPPLIER_SWITCH, RegistryChange, registry_at,
    sign_change,
)

from .tiny import A1, CHAIN, G, G1, G2, G3, HOUSE1, HOUSE2, PV, TIE, key, malo

GRID_ONE = key("validator-1")  # a validator of area A1: signs as A1's grid operator
GRID_TWO = key("validator-3")  # of area A2
METERING = key("meter-operator")
NEW = malo(50)


def switch(m=HOUSE1, period=G + CHANGE_LEAD, group=G2, signer=GRID_ONE) -> RegistryChange:
    return sign_change(signer, CHAIN, SUPPLIER_SWITCH, m, period, balancing_group=group)


def add(m=NEW, period=G + CHANGE_LEAD, signer=GRID_ONE) -> RegistryChange:
    return sign_change(signer, CHAIN, METER_POINT_ADDED, m, period, grid_area=A1, balancing_group=G1,
                       meter_key=key(m).public, meter_operator="Test Metering", point_kind="consumer",
                       source="grid", max_power_w=30_000)


def retire(m=PV, period=G + CHANGE_LEAD, signer=GRID_ONE) -> RegistryChange:
    return sign_change(signer, CHAIN, METER_POINT_RETIRED, m, period)


def rotate(m=HOUSE1, period=G + CHANGE_LEAD, new=None, signer=METERING) -> RegistryChange:
    return sign_change(signer, CHAIN, METER_KEY_ROTATED, m, period, meter_key=(new or key(m + "-new")).public)


def changes_batch(*changes, signer=GRID_ONE):
    return make_batch(signer, CHAIN, changes=changes)


def change_reasons(admission):
    return [r.reason for kind, _, r in admission.rejections if kind == CHANGE]


def group_of_row(ledger: Ledger, period: int, m: str) -> str:
    return next(r.balancing_group for r in ledger.rows(period) if r.malo_id == m)


def test_a_switch_takes_effect_exactly_at_its_effective_period(registry, net, ledger):
    c = switch(period=G + 2)
    a = ledger.admit(changes_batch(c), G + 1)
    assert a.stored and a.accepted == 1 and not a.rejections
    first = net.settle(ledger)  # height G commits it
    assert first.registry_changes == (c,) and ledger.state.changes == (c,)
    net.settle(ledger)  # G + 1: still the genesis version
    third = net.settle(ledger)  # G + 2: the switch is in effect
    assert group_of_row(ledger, G + 1, HOUSE1) == G1
    assert group_of_row(ledger, G + 2, HOUSE1) == G2
    # every result names the registry version it settled under: the genesis, then the version with the switch
    assert first.seal.result(G).registry_version == registry.hash
    version = third.seal.result(G + 2).registry_version
    assert version != registry.hash and version == registry_at(registry, G + 2, (c,)).version
    assert registry_at(registry, G + 1, (c,)) is registry


def test_bad_changes_each_get_their_reason(registry, net, ledger):
    ok = switch(HOUSE2, G + 5, G3, GRID_TWO)
    assert ledger.admit(changes_batch(ok), G + 1).accepted == 1
    bad = [
        switch(signer=GRID_TWO),  # HOUSE1 is in A1: its grid operator signs
        switch(period=G + 1),  # inside the gate: the seal of G takes changes from G + 2 on
        rotate(signer=GRID_ONE),  # a key is rotated by the meter operator
        switch(HOUSE2, G + 5, G1, GRID_TWO),  # a second switch of HOUSE2 for the same period
        replace(switch(PV), sig=bytes(64)),  # forged
        switch(malo(77)),  # unknown meter point
        switch(TIE),  # a tie line changes with the genesis only
        switch(group="10Y1001A1001A82H"),  # a valid EIC that is not in the registry
        replace(switch(PV), meter_key=b"\x01" * 32),  # a field a switch does not have (signature checked last)
        add(m=HOUSE1),  # already registered
        add(signer=GRID_TWO),  # an A1 meter point added by A2's operator
    ]
    a = ledger.admit(changes_batch(*bad), G + 1)
    assert change_reasons(a) == [
        Reason.WRONG_SIGNER, Reason.CHANGE_TOO_LATE, Reason.WRONG_SIGNER, Reason.CONFLICTING_CHANGE,
        Reason.BAD_SIGNATURE, Reason.UNKNOWN_METER_POINT, Reason.MALFORMED, Reason.UNKNOWN_BALANCING_GROUP,
        Reason.MALFORMED, Reason.MALFORMED, Reason.WRONG_SIGNER]
    assert all(r.message for _, _, r in a.rejections)
    committed = net.settle(ledger)
    assert committed.registry_changes == (ok,)  # nothing already admitted is lost


def test_a_seal_judges_changes_itself_and_counts_what_it_refuses(registry, net, ledger):
    one, two = switch(period=G + 3), switch(period=G + 3, group=G3)
    late = switch(PV, G + 1)
    b1, b2 = changes_batch(one, late), changes_batch(two, signer=GRID_TWO)
    outcome = build_seal(registry, ledger.state, G, [b1, b2])
    assert len(outcome.registry_changes) == 1  # one switch per meter point and seal: the lower-digest batch's
    rejected = {rc.reason: rc.count for rc in outcome.seal.rejected}
    assert rejected == {Reason.CONFLICTING_CHANGE: 1, Reason.CHANGE_TOO_LATE: 1}
    # the same inputs rebuild the same seal on another node
    other = Ledger(registry)
    for b in (b1, b2):
        other.add_fetched(b)
    assert other.validate(outcome.seal_bytes) is None


def test_a_replayed_change_is_refused(registry, net, ledger):
    c = switch()
    ledger.admit(changes_batch(c), G + 1)
    net.settle(ledger)
    again = ledger.admit(changes_batch(c, signer=GRID_TWO), G + 1)  # the same change in another batch
    assert change_reasons(again) == [Reason.DUPLICATE] and not again.stored
    later = switch(period=G + 9, group=G1)
    older = switch(period=G + 4, group=G3)  # before a change of HOUSE1 that is already committed
    assert ledger.admit(changes_batch(later), G + 1).accepted == 1
    net.settle(ledger)
    assert change_reasons(ledger.admit(changes_batch(older), G + 2)) == [Reason.CONFLICTING_CHANGE]


def test_a_retired_meter_point_leaves_its_area_from_the_effective_period(registry, net, ledger):
    ledger.admit(changes_batch(retire(PV, G + 2)), G + 1)
    net.settle(ledger)
    net.settle(ledger, net.batch([net.reading(PV, G + 1, 7)]))
    a = ledger.admit(net.batch([net.reading(PV, G + 2, 7), net.reading(HOUSE1, G + 2, 5)]), G + 2)
    assert [(k, r.reason) for k, _, r in a.rejections] == [(READING, Reason.RETIRED_METER_POINT)]
    third = net.settle(ledger)
    assert PV in {r.malo_id for r in ledger.rows(G + 1)}
    assert PV not in {r.malo_id for r in ledger.rows(G + 2)}
    assert third.seal.result(G + 2).meter_points == ledger.state.results[G + 1].meter_points - 1
    assert ledger.state.entries[G + 1][PV][2] == 7  # settled before it was retired
    # a correction of a period before the retirement is still taken
    fix = ledger.admit(net.batch([net.reading(PV, G + 1, 9, version=2)]), G + 3)
    assert fix.accepted == 1


def test_a_rotated_key_signs_from_its_effective_period_and_the_old_one_before(registry, net, ledger):
    new = key("house1-gateway-2")
    ledger.admit(changes_batch(rotate(HOUSE1, G + 2, new)), G + 1)
    net.settle(ledger)
    net.settle(ledger)
    old_late = net.reading(HOUSE1, G + 2, 5)  # the rotated-out key
    new_now = net.reading(HOUSE1, G + 2, 6, signer=new)
    new_early = net.reading(HOUSE1, G + 1, 4, signer=new)  # before the rotation the old key signs
    a = ledger.admit(net.batch([old_late, new_now, new_early]), G + 2)
    assert [r.reason for _, _, r in a.rejections] == [Reason.ROTATED_KEY, Reason.WRONG_SIGNER]
    net.settle(ledger)
    assert ledger.state.entries[G + 2][HOUSE1][2] == 6


def test_an_added_meter_point_joins_the_leaves_from_its_effective_period(registry, net, ledger):
    ledger.admit(changes_batch(add(NEW, G + 2)), G + 1)
    first = net.settle(ledger)
    early = ledger.admit(net.batch([net.reading(NEW, G + 1, 3)]), G + 1)
    assert early.rejections[0][2].reason == Reason.UNKNOWN_METER_POINT
    net.settle(ledger)
    assert ledger.admit(net.batch([net.reading(NEW, G + 2, 3)]), G + 2).accepted == 1
    third = net.settle(ledger)
    assert third.seal.result(G + 2).meter_points == first.seal.result(G).meter_points + 1
    assert ledger.state.entries[G + 2][NEW][2] == 3
    assert NEW not in ledger.state.entries[G + 1]
    _, index, size, _ = ledger.proof(G + 2, NEW)  # the Merkle leaves follow the period's version
    assert size == third.seal.result(G + 2).meter_points


def test_pending_readings_survive_a_committed_change_and_the_state_keeps_the_history(registry, net, ledger):
    c = rotate(HOUSE1, G + 2, key("gw"))
    ledger.admit(changes_batch(c), G + 1)
    pending = net.batch([net.reading(HOUSE1, G + 1, 5), net.reading(HOUSE2, G + 1, 6)])
    assert ledger.admit(pending, G + 1).accepted == 2
    commits = []
    for _ in range(3):
        out = ledger.propose()
        batches = {d: ledger.batch(d).batch for d in out.seal.batches}
        ledger.commit(out.seal_bytes)
        commits.append((out.seal_bytes, batches))
    assert ledger.state.entries[G + 1][HOUSE1][2] == 5  # admitted before the change committed: not lost
    restored = SettledState.decode(ledger.state.encode())
    assert restored.changes == (c,) and restored == ledger.state
    assert replay(registry, commits) == ledger.state
