"""Properties over random registries, readings and schedules (hypothesis; example counts kept small)."""

from __future__ import annotations

import os
from collections import defaultdict

from hypothesis import HealthCheck, given, settings, strategies as st

from stromledger.cascade import (
    MISSING, Ledger, Reason, SettledState, build_seal, check_batch, check_invariants, make_batch, sign_reading,
    sign_schedule,
)
from nodes.datagen.synthetic import Synthetic, make_synthetic

from .tiny import G, HOUSE1, MAX_30KW, REG, Net, make_registry

# CASCADE_EXAMPLES=500 pytest tests/cascade/test_properties.py searches deeper than the CI default.
EXAMPLES = int(os.environ.get("CASCADE_EXAMPLES", "25"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def grids(draw) -> Synthetic:
    return make_synthetic(draw(st.integers(1, 14)), draw(st.integers(0, 9999)), areas=draw(st.integers(1, 3)),
                          groups=draw(st.integers(2, 4)), switches=draw(st.integers(0, 2)), correction_window=2)


@st.composite
def readings_for(draw, grid: Synthetic, period: int, *, everyone: bool = False, version: int = 1):
    reg = grid.registry
    out = []
    for m in reg.malo_order:
        if everyone or draw(st.booleans()):
            top = reg.max_wh(m)
            imp, exp = draw(st.integers(0, top)), draw(st.integers(0, top))
            out.append(sign_reading(grid.meter_key(m), reg.chain_id, m, period, imp, exp, version=version))
    return out


@st.composite
def schedules_for(draw, grid: Synthetic, period: int):
    groups = sorted(grid.group_keys)
    out = []
    for _ in range(draw(st.integers(0, 4))):
        a, b = draw(st.sampled_from(groups)), draw(st.sampled_from(groups))
        if a == b:
            continue
        wh = draw(st.integers(1, 10**6))
        side = draw(st.sampled_from(["both", "both", "from", "to", "mismatch"]))
        chain = grid.registry.chain_id
        if side in ("both", "from", "mismatch"):
            out.append(sign_schedule(grid.group_keys[a], chain, a, b, period, wh))
        if side in ("both", "to"):
            out.append(sign_schedule(grid.group_keys[b], chain, a, b, period, wh))
        if side == "mismatch":
            out.append(sign_schedule(grid.group_keys[b], chain, a, b, period, wh + 1))
    return out


def batches_of(draw, grid: Synthetic, items: list, schedules: list) -> list:
    """Split the items over one to three batches (at random), as different submitters would."""
    n = draw(st.integers(1, 3))
    parts: list[list] = [[] for _ in range(n)]
    for x in items:
        parts[draw(st.integers(0, n - 1))].append(x)
    chain = grid.registry.chain_id
    out = [make_batch(grid.submitter, chain, p) for p in parts if p]
    if schedules:
        out.append(make_batch(grid.submitter, chain, (), schedules))
    return list({b.digest(): b for b in out}.values())  # equal parts are one and the same batch


@SETTINGS
@given(st.data())
def test_the_four_invariants_hold_exactly(data):
    grid = data.draw(grids())
    reg = grid.registry
    ledger = Ledger(reg)
    for i in range(3):
        p = reg.genesis_period + i
        items = data.draw(readings_for(grid, p, everyone=(i == 0)))
        if i:  # late readings, meter corrections and conflicts for the previous period
            items += data.draw(readings_for(grid, p - 1, version=data.draw(st.integers(1, 2))))
        for b in batches_of(data.draw, grid, items, data.draw(schedules_for(grid, p))):
            ledger.admit(b, None)
        out = ledger.propose()
        ledger.commit(out.seal_bytes)
        for r in out.seal.results:
            assert check_invariants(reg, r) is None
            assert r.checks.area_residual == 0 and r.checks.schedule_net == 0
            assert r.checks.imbalance_sum == r.net_export == sum(g.imb for g in r.groups)
        if i == 0:
            assert_attribution(reg, items, out.seal.results[-1], p)


def assert_attribution(reg, readings, result, period):
    """Every meter point's energy lands in exactly one cell, computed here from the readings directly."""
    cells = defaultdict(lambda: [0, 0])
    exin, exout = defaultdict(int), defaultdict(int)
    for r in readings:
        mp = reg.meter_points[r.malo_id]
        if mp.kind == "boundary":
            exout[mp.area_out] += r.import_wh
            exin[mp.area_in] += r.import_wh
            exin[mp.area_out] += r.export_wh
            exout[mp.area_in] += r.export_wh
        else:
            c = cells[mp.grid_area, reg.group_of(r.malo_id, period)]
            c[0] += r.export_wh
            c[1] += r.import_wh
    assert {(c.area, c.group): [c.inj, c.wd] for c in result.cells} == dict(cells)
    for a in result.areas:
        assert (a.exin, a.exout) == (exin[a.area], exout[a.area])
    assert result.net_export == sum(exout[a] - exin[a] for a in reg.grid_areas)


@SETTINGS
@given(st.data())
def test_seal_bytes_do_not_depend_on_arrival_order(data):
    grid = data.draw(grids())
    reg = grid.registry
    p = reg.genesis_period
    items = data.draw(readings_for(grid, p)) + data.draw(readings_for(grid, p))  # may conflict
    batches = batches_of(data.draw, grid, items, data.draw(schedules_for(grid, p)))
    seals, settled = set(), set()
    for order in (batches, data.draw(st.permutations(batches)), list(reversed(batches))):
        ledger = Ledger(reg)
        for b in order:
            ledger.admit(b.encode(), None)
        seal = ledger.propose().seal
        seals.add(seal.encode())
        settled.add((seal.results, seal.evidence))
        # every batch listed, redundant ones too: the same results (a node only holds batches that add
        # something, so its seal may list fewer)
        everything = build_seal(reg, SettledState.genesis(reg), p, order).seal
        settled.add((everything.results, everything.evidence))
    assert len(seals) == 1 and len(settled) == 1


@SETTINGS
@given(st.data())
def test_changing_any_single_wh_changes_the_seal(data):
    grid = data.draw(grids())
    reg = grid.registry
    p = reg.genesis_period
    readings = data.draw(readings_for(grid, p, everyone=True))
    i = data.draw(st.integers(0, len(readings) - 1))
    field = data.draw(st.sampled_from(["import_wh", "export_wh"]))
    r = readings[i]
    value = getattr(r, field)
    new = value - 1 if value == reg.max_wh(r.malo_id) else value + 1
    changed = sign_reading(grid.meter_key(r.malo_id), reg.chain_id, r.malo_id, p,
                           new if field == "import_wh" else r.import_wh,
                           new if field == "export_wh" else r.export_wh)
    state = SettledState.genesis(reg)
    a = build_seal(reg, state, p, [make_batch(grid.submitter, reg.chain_id, readings)])
    b = build_seal(reg, state, p, [make_batch(grid.submitter, reg.chain_id,
                                              readings[:i] + [changed] + readings[i + 1:])])
    assert a.seal_hash != b.seal_hash
    ra, rb = a.seal.results[-1], b.seal.results[-1]
    assert ra.merkle_root != rb.merkle_root  # the result itself changes, not only the batch digest
    assert (ra.cells, ra.areas) != (rb.cells, rb.areas)


@settings(max_examples=EXAMPLES, deadline=None)
@given(r1=st.integers(0, 10**9), d2=st.integers(0, MAX_30KW), d3=st.integers(0, MAX_30KW),
       e2=st.integers(0, MAX_30KW), skip_middle=st.booleans(), late_middle=st.booleans(),
       drop=st.integers(1, 1000))
def test_register_energies_sum_to_the_register_difference(r1, d2, d3, e2, skip_middle, late_middle, drop):
    registry = make_registry()
    net = Net(registry)
    ledger = Ledger(registry)
    r2, r3 = r1 + d2, r1 + d2 + d3
    regs = {G: (r1, 5), G + 1: (r2, 5 + e2), G + 2: (r3, 5 + e2)}

    def reading(period):
        return net.reading(REG, period, *regs[period], register=True)

    net.settle(ledger, net.batch([reading(G)]))
    net.settle(ledger, net.batch([reading(G + 1)]) if not skip_middle else net.batch(
        [net.reading(HOUSE1, G + 1, 1)]))
    net.settle(ledger, net.batch([reading(G + 2)]))
    if skip_middle and late_middle:
        net.settle(ledger, net.batch([reading(G + 1)]))
    energy = [ledger.state.entries[p][REG] for p in (G + 1, G + 2)]
    assert sum(e[2] for e in energy) == r3 - r1
    assert sum(e[3] for e in energy) == e2
    assert ledger.state.entries[G][REG][1] == MISSING  # the baseline

    # a lower register reading is refused and changes nothing
    before = ledger.state.encode()
    lower = net.reading(REG, ledger.next_height, r3 - drop, 5 + e2, register=True) if r3 >= drop else \
        net.reading(REG, ledger.next_height, r3, 4 + e2, register=True)
    batch = net.batch([lower])
    cb = check_batch(registry, batch)
    assert cb.reading_verdicts == (None,)  # statically fine: only the history shows it went down
    out = build_seal(registry, ledger.state, ledger.next_height, [cb])
    assert {Reason(x.reason): x.count for x in out.seal.rejected} == {Reason.REGISTER_WENT_DOWN: 1}
    assert ledger.state.encode() == before
