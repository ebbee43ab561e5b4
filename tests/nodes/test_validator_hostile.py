"""A running validator fed hostile input over real libp2p: every item gets its reason, and the node goes on
serving honest peers."""

from __future__ import annotations

import dataclasses
import logging
import struct
import time

import pytest
import trio
import trio.testing
from libp2p.custom_types import TProtocol
from libp2p.network.stream.exceptions import StreamError

from nodes.bench.attack import bombs
from nodes.home import NodeConfig
from nodes.protocol import ErrorReply, LightRequest
from nodes.runtime import NodeContext
from nodes.validator import Validator
from stromledger.cascade import Reason, Receipt, make_batch, sign_reading
from nodes.datagen.devnet_genesis import devnet_key, devnet_registry, meter_label
from stromledger.codec import decode
from stromledger.crypto import SigningKey
from stromledger.net import CONSENSUS, LIGHT, SUBMIT, RemoteError
from stromledger.net.framing import encode_frame
from stromledger.net.p2p import P2PNetwork
from stromledger.store import Store


@pytest.mark.trio
async def test_hostile_input_gets_reasons_and_the_node_keeps_serving(tmp_path):
    now = int(time.time())
    registry = devnet_registry(validators=4, balancing_groups=2, meters=12, period_seconds=60,
                               genesis_start=now - 120, chain_id="test-hostile")
    key = devnet_key("validator-1")
    operator = devnet_key("meter-operator-1")
    outsider = SigningKey.from_label("not-registered")
    ctx = NodeContext(config=NodeConfig(home=tmp_path, role="validator", name="validator-1"), key=key,
                      registry=registry, log=logging.getLogger("test.hostile"))
    store = Store(tmp_path / "ledger.sqlite3")
    net, client, stranger = P2PNetwork(key.seed), P2PNetwork(operator.seed), P2PNetwork(outsider.seed)
    period = now // 60  # the current period: readings for it are not yet in the future
    op_name = next(o.name for o in registry.meter_operators.values() if o.public_key == operator.public)
    meters = [m for m in registry.meter_points.values() if m.meter_operator == op_name]

    def reading(m, **kw):
        fields = dict(import_wh=5, export_wh=0)
        fields.update(kw)
        return sign_reading(devnet_key(meter_label(m.malo_id)), registry.chain_id, m.malo_id, period, **fields)

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for n in (net, client, stranger):
                await nursery.start(n.run)
            client.add_peer(key.public, net.listen_addr)
            stranger.add_peer(key.public, net.listen_addr)
            validator = Validator(ctx, store, net, write_exports=False)
            await nursery.start(validator.serve)

            async def submit(payload: bytes) -> Receipt:
                answer = decode(await client.request(key.public, SUBMIT, payload, timeout=5))
                assert isinstance(answer, Receipt)
                return answer

            # 1. Bytes that are no batch at all: refused as a whole, with the reason.
            r = await submit(b"\x93\x01\x02garbage")
            assert r.batch_reason == Reason.MALFORMED and r.accepted == 0

            # 2. A batch for another chain.
            other = make_batch(operator, "another-chain", [reading(meters[0])])
            assert (await submit(other.encode())).batch_reason == Reason.WRONG_CHAIN

            # 3. Item by item: bad signature, unknown meter point, above max power, future period.
            good = reading(meters[0])
            forged = dataclasses.replace(reading(meters[1]), import_wh=6)  # signature no longer matches
            unknown = dataclasses.replace(reading(meters[2]), malo_id="41373559241")
            too_much = reading(meters[3], import_wh=registry.max_wh(meters[3].malo_id) + 1)
            future = sign_reading(devnet_key(meter_label(meters[4].malo_id)), registry.chain_id,
                                  meters[4].malo_id, period + 5, 1, 0)
            batch = make_batch(operator, registry.chain_id, [good, forged, unknown, too_much])
            r = await submit(batch.encode())
            assert r.batch_reason == 0 and r.accepted == 1
            reasons = {i.index: Reason(i.reason) for i in r.rejected}
            assert reasons == {1: Reason.BAD_SIGNATURE, 2: Reason.UNKNOWN_METER_POINT, 3: Reason.ABOVE_MAX_POWER}
            r = await submit(make_batch(operator, registry.chain_id, [future]).encode())
            assert r.batch_reason == Reason.PERIOD_IN_FUTURE

            # 4. The same batch again is a harmless duplicate; a different value for the same version is
            #    a conflict kept as evidence, never an overwrite.
            assert (await submit(batch.encode())).batch_reason == Reason.DUPLICATE
            conflict = make_batch(operator, registry.chain_id, [reading(meters[0], import_wh=7)])
            r = await submit(conflict.encode())
            assert [Reason(i.reason) for i in r.rejected] == [Reason.CONFLICTING_DUPLICATE]

            # 5. An unregistered peer is refused on every protocol, and counted.
            with pytest.raises(RemoteError) as err:
                await stranger.request(key.public, SUBMIT, batch.encode(), timeout=5)
            assert err.value.reason == "unauthorized"
            await stranger.send(key.public, CONSENSUS, b"forged vote")
            await trio.testing.wait_all_tasks_blocked()
            assert net.stats["rejected_unauthorized"] >= 2

            # 6. A registered non-validator may not speak consensus; a malformed frame resets its stream.
            with pytest.raises(RemoteError):
                await client.request(key.public, CONSENSUS, b"x", timeout=5)
            raw = await client.host.new_stream(net.peer_id, [TProtocol(SUBMIT)])
            await raw.write(struct.pack(">I", 64 * 1024 * 1024) + b"\x01partial")
            with pytest.raises(StreamError):
                await raw.read(10)
            raw = await client.host.new_stream(net.peer_id, [TProtocol(SUBMIT)])
            await raw.write(encode_frame(b"\x7fnot an envelope"))
            with pytest.raises(StreamError):
                await raw.read(10)

            # 7. A header bomb (a batch whose readings are a million empty arrays) is refused at the header.
            bomb = bombs(1)["1 MiB of empty arrays as a batch's readings"]
            assert (await submit(bomb)).batch_reason == Reason.OVERSIZED
            # One reading in many distinct batches: held once.
            copies = [make_batch(operator, registry.chain_id, [reading(meters[4]), dataclasses.replace(
                reading(meters[3]), import_wh=i)]) for i in range(6, 12)]  # a bad-signature extra each
            for c in copies:
                await submit(c.encode())
            assert sum(c.digest() in validator.ledger.acceptor.batches for c in copies) == 1

            # 8. Light requests for a period not settled yet get a reason, not silence.
            answer = decode(await client.request(key.public, LIGHT, LightRequest(period, ()).encode(), timeout=5))
            assert isinstance(answer, ErrorReply) and answer.reason == "not_committed"

            # After all that, an honest batch is still admitted and stored durably.
            honest = make_batch(operator, registry.chain_id, [reading(m) for m in meters[5:8]])
            r = await submit(honest.encode())
            assert r.batch_reason == 0 and r.accepted == len(meters[5:8])
            assert store.has_batch(honest.digest())
            assert ctx.rejections["batch_malformed"] == 1 and ctx.rejections["batch_oversized"] == 1
            nursery.cancel_scope.cancel()
    store.close()
