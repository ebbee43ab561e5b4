"""Four validator processes in one trio test, each serving two area chains and the network chain on one
in-memory network: area seals commit, their checkpoints reach the network chain, and the network seal's
cells are the certified area cells."""

from __future__ import annotations

import json
import logging
import time

import pytest
import trio

from nodes.chains import ValidatorChains
from nodes.datagen.devnet_genesis import devnet_key, devnet_registry, meter_label
from nodes.home import NodeConfig
from nodes.protocol import chain_protocol
from nodes.runtime import NodeContext
from stromledger.cascade import PeriodSeal, Reason, Receipt, make_batch, sign_reading
from stromledger.chains import Checkpoint, NetworkSeal
from stromledger.codec import decode
from stromledger.consensus.config import ConsensusConfig
from stromledger.export import verify_export
from stromledger.export.writer import read_export
from stromledger.net import SUBMIT, MemoryHub
from stromledger.registry import NETWORK, view
from stromledger.store import Store


@pytest.mark.trio
async def test_area_chains_checkpoint_into_the_network_chain(tmp_path):
    start = int(time.time()) + 2
    genesis = devnet_registry(validators=4, balancing_groups=2, meters=24, period_seconds=1, genesis_start=start,
                              chain_id="test-chains", grace_seconds=1)
    areas = list(genesis.grid_areas)
    assert len(areas) == 2
    keys = [devnet_key(f"validator-{i}") for i in range(1, 5)]
    operator = devnet_key("meter-operator-1")
    config = ConsensusConfig(propose_ms=1500, prevote_ms=500, precommit_ms=500, resend_ms=500)
    p0 = genesis.genesis_period
    stores = []

    def opener(i):
        def open_store(scope):
            stores.append(Store(tmp_path / f"v{i}" / "chains" / f"{scope}.sqlite3"))
            return stores[-1]
        return open_store

    with trio.fail_after(60):
        async with MemoryHub() as hub:
            client = hub.endpoint(operator.public)
            async with trio.open_nursery() as nursery:
                processes = []
                for i, key in enumerate(keys):
                    name = f"validator-{i + 1}"
                    ctx = NodeContext(config=NodeConfig(home=tmp_path / f"v{i}", role="validator", name=name),
                                      key=key, registry=genesis, log=logging.getLogger(f"test.{name}"))
                    chains = ValidatorChains(ctx, hub.endpoint(key.public), opener(i), config=config,
                                             write_exports=(i == 0))
                    assert set(chains.chains) == {*areas, NETWORK}
                    await nursery.start(chains.serve)
                    processes.append(chains)

                # readings signed under the genesis chain id, one batch per area chain, to that chain's protocol
                await trio.sleep(max(0.0, genesis.period(p0).start - time.time()))  # the period must have begun
                operated = [m for m in genesis.meter_points.values() if m.meter_operator == next(
                    o.name for o in genesis.meter_operators.values() if o.public_key == operator.public)]
                for area in areas:
                    reg = view(genesis, area)
                    readings = [sign_reading(devnet_key(meter_label(m.malo_id)), genesis.chain_id, m.malo_id, p0,
                                             min(10, genesis.max_wh(m.malo_id)), 0)
                                for m in operated if m.malo_id in reg.meter_points]
                    batch = make_batch(operator, reg.chain_id, readings)
                    receipt = decode(await client.request(keys[0].public, chain_protocol(SUBMIT, area),
                                                          batch.encode(), timeout=5))
                    assert isinstance(receipt, Receipt) and receipt.accepted == len(readings), receipt

                # every network chain settles period p0 with both areas in (at version 1, or later when an
                # area's checkpoint missed the network's deadline)
                for proc in processes:
                    net = proc.network
                    while True:
                        r = net.ledger.state.results.get(p0)
                        if r is not None and not r.absent:
                            break
                        async with net.committed:
                            await net.committed.wait()
                for area in areas:  # an area's export of p0 is written once its height p0 + 1 commits
                    chain = processes[0].chains[area]
                    while not chain.exports:
                        async with chain.committed:
                            await chain.committed.wait()
                nursery.cancel_scope.cancel()

    final = processes[0].network.ledger.state.results[p0]
    area_cells = []
    for use in final.areas_used:  # the certified area seal each area's cells came from
        commit = processes[0].chains[use.area].store.get_commit(use.height)
        assert commit.value_hash == use.seal_hash
        area_seal = PeriodSeal.decode(commit.value)
        assert area_seal.chain_id == f"test-chains/area/{use.area}"
        assert area_seal.result(p0).version == use.version
        area_cells += list(area_seal.result(p0).cells)
    assert list(final.cells) == sorted(area_cells, key=lambda c: (c.area, c.group))
    for g in final.groups:
        assert g.inj == sum(c.inj for c in area_cells if c.group == g.group)
    # each area's export holds only its own meter points and verifies with the genesis alone
    for area in areas:
        manifests = sorted((tmp_path / "v0" / "data" / "chains" / area / "exports").rglob("manifest.json"))
        assert manifests
        files = read_export(manifests[0].parent)
        assert json.loads(files["manifest.json"])["scope"] == area
        report = verify_export(files, genesis)
        assert report.ok, str(report)
        assert report.meter_points == len(view(genesis, area).meter_points)
    heights = {p.network.store.last_height() for p in processes}
    for h in range(p0, min(heights) + 1):
        hashes = {p.network.store.get_commit(h).value_hash for p in processes}
        assert len(hashes) == 1, f"network chains disagree at height {h}"
        NetworkSeal.decode(processes[0].network.store.get_commit(h).value)
    for s in stores:
        s.close()


