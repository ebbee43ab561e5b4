"""The cascade rules: totals at every level, substitution, versions and corrections, registers, schedules,
evidence and supplier switches."""

from __future__ import annotations

import pytest

from stromledger.cascade import (
    CORRECTED, MEASURED, MISSING, SUBSTITUTED, NotEligible, Reason, SettledState, build_seal, check_invariants,
)
from stromledger.cascade.messages import MISMATCHED, ONE_SIDED, READING_DOMAIN, ScheduleLine
from stromledger.cascade.rows import RVER, VER
from stromledger.crypto import verify

from .tiny import (
    A1, A2, CHAIN, G, G1, G2, G3, HOUSE1, HOUSE2, L1, L2, MAX_30KW, PV, REG, SWITCH, TIE, UP, WIND, area, entry,
    group, result,
)


def rejected(outcome) -> dict[Reason, int]:
    return {Reason(rc.reason): rc.count for rc in outcome.seal.rejected}


def full_period(net, period):
    return [
        net.reading(HOUSE1, period, 1000), net.reading(HOUSE2, period, 2000), net.reading(PV, period, 100, 3000),
        net.reading(WIND, period, 0, 5000), net.reading(REG, period, 700), net.reading(TIE, period, 0, 2500),
        net.reading(UP, period, 0, 3550), net.reading(SWITCH, period, 300),
    ]


def test_totals_at_every_level(registry, net, ledger):
    out = net.settle(ledger, net.batch(full_period(net, G)))
    assert out.seal.height == G and [r.period for r in out.seal.results] == [G]
    r = result(out, G)
    assert (r.measured, r.substituted, r.corrected, r.missing) == (8, 0, 0, 0)
    cells = {(c.area, c.group): (c.meter_points, c.inj, c.wd) for c in r.cells}
    assert cells == {(A1, G1): (2, 0, 1700), (A1, G2): (1, 3000, 100), (A2, G1): (1, 0, 300),
                     (A2, G2): (1, 0, 2000), (A2, G3): (1, 5000, 0)}
    a1, a2 = area(r, A1), area(r, A2)
    assert (a1.inj, a1.wd, a1.exin, a1.exout, a1.loss) == (3000, 1800, 2500, 3550, 150)
    assert (a2.inj, a2.wd, a2.exin, a2.exout, a2.loss) == (5000, 2300, 0, 2500, 200)
    assert group(r, L1).wd == group(r, L1).loss == 150 and group(r, L1).imb == -150
    assert group(r, L2).imb == -200
    assert [group(r, g).imb for g in (G1, G2, G3)] == [-2000, 900, 5000]
    assert r.net_export == 3550 == sum(g.imb for g in r.groups)
    assert {(m.group, s.source, s.wh) for m in r.mix for s in m.sources} == {(G2, "pv", 3000), (G3, "wind", 5000)}
    c = r.checks
    assert (c.meter_inj, c.meter_wd, c.cell_inj, c.cell_wd) == (8000, 4100, 8000, 4100)
    assert (c.area_residual, c.schedule_net, c.imbalance_sum, c.net_export) == (0, 0, 3550, 3550)
    assert check_invariants(registry, r) is None


def test_a_period_without_readings_is_all_missing(registry, net, ledger):
    out = net.settle(ledger)
    r = result(out, G)
    assert (r.measured, r.missing, r.meter_points) == (0, 8, 8)
    assert r.net_export == 0 and all(g.imb == 0 for g in r.groups)
    assert out.seal.batches == ()


def test_substitution_carries_the_previous_period_forward(registry, net, ledger):
    net.settle(ledger, net.batch(full_period(net, G)))
    out = net.settle(ledger, net.batch([net.reading(HOUSE1, G + 1, 42)]))
    r = result(out, G + 1)
    assert (r.measured, r.substituted, r.missing) == (1, 7, 0)
    assert entry(ledger, G + 1, HOUSE1)[:4] == (1, MEASURED, 42, 0)
    assert entry(ledger, G + 1, WIND)[:4] == (1, SUBSTITUTED, 0, 5000)
    assert entry(ledger, G + 1, PV)[:4] == (1, SUBSTITUTED, 100, 0)  # 00:15 UTC on 1 January: PV feeds in nothing
    assert entry(ledger, G + 1, PV)[RVER] == 0  # no reading behind a substitute
    out = net.settle(ledger)  # nothing at all: substitutes of substitutes, and of the measured 42
    assert entry(ledger, G + 2, HOUSE1)[:4] == (1, SUBSTITUTED, 42, 0)
    assert entry(ledger, G + 2, WIND)[:4] == (1, SUBSTITUTED, 0, 5000)


