"""A js-libp2p client speaks the protocol from docs/protocol.md: it verifies docs/vectors/, fetches a commit
certificate and inclusion proofs from a running validator (over loopback, Noise, yamux) and verifies them by
the spec's rules, and an unregistered js peer is refused with its reason and disconnected within a second.

`npm ci` runs once into tests/interop/js/node_modules (git-ignored, pinned by package-lock.json) and is reused
while package-lock.json is unchanged. Skipped only where `node` (or npm) is missing."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import trio

from nodes.datagen.devnet_genesis import devnet_key, devnet_registry, meter_label
from nodes.home import NodeConfig
from nodes.runtime import NodeContext
from nodes.validator import Validator
from stromledger.cascade import Receipt, SettledReading, make_batch, sign_reading
from stromledger.codec import decode
from stromledger.consensus.config import ConsensusConfig
from stromledger.net import SUBMIT
from stromledger.net.identity import peer_id_for
from stromledger.net.p2p import P2PNetwork
from stromledger.store import Store

JS = Path(__file__).resolve().parent / "js"
VECTORS = Path(__file__).resolve().parents[2] / "docs" / "vectors"
NODE, NPM = shutil.which("node"), shutil.which("npm")
pytestmark = pytest.mark.skipif(NODE is None or NPM is None,
                                reason="node and npm are needed for the js-libp2p interop test (not installed)")


@pytest.fixture(scope="module")
def js_client() -> Path:
    """tests/interop/js with its pinned node_modules: `npm ci` once per package-lock.json."""
    lock, stamp = JS / "package-lock.json", JS / "node_modules" / ".stromledger-ci"
    if not stamp.exists() or stamp.read_text() != lock.read_text():
        subprocess.run([NPM, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=JS, check=True,
                       timeout=600, capture_output=True)
        stamp.write_text(lock.read_text())
    return JS / "client.mjs"


def run_js(client: Path, *args: str) -> dict:
    done = subprocess.run([NODE, str(client), *args], cwd=JS, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip(), done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


async def run_js_async(client: Path, *args: str) -> dict:
    done = await trio.run_process([NODE, str(client), *args], cwd=JS, capture_stdout=True, capture_stderr=True,
                                  check=False)
    assert done.stdout.strip(), done.stderr.decode()
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


def test_js_client_verifies_the_checked_in_vectors(js_client: Path) -> None:
    out = run_js(js_client, "vectors", str(VECTORS))
    assert out.get("ok") is True, out
    assert out["checked"]["light"]["tampered_failed"] == [json.loads((VECTORS / "light.json").read_text())
                                                         ["vectors"]["tampered_fails"]["malo_id"]]


@pytest.mark.trio
async def test_js_light_client_and_outsider_against_a_running_validator(js_client: Path, tmp_path: Path) -> None:
    start = int(time.time()) + 2
    registry = devnet_registry(validators=1, balancing_groups=1, meters=8, period_seconds=1, genesis_start=start,
                               chain_id="test-interop", grace_seconds=1)
    validator_key, operator = devnet_key("validator-1"), devnet_key("meter-operator-1")
    p0 = registry.genesis_period
    genesis = tmp_path / "genesis.json"
    genesis.write_text(json.dumps({"chain_id": registry.chain_id, "registry_hash": registry.hash.hex(),
                                   "validators": [k.hex() for k in registry.validator_keys()]}))
    store = Store(tmp_path / "v" / "ledger.sqlite3")
    net, client = P2PNetwork(validator_key.seed), P2PNetwork(operator.seed)
    try:
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                await nursery.start(net.run)
                await nursery.start(client.run)
                client.add_peer(validator_key.public, net.listen_addr)
                ctx = NodeContext(config=NodeConfig(home=tmp_path / "v", role="validator", name="validator-1"),
                                  key=validator_key, registry=registry, log=logging.getLogger("test.interop"))
                validator = Validator(ctx, store, net, config=ConsensusConfig(propose_ms=1000, prevote_ms=300,
                                                                              precommit_ms=300, resend_ms=300))
                await nursery.start(validator.serve)

                await trio.sleep(max(0.0, registry.period(p0).start - time.time()))  # the wall clock, not a task
                mine = sorted(m.malo_id for m in registry.meter_points.values()
                              if registry.meter_operators[m.meter_operator].public_key == operator.public)
                readings = [sign_reading(devnet_key(meter_label(m)), registry.chain_id, m, p0,
                                         min(7, registry.max_wh(m)), 0) for m in mine]
                receipt = decode(await client.request(validator_key.public, SUBMIT,
                                                      make_batch(operator, registry.chain_id, readings).encode(),
                                                      timeout=5))
                assert isinstance(receipt, Receipt) and receipt.accepted == len(readings)
                while store.last_height() is None or store.last_height() < p0:
                    async with validator.committed:
                        await validator.committed.wait()

                pid = peer_id_for(validator_key.public)
                light = await run_js_async(js_client, "light", net.listen_addr, pid, operator.seed.hex(),
                                           str(genesis), str(p0), *mine)
                assert "error" not in light, light
                assert light["height"] == p0 and light["verified"] == mine and not light["failed"]
                sent = {r.malo_id: r for r in readings}
                for proof in light["proofs"]:
                    leaf = SettledReading.decode(bytes.fromhex(proof["leaf"]))
                    assert leaf.reading_sig == sent[leaf.malo_id].sig  # the leaf settles what was sent

                outsider = await run_js_async(js_client, "outsider", net.listen_addr, pid)
                print("js outsider:", outsider, "js light:", {k: light[k] for k in ("height", "verified", "signers")})
                assert outsider.get("reason") == "unauthorized", outsider
                assert outsider["disconnected_ms"] is not None and outsider["disconnected_ms"] < 1000, outsider
                assert net.stats["refused_unregistered"] >= 1
                assert net.connected_peers() <= {operator.public}
                nursery.cancel_scope.cancel()
    finally:
        store.close()
