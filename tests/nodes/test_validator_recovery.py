"""Validator recovery paths: the consensus WAL keeps each distinct message once and is replayed after a
restart; a committed seal whose batches this node lacks waits for them instead of breaking settlement."""

from __future__ import annotations

import logging
import time

import pytest
import trio

from nodes.home import NodeConfig
from nodes.runtime import NodeContext
from nodes.validator import Validator
from stromledger.cascade import Ledger, make_batch, sign_reading
from nodes.datagen.devnet_genesis import devnet_key, devnet_registry, meter_label
from stromledger.consensus.messages import Prevote, sign_vote
from stromledger.net import MemoryHub
from stromledger.store import Store


def _registry(start: int):
    return devnet_registry(validators=4, balancing_groups=2, meters=10, period_seconds=60, genesis_start=start,
                           chain_id="test-recovery")


def _validator(tmp_path, registry, hub, store) -> Validator:
    key = devnet_key("validator-1")
    ctx = NodeContext(config=NodeConfig(home=tmp_path, role="validator", name="validator-1"), key=key,
                      registry=registry, log=logging.getLogger("test.recovery"))
    return Validator(ctx, store, hub.endpoint(key.public), write_exports=False)


@pytest.mark.trio
async def test_wal_keeps_each_message_once_and_replays_after_restart(tmp_path):
    registry = _registry(int(time.time()) + 3600)  # genesis in the future: no height starts by itself
    other = devnet_key("validator-2")
    store = Store(tmp_path / "ledger.sqlite3")
    async with MemoryHub() as hub:
        v = _validator(tmp_path, registry, hub, store)
        h = v.machine.height
        vote = sign_vote(Prevote, other, registry.chain_id, h, 0, bytes(32)).encode()
        for _ in range(5):  # a peer resending the same vote
            await v._on_consensus(other.public, vote)
        assert store.wal_read(h) == [("msg", vote)]

        hub.detach(devnet_key("validator-1").public)  # the node goes away and comes back
        restarted = _validator(tmp_path, registry, hub, store)
        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(restarted._replay_wal)
                event = await restarted._recv.receive()
                nursery.cancel_scope.cancel()
        assert event.vote.encode() == vote
    store.close()


@pytest.mark.trio
async def test_commit_waits_for_missing_batches_then_applies(tmp_path):
    registry = _registry(int(time.time()) - 600)
    g = registry.genesis_period
    operator = devnet_key("meter-operator-1")
    op = next(o.name for o in registry.meter_operators.values() if o.public_key == operator.public)
    meter = next(m for m in registry.meter_points.values() if m.meter_operator == op)
    batch = make_batch(operator, registry.chain_id,
                       [sign_reading(devnet_key(meter_label(meter.malo_id)), registry.chain_id, meter.malo_id, g, 4, 0)])
    # Another validator's ledger settled the batch; this one never received it.
    elsewhere = Ledger(registry)
    elsewhere.admit(batch, g)
    seal = elsewhere.propose().seal_bytes

    store = Store(tmp_path / "ledger.sqlite3")
    async with MemoryHub() as hub:
        v = _validator(tmp_path, registry, hub, store)
        result = {}

        async def apply():
            result["outcome"] = await v._apply_commit(g, seal)

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(apply)
                await v.settlement_blocked.wait()  # no peer has the batch: it waits, nothing breaks
                assert v.settlement_waiting == g and v.ledger.next_height == g
                v.ledger.add_fetched(batch)  # the batch turns up (in a node: fetched from a peer)
        outcome = result["outcome"][0]
        assert outcome.seal_bytes == seal and v.ledger.next_height == g + 1 and v.settlement_waiting is None
    store.close()