def test_late_reading_and_meter_correction_make_new_versions(registry, net, ledger):
    net.settle(ledger, net.batch([net.reading(HOUSE1, G, 1000)]))
    assert entry(ledger, G, PV)[:2] == (1, MISSING)
    out = net.settle(ledger, net.batch([net.reading(PV, G, 10, 2000), net.reading(HOUSE1, G + 1, 900)]))
    assert [(r.period, r.version) for r in out.seal.results] == [(G, 2), (G + 1, 1)]
    assert entry(ledger, G, PV)[:4] == (2, CORRECTED, 10, 2000)
    assert entry(ledger, G, HOUSE1)[VER] == 1  # untouched meter points keep their version
    assert result(out, G).corrected == 1 and group(result(out, G), G2).inj == 2000
    # the new period's substitute already sees the corrected value
    assert entry(ledger, G + 1, PV)[:4] == (1, SUBSTITUTED, 10, 0)  # its import; no PV export in the dark

    out = net.settle(ledger, net.batch([net.reading(PV, G, 10, 2500, version=2)]))
    assert [(r.period, r.version) for r in out.seal.results] == [(G, 3), (G + 2, 1)]
    assert entry(ledger, G, PV)[:4] == (3, CORRECTED, 10, 2500)

    # the meter's version 1 again (a retry): superseded, nothing changes
    out = net.settle(ledger, net.batch([net.reading(PV, G, 10, 2000), net.reading(HOUSE1, G + 3, 1)]))
    assert [(r.period, r.version) for r in out.seal.results] == [(G + 3, 1)]
    assert rejected(out) == {Reason.SUPERSEDED: 1}


def test_identical_reading_again_is_a_harmless_duplicate(registry, net, ledger):
    r = net.reading(HOUSE1, G, 1000)
    net.settle(ledger, net.batch([r]))
    out = net.settle(ledger, net.batch([r, net.reading(HOUSE1, G + 1, 5)], signer=None))
    assert rejected(out) == {Reason.DUPLICATE: 1}
    assert [(x.period, x.version) for x in out.seal.results] == [(G + 1, 1)]
    assert out.seal.evidence == ()


def test_readings_outside_the_window_are_refused_in_the_seal(registry, net, ledger):
    for _ in range(6):
        net.settle(ledger)
    h = ledger.next_height
    assert h == G + 6
    out = net.settle(ledger, net.batch([net.reading(HOUSE1, G + 1, 5), net.reading(HOUSE1, G + 2, 5),
                                        net.reading(HOUSE1, h, 5)]))
    assert rejected(out) == {Reason.PERIOD_TOO_OLD: 1}  # G+1 < h - 4; G+2 is still correctable
    assert [(x.period, x.version) for x in out.seal.results] == [(G + 2, 2), (h, 1)]


def test_conflicting_readings_become_evidence_never_overwrite(registry, net, ledger):
    a, b = net.reading(HOUSE1, G, 1000), net.reading(HOUSE1, G, 1001)
    batch_a, batch_b = net.batch([a]), net.batch([b])
    out = net.settle(ledger, batch_a, batch_b)
    first, second = (a, b) if batch_a.digest() < batch_b.digest() else (b, a)
    assert entry(ledger, G, HOUSE1)[2] == first.import_wh  # digest order decides which one counts
    assert [(e.kept, e.conflicting) for e in out.seal.evidence] == [(first, second)]
    assert rejected(out) == {Reason.CONFLICTING_DUPLICATE: 1}

    # against a settled reading: the kept one is rebuilt from the state and still carries a valid signature
    c = net.reading(HOUSE1, G, 7)
    out = net.settle(ledger, net.batch([c, net.reading(HOUSE2, G + 1, 1)]))
    (ev,) = out.seal.evidence
    assert ev.kept == first and ev.conflicting == c
    assert verify(ev.kept.meter_key, ev.kept.sig, READING_DOMAIN, CHAIN, ev.kept.body())
    assert entry(ledger, G, HOUSE1)[2] == first.import_wh

    # the same conflicting reading once more is not reported twice
    out = net.settle(ledger, net.batch([c, net.reading(HOUSE2, G + 2, 1)], ))
    assert out.seal.evidence == () and rejected(out) == {Reason.CONFLICTING_DUPLICATE: 1}


