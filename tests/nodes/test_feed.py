"""The devnet feeds: deterministic, within max power, realistic losses, registers that never go down, the
inbox, and schedules both sides derive alike."""

from __future__ import annotations

import datetime as dt

import pytest

from nodes.feed import (
    InboxError, InboxFeed, SimulatedFeed, default_start, devnet_trades, own_schedules, parse_start, portfolio_wh,
    supplier_groups,
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


def test_pv_follows_the_sun_from_the_chosen_start():
    feed = SimulatedFeed(REG, seed=1, start=parse_start("2026-06-21T00:00"))
    assert feed.instant(G + 44) == dt.datetime(2026, 6, 21, 11, 0, tzinfo=dt.timezone.utc)
    pv = [m for m in REG.malo_order if REG.meter_points[m].source == "pv"]
    assert pv
    night = G  # 02:00 summer time
    noon = G + 44  # 13:00 summer time
    assert sum(feed.energies(night)[m][1] for m in pv) == 0
    assert sum(feed.energies(noon)[m][1] for m in pv) > 0
    assert SimulatedFeed(REG, seed=1).instant(G) == default_start(REG)  # by default: the genesis time of day


def test_energies_computed_once_load_the_same(tmp_path):
    feed = SimulatedFeed(REG, seed=1)
    path = feed.save_energies(tmp_path / "e.npz", range(5))
    loaded = SimulatedFeed(REG, seed=1, energies=path)
    assert all(loaded.energies(p) == feed.energies(p) for p in range(G, G + 7))  # beyond the file: computed
    other = SimulatedFeed(REG, seed=2, energies=path)  # another seed: the file does not apply
    assert other.energies(G + 1) == SimulatedFeed(REG, seed=2).energies(G + 1)
    (tmp_path / "bad.npz").write_bytes(b"not numpy")
    assert SimulatedFeed(REG, seed=1, energies=tmp_path / "bad.npz").energies(G) == feed.energies(G)
    with pytest.raises(ValueError):
        parse_start("21.06.2026")


def test_households_are_not_zero_and_throughput_is_quarter_hours():
    feed = SimulatedFeed(REG, seed=1, start=parse_start("2026-01-14T18:00"))  # a winter evening
    homes = [m for m in REG.malo_order if REG.meter_points[m].kind == "consumer"
             and feed.profiles.specs[feed._order.index(m)].load_class == "h0_dyn"]
    wh = [feed.energies(G)[m][0] for m in homes]
    assert len(homes) > 30 and sum(w >= 50 for w in wh) > len(homes) // 2  # 200 W+ a quarter hour, not 0-1 Wh


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


def test_suppliers_schedule_their_forecast_at_the_exchange_and_some_schedules_are_one_sided():
    groups = supplier_groups(REG)
    assert len(groups) == 3 and not set(groups) & set(REG.loss_groups)
    exchange = next(iter(REG.external_parties))
    feed = SimulatedFeed(REG, seed=1)
    one_sided = 0
    for p in range(G, G + 21):
        trades = devnet_trades(REG, p, 1, feed)
        assert trades == devnet_trades(REG, p, 1, SimulatedFeed(REG, seed=1))  # any node computes the same
        truth = portfolio_wh(REG, feed, p)
        for t in trades:
            signers = [g for g in groups if (t.from_group, t.to_group, p, t.wh) in own_schedules(trades, [g])]
            assert t.wh > 0
            if t.one_sided:
                assert signers == [t.from_group] and exchange not in (t.from_group, t.to_group)
                continue
            assert exchange in (t.from_group, t.to_group)  # one schedule per supplier, with the exchange
            g = t.to_group if t.from_group == exchange else t.from_group
            assert signers == [g]  # the exchange is outside the network: the supplier alone signs
            net = t.wh if t.from_group == exchange else -t.wh
            assert net * truth[g] > 0 and abs(net - truth[g]) <= 0.15 * abs(truth[g])  # the forecast, a bit off
        one_sided += sum(t.one_sided for t in trades)
    assert one_sided == 3  # every 7th period
    assert [t for t in devnet_trades(REG, G + 1, 1) if not t.one_sided] == []  # no feed: no forecast


def test_inbox(tmp_path):
    inbox = InboxFeed(tmp_path / "inbox")
    feed = SimulatedFeed(REG, seed=1)
    key = devnet_key("meter-operator-1")
    unsigned = Batch(REG.chain_id, key.public, tuple(feed.readings(G, REG.malo_order[:3])), (), (), (), bytes(64))
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


def test_a_node_config_with_a_bad_simulated_start_is_refused_in_one_line():
    from nodes.home import SCHEMA

    start = SCHEMA["meter_point"]["start"]
    assert start.problem("2026-06-21T00:00") is None and start.problem("2026-06-21T00:00Z") is None
    assert "must be a time like" in start.problem("21.06.2026") and "must be a time" in start.problem(7)
    assert SCHEMA["balancing_group"]["start"].problem("yesterday")
