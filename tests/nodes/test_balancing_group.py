"""The balancing-group node against stand-in validators on an in-memory network, time driven by hand."""

from __future__ import annotations

import dataclasses
import logging

from nodes.balancing_group import BalancingGroupNode
from nodes.feed import SimulatedFeed, devnet_trades, own_schedules, supplier_groups
from nodes.meter_point import own_meters
from stromledger.cascade import PeriodSeal, make_batch
from stromledger.cascade.messages import ONE_SIDED
from stromledger.consensus import Commit
from stromledger.net import MemoryHub
from stromledger.store import Store
from test_light import G, OPERATORS, PS, REG, VKEYS, Clock, StandIn, certify, make_ctx

FEED = SimulatedFeed(REG, seed=1, register_every=0)
TRADES = SimulatedFeed(REG, seed=1)  # the nodes' schedules follow the meter-point nodes' feed
GROUPS = supplier_groups(REG)
MY_GROUP = GROUPS[0]  # bg-operator-1's


def open_bg(hub, tmp_path, clock, label="bg-operator-1", **cfg):
    ctx = make_ctx(tmp_path / label, "balancing-group", label, balancing_group={"schedules": "none", "chain": "genesis", **cfg})
    store = Store.open_home(ctx.config.home)
    store.check_chain(REG.chain_id, REG.hash)
    hub.detach(ctx.key.public)
    return BalancingGroupNode(ctx, store, hub.endpoint(ctx.key.public), clock=clock)


def submit_readings(v: StandIn, period: int) -> list[bytes]:
    """Both meter operators' readings of `period`, shortly after it ends; the digests of their batches."""
    v.clock.t = (period + 1) * PS + 0.5
    digests = []
    for op in OPERATORS:
        admission = v.admit(make_batch(op, REG.chain_id, FEED.readings(period, own_meters(REG, op.public))).encode())
        assert admission.stored
        digests.append(admission.digest)
    return digests


async def test_follows_verifies_and_continues_after_a_restart(tmp_path):
    async with MemoryHub() as hub:
        clock = Clock((G + 3) * PS)
        v = StandIn(hub.endpoint(VKEYS[0].public), clock)
        for p in (G, G + 1):
            submit_readings(v, p)
            v.seal()
        bg = open_bg(hub, tmp_path, clock)
        assert bg.groups == [MY_GROUP]
        assert await bg.sync_once() == 2 and await bg.sync_once() == 0
        assert bg.state == v.ledger.state  # the same settled state, rebuilt from the batches
        s = bg.status()
        assert s["verified"] == {"heights": 2, "last_height": G + 1, "discrepancies": 0}
        sealed = next(g for g in PeriodSeal.decode(v.commits[G + 1].value).results[-1].groups if g.group == MY_GROUP)
        mine = s["results"][MY_GROUP]
        assert (mine["period"], mine["verified"], mine["inj"], mine["wd"], mine["imb"]) == \
            (G + 1, True, sealed.inj, sealed.wd, sealed.imb)
        assert sum(mine["mix"].values()) == sealed.inj
        bg.store.close()

        bg = open_bg(hub, tmp_path, clock)  # restart: continues after its last verified height
        assert bg.next_height == G + 2 and bg.status()["verified"]["heights"] == 2
        submit_readings(v, G + 2)
        v.seal()
        assert await bg.sync_once() == 1 and bg.state == v.ledger.state
        bg.store.close()


async def test_a_tampered_seal_fails_its_certificate_and_is_fetched_elsewhere(tmp_path, caplog):
    async with MemoryHub() as hub:
        clock = Clock((G + 3) * PS)
        liar = StandIn(hub.endpoint(VKEYS[0].public), clock)
        submit_readings(liar, G)
        liar.seal()
        honest = StandIn(hub.endpoint(VKEYS[1].public), clock, key=VKEYS[1])
        honest.commits, honest.batches = liar.commits, liar.batches
        good = liar.commits[G]
        seal = PeriodSeal.decode(good.value)
        result = seal.results[-1]
        groups = tuple(dataclasses.replace(g, imb=g.imb + 1000) if g.group == MY_GROUP else g for g in result.groups)
        forged = dataclasses.replace(seal, results=(dataclasses.replace(result, groups=groups),)).encode()
        liar.served[G] = Commit(forged, good.certificate)  # the real certificate, another seal

        bg = open_bg(hub, tmp_path, clock)
        with caplog.at_level(logging.ERROR):
            assert await bg.sync_once() == 0
        assert bg.next_height == G and bg.ctx.rejections["commit_certificate_wrong_hash"] == 1
        assert any("REFUSED" in r.getMessage() for r in caplog.records)
        liar.served[G] = Commit(forged, certify(G, bytes(32)))  # a certificate for some other value is no better
        assert await bg.sync_once() == 1  # asked the other validator this time
        assert bg.status()["verified"] == {"heights": 1, "last_height": G, "discrepancies": 0}
        bg.store.close()


