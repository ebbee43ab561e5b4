"""Approved market changes: balancing groups opened and closed, market-partner ids (approved by more than 2/3 of
the network committee) and meter operator changes (WiM: approved by the current meter operator and the grid
operator). Their rules as pure functions, their effect on registry versions and on what exports address."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest

from stromledger.cascade import Ledger, Reason, SettledState, check_batch, make_batch, sign_schedule
from stromledger.cascade.checks import APPROVED_ITEM
from stromledger.cascade.changes import CHANGE_LEAD, judge_change
from stromledger.cascade.messages import MEASURED
from stromledger.cascade.rows import MeterRow
from stromledger.cascade.market import market_shape, operator_change_shape
from stromledger.codec import decode
from stromledger.export.build import mscons_files, mscons_recipient, mscons_sender
from stromledger.ids import make_market_partner_id
from stromledger.registry import (
    METER_KEY_ROTATED, SUPPLIER_SWITCH, MeterOperator, Registry, registry_at, sign_change, view, with_changes,
)
from stromledger.registry.approvals import Approval
from stromledger.registry.market import (
    GROUP_CLOSED, GROUP_OPENED, PARTNER_ID_SET, MarketChange, approve_change, market_change, operator_change,
)
from nodes.datagen.synthetic import eic_for

from .tiny import A1, CHAIN, G, G1, G2, HOUSE1, L1, PV, TIE, Net, key, make_registry, malo

VALIDATORS = [key(f"validator-{i}") for i in range(1, 5)]  # the network committee: every validator
GRID_ONE, GRID_TWO = VALIDATORS[0], VALIDATORS[2]  # validators of areas A1 and A2: their grid operators
METERING, OTHER_METERING = key("meter-operator"), key("other-metering")
NEW_GROUP = eic_for("TESTBG", 9)
BRP_ID, NEW_ID = make_market_partner_id("990000000001"), make_market_partner_id("990000000002")
H = G  # the committing height in these tests
FIRST = H + CHANGE_LEAD


@pytest.fixture
def registry() -> Registry:
    base = make_registry()
    operators = [*base.meter_operators.values(), MeterOperator("Other Metering", OTHER_METERING.public)]
    return Registry(base.params, base.validators, base.grid_areas.values(), base.balancing_groups.values(),
                    operators, base.meter_points.values(), base.assignments)


def approved(change, signers=VALIDATORS[:3]):
    return change.with_approvals(approve_change(k, CHAIN, change) for k in signers)


def opening(period=FIRST, group=NEW_GROUP, **kw) -> MarketChange:
    fields = dict(name="New group", operator_key=key(group).public, market_partner_id=BRP_ID) | kw
    return approved(market_change(GROUP_OPENED, period, group, **fields))


def closing(period=FIRST + 4, group=NEW_GROUP) -> MarketChange:
    return approved(market_change(GROUP_CLOSED, period, group))


def new_id(party=G1, period=FIRST + 1, partner=NEW_ID, signers=VALIDATORS[:3]) -> MarketChange:
    return approved(market_change(PARTNER_ID_SET, period, party, market_partner_id=partner), signers)


def wim(m=HOUSE1, period=FIRST, operator="Other Metering", new_key=b"", signers=(METERING, GRID_ONE)):
    return approved(operator_change(m, period, operator, new_key), signers)


def switch(group=NEW_GROUP, period=FIRST + 1, m=HOUSE1):
    return sign_change(GRID_ONE, CHAIN, SUPPLIER_SWITCH, m, period, balancing_group=group)


def judge(registry, change, history=(), height=H, taken=None):
    committed = frozenset(c.digest() for c in history)
    return judge_change(registry, with_changes((), history), change, height, taken or {}, committed)


def reason(rejection):
    return None if rejection is None else rejection.reason


# -- messages ---------------------------------------------------------------------------------------------


def test_both_messages_round_trip_canonically_and_approvals_are_ordered():
    for c in (opening(), closing(), new_id(), wim(new_key=key("new meter").public)):
        assert decode(c.encode()) == c
        assert [a.signer for a in c.approvals] == sorted(a.signer for a in c.approvals)
    # approving again with a key already there changes nothing
    c = opening()
    assert c.with_approvals([approve_change(VALIDATORS[0], CHAIN, c)]) == c


# -- balancing groups -------------------------------------------------------------------------------------


def test_an_opened_group_exists_exactly_from_its_effective_period(registry):
    c = opening()
    assert judge(registry, c) is None
    before, after = registry_at(registry, FIRST - 1, (c,)), registry_at(registry, FIRST, (c,))
    assert NEW_GROUP not in before.balancing_groups and NEW_GROUP in after.balancing_groups
    assert after.balancing_groups[NEW_GROUP].market_partner_id == BRP_ID
    assert key(NEW_GROUP).public in after.submitter_keys  # its BRP may sign schedules and batches
    assert after.version != registry.hash


def test_a_switch_needs_its_group_open_at_its_effective_period(registry):
    opened = opening(FIRST + 1)
    assert reason(judge(registry, switch(period=FIRST + 1))) == Reason.UNKNOWN_BALANCING_GROUP  # never opened
    assert reason(judge(registry, switch(period=FIRST), (opened,))) == Reason.UNKNOWN_BALANCING_GROUP  # not yet
    ok = switch(period=FIRST + 1)
    assert judge(registry, ok, (opened,)) is None
    version = registry_at(registry, FIRST + 1, (opened, ok))
    assert version.group_of(HOUSE1, FIRST + 1) == NEW_GROUP
    closed = closing(FIRST + 3)
    # after the closing, and before it once it is committed: the meter point would stay in a closed group
    assert reason(judge(registry, switch(period=FIRST + 3), (opened, closed))) == Reason.UNKNOWN_BALANCING_GROUP
    assert reason(judge(registry, switch(period=FIRST + 2), (opened, closed))) == Reason.UNKNOWN_BALANCING_GROUP


def test_a_group_is_closed_only_when_nothing_is_in_it(registry):
    opened = opening()
    assert judge(registry, closing(), (opened,)) is None
    in_it = switch(period=FIRST + 1)
    assert reason(judge(registry, closing(FIRST + 4), (opened, in_it))) == Reason.GROUP_IN_USE
    assert reason(judge(registry, closing(FIRST + 1, group=G1))) == Reason.GROUP_IN_USE  # HOUSE1, REG
    assert reason(judge(registry, closing(FIRST + 1, group=L1))) == Reason.GROUP_IN_USE  # A1's grid loss
    assert reason(judge(registry, closing(group=eic_for("TESTBG", 8)))) == Reason.UNKNOWN_BALANCING_GROUP
    closed = closing()
    version = registry_at(registry, FIRST + 4, (opened, closed))
    assert NEW_GROUP not in version.balancing_groups and version.closed_groups == {NEW_GROUP: FIRST + 4}
    assert NEW_GROUP in registry_at(registry, FIRST + 3, (opened, closed)).balancing_groups
    # a group EIC is never reused: not reopened, not a genesis group opened again
    assert reason(judge(registry, opening(FIRST + 6), (opened, closed))) == Reason.MALFORMED
    assert reason(judge(registry, opening(group=G2))) == Reason.MALFORMED


# -- market-partner ids -----------------------------------------------------------------------------------


def test_exports_address_the_new_market_partner_id_from_its_effective_period_on(registry):
    c = new_id(G1, FIRST + 1)
    assert judge(registry, c) is None
    assert mscons_recipient(registry_at(registry, FIRST, (c,)), G1).id == G1  # no id in the genesis: its EIC
    assert mscons_recipient(registry_at(registry, FIRST + 1, (c,)), G1).id == NEW_ID
    # an area chain's grid operator sends its MSCONS: its id changes the same way
    area = view(registry, A1)
    area_id = new_id(A1, FIRST + 1, BRP_ID)
    assert mscons_sender(registry_at(area, FIRST, (area_id,)), area.chain_id).id != BRP_ID
    assert mscons_sender(registry_at(area, FIRST + 1, (area_id,)), area.chain_id).id == BRP_ID
    seal = SimpleNamespace(height=FIRST + 1, chain_id=area.chain_id)  # what the MSCONS files take of a seal
    files = mscons_files(registry_at(area, FIRST + 1, (c, area_id)), seal, bytes(32), FIRST + 1, 1,
                         _rows(registry, FIRST + 1))
    text = files[f"mscons-{G1}.edi"].decode()
    assert f"+{BRP_ID}:500+{NEW_ID}:500+" in text and f"NAD+MR+{NEW_ID}::293'" in text


def _rows(registry, period):
    mp = registry.meter_points[HOUSE1]
    return [MeterRow(HOUSE1, mp.grid_area, G1, 1, MEASURED, 100, 0, 1, False, 100, 0, bytes(64), mp.kind,
                     mp.source)]


def test_bad_market_changes_each_get_their_reason(registry):
    unchecked = make_market_partner_id("990000000003")
    bad_digit = unchecked[:12] + str((int(unchecked[12]) + 1) % 10)
    assert reason(market_shape(registry, new_id(partner=bad_digit))) == Reason.MALFORMED  # check digit
    assert reason(market_shape(registry, new_id(partner="99000000000"))) == Reason.MALFORMED  # 11 digits
    assert reason(market_shape(registry, opening(market_partner_id=""))) == Reason.MALFORMED  # a BRP has an id
    assert reason(market_shape(registry, opening(name=" "))) == Reason.MALFORMED
    assert reason(market_shape(registry, opening(group="11XSOMEPARTY---X"[:15] + "X"))) == Reason.MALFORMED  # no Y-EIC
    assert reason(market_shape(registry, replace(closing(), name="x"))) == Reason.MALFORMED  # a field closing has not
    assert reason(market_shape(registry, replace(closing(), kind=7))) == Reason.MALFORMED
    assert market_shape(registry, opening()) is None and market_shape(registry, new_id()) is None
    # approvals: more than 2/3 of the four validators (3), members only, sorted, signatures that verify
    assert reason(judge(registry, new_id(signers=VALIDATORS[:2]))) == Reason.INSUFFICIENT_APPROVALS
    outsider = new_id(signers=[*VALIDATORS[:3], METERING])
    assert reason(judge(registry, outsider)) == Reason.UNKNOWN_APPROVER
    c = new_id()
    assert reason(judge(registry, replace(c, approvals=c.approvals[::-1]))) == Reason.MALFORMED
    forged = replace(c, approvals=(*c.approvals[:2], Approval(c.approvals[2].signer, bytes(64))))
    assert reason(judge(registry, forged)) == Reason.BAD_SIGNATURE
    # approvals of another change do not carry over (every approval signs the change's own bytes)
    other = new_id(partner=unchecked)
    assert reason(judge(registry, replace(other, approvals=c.approvals))) == Reason.BAD_SIGNATURE
    # timing, replays, conflicts
    assert reason(judge(registry, new_id(period=FIRST - 1))) == Reason.CHANGE_TOO_LATE
    assert reason(judge(registry, c, (c,))) == Reason.DUPLICATE
    assert reason(judge(registry, new_id(partner=unchecked), (c,))) == Reason.CONFLICTING_CHANGE  # same period
    pending = {("market", G1): b"other"}
    assert reason(judge(registry, new_id(partner=unchecked), taken=pending)) == Reason.CONFLICTING_CHANGE
    assert reason(judge(registry, new_id(eic_for("TESTBG", 8)))) == Reason.UNKNOWN_BALANCING_GROUP


# -- meter operator changes (WiM) -------------------------------------------------------------------------


def test_a_meter_operator_change_needs_both_the_meter_operator_and_the_grid_operator(registry):
    assert operator_change_shape(registry, wim()) is None
    assert judge(registry, wim()) is None
    assert reason(judge(registry, wim(signers=(METERING,)))) == Reason.INSUFFICIENT_APPROVALS
    assert reason(judge(registry, wim(signers=(GRID_ONE,)))) == Reason.INSUFFICIENT_APPROVALS
    # the new operator is not the one that approves; nor is another area's grid operator
    assert reason(judge(registry, wim(signers=(OTHER_METERING, GRID_ONE)))) == Reason.UNKNOWN_APPROVER
    assert reason(judge(registry, wim(signers=(METERING, VALIDATORS[2])))) == Reason.UNKNOWN_APPROVER
    assert reason(judge(registry, wim(operator="Test Metering"))) == Reason.MALFORMED  # already its operator
    assert reason(operator_change_shape(registry, wim(operator="Nobody"))) == Reason.MALFORMED
    assert reason(operator_change_shape(registry, wim(m="12345678901"))) == Reason.MALFORMED
    assert reason(judge(registry, wim(m=TIE))) == Reason.MALFORMED
    assert reason(judge(registry, wim(m=malo(77)))) == Reason.UNKNOWN_METER_POINT
    assert reason(judge(registry, wim(period=H + 1))) == Reason.CHANGE_TOO_LATE
    # one change per meter point: a WiM and a switch of the same meter point conflict
    sw = sign_change(GRID_ONE, CHAIN, SUPPLIER_SWITCH, HOUSE1, FIRST, balancing_group=G2)
    assert reason(judge(registry, wim(), (sw,))) == Reason.CONFLICTING_CHANGE
    assert reason(judge(registry, wim(), taken={HOUSE1: b"x"})) == Reason.CONFLICTING_CHANGE


def test_after_a_meter_operator_change_the_new_operator_rotates_and_changes_again(registry):
    new_meter = key("new meter").public
    c = wim(new_key=new_meter)
    after = registry_at(registry, FIRST, (c,))
    mp = after.meter_points[HOUSE1]
    assert (mp.meter_operator, mp.meter_key) == ("Other Metering", new_meter)
    assert after.old_keys[HOUSE1] == {registry.meter_points[HOUSE1].meter_key}  # old-key readings: rotated_key
    assert registry_at(registry, FIRST - 1, (c,)).meter_points[HOUSE1].meter_operator == "Test Metering"

    def rotation(signer):
        return sign_change(signer, CHAIN, METER_KEY_ROTATED, HOUSE1, FIRST + 2, meter_key=key("again").public)

    assert judge(registry, rotation(OTHER_METERING), (c,)) is None
    assert reason(judge(registry, rotation(METERING), (c,))) == Reason.WRONG_SIGNER
    back = wim(period=FIRST + 2, operator="Test Metering", signers=(OTHER_METERING, GRID_ONE))
    assert judge(registry, back, (c,)) is None
    assert reason(judge(registry, wim(period=FIRST + 2, operator="Test Metering"), (c,))) == \
        Reason.UNKNOWN_APPROVER  # the old operator approves no more
    assert reason(judge(registry, wim(m=PV, new_key=registry.meter_points[PV].meter_key))) == Reason.MALFORMED


def test_schedules_follow_the_groups_open_in_their_period(registry):
    opened, closed = opening(), closing(FIRST + 4)
    history = with_changes((), (opened, closed))

    def verdict(period):
        s = sign_schedule(key(NEW_GROUP), CHAIN, NEW_GROUP, G1, period, 1000)
        checked = check_batch(registry, make_batch(key(NEW_GROUP), CHAIN, schedules=[s]), history=history)
        return reason(checked) if not hasattr(checked, "schedule_verdicts") else reason(checked.schedule_verdicts[0])

    assert verdict(FIRST) is None and verdict(FIRST + 3) is None  # its BRP submits and signs its schedules
    assert verdict(FIRST - 1) == Reason.UNKNOWN_BALANCING_GROUP  # not open yet
    assert verdict(FIRST + 4) == Reason.UNKNOWN_BALANCING_GROUP  # closed
    s = sign_schedule(key(NEW_GROUP), CHAIN, NEW_GROUP, G1, FIRST, 1000)
    assert reason(check_batch(registry, make_batch(key(NEW_GROUP), CHAIN, schedules=[s]))) == Reason.WRONG_SIGNER


# -- through a ledger: carried in batches, judged, committed by a seal, in effect from their period -------------


def settle(ledger: Ledger, *batches):
    for b in batches:
        ledger.admit(b, None)
    outcome = ledger.propose()
    ledger.commit(outcome.seal_bytes)
    return outcome


def approved_reasons(admission):
    return [r.reason for kind, _, r in admission.rejections if kind == APPROVED_ITEM]


def test_a_group_opened_on_a_chain_takes_a_switch_and_settles_it(registry):
    ledger = Ledger(registry)
    opened = opening(G + 2)
    a = ledger.admit(make_batch(GRID_ONE, CHAIN, approved=[opened]), G + 1)
    assert a.stored and a.accepted == 1 and not a.rejections
    early = switch(period=G + 3)
    assert approved_reasons(ledger.admit(make_batch(GRID_ONE, CHAIN, approved=[opened]), G + 1)) == []  # pending
    first = settle(ledger)  # height G commits the opening
    assert first.registry_changes == (opened,) and ledger.state.changes == (opened,)
    # now (committed) a switch into it is taken, and the same opening again is a replay
    assert ledger.admit(make_batch(GRID_ONE, CHAIN, changes=[early]), G + 1).accepted == 1
    assert approved_reasons(ledger.admit(make_batch(GRID_TWO, CHAIN, approved=[opened]), G + 1)) == \
        [Reason.DUPLICATE]
    settle(ledger)  # G + 1 commits the switch
    assert ledger.state.changes == with_changes((), (opened, early))
    for _ in range(3):
        last = settle(ledger)  # G + 2 .. G + 4
    groups = {g.group for g in last.seal.result(G + 4).groups}
    assert NEW_GROUP in groups
    row = next(r for r in ledger.rows(G + 3) if r.malo_id == HOUSE1)
    assert row.balancing_group == NEW_GROUP
    assert next(r for r in ledger.rows(G + 2) if r.malo_id == HOUSE1).balancing_group == G1
    # a node that restarts from the encoded state judges the same way
    again = SettledState.decode(ledger.state.encode())
    assert again.changes == ledger.state.changes


def test_bad_approved_changes_in_a_batch_get_their_reasons_and_the_good_ones_are_kept(registry):
    ledger = Ledger(registry)
    good = [opening(G + 3), wim(period=G + 2)]
    bad = [new_id(signers=VALIDATORS[:2]), wim(m=PV, signers=(METERING,)), closing(G + 2, group=G1),
           new_id(period=G + 1)]
    a = ledger.admit(make_batch(GRID_ONE, CHAIN, approved=[*good, *bad, b"\x93\x08\x00\x00"]), G + 1)
    assert a.accepted == 2
    assert approved_reasons(a) == [Reason.INSUFFICIENT_APPROVALS, Reason.INSUFFICIENT_APPROVALS,
                                   Reason.GROUP_IN_USE, Reason.CHANGE_TOO_LATE, Reason.MALFORMED]
    committed = settle(ledger)
    assert set(committed.registry_changes) == set(good)  # nothing already admitted is lost


def test_after_a_meter_operator_change_the_old_key_is_refused(registry):
    ledger = Ledger(registry)
    new_meter = key("new meter")
    c = wim(period=G + 2, new_key=new_meter.public)
    assert ledger.admit(make_batch(METERING, CHAIN, approved=[c]), G + 1).accepted == 1
    settle(ledger)
    net = Net(registry)
    old = net.reading(HOUSE1, G + 2, 100)
    new = net.reading(HOUSE1, G + 2, 100, signer=new_meter)
    before = net.reading(HOUSE1, G + 1, 100)
    a = ledger.admit(make_batch(OTHER_METERING, CHAIN, readings=[old, new, before]), None)
    assert [r.reason for _, _, r in a.rejections] == [Reason.ROTATED_KEY]
    assert a.accepted == 2
