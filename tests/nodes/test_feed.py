"""The devnet feeds: deterministic, within max power, realistic losses, registers that never go down, the
inbox, and schedules both sides derive alike."""

from __future__ import annotations

import pytest

from nodes.feed import (
    InboxError, InboxFeed, SimulatedFeed, devnet_trades, own_schedules, supplier_groups,
)
from stromledger.cascade import check_reading, make_batch
from nodes.datagen.devnet_genesis import devnet_key, devnet_registry
from stromledger.cascade.messages import Batch

REG = devnet_registry(validators=4, balancing_groups=3, meters=120, period_seconds=10, seed=3)
G = REG.genesis_period
SPAN = range(G, G + 96 * 2, 3)  # two simulated days, every third quarter-hour


def area_balance(energies: dict, area: str) -> tuple[int, int]:
    """(loss, withdrawal) of an area, computed as the cascade does."""
    inj = wd = exin = exout = 0
    for m, (imp, exp) in energies.items():
        mp = REG.meter_points[m]
        if mp.kind == "boundary":
            if mp.area_out == area:
                exout, exin = exout + imp, exin + exp
            if mp.area_in == area:
                exin, exout = exin + imp, exout + exp
        elif mp.grid_area == area:
            wd, inj = wd + imp, inj + exp
    return inj + exin - wd - exout, wd


def test_deterministic_by_seed():
    a, b = SimulatedFeed(REG, seed=1), SimulatedFeed(REG, seed=1)
    for p in (G, G + 40, G + 41):
        assert a.energies(p) == b.energies(p)
        assert a.readings(p, REG.malo_order[:20]) == b.readings(p, REG.malo_order[:20])
    assert SimulatedFeed(REG, seed=2).energies(G + 40) != a.energies(G + 40)


def test_never_above_max_power_and_readings_valid():
    feed = SimulatedFeed(REG, seed=1)
    for p in SPAN:
        for m, (imp, exp) in feed.energies(p).items():
            cap = REG.max_wh(m)
            assert 0 <= imp <= cap and 0 <= exp <= cap, (m, p, imp, exp, cap)
    for r in feed.readings(G + 5, REG.malo_order):
        assert check_reading(REG, r, G + 6) is None  # signed with the devnet keys the genesis lists


def test_boundary_flows_leave_a_loss_of_a_few_percent():
    feed = SimulatedFeed(REG, seed=1)
    shares = []
    for p in SPAN:
        e = feed.energies(p)
        if p == REG.genesis_period:  # first register readings are baselines: the cascade settles 0 Wh
            e = {**e, **{m: (0, 0) for m in feed.register_meters}}
        for area in REG.grid_areas:
            loss, wd = area_balance(e, area)
            assert loss > 0
            shares.append(loss / wd)
    assert 0.015 <= min(shares) and max(shares) <= 0.055
    assert len({round(s, 3) for s in shares}) > 10  # it varies


def test_pv_follows_the_sun():
    feed = SimulatedFeed(REG, seed=1)
    pv = [m for m in REG.malo_order if REG.meter_points[m].source == "pv"]
    assert pv
    night = G  # 04:00 UTC on 15 June
    noon = G + 32  # 12:00 UTC
    assert sum(feed.energies(night)[m][1] for m in pv) == 0
    assert sum(feed.energies(noon)[m][1] for m in pv) > 0


def test_register_meters_count_up():
    feed = SimulatedFeed(REG, seed=1)
    assert feed.register_meters and all(REG.meter_points[m].kind != "boundary" for m in feed.register_meters)
    m = sorted(feed.register_meters)[0]
    values = [feed.values(m, p) for p in range(G, G + 30)]
    assert all(v[0] for v in values)
    for (_, i0, e0), (_, i1, e1), p in zip(values, values[1:], range(G + 1, G + 30)):
        assert (i1 - i0, e1 - e0) == feed.meter_energy(m, p)
    fresh = SimulatedFeed(REG, seed=1)  # a restarted node computes the same registers from scratch
    assert fresh.values(m, G + 29) == values[-1]


def test_trades_match_from_both_sides_and_some_are_one_sided():
    groups = supplier_groups(REG)
    assert len(groups) == 3 and not set(groups) & set(REG.loss_groups)
    one_sided = 0
    for p in range(G, G + 21):
        trades = devnet_trades(REG, p, seed=1)
        assert trades == devnet_trades(REG, p, seed=1)
        for t in trades:
            signers = [g for g in groups if (t.from_group, t.to_group, p, t.wh) in own_schedules(trades, [g])]
            assert signers == sorted([t.from_group] if t.one_sided else [t.from_group, t.to_group])
            assert t.wh > 0
        pairs = [(t.from_group, t.to_group) for t in trades]
        assert len(pairs) == len(set(pairs))  # a one-sided schedule never collides with a real trade
        one_sided += sum(t.one_sided for t in trades)
    assert one_sided == 3  # every 7th period


def test_inbox(tmp_path):
    inbox = InboxFeed(tmp_path / "inbox")
    feed = SimulatedFeed(REG, seed=1)
    key = devnet_key("meter-operator-1")
    unsigned = Batch(REG.chain_id, key.public, tuple(feed.readings(G, REG.malo_order[:3])), (), bytes(64))
    (inbox.directory / "a.batch").write_bytes(unsigned.encode())
    (inbox.directory / "b.batch").write_bytes(b"not a batch")
    (inbox.directory / "c.tmp").write_bytes(b"still being written")
    assert [p.name for p in inbox.pending()] == ["a.batch", "b.batch"]
    batch = inbox.load(inbox.pending()[0], key, REG.chain_id)
    assert batch == make_batch(key, REG.chain_id, unsigned.readings)  # a zero signature is signed by the node
    with pytest.raises(InboxError):
        inbox.load(inbox.pending()[1], key, REG.chain_id)
    inbox.mark_sent(inbox.pending()[0])
    assert (inbox.sent_dir / "a.batch").exists() and [p.name for p in inbox.pending()] == ["b.batch"]