async def test_a_certified_seal_not_built_from_its_batches_is_a_discrepancy(tmp_path, caplog):
    async with MemoryHub() as hub:
        clock = Clock((G + 3) * PS)
        v = StandIn(hub.endpoint(VKEYS[0].public), clock)
        _, second = submit_readings(v, G)
        v.seal(drop=frozenset([second]))  # totals from both operators' batches, but only the first listed
        submit_readings(v, G + 1)
        v.seal()
        bg = open_bg(hub, tmp_path, clock)
        with caplog.at_level(logging.ERROR):
            assert await bg.sync_once() == 2  # the discrepancy is reported, then the node goes on
        s = bg.status()
        assert s["verified"] == {"heights": 2, "last_height": G + 1, "discrepancies": 1}
        d = s["discrepancies"][0]
        assert d["height"] == G and d["reason"] == "seal_mismatch" and "INJ" in d["groups"][MY_GROUP] + \
            d["groups"][MY_GROUP].replace("WD", "INJ")
        assert s["results"][MY_GROUP]["verified"] and s["results"][MY_GROUP]["period"] == G + 1
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert any("DISCREPANCY" in e and MY_GROUP in e for e in errors)
        bg.store.close()


async def test_a_certified_seal_carrying_a_bad_last_commit_is_a_discrepancy(tmp_path):
    async with MemoryHub() as hub:
        clock = Clock((G + 3) * PS)
        v = StandIn(hub.endpoint(VKEYS[0].public), clock)
        submit_readings(v, G)
        v.seal()
        good = v.commits[G]
        v.served[G] = good  # sync hands out the real certificate of G ...
        weak = certify(G, good.certificate.value_hash, signers=(0, 1))
        v.commits[G] = Commit(good.value, weak)  # ... but the seal of G + 1 carries one of 2 of 4 signers
        submit_readings(v, G + 1)
        assert PeriodSeal.decode(v.seal().seal_bytes).last_commit == weak.encode()
        bg = open_bg(hub, tmp_path, clock)
        assert await bg.sync_once() == 2
        s = bg.status()
        assert s["verified"] == {"heights": 2, "last_height": G + 1, "discrepancies": 1}
        assert [(d["height"], d["reason"]) for d in s["discrepancies"]] == [(G + 1, "bad_last_commit")]
        assert not s["results"][MY_GROUP]["verified"]
        bg.store.close()


async def test_schedules_of_both_sides_match_in_the_seal(tmp_path):
    async with MemoryHub() as hub:
        clock = Clock(G * PS + 1)
        v = StandIn(hub.endpoint(VKEYS[0].public), clock)
        nodes = [open_bg(hub, tmp_path, clock, f"bg-operator-{i}", schedules="simulated", schedule_lead=2)
                 for i in (1, 2, 3)]
        for n in nodes:
            assert n.schedule_due() == [p for p in (G, G + 1, G + 2) if own_schedules(devnet_trades(REG, p, 1, TRADES), n.groups)]
            await n.flush()
        assert sum(n.status()["schedules"]["submitted"] for n in nodes) == sum(
            2 if {t.from_group, t.to_group} <= set(GROUPS) and not t.one_sided else 1  # the exchange signs nothing
            for p in (G, G + 1, G + 2) for t in devnet_trades(REG, p, 1, TRADES))
        assert all(n.status()["schedules"]["rejected"] == 0 for n in nodes)
        for p in (G, G + 1, G + 2):
            result = v.seal().seal.results[-1]
            trades = devnet_trades(REG, p, 1, TRADES)
            assert sorted((s.from_group, s.to_group, s.wh) for s in result.schedules) == \
                sorted((t.from_group, t.to_group, t.wh) for t in trades if not t.one_sided)
            assert [(i.from_group, i.to_group, i.status, i.from_wh, i.to_wh) for i in result.schedule_issues] == \
                [(t.from_group, t.to_group, ONE_SIDED, (t.wh,), ()) for t in trades if t.one_sided]
            assert any(g.fpi or g.fpe for g in result.groups)
        assert G % 7 == 0  # so the first period has the deliberately one-sided schedule
        me = nodes[0]
        assert await me.sync_once() == 3 and me.status()["verified"]["discrepancies"] == 0
        last = me.status()["results"][MY_GROUP]
        expected_fpe = sum(t.wh for t in devnet_trades(REG, G + 2, 1, TRADES) if t.from_group == MY_GROUP and not t.one_sided)
        assert last["period"] == G + 2 and last["fpe"] == expected_fpe
        for n in nodes:
            n.store.close()
        again = open_bg(hub, tmp_path, clock, "bg-operator-1", schedules="simulated", schedule_lead=2)
        assert again.schedule_due() == []  # a restart does not schedule the same periods twice
        again.store.close()