class TestRegisters:
    def reg(self, net, period, r_imp, r_exp=0, version=1):
        return net.reading(REG, period, r_imp, r_exp, register=True, version=version)

    def test_register_differences_are_the_energies(self, registry, net, ledger):
        r1, r2, r3 = 1_000_000, 1_000_500, 1_001_500
        net.settle(ledger, net.batch([self.reg(net, G, r1)]))
        assert entry(ledger, G, REG)[:4] == (1, MISSING, 0, 0)  # the first register reading is the baseline
        net.settle(ledger, net.batch([self.reg(net, G + 1, r2)]))
        assert entry(ledger, G + 1, REG)[:4] == (1, MEASURED, 500, 0)
        net.settle(ledger)  # no reading: the register meter's value is missing (not 0) until the next reading
        assert entry(ledger, G + 2, REG)[:4] == (1, MISSING, 0, 0)
        out = net.settle(ledger, net.batch([self.reg(net, G + 3, r3 + 1)]))
        # the gap's energy is spread over the gap (the odd Wh to the earliest period), never all in one period
        assert entry(ledger, G + 3, REG)[:4] == (1, MEASURED, 500, 0)
        assert entry(ledger, G + 2, REG)[:4] == (2, SUBSTITUTED, 501, 0)
        assert [(r.period, r.version) for r in out.seal.results] == [(G + 2, 2), (G + 3, 1)]
        total = sum(entry(ledger, p, REG)[2] for p in range(G, G + 4))
        assert total == r3 + 1 - r1

        # the missing reading arrives late: both neighbours get new versions, the sum stays r3 - r1
        out = net.settle(ledger, net.batch([self.reg(net, G + 2, 1_000_800)]))
        assert [(r.period, r.version) for r in out.seal.results] == [(G + 2, 3), (G + 3, 2), (G + 4, 1)]
        assert entry(ledger, G + 2, REG)[:4] == (3, CORRECTED, 300, 0)
        assert entry(ledger, G + 3, REG)[:4] == (2, CORRECTED, 701, 0)
        assert G not in ledger.state.entries  # left the window (its energy was the 0 of the baseline)
        assert sum(entry(ledger, p, REG)[2] for p in range(G + 1, G + 4)) == r3 + 1 - r1

    def test_a_register_never_goes_down(self, registry, net, ledger):
        net.settle(ledger, net.batch([self.reg(net, G, 5000, 100)]))
        out = net.settle(ledger, net.batch([self.reg(net, G + 1, 4999, 100), net.reading(HOUSE1, G + 1, 1)]))
        assert rejected(out) == {Reason.REGISTER_WENT_DOWN: 1}
        out = net.settle(ledger, net.batch([self.reg(net, G + 2, 6000, 99)]))
        assert rejected(out) == {Reason.REGISTER_WENT_DOWN: 1}
        net.settle(ledger, net.batch([self.reg(net, G + 3, 7000, 100)]))
        # a late reading between two others must lie between them
        out = net.settle(ledger, net.batch([self.reg(net, G + 2, 7001, 100)]))
        assert rejected(out) == {Reason.REGISTER_WENT_DOWN: 1}
        assert entry(ledger, G + 3, REG)[:4] == (1, MEASURED, 666, 0)  # 2000 Wh spread over G+1..G+3
        assert sum(entry(ledger, p, REG)[2] for p in range(G + 1, G + 4)) == 2000

    def test_register_rise_is_bounded_by_max_power_over_the_gap(self, registry, net, ledger):
        net.settle(ledger, net.batch([self.reg(net, G, 0)]))
        net.settle(ledger)
        out = net.settle(ledger, net.batch([self.reg(net, G + 2, 2 * MAX_30KW + 1)]))
        assert rejected(out) == {Reason.ABOVE_MAX_POWER: 1}
        out = net.settle(ledger, net.batch([self.reg(net, G + 3, 3 * MAX_30KW)]))
        assert rejected(out) == {} and [entry(ledger, p, REG)[2] for p in range(G + 1, G + 4)] == [MAX_30KW] * 3

    def test_an_interval_reading_breaks_the_register_chain(self, registry, net, ledger):
        net.settle(ledger, net.batch([self.reg(net, G, 100)]))
        net.settle(ledger, net.batch([net.reading(REG, G + 1, 40)]))
        net.settle(ledger, net.batch([self.reg(net, G + 2, 200)]))
        assert entry(ledger, G + 2, REG)[:4] == (1, MISSING, 0, 0)  # not 100: G+1's 40 Wh would count twice

    def test_a_correction_keeps_its_kind(self, registry, net, ledger):
        net.settle(ledger, net.batch([self.reg(net, G, 100)]))
        out = net.settle(ledger, net.batch([net.reading(REG, G, 5, version=2), net.reading(HOUSE1, G + 1, 1)]))
        assert rejected(out) == {Reason.MALFORMED: 1}


