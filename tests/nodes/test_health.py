"""Node health in status.json and `stromledger status`: a validator alone and behind is not healthy (exit 1,
with the reasons), a stopped node shows no connected peers, "genesis in N min" before launch, validators
connect to each other before the genesis time, and a commit decided while catching up is not reported as
"N ms after gate closure"."""

from __future__ import annotations

import logging
import subprocess
import sys
import time

import pytest
import trio

from nodes.cli import main
from nodes.datagen.devnet_genesis import devnet_key, devnet_registry, make_devnet_genesis
from nodes.health import health_problems
from nodes.home import NodeConfig
from nodes.runtime import NodeContext
from nodes.setup import home_status, init_home
from nodes.validator import Validator
from stromledger.net import MemoryHub
from stromledger.registry import load_genesis
from stromledger.store import Store

PS = 10


@pytest.fixture
def home(tmp_path):
    start = (int(time.time()) // PS + 30) * PS  # genesis in about five minutes
    genesis = make_devnet_genesis(tmp_path / "g", 4, 2, 24, PS, 7, genesis_start=start, chain_id="devnet-test-health")
    return init_home(tmp_path / "val", "validator", genesis, key=devnet_key("validator-1")).config


def validator(config: NodeConfig, hub, clock) -> Validator:
    reg = load_genesis(config.genesis_path)
    ctx = NodeContext(config=config, key=devnet_key("validator-1"), registry=reg, log=logging.getLogger("t.health"))
    store = Store.open_home(config.home)
    store.check_chain(reg.chain_id, reg.hash)
    return Validator(ctx, store, hub.endpoint(ctx.key.public), clock=clock, write_exports=False)


async def test_a_validator_alone_and_behind_fails_status(home, capsys):
    """Day one: a validator with 0 peers, 11 periods behind the clock, reported `running` and exited 0."""
    reg = load_genesis(home.genesis_path)
    gate = reg.period(reg.genesis_period + 11).end + reg.params.grace_seconds
    async with MemoryHub() as hub:
        v = validator(home, hub, lambda: gate + 1.0)
        s = v.status()
        assert {k: s[k] for k in ("peers", "quorum", "catching_up", "behind_periods", "halted",
                                  "settlement_waiting")} == {
            "peers": 0, "quorum": False, "catching_up": False, "behind_periods": 12, "halted": False,
            "settlement_waiting": None}
        v.ctx.write_status(s)  # this process is "the node": alive, status fresh
        v.store.close()
    assert main(["status", "--home", str(home.home)]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "no quorum" in out and "12 periods behind the clock" in out and "genesis in" in out


async def test_quorum_and_catching_up_with_peers():
    reg = devnet_registry(validators=4, balancing_groups=2, meters=10, period_seconds=PS, genesis_start=1_800_000_000,
                          chain_id="devnet-test-health2")
    keys = [devnet_key(f"validator-{i}") for i in (1, 2, 3)]
    from nodes.health import health_fields

    connected = {keys[1].public, keys[2].public}
    fields = health_fields(connected, reg, keys[0].public, behind_periods=5, halted=False)
    assert fields["quorum"] and fields["catching_up"] and fields["peers"] == 2
    assert not health_fields({keys[1].public}, reg, keys[0].public, behind_periods=0, halted=False)["quorum"]
    status = {**fields, "behind_periods": 1}
    running = {"state": "running", "running": True}
    assert health_problems("validator", running, status, reg, 1_800_000_000 + 3600) == []
    assert health_problems("validator", running, {**fields, "halted": True, "catching_up": False,
                                                  "settlement_waiting": 7}, reg,
                           1_800_000_000 + 3600) == ["halted: it cannot apply committed height 7",
                                                     "5 periods behind the clock"]
    assert health_problems("validator", {"state": "stale", "age_s": 90}, fields, reg, 0)[0].startswith("stale")


def test_a_stopped_node_shows_no_connected_peers(home, capsys):
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    v2 = devnet_key("validator-2").public.hex()
    home.status_path.parent.mkdir(parents=True, exist_ok=True)
    home.status_path.write_text(
        f'{{"role": "validator", "name": "x", "pid": {p.pid}, "updated_at": {int(time.time())}, '
        f'"peers": ["{v2}"], "peer_keys": ["{v2}"], "quorum": true}}')
    assert "peer_names" not in home_status(home.home, int(time.time()))
    assert main(["status", "--home", str(home.home)]) == 1
    out = capsys.readouterr().out
    assert "none connected (the node is not running)" in out and "validator-2" not in out


async def test_validators_connect_before_the_genesis_time(tmp_path, autojump_clock):
    """The mesh is there before launch: the validator reaches the others although no height has started."""
    reg = devnet_registry(validators=4, balancing_groups=2, meters=10, period_seconds=PS,
                          genesis_start=(int(time.time()) // PS + 360) * PS, chain_id="devnet-test-mesh")
    asked: list[bytes] = []
    async with MemoryHub() as hub:
        key = devnet_key("validator-1")
        ctx = NodeContext(config=NodeConfig(home=tmp_path, role="validator", name="validator-1"), key=key,
                          registry=reg, log=logging.getLogger("t.mesh"))
        store = Store(tmp_path / "ledger.sqlite3")
        net = hub.endpoint(key.public)
        net.connected_peers = lambda: set()  # nobody connected yet: the node must reach out
        original = net.request

        async def request(peer, protocol, payload, *, timeout):
            asked.append(peer)
            return await original(peer, protocol, payload, timeout=timeout)

        net.request = request
        v = Validator(ctx, store, net, write_exports=False)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(v._mesh_loop)
            await trio.sleep(1)
            nursery.cancel_scope.cancel()
        store.close()
    others = {devnet_key(f"validator-{i}").public for i in (2, 3, 4)}
    assert set(asked) == others  # before the genesis time


async def test_a_caught_up_commit_has_no_gate_latency(tmp_path, caplog):
    """Day one: commits replayed from peers were logged and measured as "49750 ms after gate closure"."""
    from stromledger.cascade import Ledger
    from stromledger.consensus import Precommit, ValidatorSet, build_certificate, sign_vote
    from stromledger.consensus import events as ev
    from stromledger.crypto import sha256

    reg = devnet_registry(validators=4, balancing_groups=2, meters=10, period_seconds=60,
                          genesis_start=(int(time.time()) // 60 - 10) * 60, chain_id="devnet-test-replay")
    g = reg.genesis_period
    elsewhere = Ledger(reg)

    def decided(h: int) -> ev.Decide:
        seal = elsewhere.propose().seal_bytes
        elsewhere.commit(seal)
        votes = [sign_vote(Precommit, devnet_key(f"validator-{i}"), reg.chain_id, h, 0, sha256(seal))
                 for i in (2, 3, 4)]
        return ev.Decide(h, seal, build_certificate(h, 0, sha256(seal), votes, ValidatorSet(reg.validator_keys())))

    key = devnet_key("validator-1")
    ctx = NodeContext(config=NodeConfig(home=tmp_path, role="validator", name="validator-1"), key=key, registry=reg,
                      log=logging.getLogger("t.replay"))
    store = Store(tmp_path / "ledger.sqlite3")
    async with MemoryHub() as hub:
        v = Validator(ctx, store, hub.endpoint(key.public), write_exports=False)
        with caplog.at_level(logging.INFO):
            await v._on_decide(decided(g))  # far behind: a height this node never started itself
            assert v.last_commit.ms_after_gate is None and v.status()["last_commit"]["ms_after_gate_closure"] is None
            v._started_height = g + 1  # the clock loop started this one at its gate closure
            await v._on_decide(decided(g + 1))
            assert isinstance(v.last_commit.ms_after_gate, int)
    store.close()
    logs = [r.getMessage() for r in caplog.records if "committed period" in r.getMessage()]
    assert "caught up from the other validators" in logs[0] and "ms after gate closure" in logs[1]