def validator_1(tmp_path, genesis, hub):
    """validator-1's process (every chain it sits on) on the hub, not yet serving: (ctx, chains, stores)."""
    key = devnet_key("validator-1")
    ctx = NodeContext(config=NodeConfig(home=tmp_path, role="validator", name="validator-1"), key=key,
                      registry=genesis, log=logging.getLogger("test.chains"))
    stores = []

    def open_store(scope):
        stores.append(Store(tmp_path / "chains" / f"{scope}.sqlite3"))
        return stores[-1]

    return ctx, ValidatorChains(ctx, hub.endpoint(key.public), open_store, write_exports=False), stores


@pytest.mark.trio
async def test_hostile_checkpoints_get_a_reason_and_change_nothing(tmp_path):
    genesis = devnet_registry(validators=4, balancing_groups=2, meters=12, period_seconds=60,
                              genesis_start=int(time.time()) + 3600, chain_id="test-chains-hostile")
    async with MemoryHub() as hub:
        ctx, chains, stores = validator_1(tmp_path, genesis, hub)
        other = devnet_key("validator-2").public
        await chains._on_checkpoint(other, b"\x92\x28\xc0")  # the checkpoint tag, then garbage
        await chains._on_checkpoint(other, b"not msgpack at all")
        await chains._on_checkpoint(other, Checkpoint("10YDE-NOSUCH--K", b"", b"", (), (), ()).encode())
    assert ctx.rejections["checkpoint_malformed"] == 2 and ctx.rejections["checkpoint_unknown_scope"] == 1
    assert not chains.network.ledger.checkpoints
    for s in stores:
        s.close()


@pytest.mark.trio
async def test_a_genesis_batch_is_routed_to_its_chains_and_a_refusal_comes_back(tmp_path):
    start = int(time.time()) - 600  # genesis 10 minutes ago: the current period is settleable
    genesis = devnet_registry(validators=4, balancing_groups=2, meters=24, period_seconds=60, genesis_start=start,
                              chain_id="test-chains-route")
    operator = devnet_key("meter-operator-1")
    now_period = int(time.time()) // 60
    operated = [m for m in genesis.meter_points.values() if m.meter_operator == next(
        o.name for o in genesis.meter_operators.values() if o.public_key == operator.public)]

    def batch(period):
        return make_batch(operator, genesis.chain_id, [
            sign_reading(devnet_key(meter_label(m.malo_id)), genesis.chain_id, m.malo_id, period, 1, 0)
            for m in operated]).encode()

    async with MemoryHub() as hub:
        _, chains, stores = validator_1(tmp_path, genesis, hub)
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                await nursery.start(chains.serve)
                receipt = Receipt.decode(await chains._on_submit(operator.public, batch(now_period)))
                assert receipt.batch_reason == 0 and receipt.accepted == len(operated)
                kept = {area: len(c.ledger.acceptor.batches) for area, c in chains.chains.items()}
                areas_hit = {a for m in operated for a in (m.grid_area, m.area_out, m.area_in) if a}
                assert {a for a, n in kept.items() if n} == areas_hit  # each area chain got its readings
                early = Receipt.decode(await chains._on_submit(operator.public, batch(now_period + 5)))
                assert early.batch_reason == int(Reason.PERIOD_IN_FUTURE)  # refused: the operator sends it again
                nursery.cancel_scope.cancel()
    for s in stores:
        s.close()


@pytest.mark.trio
async def test_a_market_change_goes_to_every_chain_and_a_wim_change_to_its_area(tmp_path):
    from nodes.datagen.synthetic import eic_for
    from stromledger.ids import make_market_partner_id
    from stromledger.registry import committee
    from stromledger.registry.market import GROUP_OPENED, approve_change, market_change, operator_change

    start = int(time.time()) - 600
    genesis = devnet_registry(validators=4, balancing_groups=2, meters=12, period_seconds=60, genesis_start=start,
                              chain_id="test-chains-market")
    effective = int(time.time()) // 60 + 5
    opening = market_change(GROUP_OPENED, effective, eic_for("NEWBG", 1), name="New group",
                            operator_key=devnet_key("new-brp").public,
                            market_partner_id=make_market_partner_id("990000000001"))
    opening = opening.with_approvals(approve_change(devnet_key(v.name), genesis.chain_id, opening)
                                     for v in committee(genesis, NETWORK))
    mp = next(m for m in genesis.meter_points.values() if m.kind != "boundary")
    grid = next(v.name for v in genesis.validators if v.grid_area == mp.grid_area)
    operator = next(n for n, o in genesis.meter_operators.items() if o.name != mp.meter_operator)
    current = next(f"meter-operator-{i}" for i in range(1, 10)
                   if devnet_key(f"meter-operator-{i}").public == genesis.meter_operators[mp.meter_operator].public_key)
    wim = operator_change(mp.malo_id, effective, operator)
    wim = wim.with_approvals(approve_change(devnet_key(k), genesis.chain_id, wim)
                             for k in (grid, current))
    submitter = devnet_key("meter-operator-1")
    async with MemoryHub() as hub:
        _, chains, stores = validator_1(tmp_path, genesis, hub)
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                await nursery.start(chains.serve)
                data = make_batch(submitter, genesis.chain_id, approved=[opening, wim]).encode()
                receipt = Receipt.decode(await chains._on_submit(submitter.public, data))
                assert receipt.batch_reason == 0 and receipt.accepted == 2 and not receipt.rejected
                pending = {scope: set(c.ledger.acceptor._changes) for scope, c in chains.chains.items()}
                assert all(("market", opening.party) in keys for keys in pending.values())  # every chain
                assert {s for s, keys in pending.items() if mp.malo_id in keys} == {mp.grid_area}
                nursery.cancel_scope.cancel()
    for s in stores:
        s.close()
