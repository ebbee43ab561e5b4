"""Four validators over real libp2p (Noise, loopback) in one trio test commit three periods, with a meter
operator submitting signed readings through the submit protocol."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import trio

from nodes.home import NodeConfig
from nodes.protocol import LightReply, LightRequest
from nodes.runtime import NodeContext
from nodes.validator import Validator
from stromledger import merkle
from stromledger.cascade import CORRECTED, MEASURED, PeriodSeal, Receipt, SettledReading, make_batch, sign_reading
from nodes.datagen.devnet_genesis import devnet_key, devnet_registry, meter_label
from stromledger.codec import decode
from stromledger.consensus.certificate import verify_certificate
from stromledger.consensus.config import ConsensusConfig
from stromledger.crypto import sha256
from stromledger.net import LIGHT, SUBMIT
from stromledger.net.p2p import P2PNetwork
from stromledger.store import Store

PERIOD = 1


def _context(home: Path, registry, key, name) -> NodeContext:
    import logging

    cfg = NodeConfig(home=home, role="validator", name=name)
    return NodeContext(config=cfg, key=key, registry=registry, log=logging.getLogger(f"test.{name}"))


async def _wait_wall(ts: float) -> None:
    """Real-time nodes: wait for the wall clock to reach a period boundary (not for another task)."""
    await trio.sleep(max(0.0, ts - time.time()))


@pytest.mark.trio
async def test_four_validators_commit_three_periods(tmp_path):
    start = (int(time.time()) // PERIOD + 3) * PERIOD
    registry = devnet_registry(validators=4, balancing_groups=2, meters=20, period_seconds=PERIOD,
                               genesis_start=start, chain_id="test-p2p", grace_seconds=1)
    keys = [devnet_key(f"validator-{i}") for i in range(1, 5)]
    assert [k.public for k in keys] == list(registry.validator_keys())
    operator = devnet_key("meter-operator-1")
    config = ConsensusConfig(propose_ms=2000, prevote_ms=500, precommit_ms=500, resend_ms=500)
    p0 = registry.genesis_period

    stores = [Store(tmp_path / f"v{i}" / "ledger.sqlite3") for i in range(4)]
    nets = [P2PNetwork(k.seed) for k in keys]
    client = P2PNetwork(operator.seed)
    with trio.fail_after(40):
        async with trio.open_nursery() as nursery:
            for n in nets + [client]:
                await nursery.start(n.run)
            for i, n in enumerate(nets):
                for j, m in enumerate(nets):
                    if i != j:
                        n.add_peer(keys[j].public, m.listen_addr)
            client.add_peer(keys[0].public, nets[0].listen_addr)
            validators = []
            for i in range(4):
                ctx = _context(tmp_path / f"v{i}", registry, keys[i], f"validator-{i + 1}")
                v = Validator(ctx, stores[i], nets[i], config=config)
                await nursery.start(v.serve)
                validators.append(v)

            # The meter operator sends version-1 readings of its meters for the first period once it began.
            await _wait_wall(registry.period(p0).start)
            mine = [m for m in registry.meter_points.values()
                    if m.meter_operator == next(o.name for o in registry.meter_operators.values()
                                                if o.public_key == operator.public)]
            readings = [sign_reading(devnet_key(meter_label(m.malo_id)), registry.chain_id, m.malo_id, p0,
                                     min(10, registry.max_wh(m.malo_id)), 0) for m in mine]
            batch = make_batch(operator, registry.chain_id, readings)
            receipt = decode(await client.request(keys[0].public, SUBMIT, batch.encode(), timeout=5))
            assert isinstance(receipt, Receipt) and receipt.batch == batch.digest()
            assert receipt.accepted == len(readings) and not receipt.rejected

            # Wait (on commit notifications) until every validator committed three heights.
            for v in validators:
                while v.store.last_height() is None or v.store.last_height() < p0 + 2:
                    async with v.committed:
                        await v.committed.wait()

            for h in (p0, p0 + 1, p0 + 2):
                hashes = {s.get_commit(h).value_hash for s in stores}
                assert len(hashes) == 1, f"validators disagree at height {h}"
                c = stores[0].get_commit(h)
                from stromledger.consensus.messages import CommitCertificate
                verify_certificate(CommitCertificate.decode(c.certificate), sha256(c.value),
                                   registry.validator_keys(), registry.chain_id, h)

            # The light protocol proves the readings were settled as sent (version 1 or a correction).
            reply = decode(await client.request(keys[0].public, LIGHT,
                                                LightRequest(p0, tuple(m.malo_id for m in mine)).encode(), timeout=5))
            assert isinstance(reply, LightReply) and len(reply.proofs) == len(mine)
            seal = PeriodSeal.decode(reply.seal)
            verify_certificate(reply.certificate, sha256(reply.seal), registry.validator_keys(), registry.chain_id)
            result = next(r for r in seal.results if r.period == p0 and r.version == reply.version)
            sent = {r.malo_id: r for r in readings}
            for proof in reply.proofs:
                assert merkle.verify_inclusion(result.merkle_root, proof.leaf, proof.index, reply.size, proof.path)
                leaf = SettledReading.decode(proof.leaf)
                r = sent[leaf.malo_id]
                assert (leaf.reading_import, leaf.reading_export, leaf.reading_sig) == (r.import_wh, r.export_wh, r.sig)
                assert leaf.quality in (MEASURED, CORRECTED)
            nursery.cancel_scope.cancel()
    for s in stores:
        s.close()
