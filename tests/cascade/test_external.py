"""External counterparties: schedules with a power exchange or another control area, signed by the network
group alone, and invariants 3 and 4 with them (sum of imbalances = net export - net external schedules)."""

from __future__ import annotations

import dataclasses

import pytest

from stromledger.cascade import Ledger, Reason, check_invariants
from stromledger.cascade.checks import schedule_precheck, sign_schedule
from stromledger.cascade.messages import MISMATCHED, ScheduleLine
from stromledger.ids import make_eic
from stromledger.registry import ExternalParty, Registry, check_genesis, load_genesis, write_genesis

from .tiny import G, G1, G2, G3, HOUSE1, PV, UP, Net, group, key, make_registry, result

EXCHANGE = make_eic("10XEXCHANGE-TES")  # an X-coded party, as exchanges are
NEIGHBOUR = make_eic("10YNEIGHBOUR-CA")  # a balancing group of another control area


def with_externals(reg: Registry) -> Registry:
    return Registry(reg.params, reg.validators, reg.grid_areas.values(), reg.balancing_groups.values(),
                    reg.meter_operators.values(), reg.meter_points.values(), reg.assignments,
                    [ExternalParty(EXCHANGE, "Power exchange"), ExternalParty(NEIGHBOUR, "Other control area")])


@pytest.fixture
def xreg() -> Registry:
    return with_externals(make_registry())


def one_side(reg: Registry, signer: str, frm: str, to: str, period: int, wh: int):
    return sign_schedule(key(signer), reg.chain_id, frm, to, period, wh)


def test_external_schedules_count_on_the_network_side_alone(xreg):
    net = Net(xreg)
    readings = [net.reading(HOUSE1, G, 1000), net.reading(PV, G, 0, 3000), net.reading(UP, G, 2000)]
    schedules = [one_side(xreg, G2, G2, EXCHANGE, G, 2500),  # sold at the exchange
                 one_side(xreg, G1, NEIGHBOUR, G1, G, 700),  # bought from another control area
                 *net.schedule(G1, G3, G, 40)]  # an internal trade as before
    out = net.settle(Ledger(xreg), net.batch(readings, schedules))
    r = result(out, G)
    assert r.schedules == tuple(sorted([ScheduleLine(G2, EXCHANGE, 2500), ScheduleLine(NEIGHBOUR, G1, 700),
                                        ScheduleLine(G1, G3, 40)], key=lambda s: (s.from_group, s.to_group)))
    assert r.schedule_issues == ()
    assert (group(r, G2).fpe, group(r, G1).fpi, group(r, G1).fpe, group(r, G3).fpi) == (2500, 700, 40, 40)
    c = r.checks
    assert c.external_net == 2500 - 700
    assert c.schedule_net == sum(g.fpi - g.fpe for g in r.groups) == -1800
    assert r.net_export == c.net_export == -2000  # UP fed 2000 Wh into the network
    assert c.imbalance_sum == sum(g.imb for g in r.groups) == -2000 - 1800
    assert check_invariants(xreg, r) is None


def test_the_checks_refuse_a_result_whose_external_numbers_were_altered(xreg):
    net = Net(xreg)
    out = net.settle(Ledger(xreg), net.batch([], [one_side(xreg, G2, G2, EXCHANGE, G, 900)]))
    r = result(out, G)
    assert check_invariants(xreg, r) is None
    lying = dataclasses.replace(r, checks=dataclasses.replace(r.checks, external_net=0))
    assert check_invariants(xreg, lying).reason == Reason.INVARIANT_VIOLATED
    hidden = dataclasses.replace(r, schedules=())  # the groups' FPE no longer has a schedule behind it
    assert check_invariants(xreg, hidden).reason == Reason.INVARIANT_VIOLATED
    # the same result under a registry without the exchange: the line joins no known party
    assert "does not join" in check_invariants(make_registry(), r).message


def test_two_amounts_from_the_group_do_not_count(xreg):
    net = Net(xreg)
    items = [one_side(xreg, G2, G2, EXCHANGE, G, 10), one_side(xreg, G2, G2, EXCHANGE, G, 11)]
    r = result(net.settle(Ledger(xreg), net.batch([], items)), G)
    assert r.schedules == () and r.checks.external_net == 0
    assert [(i.status, i.from_wh, i.to_wh) for i in r.schedule_issues] == [(MISMATCHED, (10, 11), ())]


@pytest.mark.parametrize("signer, frm, to, reason", [
    (G1, G2, EXCHANGE, Reason.WRONG_SIGNER),  # only the network group's own operator signs
    (G2, EXCHANGE, NEIGHBOUR, Reason.MALFORMED),  # does not touch the network
    (G2, G2, make_eic("10XUNKNOWN-EXCH"), Reason.UNKNOWN_BALANCING_GROUP),
])
def test_refused_external_schedules(xreg, signer, frm, to, reason):
    assert schedule_precheck(xreg, one_side(xreg, signer, frm, to, G, 5)).reason == reason


def test_an_external_party_is_unknown_without_the_registry_entry():
    reg = make_registry()
    assert schedule_precheck(reg, one_side(reg, G2, G2, EXCHANGE, G, 5)).reason == Reason.UNKNOWN_BALANCING_GROUP


def test_genesis_round_trip_and_hash(tmp_path, xreg):
    plain = make_registry()
    assert xreg.hash != plain.hash
    loaded = load_genesis(write_genesis(xreg, tmp_path))
    assert loaded.hash == xreg.hash and list(loaded.external_parties) == sorted([EXCHANGE, NEIGHBOUR])
    assert load_genesis(write_genesis(plain, tmp_path / "plain")).hash == plain.hash


def test_genesis_refuses_an_external_party_that_is_inside_the_network(tmp_path, xreg):
    path = write_genesis(xreg, tmp_path)
    path.write_text(path.read_text() + f'\n[[external_parties]]\neic = "{G1}"\nname = "not outside"\nkind = "x"\n')
    registry, defects = check_genesis(path)
    assert registry is None
    assert {(d.where, d.field) for d in defects} == {("[[external_parties]] #3", "eic"),
                                                     ("[[external_parties]] #3", "kind")}


def test_an_implausible_area_loss_is_flagged(xreg):
    net = Net(xreg)
    # area one: UP brings 10 000 Wh in, HOUSE1 takes 1 000: a loss of 9 000 Wh, 90 % of the throughput
    r = result(net.settle(Ledger(xreg), net.batch([net.reading(HOUSE1, G, 1000), net.reading(UP, G, 10_000)])), G)
    a1 = xreg.meter_points[HOUSE1].grid_area
    assert r.implausible_loss == (a1,)
    assert check_invariants(xreg, r) is None
    assert check_invariants(xreg, dataclasses.replace(r, implausible_loss=())).reason == Reason.INVARIANT_VIOLATED
    # a plausible hour: the loss is within 10 % of what flows through the area
    r = result(net.settle(Ledger(xreg), net.batch([net.reading(HOUSE1, G, 7_000), net.reading(UP, G, 7_500)])), G)
    assert r.implausible_loss == ()