class TestSchedules:
    def test_matched_one_sided_and_mismatched(self, registry, net, ledger):
        items = (net.schedule(G1, G2, G, 500) + net.schedule(G2, G3, G, 70, "from")
                 + net.schedule(G3, G1, G, 10, "from") + net.schedule(G3, G1, G, 11, "to"))
        out = net.settle(ledger, net.batch([], items, signer=None))
        r = result(out, G)
        assert r.schedules == (ScheduleLine(G1, G2, 500),)
        assert {(i.from_group, i.to_group, i.status, i.from_wh, i.to_wh) for i in r.schedule_issues} == {
            (G2, G3, ONE_SIDED, (70,), ()), (G3, G1, MISMATCHED, (10,), (11,))}
        assert (group(r, G1).fpe, group(r, G2).fpi, group(r, G3).fpi, group(r, G3).fpe) == (500, 500, 0, 0)
        assert [group(r, g).imb for g in (G1, G2)] == [-500, 500]
        assert r.checks.schedule_net == 0

    def test_day_ahead_schedules_settle_in_their_own_period(self, registry, net, ledger):
        ahead = net.batch([], net.schedule(G1, G3, G, 5) + net.schedule(G1, G3, G + 1, 6), signer=None)
        out = net.settle(ledger, ahead)
        assert result(out, G).schedules == (ScheduleLine(G1, G3, 5),)
        out = net.settle(ledger)  # the acceptor offers the batch again for its next period
        assert out.seal.batches == (ahead.digest(),)
        assert result(out, G + 1).schedules == (ScheduleLine(G1, G3, 6),)
        out = net.settle(ledger)
        assert out.seal.batches == () and result(out, G + 2).schedules == ()

    def test_a_schedule_after_its_seal_does_not_count(self, registry, net, ledger):
        net.settle(ledger)
        late = net.batch([net.reading(HOUSE1, G + 1, 1)], net.schedule(G1, G2, G, 5))
        out = net.settle(ledger, late)
        assert rejected(out) == {Reason.PERIOD_TOO_OLD: 2}
        assert result(out, G + 1).schedules == ()

    def test_same_operator_on_both_sides(self, registry, net):
        from stromledger.registry import BalancingGroup, Registry

        from .tiny import key
        shared = [BalancingGroup(g.eic, g.name, key(G1).public) if g.eic == G2 else g
                  for g in registry.balancing_groups.values()]
        reg = Registry(registry.params, registry.validators, registry.grid_areas.values(), shared,
                       registry.meter_operators.values(), registry.meter_points.values(), registry.assignments)
        from stromledger.cascade import Ledger
        from .tiny import Net
        out = Net(reg).settle(Ledger(reg), Net(reg).batch([], Net(reg).schedule(G1, G2, G, 9, "from")))
        assert result(out, G).schedules == (ScheduleLine(G1, G2, 9),)


def test_supplier_switch_moves_the_meter_point(registry, net, ledger):
    for p in range(G, G + 3):
        out = net.settle(ledger, net.batch([net.reading(SWITCH, p, 300)]))
    switched = result(out, G + 2)
    assert registry.group_of(SWITCH, G + 1) == G1 and registry.group_of(SWITCH, G + 2) == G3
    cells = {(c.area, c.group): c.wd for c in switched.cells}
    assert cells[(A2, G3)] == 300 and (A2, G1) not in cells


def test_build_does_not_touch_the_state(registry, net, ledger):
    net.settle(ledger, net.batch(full_period(net, G)))
    before = ledger.state.encode()
    for b in [net.batch([net.reading(PV, G, 1, 1)]), net.batch([net.reading(HOUSE1, G + 1, 5)])]:
        ledger.admit(b, None)
    ledger.propose()
    build_seal(registry, ledger.state, G + 1, ledger.acceptor.eligible(G + 1))
    assert ledger.state.encode() == before


def test_batch_eligibility(registry, net, ledger):
    b = net.batch([net.reading(HOUSE1, G, 1)])
    net.settle(ledger, b)
    with pytest.raises(NotEligible):  # already settled: nothing left in it
        build_seal(registry, ledger.state, G + 1, [b])
    fresh = net.batch([net.reading(HOUSE1, G + 1, 1)])
    with pytest.raises(NotEligible):
        build_seal(registry, ledger.state, G + 1, [fresh, fresh])
    with pytest.raises(NotEligible):  # a reading for a later period: not yet
        build_seal(registry, ledger.state, G + 1, [net.batch([net.reading(HOUSE1, G + 2, 1)])])
    with pytest.raises(ValueError):
        build_seal(registry, ledger.state, G + 5, [])
    with pytest.raises(ValueError):
        build_seal(registry, SettledState(b"\x01" * 32), G, [])
